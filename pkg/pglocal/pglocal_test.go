package pglocal

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tempDir is a fresh folder the server user can reach (t.TempDir and
// os.MkdirTemp make mode 0700 folders, out of reach of another user).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pglocal-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

func start(t *testing.T, o Options) *Cluster {
	t.Helper()
	begin := time.Now()
	c, err := Start(t.Context(), o)
	require.NoError(t, err)
	t.Logf("Start took %s", time.Since(begin))
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEphemeral(t *testing.T) {
	var log syncBuffer
	c := start(t, Options{Ephemeral: true, Log: &log})
	assert.Contains(t, log.String(), "ready to accept connections")

	conn := connect(t, c.URL("postgres"))
	var one int
	require.NoError(t, conn.QueryRow(t.Context(), "select 1").Scan(&one))
	assert.Equal(t, 1, one)

	for setting, want := range map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.dir,
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"password_encryption":     "scram-sha-256",
	} {
		var got string
		require.NoError(t, conn.QueryRow(t.Context(), "select current_setting($1)", setting).Scan(&got))
		assert.Equal(t, want, got, setting)
	}
	var superuser bool
	require.NoError(t, conn.QueryRow(t.Context(), "select rolsuper from pg_roles where rolname = current_user").Scan(&superuser))
	assert.True(t, superuser)

	fi, err := os.Stat(filepath.Join(c.dir, passwordFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, c.Stop())
	assert.NoDirExists(t, c.dir)
	require.NoError(t, c.Stop(), "a second Stop is harmless")
}

func TestPasswordRequired(t *testing.T) {
	c := start(t, Options{Ephemeral: true, Dir: filepath.Join(tempDir(t), "c")})
	port := strconv.Itoa(c.port)
	for name, url := range map[string]string{
		"wrong password": "postgres://puente:wrong@127.0.0.1:" + port + "/postgres?sslmode=disable",
		"no password":    "postgres://puente@127.0.0.1:" + port + "/postgres?sslmode=disable",
		"unix socket":    "host=" + c.dir + " port=" + port + " user=puente dbname=postgres",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := pgx.Connect(t.Context(), url)
			if err == nil {
				_ = conn.Close(t.Context())
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "password")
		})
	}
}

func TestReuse(t *testing.T) {
	dir := filepath.Join(tempDir(t), "cluster")
	c1 := start(t, Options{Dir: dir})
	conn := connect(t, c1.URL("postgres"))
	_, err := conn.Exec(t.Context(), "create table kept (v text); insert into kept values ('hello')")
	require.NoError(t, err)
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	require.NoError(t, err)
	require.NoError(t, conn.Close(t.Context()))
	require.NoError(t, c1.Stop())
	assert.DirExists(t, dir)

	// A postmaster.pid whose process is gone, as a crash leaves it.
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	stale := strconv.Itoa(dead.Process.Pid) + string(pidFile[strings.IndexByte(string(pidFile), '\n'):])
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(stale), 0o600))
	if c1.as != nil {
		require.NoError(t, os.Chown(filepath.Join(dir, "data", "postmaster.pid"), int(c1.as.Uid), int(c1.as.Gid)))
	}

	c2 := start(t, Options{Dir: dir})
	assert.Equal(t, c1.password, c2.password)
	var v string
	require.NoError(t, connect(t, c2.URL("postgres")).QueryRow(t.Context(), "select v from kept").Scan(&v))
	assert.Equal(t, "hello", v)

	// Left running: a third Start finds it and uses it as it is.
	c3 := start(t, Options{Dir: dir})
	assert.Nil(t, c3.cmd, "reused, not started")
	assert.Equal(t, c2.URL("postgres"), c3.URL("postgres"))
	require.NoError(t, connect(t, c3.URL("postgres")).QueryRow(t.Context(), "select v from kept").Scan(&v))
	require.NoError(t, c3.Stop())
	require.NoError(t, c2.Stop(), "its server is already stopped")
	assert.NoFileExists(t, filepath.Join(dir, "data", "postmaster.pid"))
}

