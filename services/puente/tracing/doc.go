// Package tracing holds the end-to-end tests of Puente's traces, run against the real binary
// (`puente serve` exporting over OTLP to a collector the test runs), and the benchmarks of what
// tracing costs the read path. It has no code of its own.
package tracing
