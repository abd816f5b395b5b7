//go:build race

package tracing_test

// raceEnabled builds the binary under test with the race detector when the tests run with it.
const raceEnabled = true
