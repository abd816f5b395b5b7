package tracing_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
	"puente.dev/services/puente/suite"
	"puente.dev/services/puente/suite/suitetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var build struct {
	once sync.Once
	bin  string
	err  error
}

// puenteBinary builds the puente command once for the test binary's life.
func puenteBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "puente-tracing")
		if err != nil {
			build.err = err
			return
		}
		build.bin, build.err = suitetest.BuildPuente(dir, suitetest.RaceEnabled())
	})
	require.NoError(t, build.err)
	return build.bin
}

// process is `puente serve` running every service.
type process struct {
	cmd   *exec.Cmd
	cfg   suite.Config
	admin string
	rest  string
	logs  *suitetest.Output
	done  chan error
}

// startPuente runs `puente serve` over a fresh database with env added to its configuration, and
// waits until it serves.
func startPuente(t *testing.T, env ...string) *process {
	t.Helper()
	cfg, admin := suitetest.Config(pgtest.NewDatabase(t))
	p := &process{cfg: cfg, admin: admin, logs: &suitetest.Output{}, done: make(chan error, 1)}
	p.cmd = exec.Command(puenteBinary(t), "serve", "-service=all")
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + cfg.DatabaseURL,
		"PUENTE_GRPC_ADDR=127.0.0.1:0",
		"PUENTE_HTTP_ADDR=127.0.0.1:0",
		"PUENTE_METRICS_ADDR=off",
		"PUENTE_ADMIN_TOKEN=" + admin,
		"PUENTE_SERVICE_TOKEN=" + cfg.ServiceToken,
		"PUENTE_HASH_KEY=" + cfg.Authtoken.HashKey,
		"PUENTE_ENCRYPTION_KEYS=" + cfg.Authtoken.EncryptionKeys,
		"PUENTE_SANDBOX=true",
		"PUENTE_CONNECTION_MIN_POLL_INTERVAL=" + cfg.Connection.MinPollInterval.String(),
		"PUENTE_DRAIN_TIMEOUT=5s",
		"PUENTE_LOG_LEVEL=info",
	}, env...)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	p.cmd.Stdout = p.logs
	require.NoError(t, p.cmd.Start())
	started := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, p.logs))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "puente started" {
				started <- rec
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case rec := <-started:
		p.rest = "http://" + rec["http"].(string)
	case err := <-p.done:
		t.Fatalf("puente exited before serving: %v\n%s", err, p.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("puente did not start within a minute\n%s", p.logs)
	}
	return p
}

// stop ends the process as Kubernetes does (SIGTERM) and waits for it to drain and exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(t, err, p.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("puente did not exit within 30s of SIGTERM\n%s", p.logs)
	}
}

// call sends a REST request with a JSON body (nil for none) and decodes the JSON answer.
func (p *process) call(t testing.TB, method, path, token string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, p.rest+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, raw)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

func field(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		mm, _ := v.(map[string]any)
		v = mm[k]
	}
	s, _ := v.(string)
	return s
}

// tenant is a sandbox client made through the admin API, with an access token and a user.
type tenant struct {
	id, secret, token, user string
}

func (p *process) newTenant(t testing.TB) tenant {
	t.Helper()
	created := p.call(t, http.MethodPost, "/v1/admin/clients", p.admin, map[string]any{"name": "acme"})
	tn := tenant{id: field(created, "client", "id"), secret: field(created, "api_key", "secret")}
	require.NotEmpty(t, tn.secret, "%v", created)
	tok := p.call(t, http.MethodPost, "/v1/oauth/token", "", map[string]any{
		"grant_type": "client_credentials", "client_id": tn.id, "client_secret": tn.secret,
	})
	tn.token = field(tok, "access_token")
	tn.user = field(p.call(t, http.MethodPost, "/v1/users", tn.token, map[string]any{"external_ref": "u-1", "kind": "USER_KIND_NATURAL"}), "user", "id")
	return tn
}

// sandboxInstitution is a Sandbox institution of Chile that logs in with a username and password.
func (p *process) sandboxInstitution(t testing.TB, tn tenant) string {
	t.Helper()
	list := p.call(t, http.MethodGet, "/v1/institutions?country=CL", tn.token, nil)
	institutions, _ := list["institutions"].([]any)
	for _, in := range institutions {
		m := in.(map[string]any)
		if m["auth_mechanism"] == "AUTH_MECHANISM_CREDENTIALS" && m["health"] == "INSTITUTION_HEALTH_OPERATIONAL" {
			return m["id"].(string)
		}
	}
	t.Fatalf("no sandbox institution with credentials in %v", list)
	return ""
}

// linkSandbox creates a connection with the Sandbox's user_good and waits for its login, which a
// background job runs, to succeed.
func (p *process) linkSandbox(t *testing.T, tn tenant) string {
	t.Helper()
	con := p.call(t, http.MethodPost, "/v1/connections", tn.token, map[string]any{
		"user_id": tn.user, "institution_id": p.sandboxInstitution(t, tn),
		"credentials": map[string]string{"username": "user_good", "password": sandboxPassword},
	})
	id := field(con, "connection", "id")
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		status := field(p.call(t, http.MethodGet, "/v1/connections/"+id, tn.token, nil), "connection", "status")
		if status == "CONNECTION_STATUS_SUCCEEDED" {
			return id
		}
		require.NotEqual(t, "CONNECTION_STATUS_FAILED", status)
		require.True(t, time.Now().Before(deadline), "the login did not finish within 30s (status %s)", status)
		<-tick.C
	}
}

const sandboxPassword = "pass_good"

// secrets are the values no span may hold.
func (p *process) secrets(tn tenant) map[string]string {
	out := map[string]string{
		"admin token":     p.admin,
		"service token":   p.cfg.ServiceToken,
		"hash key":        p.cfg.Authtoken.HashKey,
		"client secret":   tn.secret,
		"access token":    tn.token,
		"bank password":   sandboxPassword,
		"encryption keys": strings.SplitN(p.cfg.Authtoken.EncryptionKeys, ":", 2)[1],
	}
	// A token's signature alone is as good as the token.
	if i := strings.LastIndexByte(tn.token, '.'); i >= 0 {
		out["access token signature"] = tn.token[i+1:]
	}
	return out
}
