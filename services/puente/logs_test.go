package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
	"puente.dev/services/puente/suite/suitetest"
)

// logsREST sends a JSON (or form, when body is url.Values) request and decodes the JSON answer.
func logsREST(t *testing.T, base, method, path, token string, body any, header ...string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	contentType := "application/json"
	switch v := body.(type) {
	case nil:
	case url.Values:
		rd, contentType = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
	default:
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	}
	return resp.StatusCode, resp.Header, out
}

func field(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = obj[p]
	}
	s, _ := v.(string)
	return s
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// The binary's logs, as production writes them (serve with the JSON logger, tracing set up as
// in production): every line is a JSON object; a REST call's lines, at the gateway and in the
// services it reaches, share its request id and trace id; and the main flows' secrets appear in
// none of them, even at debug level.
func TestLogsAreJSONWithRequestAndTraceIDsAndNoSecrets(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	cfg, admin := suitetest.Config(pgtest.NewDatabase(t))
	logs := &suitetest.Output{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *suite.Suite, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, suite.Names, telemetry.NewLogger(logs, slog.LevelDebug, false), func(s *suite.Suite) error {
			ready <- s
			return nil
		})
	}()
	var s *suite.Suite
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped before serving: %v", err)
	}
	base := "http://" + s.HTTPAddr()

	// The main flows, each secret used in earnest.
	status, _, created := logsREST(t, base, http.MethodPost, "/v1/admin/clients", admin, map[string]any{"name": "acme", "redirect_uris": []string{"https://app.example/done"}})
	require.Equal(t, http.StatusOK, status, created)
	clientID, clientSecret := field(created, "client", "id"), field(created, "api_key", "secret")
	status, _, grant := logsREST(t, base, http.MethodPost, "/v1/oauth/token", "", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}})
	require.Equal(t, http.StatusOK, status, grant)
	access := field(grant, "access_token")

	status, hdr, user := logsREST(t, base, http.MethodPost, "/v1/users", access, map[string]any{"external_ref": "u-1", "kind": "USER_KIND_NATURAL"},
		"X-Request-Id", "req-logs-test-1")
	require.Equal(t, http.StatusOK, status, user)
	require.Equal(t, "req-logs-test-1", hdr.Get("X-Request-Id"), "the caller's request id is answered")
	userID := field(user, "user", "id")

	_, hdr, _ = logsREST(t, base, http.MethodGet, "/v1/users/"+userID, access, nil)
	generated := hdr.Get("X-Request-Id")
	require.Regexp(t, `^req_[0-9a-f]{32}$`, generated, "a request without an id gets one")
	long := strings.Repeat("x", 129)
	_, hdr, _ = logsREST(t, base, http.MethodGet, "/v1/users/"+userID, access, nil, "X-Request-Id", long)
	require.Regexp(t, `^req_[0-9a-f]{32}$`, hdr.Get("X-Request-Id"), "an id unfit for logs is replaced")

	status, _, endpoint := logsREST(t, base, http.MethodPost, "/v1/webhook-endpoints", access, map[string]any{"url": "https://hooks.example/puente"})
	require.Equal(t, http.StatusOK, status, endpoint)
	webhookSecret := field(endpoint, "secret")

	status, _, list := logsREST(t, base, http.MethodGet, "/v1/institutions?country=CL", access, nil)
	require.Equal(t, http.StatusOK, status, list)
	var institution string
	for _, in := range list["institutions"].([]any) {
		m := in.(map[string]any)
		if fields, _ := m["credential_fields"].([]any); m["provider"] == "sandbox" && m["auth_mechanism"] == "AUTH_MECHANISM_CREDENTIALS" &&
			m["health"] == "INSTITUTION_HEALTH_OPERATIONAL" && len(fields) == 2 {
			institution = m["id"].(string)
			break
		}
	}
	require.NotEmpty(t, institution, "a Sandbox institution with a password form: %v", list)
	const password = "pass_good"
	status, _, con := logsREST(t, base, http.MethodPost, "/v1/connections", access, map[string]any{
		"user_id": userID, "institution_id": institution,
		"credentials": map[string]string{"username": "user_good", "password": password}})
	require.Equal(t, http.StatusOK, status, con)
	conID := field(con, "connection", "id")
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, _, got := logsREST(t, base, http.MethodGet, "/v1/connections/"+conID, access, nil)
		if field(got, "connection", "status") == "CONNECTION_STATUS_SUCCEEDED" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the connection did not succeed: %v", got)
		<-tick.C
	}

	cancel()
	require.NoError(t, <-done)

	out := logs.String()
	byRequest := map[string][]map[string]any{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "a log line that is not JSON: %s", line)
		for _, k := range []string{"time", "level", "msg"} {
			require.Contains(t, rec, k, line)
		}
		if id, ok := rec["request_id"].(string); ok {
			byRequest[id] = append(byRequest[id], rec)
		}
	}
	for _, id := range []string{"req-logs-test-1", generated} {
		lines := byRequest[id]
		msgs := map[string]bool{}
		traces := map[string]bool{}
		for _, rec := range lines {
			msgs[rec["msg"].(string)] = true
			trace, _ := rec["trace_id"].(string)
			require.Regexp(t, traceIDPattern, trace, "every line of a request carries its trace id: %v", rec)
			traces[trace] = true
		}
		require.True(t, msgs["http"] && msgs["rpc"], "the gateway's and the service's lines of %s: %v", id, lines)
		require.Len(t, traces, 1, "the gateway and the service log one trace for request %s", id)
	}

	secrets := map[string]string{
		"client secret": clientSecret, "access token": access, "admin token": admin,
		"webhook signing secret": webhookSecret, "bank password": password,
		"service token": cfg.ServiceToken, "hash key": cfg.Authtoken.HashKey,
	}
	require.Contains(t, out, `"level":"DEBUG"`, "the debug logs ran, so the search below means something")
	for name, secret := range secrets {
		require.NotEmpty(t, secret, name)
		require.NotContains(t, out, secret, "%s in the logs", name)
	}
}
