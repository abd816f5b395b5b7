package suite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	"puente.dev/services/puente/demo"
	"puente.dev/services/puente/suite"
)

// TestWidgetInABrowser runs the Connect widget's browser tests (browser/widget.test.mjs, in
// Debian's headless Chromium driven by playwright-core) against this suite, through the demo
// integrator's page, with a page of a foreign origin to attack it. Screenshots of every screen
// and the speed figures land in browser/artifacts.
func TestWidgetInABrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the widget's tests need Chromium at %s (sudo apt-get install chromium; .ci/run does): %v", chromium, err)
	}
	if _, err := os.Stat("browser/node_modules/playwright-core"); err != nil {
		t.Fatalf("the widget's tests need playwright-core: npm ci --prefix services/puente/suite/browser (make test does): %v", err)
	}

	// The gateway's address must be known before it starts: it is the public URL redirect
	// institutions send the user back to.
	gatewayAddr := freeAddr(t)
	b := setupLogging(t, nil, slog.LevelInfo, func(c *suite.Config) {
		c.HTTPAddr = gatewayAddr
		c.Connection.PublicURL = "http://" + gatewayAddr
		c.Connection.MinPollInterval = 20 * time.Millisecond
	})

	demoLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	demoURL := "http://" + demoLn.Addr().String()
	resp, err := authtokenv1.NewClientServiceClient(b.conn).CreateClient(b.adminCtx(), &authtokenv1.CreateClientRequest{
		Name: "Acme Finance", RedirectUris: []string{demoURL + "/callback"}, AllowedOrigins: []string{demoURL},
	})
	require.NoError(t, err)
	clientID, secret := resp.GetClient().GetId(), resp.GetApiKey().GetSecret()

	foreignLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	foreignURL := "http://" + foreignLn.Addr().String()
	serve(t, foreignLn, foreignSite())
	serve(t, demoLn, demo.Handler(demo.Config{PuenteURL: b.rest, ClientID: clientID, ClientSecret: secret, FrameOrigins: []string{foreignURL}}))

	artifacts, err := filepath.Abs("browser/artifacts")
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(artifacts))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"--test", "--test-reporter=spec", "--test-concurrency=1"}
	// PUENTE_WIDGET_TESTS runs only the browser tests whose names match it (while working on one).
	only := os.Getenv("PUENTE_WIDGET_TESTS")
	if only != "" {
		args = append(args, "--test-name-pattern="+only)
	}
	cmd := exec.CommandContext(ctx, "node", append(args, "widget.test.mjs")...)
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(),
		"PUENTE_URL="+b.rest, "DEMO_URL="+demoURL, "FOREIGN_URL="+foreignURL,
		"ARTIFACTS_DIR="+artifacts, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("browser tests:\n%s", out)
	require.NoError(t, err, "the widget's browser tests failed (screenshots in %s)", artifacts)
	if only != "" {
		return
	}

	// What the host page was told is what Puente holds: each consent it received is authorised
	// and belongs to the demo's client.
	var results struct {
		Successes []struct {
			ConsentID    string `json:"consentId"`
			ConnectionID string `json:"connectionId"`
		} `json:"successes"`
		AccountChoice struct {
			ConsentID string `json:"consentId"`
		} `json:"accountChoice"`
	}
	raw, err := os.ReadFile(filepath.Join(artifacts, "results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &results))
	require.Len(t, results.Successes, 7, "success, OTP, image, captcha, accounts, select and redirect each linked a bank")
	tok, err := authtokenv1.NewTokenServiceClient(b.conn).CreateToken(context.Background(), &authtokenv1.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: clientID, ClientSecret: secret,
	})
	require.NoError(t, err)
	for _, s := range results.Successes {
		got, err := consentv1.NewConsentServiceClient(b.conn).GetConsent(bearerCtx(tok.GetAccessToken()), &consentv1.GetConsentRequest{Id: s.ConsentID})
		require.NoError(t, err)
		require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED, got.GetConsent().GetStatus(), s.ConsentID)
		require.Equal(t, s.ConnectionID, got.GetConsent().GetConnectionId())
	}

	// The account the user left unticked is never read.
	b.extract(tok.GetAccessToken(), results.AccountChoice.ConsentID, "ACCOUNTS")
	accounts := b.do(http.MethodGet, "/v1/accounts?consent_id="+results.AccountChoice.ConsentID, tok.GetAccessToken(), nil)
	require.Equal(t, http.StatusOK, accounts.Status, accounts.Raw)
	require.Len(t, accounts.JSON["accounts"], 1, "only the shared account: %s", accounts.Raw)

	figures, err := os.ReadFile(filepath.Join(artifacts, "figures.json"))
	require.NoError(t, err)
	t.Logf("widget speed (ms from the frame's navigation start; the baseline is a minimal page framed the same way):\n%s", figures)
	require.NotContains(t, b.logs.String(), "pass_good", "no credential in the logs")
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// foreignSite is an origin no client registered: /forge, framed by the demo page beside the
// widget, forges messages both ways, and /frame frames the widget and records whatever it is
// sent.
func foreignSite() http.Handler {
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><html><body>%s</body></html>", body)
		}
	}
	mux.HandleFunc("GET /forge", page(`<p>forging</p><script>
const host = window.parent;
for (const m of [
  {source: 'puente-connect', version: 1, type: 'success', data: {consentId: 'cns_FORGED', connectionId: 'con_FORGED', institution: {id: 'ins_FORGED', name: 'Forged'}}},
  {source: 'puente-connect', version: 1, type: 'event', name: 'EXIT', metadata: {}},
  {source: 'puente-connect', version: 1, type: 'exit', error: null, metadata: {}},
]) host.postMessage(m, '*');
host.frames[0].postMessage({source: 'puente-host', version: 1, type: 'exit'}, '*');
host.postMessage({source: 'forger'}, '*');
</script>`))
	// The speed baseline: the least a framed page can be.
	mux.HandleFunc("GET /blank", page(`<p>A minimal page.</p>`))
	mux.HandleFunc("GET /frame", page(`<script>
window.received = [];
window.addEventListener('message', (e) => window.received.push({origin: e.origin, data: e.data}));
const q = new URLSearchParams(location.search);
const f = document.createElement('iframe');
const origin = q.get('claim') === 'self' ? location.origin : q.get('demo');
f.src = q.get('puente') + '/connect#link_token=' + encodeURIComponent(q.get('token')) + '&origin=' + encodeURIComponent(origin);
f.width = 420; f.height = 680;
document.body.appendChild(f);
</script>`))
	return mux
}
