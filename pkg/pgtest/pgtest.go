// Package pgtest gives each test its own fresh PostgreSQL database.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and in a test:
//
//	url := pgtest.NewDatabase(t)
//
// All the test binaries of a `go test ./...` can share one cluster: run them
// under `go run puente.dev/pkg/cmd/withpostgres -- go test ./...`, which sets
// EnvURL; otherwise each test binary starts a throwaway cluster of its own.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"puente.dev/pkg/pglocal"
)

// EnvURL names the variable holding the URL of a maintenance database on a
// cluster where tests may CREATE DATABASE and CREATE ROLE.
const EnvURL = "PUENTE_TEST_DATABASE_URL"

// Main runs the tests of a package. Unless EnvURL is set, it starts a
// throwaway cluster for them first and stops it afterwards.
func Main(m *testing.M) {
	if os.Getenv(EnvURL) != "" {
		os.Exit(m.Run())
	}
	c, err := pglocal.Start(context.Background(), pglocal.Options{Ephemeral: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		os.Exit(1)
	}
	// Interrupted: stop the cluster anyway, or its folder would be left behind.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		_ = c.Stop()
		os.Exit(1)
	}()
	if err := os.Setenv(EnvURL, c.URL("postgres")); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// NewDatabase creates an empty database for this test alone, drops it when
// the test ends (cutting any connections left open), and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		t.Fatalf("pgtest: %s is not set: call pgtest.Main(m) from TestMain, or run the tests under `go run puente.dev/pkg/cmd/withpostgres -- go test ./...`", EnvURL)
		return ""
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s is not a postgres:// URL", EnvURL)
		return ""
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	ident := pgx.Identifier{name}.Sanitize()

	// template0: nobody connects to it, so the copy never waits on other
	// sessions, and it holds nothing another test could have added.
	if err := admin(base, func(version int) string {
		create := "CREATE DATABASE " + ident + " TEMPLATE template0"
		if version >= 15 {
			// The default since 15, WAL_LOG, writes the whole template to
			// the WAL: ~140 ms against ~15 ms here.
			create += " STRATEGY FILE_COPY"
		}
		return create
	}); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
		return ""
	}
	t.Cleanup(func() {
		drop := func(int) string { return "DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)" }
		if err := admin(base, drop); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// Connections to the maintenance database are kept for the next call: each
// new one costs a SCRAM handshake, ~20 ms here.
var idle = make(chan adminConn, 8)

type adminConn struct {
	url  string
	conn *pgx.Conn
}

// admin runs one statement (CREATE and DROP DATABASE allow no transaction)
// on the maintenance database at url; sql gets the server's major version.
func admin(url string, sql func(version int) string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conn *pgx.Conn
	select {
	case a := <-idle:
		if a.url == url {
			conn = a.conn
		} else {
			_ = a.conn.Close(ctx)
		}
	default:
	}
	if conn == nil {
		var err error
		if conn, err = pgx.Connect(ctx, url); err != nil {
			return err
		}
	}
	version, _ := strconv.Atoi(strings.SplitN(conn.PgConn().ParameterStatus("server_version"), ".", 2)[0])
	if _, err := conn.Exec(ctx, sql(version)); err != nil {
		_ = conn.Close(ctx)
		return err
	}
	select {
	case idle <- adminConn{url, conn}:
	default:
		_ = conn.Close(ctx)
	}
	return nil
}
