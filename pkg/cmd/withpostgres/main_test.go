package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
)

// The test binary doubles as the command run under withpostgres.
const childEnv = "WITHPOSTGRES_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "query":
		// Connects to the cluster it was given, and exits with a status of its own.
		url := os.Getenv(envURL)
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var one int
		if err := conn.QueryRow(context.Background(), "select 1").Scan(&one); err != nil || one != 1 {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(url)
		os.Exit(3)
	case "wait":
		// Exits 5 on SIGTERM.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready", os.Getenv(envURL))
		<-sigs
		os.Exit(5)
	}
}

func stopped(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		_ = conn.Close(ctx)
	}
	assert.Error(t, err, "the cluster is stopped")
}

func TestRunsCommandWithCluster(t *testing.T) {
	t.Setenv(childEnv, "query")
	var stdout, stderr strings.Builder
	code := run([]string{"--", os.Args[0]}, nil, nil, &stdout, &stderr)
	assert.Equal(t, 3, code, stderr.String())
	url := strings.TrimSpace(stdout.String())
	assert.True(t, strings.HasPrefix(url, "postgres://puente:"), url)
	assert.True(t, strings.HasSuffix(url, "/postgres?sslmode=disable"), url)
	stopped(t, url)
}

func TestForwardsSignals(t *testing.T) {
	t.Setenv(childEnv, "wait")
	sigs := make(chan os.Signal, 1)
	out, w := io.Pipe()
	codes := make(chan int, 1)
	go func() {
		codes <- run([]string{"--", os.Args[0]}, sigs, nil, w, os.Stderr)
		_ = w.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	require.True(t, ok, line)

	sigs <- syscall.SIGTERM
	go func() { _, _ = io.Copy(io.Discard, out) }()
	assert.Equal(t, 5, <-codes)
	stopped(t, url)
}

func TestExitStatus(t *testing.T) {
	assert.Equal(t, 2, run(nil, nil, nil, io.Discard, io.Discard), "no command")
	assert.Equal(t, 127, run([]string{"--", "/nonexistent/command"}, nil, nil, io.Discard, io.Discard))
	assert.Equal(t, 128+int(syscall.SIGKILL), run([]string{"sh", "-c", "kill -9 $$"}, nil, nil, io.Discard, io.Discard))
}

func TestEnvURL(t *testing.T) {
	assert.Equal(t, pgtest.EnvURL, envURL)
}