func TestRefusesSymlink(t *testing.T) {
	base := tempDir(t)
	require.NoError(t, os.Mkdir(filepath.Join(base, "real"), 0o700))
	require.NoError(t, os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "link")))
	_, err := Start(t.Context(), Options{Dir: filepath.Join(base, "link")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "symlink")
}

func TestRefusesClusterOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		// Only root can make files that belong to someone else.
		t.Log("not root: nothing to check")
		return
	}
	dir := tempDir(t)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "data"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "PG_VERSION"), []byte("15\n"), 0o600))
	_, err := Start(t.Context(), Options{Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "belongs to uid 0")
}

func TestUsable(t *testing.T) {
	require.NoError(t, Usable(filepath.Join(os.TempDir(), "pglocal-not-yet")))
	if os.Geteuid() != 0 {
		t.Log("not root: the server runs as this user, so any folder it can create is usable")
		return
	}
	private, err := os.MkdirTemp("", "pglocal-private-") // mode 0700, owned by root
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(private) })
	dir := filepath.Join(private, "sub", "cluster")

	err = Usable(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), private)

	_, err = Start(t.Context(), Options{Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), private)

	// Through a symlink, the real chain of folders is what counts.
	link := filepath.Join(tempDir(t), "link")
	require.NoError(t, os.Symlink(private, link))
	assert.Error(t, Usable(filepath.Join(link, "cluster")))
}

func TestFindBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(filepath.Join(t.TempDir(), "none"))
	require.Error(t, err)
	assert.Equal(t, "PostgreSQL server binaries not found (initdb, pg_ctl): install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or set DATABASE_URL to an existing database", err.Error())

	root := t.TempDir()
	install := func(version string, names ...string) {
		dir := filepath.Join(root, version, "bin")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, n := range names {
			require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	install("9.6", "initdb", "pg_ctl", "postgres")
	install("15", "initdb", "pg_ctl", "postgres")
	install("16", "initdb", "pg_ctl") // incomplete: skipped
	got, err := findBinaries(root)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "15", "bin"), got)

	// PATH comes first.
	inPath := t.TempDir()
	for _, n := range []string{"initdb", "pg_ctl", "postgres"} {
		require.NoError(t, os.WriteFile(filepath.Join(inPath, n), []byte("#!/bin/sh\n"), 0o755))
	}
	t.Setenv("PATH", inPath)
	got, err = findBinaries(root)
	require.NoError(t, err)
	assert.Equal(t, inPath, got)
}

func TestSweep(t *testing.T) {
	root := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name string, mtime time.Time, pid int) string {
		d := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Join(d, "data"), 0o700))
		if pid != 0 {
			require.NoError(t, os.WriteFile(filepath.Join(d, "data", "postmaster.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600))
		}
		require.NoError(t, os.Chtimes(d, mtime, mtime))
		return d
	}
	abandoned := mk(ephemeralPrefix+"abandoned", old, 0)
	running := mk(ephemeralPrefix+"running", old, os.Getpid())
	starting := mk(ephemeralPrefix+"starting", time.Now(), 0)
	notOurs := mk("pglocal-mine", old, 0)

	sweep(root)
	assert.NoDirExists(t, abandoned)
	assert.DirExists(t, running)
	assert.DirExists(t, starting)
	assert.DirExists(t, notOurs)
}

// A Start that cannot use the running server in its folder fails, and leaves
// that server alone.
func TestFailedStartLeavesRunningServerAlone(t *testing.T) {
	dir := filepath.Join(tempDir(t), "cluster")
	c := start(t, Options{Dir: dir})
	pwPath := filepath.Join(dir, passwordFile)
	pw, err := os.ReadFile(pwPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(pwPath, []byte("wrong\n"), 0o600))

	_, err = Start(t.Context(), Options{Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "postmaster.pid")

	require.NoError(t, os.WriteFile(pwPath, pw, 0o600))
	var one int
	require.NoError(t, connect(t, c.URL("postgres")).QueryRow(t.Context(), "select 1").Scan(&one))
	require.NoError(t, c.Stop())
}
