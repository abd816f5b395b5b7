package scaleout_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"puente.dev/pkg/pgtest"
	"puente.dev/services/puente/suite"
	"puente.dev/services/puente/suite/suitetest"
)

// drainTimeout is every process's PUENTE_DRAIN_TIMEOUT.
const drainTimeout = 5 * time.Second

// cluster is every service run as replicas processes against one database, each service's
// processes behind one DNS name (127.0.0.1, 127.0.0.2, … on one port), as a headless Service
// puts a Deployment's pods behind one name.
type cluster struct {
	t        testing.TB
	bin      string
	dns      *dnsServer
	admin    string
	database string                // for the test's own queries, as an auditor
	base     []string              // the environment every process shares
	procs    map[string][]*process // by service
	lb       *balancer             // the REST load balancer over the gateways
}

// process is one `puente serve -service=<name>` child.
type process struct {
	service string
	replica int
	cmd     *exec.Cmd
	logs    *logLines
	done    chan struct{}
	err     error // Wait's result, once done is closed
	exited  time.Time
	http    string
	metrics string
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) String() string {
	return fmt.Sprintf("%s#%d (pid %d)", p.service, p.replica, p.pid())
}

// startCluster runs replicas processes of every service over a fresh database.
func startCluster(t testing.TB, replicas int) *cluster {
	t.Helper()
	// Without -race even under -race: fourteen race-built processes on two cores took 70 s for
	// this package's test against 25 s without, and the race detector already watches the same
	// code in services/puente/suite's in-process tests. With a warm build cache this is a link; a
	// cold one compiles every package once more.
	bin, err := suitetest.BuildPuente(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	plainURL := pgtest.NewDatabase(t)
	dbURL, err := url.Parse(plainURL)
	if err != nil {
		t.Fatal(err)
	}
	// About 14 processes share the test cluster's 300 connections with other test binaries: a
	// pool of 8 holds a service's listeners (jobs, outbox, connection changes), its workers and
	// its API calls.
	q := dbURL.Query()
	q.Set("pool_max_conns", "8")
	dbURL.RawQuery = q.Encode()
	cfg, admin := suitetest.Config(dbURL.String())
	c := &cluster{t: t, bin: bin, dns: startDNS(t), admin: admin, database: plainURL, procs: map[string][]*process{}}
	c.base = []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + dbURL.String(),
		"PUENTE_METRICS_ADDR=127.0.0.1:0",
		"PUENTE_ADMIN_TOKEN=" + admin,
		"PUENTE_SERVICE_TOKEN=" + cfg.ServiceToken,
		"PUENTE_TOKEN_ISSUER=" + cfg.Authtoken.Issuer,
		"PUENTE_TOKEN_AUDIENCE=" + cfg.Authtoken.Audience,
		"PUENTE_HASH_KEY=" + cfg.Authtoken.HashKey,
		"PUENTE_ENCRYPTION_KEYS=" + cfg.Authtoken.EncryptionKeys,
		"PUENTE_SANDBOX_WEBHOOK_SECRET=" + cfg.Webhook.SandboxWebhookSecret,
		"PUENTE_PUBLIC_URL=http://puente.test",
		"PUENTE_MIGRATE_ON_START=false", // a migration Job ran first, as in deploy/
		"PUENTE_DRAIN_TIMEOUT=" + drainTimeout.String(),
		"PUENTE_WEBHOOK_ALLOW_INSECURE_URLS=true",
		"PUENTE_WEBHOOK_TIMEOUT=2s",
		"PUENTE_WEBHOOK_RETRY_BASE=50ms",
		"PUENTE_WEBHOOK_RETRY_MAX=400ms",
		"PUENTE_WEBHOOK_WORKERS=4",
		"PUENTE_WEBHOOK_LEASE=5s",
		"PUENTE_CONNECTION_WORKERS=4",
		"PUENTE_CONNECTION_MIN_POLL_INTERVAL=50ms",
		"PUENTE_EXTRACTION_WORKERS=4",
		"PUENTE_SYNC_WORKERS=4",
		"PUENTE_SYNC_LEASE=5s",
		"PUENTE_SYNC_BATCH_GATHER=200ms",
		"PUENTE_LOG_LEVEL=info",
		"PUENTE_LOG_FORMAT=text",
	}
	// The migration Job: once, before any replica starts.
	migrate := exec.Command(bin, "migrate", "-service=all")
	// Without pool_max_conns: the migrator connects with pgx.Connect, which sends unknown URL
	// parameters to the server as settings, and the server refuses this one.
	migrate.Env = append(append([]string{}, c.base...), "DATABASE_URL="+plainURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("puente migrate: %v\n%s", err, out)
	}

	hosts := make([]netip.Addr, replicas)
	for i := range hosts {
		hosts[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
	}
	ports := map[string]int{}
	for _, name := range suite.Names {
		if name == "gateway" {
			continue // reached over REST through the balancer, not by name
		}
		ports[name] = freePort(t, hosts)
		c.dns.set(name+".puente.test", hosts...)
		c.base = append(c.base, fmt.Sprintf("PUENTE_%s_ADDR=dns://%s/%s.puente.test:%d", strings.ToUpper(name), c.dns.addr(), name, ports[name]))
	}
	var all []*process
	for i, host := range hosts {
		for _, name := range suite.Names {
			grpcAddr := net.JoinHostPort(host.String(), strconv.Itoa(ports[name])) // port 0 for the gateway
			p := c.start(name, i+1, "PUENTE_GRPC_ADDR="+grpcAddr, "PUENTE_HTTP_ADDR="+net.JoinHostPort(host.String(), "0"))
			c.procs[name] = append(c.procs[name], p)
			all = append(all, p)
		}
	}
	var gateways []string
	for _, p := range all {
		p.waitStarted(t)
		if p.service == "gateway" {
			gateways = append(gateways, p.http)
		}
	}
	c.lb = newBalancer(gateways)
	return c
}

// freePort finds a port free on every host at once (a race with other programs remains, small).
func freePort(t testing.TB, hosts []netip.Addr) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(hosts[0].String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := true
		var held []net.Listener
		for _, h := range hosts[1:] {
			o, err := net.Listen("tcp", net.JoinHostPort(h.String(), strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, o)
		}
		for _, o := range held {
			o.Close()
		}
		l.Close()
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every host")
	return 0
}

func (c *cluster) start(service string, replica int, env ...string) *process {
	c.t.Helper()
	p := &process{service: service, replica: replica, cmd: exec.Command(c.bin, "serve", "-service="+service), logs: newLogLines(), done: make(chan struct{})}
	p.cmd.Env = append(append([]string{}, c.base...), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	c.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(drainTimeout + 5*time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if c.t.Failed() {
			c.t.Logf("%s logs (tail):\n%s", p, p.logs.tail())
		}
	})
	return p
}

var startedLine = regexp.MustCompile(`msg="puente started".* http=(\S*) metrics=(\S+)`)

func (p *process) waitStarted(t testing.TB) {
	t.Helper()
	suitetest.WaitUntil(t, 60*time.Second, p.String()+" starts", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start: %v\n%s", p, p.err, p.logs.tail())
		default:
		}
		_, ok := p.logs.first("puente started")
		return ok, p.logs.tail()
	})
	line, _ := p.logs.first("puente started")
	m := startedLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%s: unexpected start line %q", p, line)
	}
	p.http, p.metrics = strings.Trim(m[1], `"`), m[2]
}

