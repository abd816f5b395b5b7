// Package scaleout proves that Puente scales out on one Postgres: its tests run two processes of
// every service (as two pods of each Deployment would) behind per-service DNS names that resolve
// to both, share background work between them, and stop one of each with SIGTERM in the middle
// of a load without losing or failing anything. Its benchmarks compare the read path's throughput
// with one and two processes per service. Everything lives in the tests; this file only names the
// package.
package scaleout
