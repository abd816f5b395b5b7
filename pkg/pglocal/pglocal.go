// Package pglocal runs a PostgreSQL cluster from the server binaries installed
// on this machine: for tests, and for running services locally without Docker.
//
// Layout of Options.Dir:
//
//	data/             the cluster (PGDATA)
//	puente.password   the superuser's password (mode 0600)
//	server.log        the server log, unless Options.Log is set
//	.s.PGSQL.<port>   the unix socket
package pglocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the cluster's superuser.
const Superuser = "puente"

const (
	passwordFile = "puente.password"
	logFile      = "server.log"
	// startTimeout bounds Start when the caller's context has no deadline.
	startTimeout = time.Minute
)

// Options says where and how to run a cluster.
type Options struct {
	Dir       string    // data folder (created if missing; reused if it holds a cluster made by us earlier); "" = a fresh temporary folder, only with Ephemeral
	Port      int       // 0 = pick a free TCP port on 127.0.0.1
	Ephemeral bool      // tests: fsync=off, synchronous_commit=off, full_page_writes=off; the Dir is removed by Stop
	Log       io.Writer // server log goes here (nil = a file inside Dir)
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	bin       string
	dir       string
	port      int
	password  string
	ephemeral bool
	as        *syscall.Credential // nil: run as ourselves

	// Set only when this process started the postmaster (not when reusing one).
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
	tail    *tailBuffer

	stopOnce sync.Once
	stopErr  error
}

var errNotFound = errors.New("PostgreSQL server binaries not found (initdb, pg_ctl): install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or set DATABASE_URL to an existing database")

// FindBinaries returns the folder holding initdb, pg_ctl and postgres: from
// PATH first, else the newest /usr/lib/postgresql/<version>/bin (where Debian
// and Ubuntu put them, outside PATH).
func FindBinaries() (binDir string, err error) {
	return findBinaries("/usr/lib/postgresql")
}

func findBinaries(root string) (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if hasBinaries(dir) {
			return dir, nil
		}
		// A lone symlink in PATH: look beside its target.
		if real, err := filepath.EvalSymlinks(p); err == nil && hasBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	versions, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	sort.Slice(versions, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(versions[j])), filepath.Base(filepath.Dir(versions[i])))
	})
	for _, dir := range versions {
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", errNotFound
}

func hasBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionLess compares "9.6" < "15" < "16" numerically, part by part.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, errA := strconv.Atoi(pa[i])
		nb, errB := strconv.Atoi(pb[i])
		if errA != nil || errB != nil {
			return a < b
		}
		if na != nb {
			return na < nb
		}
	}
	return len(pa) < len(pb)
}

// serverUser is who runs initdb, pg_ctl and postgres: they refuse to run as
// root, so root hands them to an unprivileged user. nil means ourselves.
func serverUser() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		// Groups left empty: the server drops root's supplementary groups.
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, name, nil
	}
	return nil, "", errors.New("pglocal: running as root, but neither user postgres nor nobody exists to run the server as")
}

