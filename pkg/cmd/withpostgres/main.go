// Command withpostgres runs a command next to a throwaway PostgreSQL cluster:
//
//	go run puente.dev/pkg/cmd/withpostgres -- go test ./...
//
// It starts one ephemeral cluster (see pglocal), hands the command its URL in
// PUENTE_TEST_DATABASE_URL, so that every test binary the command runs shares
// that one cluster (see pgtest), stops the cluster when the command ends, and
// exits with the command's status.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"puente.dev/pkg/pglocal"
)

// envURL is pgtest.EnvURL, not imported: that would build package testing
// into this command.
const envURL = "PUENTE_TEST_DATABASE_URL"

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], sigs, os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, sigs <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: withpostgres -- command [args...]")
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A signal before the command runs abandons the start; later ones go to
	// the command, which decides how to end. Either way the cluster is stopped.
	var (
		mu       sync.Mutex
		child    *os.Process
		signaled os.Signal
	)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				mu.Lock()
				if child != nil {
					_ = child.Signal(s)
				} else if signaled == nil {
					signaled = s
					cancel()
				}
				mu.Unlock()
			case <-done:
				return
			}
		}
	}()

	c, err := pglocal.Start(ctx, pglocal.Options{Ephemeral: true})
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		if signaled != nil {
			return signalCode(signaled)
		}
		fmt.Fprintf(stderr, "withpostgres: %v\n", err)
		return 1
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = append(os.Environ(), envURL+"="+c.URL("postgres"))
	mu.Lock()
	sig := signaled
	if sig == nil {
		if err = cmd.Start(); err == nil {
			child = cmd.Process
		}
	}
	mu.Unlock()

	var code int
	switch {
	case sig != nil:
		code = signalCode(sig)
	case err != nil:
		fmt.Fprintf(stderr, "withpostgres: %v\n", err)
		code = 127
	default:
		code = exitCode(cmd.Wait())
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintf(stderr, "withpostgres: %v\n", err)
		code = max(code, 1)
	}
	return code
}

// exitCode is the command's status as a shell would report it.
func exitCode(err error) int {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		if err != nil {
			return 1
		}
		return 0
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return signalCode(ws.Signal())
	}
	return exit.ExitCode()
}

func signalCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}
