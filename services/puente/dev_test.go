package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// banner collects what `puente dev` prints and signals once the suite serves.
type banner struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (b *banner) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if strings.Contains(b.buf.String(), "Stop with Ctrl-C") {
		b.once.Do(func() { close(b.ready) })
	}
	return len(p), nil
}

func (b *banner) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runDev runs `puente dev` until the banner is out, and returns it with a stop function.
func runDev(t *testing.T) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &banner{ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"dev"}, out, io.Discard) }()
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("puente dev stopped before serving: %v", err)
	}
	return out.String(), func() {
		cancel()
		require.NoError(t, <-done)
	}
}

var (
	restLine   = regexp.MustCompile(`REST\s+(\S+)`)
	idLine     = regexp.MustCompile(`client_id\s+(cli_\S+)`)
	secretLine = regexp.MustCompile(`client_secret\s+(psk_\S+)`)
	demoLine   = regexp.MustCompile(`Demo\s+(\S+)`)
)

// freeAddr is a loopback address with a port free right now, for a server that must keep its
// port across two runs.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func TestDevPrintsWorkingCredentialsAndKeepsThemAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PUENTE_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("DATABASE_URL", pgtest.NewDatabase(t))
	t.Setenv("PUENTE_GRPC_ADDR", "127.0.0.1:0")
	t.Setenv("PUENTE_METRICS_ADDR", "127.0.0.1:0")
	t.Setenv("PUENTE_HTTP_ADDR", freeAddr(t))
	t.Setenv("PUENTE_DEMO_ADDR", freeAddr(t))

	first, stop := runDev(t)
	rest, id, secret := restLine.FindStringSubmatch(first)[1], idLine.FindStringSubmatch(first)[1], secretLine.FindStringSubmatch(first)[1]
	resp, err := http.PostForm(rest+"/v1/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	require.NoError(t, err)
	var grant map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&grant))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, grant)
	require.NotEmpty(t, grant["access_token"])

	// The demo page's backend mints link tokens with the sandbox client, whose registered
	// origins let the widget talk to the page.
	demoURL := demoLine.FindStringSubmatch(first)[1]
	resp, err = http.Post(demoURL+"/api/link-token", "application/json", strings.NewReader(`{"language":"es"}`))
	require.NoError(t, err)
	var link map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&link))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, link)
	ex, err := http.Post(rest+"/v1/link-tokens:exchange", "application/json", strings.NewReader(`{"link_token":"`+link["link_token"].(string)+`"}`))
	require.NoError(t, err)
	var session map[string]any
	require.NoError(t, json.NewDecoder(ex.Body).Decode(&session))
	ex.Body.Close()
	require.Equal(t, http.StatusOK, ex.StatusCode, session)
	require.Contains(t, session["allowed_origins"], demoURL, "the widget may post to the demo page")
	require.Equal(t, "es", session["language"])
	page, err := http.Get(demoURL + "/")
	require.NoError(t, err)
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	require.Contains(t, string(html), rest+"/connect/embed.js", "the page loads the embed script from the gateway")
	stop()

	second, stop := runDev(t)
	defer stop()
	require.Equal(t, id, idLine.FindStringSubmatch(second)[1], "a second run finds yesterday's client")
	require.Equal(t, secret, secretLine.FindStringSubmatch(second)[1])

	for _, f := range []string{"dev.env", "sandbox-client.json"} {
		fi, err := os.Stat(filepath.Join(dir, "data", f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
}

func TestDevRefusesFoldersAndFilesOthersControl(t *testing.T) {
	dir := t.TempDir()

	writable := filepath.Join(dir, "shared")
	require.NoError(t, os.Mkdir(writable, 0o777))
	require.NoError(t, os.Chmod(writable, 0o777))
	require.ErrorContains(t, privateDir(writable), "writable by others")

	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(t.TempDir(), link))
	require.ErrorContains(t, privateDir(link), "not a folder")

	mine := filepath.Join(dir, "mine")
	require.NoError(t, privateDir(mine))
	require.NoError(t, privateDir(mine), "our own folder is accepted again")

	readable := filepath.Join(mine, "dev.env")
	require.NoError(t, os.WriteFile(readable, []byte("PUENTE_ADMIN_TOKEN=planted"), 0o644))
	_, err := devSecrets(readable)
	require.ErrorContains(t, err, "not a private file")

	target := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(target, []byte("keep"), 0o600))
	planted := filepath.Join(mine, "sandbox-client.json")
	require.NoError(t, os.Symlink(target, planted))
	require.Error(t, writePrivate(planted, []byte("{}")), "no write through a planted symlink")
	b, _ := os.ReadFile(target)
	require.Equal(t, "keep", string(b))

	if os.Getuid() == 0 {
		foreign := filepath.Join(dir, "foreign")
		require.NoError(t, os.Mkdir(foreign, 0o711))
		require.NoError(t, os.Chown(foreign, 65534, 65534))
		require.ErrorContains(t, privateDir(foreign), "another user")
	}
}