// stop sends SIGTERM and waits for the process to exit.
func (p *process) stop(t testing.TB) (took time.Duration) {
	t.Helper()
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(drainTimeout + 10*time.Second):
		t.Fatalf("%s did not exit after SIGTERM", p)
	}
	return p.exited.Sub(sent)
}

// rpcsServed sums puente_rpc_requests_total on the process's metrics endpoint, health checks
// aside: the calls it served.
func (p *process) rpcsServed(t testing.TB) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatalf("%s metrics: %v", p, err)
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "puente_rpc_requests_total{") || strings.Contains(line, "grpc.health") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

// logLines collects a child's output: the first line holding each marker asked for, and a
// bounded tail for failure reports (a benchmark logs a line per call).
type logLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []string // every line, until maxLines; later ones are only in the tail
	tailBuf []string
}

const (
	maxLines = 20000
	tailLen  = 200
)

func newLogLines() *logLines { return &logLines{} }

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if len(l.lines) < maxLines {
			l.lines = append(l.lines, line)
		}
		l.tailBuf = append(l.tailBuf, line)
		if len(l.tailBuf) > tailLen {
			l.tailBuf = l.tailBuf[len(l.tailBuf)-tailLen:]
		}
	}
	return len(b), nil
}

// first is the first line containing s.
func (l *logLines) first(s string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return line, true
		}
	}
	for _, line := range l.tailBuf {
		if strings.Contains(line, s) {
			return line, true
		}
	}
	return "", false
}

func (l *logLines) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.tailBuf, "\n")
}

// balancer spreads REST calls over the gateways round-robin, as a load balancer in front of
// their pods would: a connection a gateway refuses (it is stopping) goes to the next one. A call
// that reached a gateway is never sent again by the balancer: that is the client's business.
type balancer struct {
	gateways []string
	client   *http.Client
	mu       sync.Mutex
	next     int
	served   map[string]int // calls answered, by gateway
	refused  int            // connections refused, sent on to another gateway
}

func newBalancer(gateways []string) *balancer {
	return &balancer{
		gateways: gateways,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second},
		served:   map[string]int{},
	}
}

// errNoGateway is every gateway refusing a connection.
var errNoGateway = errors.New("no gateway accepted the connection")

// do sends a request built for a gateway's base URL.
func (lb *balancer) do(ctx context.Context, method, path string, header http.Header, body []byte) (*http.Response, []byte, error) {
	lb.mu.Lock()
	first := lb.next
	lb.next = (lb.next + 1) % len(lb.gateways)
	lb.mu.Unlock()
	for i := range lb.gateways {
		gw := lb.gateways[(first+i)%len(lb.gateways)]
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+gw+path, rd)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := lb.client.Do(req)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				lb.mu.Lock()
				lb.refused++
				lb.mu.Unlock()
				continue
			}
			return nil, nil, fmt.Errorf("%s %s via %s: %w", method, path, gw, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s via %s: reading the answer: %w", method, path, gw, err)
		}
		lb.mu.Lock()
		lb.served[gw]++
		lb.mu.Unlock()
		return resp, raw, nil
	}
	return nil, nil, errNoGateway
}

func (lb *balancer) stats() (served map[string]int, refused int) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	served = make(map[string]int, len(lb.served))
	for k, v := range lb.served {
		served[k] = v
	}
	return served, lb.refused
}