// Usable reports whether a cluster can live in dir: when running as root, the
// server runs as an unprivileged user who must be able to reach dir through
// every folder above it (a checkout under /root, say, is out of reach). Folders
// that do not exist yet are fine: Start creates them world-searchable.
func Usable(dir string) error {
	as, name, err := serverUser()
	if err != nil || as == nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// What counts is the real chain of folders, not the one a symlink shows.
	abs = resolveExisting(abs)
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && !searchable(fi, as) {
			return fmt.Errorf("pglocal: the server runs as user %s, who cannot reach %s through %s (no search permission): pick a folder outside it, e.g. under %s", name, abs, d, os.TempDir())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func resolveExisting(p string) string {
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(resolveExisting(parent), filepath.Base(p))
}

func searchable(fi os.FileInfo, as *syscall.Credential) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == as.Uid:
		return perm&0o100 != 0
	case st.Gid == as.Gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// Start runs the cluster in o.Dir, creating it first if needed, and returns
// once it accepts connections. A cluster a previous run left running in o.Dir
// is reused as it is (on its own port).
func Start(ctx context.Context, o Options) (*Cluster, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	as, asName, err := serverUser()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	dir, created, err := prepareDir(o, as, asName)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, ephemeral: o.Ephemeral, as: as}
	if err := c.start(ctx, o); err != nil {
		if c.cmd != nil {
			_ = c.shutdown()
		}
		c.closeLog()
		if o.Ephemeral && created {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	return c, nil
}

// prepareDir makes sure dir exists, is ours and is reachable by the server user.
func prepareDir(o Options, as *syscall.Credential, asName string) (dir string, created bool, err error) {
	if o.Dir == "" {
		if !o.Ephemeral {
			return "", false, errors.New("pglocal: Options.Dir is required unless Ephemeral")
		}
		root := ephemeralRoot()
		sweep(root)
		if dir, err = os.MkdirTemp(root, ephemeralPrefix); err != nil {
			return "", false, err
		}
		created = true
	} else {
		if dir, err = filepath.Abs(o.Dir); err != nil {
			return "", false, err
		}
		switch fi, err := os.Lstat(dir); {
		case errors.Is(err, os.ErrNotExist):
			if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
				return "", false, err
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				return "", false, err
			}
			created = true
		case err != nil:
			return "", false, err
		case fi.Mode()&os.ModeSymlink != 0:
			return "", false, fmt.Errorf("pglocal: %s is a symlink: give the real folder", dir)
		case !fi.IsDir():
			return "", false, fmt.Errorf("pglocal: %s is not a folder", dir)
		}
	}
	fail := func(err error) (string, bool, error) {
		if created {
			_ = os.RemoveAll(dir)
		}
		return "", false, err
	}
	if err := Usable(dir); err != nil {
		return fail(err)
	}
	// unix_socket_directories fails on paths longer than sun_path (108 bytes).
	if len(dir)+len("/.s.PGSQL.65535") >= 108 {
		return fail(fmt.Errorf("pglocal: %s is too long a path for the server's unix socket: pick a shorter one", dir))
	}
	uid := uint32(os.Geteuid())
	if as != nil {
		uid = as.Uid
	}
	if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uid {
			who := "this user"
			if as != nil {
				who = "user " + asName
			}
			return fail(fmt.Errorf("pglocal: the cluster in %s belongs to uid %d, but the server would run as %s (uid %d): use another folder", dir, st.Uid, who, uid))
		}
	}
	if as != nil {
		if err := os.Chown(dir, int(as.Uid), int(as.Gid)); err != nil {
			return fail(err)
		}
	}
	return dir, created, nil
}

const ephemeralPrefix = "pglocal-ephemeral-"

// ephemeralRoot is where throwaway clusters go: in memory when /dev/shm has
// room (and TMPDIR does not say otherwise), since CREATE DATABASE copies files
// and takes ~15 ms there against ~100 ms on this disk.
func ephemeralRoot() string {
	var fs syscall.Statfs_t
	if os.Getenv("TMPDIR") == "" && syscall.Statfs("/dev/shm", &fs) == nil && fs.Bavail*uint64(fs.Bsize) >= 1<<30 {
		return "/dev/shm"
	}
	return os.TempDir()
}

// sweep removes throwaway clusters whose owner died without Stop (a panic, a
// kill): the server went with it (Pdeathsig), but its files stay, in memory
// perhaps. The age test spares one whose initdb is still running.
func sweep(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, ephemeralPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || time.Since(fi.ModTime()) < 10*time.Minute || pidAlive(filepath.Join(d, "data", "postmaster.pid")) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// pidAlive reports whether the process named in a postmaster.pid still exists.
func pidAlive(pidFile string) bool {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) start(ctx context.Context, o Options) error {
	pwPath := filepath.Join(c.dir, passwordFile)
	if _, err := os.Stat(filepath.Join(c.data(), "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(pwPath)
		if err != nil {
			return fmt.Errorf("pglocal: %s holds a cluster but no readable %s, so it was not made by pglocal: %w", c.dir, passwordFile, err)
		}
		c.password = strings.TrimSpace(string(pw))
		if port, ok := c.runningPort(ctx); ok {
			c.port = port
			return nil
		}
	} else if err := c.initdb(ctx, pwPath); err != nil {
		return err
	}

	if o.Log != nil {
		c.tail = &tailBuffer{}
	} else {
		f, err := os.OpenFile(filepath.Join(c.dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		c.logFile = f
	}
	// A port picked free may be taken by someone else before the server
	// binds it (other test binaries start clusters at the same time): retry.
	for attempt := 1; ; attempt++ {
		port := o.Port
		if port == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
		}
		err := c.launch(ctx, port, o.Log)
		if err == nil || o.Port != 0 || attempt == 5 || !c.hasExited() || !strings.Contains(c.logTail(), "could not bind") {
			return err
		}
		c.cmd = nil
	}
}

func (c *Cluster) initdb(ctx context.Context, pwPath string) error {
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	c.password = hex.EncodeToString(pw)
	if err := os.WriteFile(pwPath, []byte(c.password+"\n"), 0o600); err != nil {
		return err
	}
	if c.as != nil {
		// initdb, running as the server user, reads it.
		if err := os.Chown(pwPath, int(c.as.Uid), int(c.as.Gid)); err != nil {
			return err
		}
	}
	args := []string{
		"-D", c.data(),
		"--username=" + Superuser, "--pwfile=" + pwPath,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
		// C locale: the same sorting on every machine, and no dependence on
		// which locales happen to be installed.
		"--encoding=UTF8", "--locale=C",
		"--no-instructions",
	}
	if c.ephemeral {
		args = append(args, "--no-sync")
	}
	cmd := c.command(ctx, "initdb", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pglocal: initdb in %s: %w\n%s", c.data(), err, out)
	}
	return nil
}

// launch starts the postmaster on port and waits until it accepts connections.
func (c *Cluster) launch(ctx context.Context, port int, log io.Writer) error {
	c.port = port
	args := []string{
		"-D", c.data(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + strconv.Itoa(port),
		"-c", "unix_socket_directories=" + c.dir,
		// Parallel tests from many test binaries share one cluster.
		"-c", "max_connections=300",
	}
	if c.ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// Not CommandContext: ctx bounds Start, not the server's life.
	cmd := c.command(context.Background(), "postgres", args...)
	// Its own session, so a Ctrl-C in the terminal reaches the program using
	// the cluster, which then stops it in order.
	cmd.SysProcAttr.Setsid = true
	if c.ephemeral {
		// A test binary that dies without Stop (a panic, a -timeout) takes
		// its throwaway server with it.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	}
	if c.logFile != nil {
		cmd.Stdout, cmd.Stderr = c.logFile, c.logFile
	} else {
		w := io.MultiWriter(log, c.tail)
		cmd.Stdout, cmd.Stderr = w, w
		cmd.WaitDelay = 5 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pglocal: starting postgres: %w", err)
	}
	c.cmd, c.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) { _ = cmd.Wait(); close(exited) }(c.exited)

	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if c.ping(ctx) == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("pglocal: postgres in %s exited while starting: %s\n%s", c.dir, cmd.ProcessState, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pglocal: postgres in %s not accepting connections: %w\n%s", c.dir, ctx.Err(), c.logTail())
		case <-time.After(wait):
		}
	}
}

// runningPort finds a postmaster a previous run left running in the cluster,
// and returns its port if it answers us.
func (c *Cluster) runningPort(ctx context.Context) (int, bool) {
	pidFile := filepath.Join(c.data(), "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	// A stale file (its process gone) is left for postgres, which replaces it.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 || !pidAlive(pidFile) {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, false
	}
	c.port = port
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c.ping(ctx) != nil {
		return 0, false
	}
	return port, true
}

func (c *Cluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// command runs one of the server binaries as the server user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	// The server user may not be able to enter our working folder.
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.as}
	// PGDATA, PGPORT and friends would fight the flags we pass.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// URL is the address of database on the cluster, as the superuser.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(Superuser, c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down (fast: open sessions are cut) and, for an
// Ephemeral cluster, removes its Dir. Calling it again returns the same result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = c.shutdown()
		c.closeLog()
		if c.ephemeral {
			if err := os.RemoveAll(c.dir); err != nil && c.stopErr == nil {
				c.stopErr = err
			}
		}
	})
	return c.stopErr
}

func (c *Cluster) shutdown() error {
	if c.cmd != nil && c.hasExited() {
		// Ours is gone; a postmaster now in the folder is someone else's.
		return nil
	}
	var out bytes.Buffer
	cmd := c.command(context.Background(), "pg_ctl", "stop", "-D", c.data(), "-m", "fast", "-w", "-t", "60")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if c.cmd == nil {
		if err != nil && fileExists(filepath.Join(c.data(), "postmaster.pid")) {
			return fmt.Errorf("pglocal: pg_ctl stop in %s: %w\n%s", c.dir, err, out.Bytes())
		}
		return nil
	}
	if err != nil {
		// pg_ctl found no postmaster.pid (it exited, or had not written it yet).
		_ = c.cmd.Process.Signal(syscall.SIGINT)
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("pglocal: postgres in %s did not stop within a minute; killed it\n%s", c.dir, out.Bytes())
	}
}

func (c *Cluster) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

func (c *Cluster) closeLog() {
	if c.logFile != nil {
		_ = c.logFile.Close()
	}
}

// logTail is the end of the server log, for error messages.
func (c *Cluster) logTail() string {
	if c.tail != nil {
		return c.tail.String()
	}
	b, err := os.ReadFile(filepath.Join(c.dir, logFile))
	if err != nil {
		return ""
	}
	return string(b[max(0, len(b)-tailSize):])
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const tailSize = 4 << 10

// tailBuffer keeps the last tailSize bytes written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*tailSize {
		t.b = append([]byte(nil), t.b[len(t.b)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b[max(0, len(t.b)-tailSize):])
}
