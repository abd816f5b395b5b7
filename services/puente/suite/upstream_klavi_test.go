package suite_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"puente.dev/services/puente/suite/suitetest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kl "puente.dev/pkg/upstream/klavi"
	klavisim "puente.dev/services/providersim/klavi"
	"puente.dev/services/puente/suite"
)

const (
	klaviAccess = "ak_test_puente"
	klaviSecret = "sk_test_0123456789abcdef0123456789abcdef"
	klaviCPF    = "12345678909"
	klaviCNPJ   = "11222333000181"
)

// klaviBundle is a suite with Klavi enabled against a fresh simulator whose webhooks go to the
// suite's /v1/inbound/klavi.
type klaviBundle struct {
	restLink
	sim *klavisim.Server
}

func setupKlavi(t testing.TB, w io.Writer, level slog.Level, hold bool, poll time.Duration) *klaviBundle {
	t.Helper()
	sim := klavisim.New(klavisim.Options{AccessKey: klaviAccess, SecretKey: klaviSecret, HoldWebhooks: hold})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: hanging requests let go before the server waits on them
	b := setupLogging(t, w, level, func(c *suite.Config) {
		c.Klavi = kl.Config{URL: srv.URL, AccessKey: klaviAccess, SecretKey: klaviSecret, RatePerSecond: 100,
			Timeout: 2 * time.Second, PollInterval: poll}
		c.Connection.MinPollInterval = min(poll, time.Second) // production's 1 s, unless poll is shorter
	})
	inbound := b.rest + "/v1/inbound/klavi"
	sim.SetWebhookURLs(inbound, inbound)
	return &klaviBundle{restLink: restLink{bundle: b, c: b.newClient("acme")}, sim: sim}
}

func (b *klaviBundle) institution(code string) map[string]any {
	b.t.Helper()
	list := b.do(http.MethodGet, "/v1/institutions?country=BR", b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, list.Status, list.Raw)
	for _, in := range list.JSON["institutions"].([]any) {
		m := in.(map[string]any)
		if m["provider"] == "klavi" && m["name"] == klaviNames[code] {
			return m
		}
	}
	b.t.Fatalf("no Klavi institution %s in %s", code, list.Raw)
	return nil
}

// start creates a consent and a connection for it and returns their ids and the bank's URL.
func (b *klaviBundle) start(user, institution string, creds map[string]string) (conID, consentID, bankURL string) {
	b.t.Helper()
	cns := b.do(http.MethodPost, "/v1/consents", b.c.Token, map[string]any{"user_id": user, "institution_id": institution,
		"products": []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}})
	require.Equal(b.t, http.StatusOK, cns.Status, cns.Raw)
	consentID = str(cns.JSON, "consent", "id")
	con := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": user, "institution_id": institution,
		"consent_id": consentID, "credentials": creds})
	require.Equal(b.t, http.StatusOK, con.Status, con.Raw)
	require.Equal(b.t, "CONNECTION_STATUS_WAITING_REDIRECT", str(con.JSON, "connection", "status"))
	return str(con.JSON, "connection", "id"), consentID, str(con.JSON, "connection", "authorization_url")
}

// klaviNames are the simulator's institutions by code (REST shows names, not upstream ids).
var klaviNames = map[string]string{klavisim.MockBank: "Mock Bank", klavisim.OutageBank: "Banco Fora do Ar"}

var klaviNoRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// bank plays the user at the bank: approve or deny; it returns where the bank sends the browser.
func (b *klaviBundle) bank(bankURL, action string) string {
	b.t.Helper()
	resp, err := klaviNoRedirects.Get(bankURL + "&action=" + action)
	require.NoError(b.t, err)
	resp.Body.Close()
	require.Equal(b.t, http.StatusFound, resp.StatusCode)
	return resp.Header.Get("Location")
}

// callback follows the bank's redirect to Puente's callback (the public URL is not served in
// tests: the same path and query go to the REST address).
func (b *klaviBundle) callback(location string) {
	b.t.Helper()
	u, err := url.Parse(location)
	require.NoError(b.t, err)
	require.Equal(b.t, "/v1/connections:callback", u.Path)
	require.NotEmpty(b.t, u.Query().Get("state"), "the state rides on the redirectURL")
	r := b.do(http.MethodGet, u.Path+"?"+u.RawQuery, "", nil)
	require.Contains(b.t, []int{http.StatusOK, http.StatusSeeOther}, r.Status, r.Raw)
}

// link links a user to Mock Bank end to end and returns the connection and consent.
func (b *klaviBundle) link(ref string, creds map[string]string) (conID, consentID string) {
	b.t.Helper()
	in := b.institution(klavisim.MockBank)
	conID, consentID, bankURL := b.start(b.newUser(b.c, ref), in["id"].(string), creds)
	b.callback(b.bank(bankURL, "approve"))
	b.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	b.authorised(consentID)
	return conID, consentID
}

// readReport asks for the accounts (which asks Klavi for the report), waits for the report to
// arrive by webhook and fill them, and reads the transactions, all through REST.
func (b *klaviBundle) readReport(consentID string) (accounts []any, txns []any) {
	b.t.Helper()
	r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": "ACCOUNTS"})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	suitetest.WaitUntil(b.t, 30*time.Second, "the report's accounts arrive", func() (bool, string) {
		accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
		accounts, _ = accs.JSON["accounts"].([]any)
		return len(accounts) > 0, accs.Raw
	})
	acc := accounts[0].(map[string]any)
	suitetest.WaitUntil(b.t, 30*time.Second, "the report's transactions arrive", func() (bool, string) {
		tr := b.do(http.MethodGet, "/v1/transactions?account_id="+acc["id"].(string), b.c.Token, nil)
		txns, _ = tr.JSON["transactions"].([]any)
		return len(txns) == 3, tr.Raw
	})
	return accounts, txns
}

func TestUpstreamKlaviCatalog(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, false, time.Second)
	in := b.institution(klavisim.MockBank)
	require.Equal(t, "AUTH_MECHANISM_REDIRECT", in["auth_mechanism"])
	require.Equal(t, true, in["business"])
	require.Equal(t, true, in["personal"])
	fields := in["credential_fields"].([]any)
	require.Len(t, fields, 2)
	require.Equal(t, "cpf", fields[0].(map[string]any)["name"])
	require.Equal(t, true, fields[0].(map[string]any)["required"])
	require.Equal(t, "cnpj", fields[1].(map[string]any)["name"])
	down := b.institution(klavisim.OutageBank)
	require.Equal(t, "INSTITUTION_HEALTH_DOWN", down["health"])

	// A malformed CPF is refused before anything reaches Klavi.
	before := b.sim.Calls("/data/v1/consents")
	r := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": b.newUser(b.c, "u-bad"), "institution_id": in["id"],
		"credentials": map[string]string{"cpf": "123"}})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Equal(t, before, b.sim.Calls("/data/v1/consents"))
}

func TestUpstreamKlaviPersonalLinkToDataByWebhooks(t *testing.T) {
	// Polls are an hour apart: only the consent_authorised event can finish the login in time.
	b := setupKlavi(t, nil, slog.LevelDebug, true, time.Hour)
	in := b.institution(klavisim.MockBank)
	conID, consentID, bankURL := b.start(b.newUser(b.c, "u-1"), in["id"].(string), map[string]string{"cpf": klaviCPF})
	b.callback(b.bank(bankURL, "approve"))
	b.connectionReaches(conID, "CONNECTION_STATUS_RUNNING")
	b.sim.Flush(context.Background()) // consent_authorised → /v1/inbound/klavi → poll now
	require.Equal(t, http.StatusOK, b.sim.Deliveries()[0].Status, "the signed event was taken")
	b.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	b.authorised(consentID)

	r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": "ACCOUNTS"})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	suitetest.WaitUntil(t, 20*time.Second, "the report is asked for", func() (bool, string) {
		return b.sim.Calls("/data/v1/personal/user-data") > 0, ""
	})
	require.Zero(t, b.sim.Calls("/data/v1/business/user-data"))
	b.sim.Flush(context.Background()) // the report → /v1/inbound/klavi → stored, consent refreshed
	accounts, txns := b.readReport(consentID)
	require.Len(t, accounts, 1)
	acc := accounts[0].(map[string]any)
	require.Equal(t, "BRL", acc["currency"])
	var amounts []string
	for _, tx := range txns {
		amounts = append(amounts, str(tx.(map[string]any), "amount_minor"))
	}
	require.ElementsMatch(t, []string{"350000", "-4291", "-12000"}, amounts, "4-decimal amounts become centavos, half away from zero")
	for _, d := range b.sim.Deliveries() {
		require.Equal(t, http.StatusOK, d.Status, "%s %s", d.Kind, d.Name)
	}
}

func TestUpstreamKlaviConsentAuthorisedByPolling(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, true, 20*time.Millisecond) // webhooks held: polling alone
	_, consentID := b.link("u-poll", map[string]string{"cpf": klaviCPF})
	require.Empty(t, b.sim.Deliveries(), "no webhook helped")
	require.NotEmpty(t, consentID)
}

func TestUpstreamKlaviBusinessUserAsksTheBusinessEndpoint(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, false, time.Second)
	_, consentID := b.link("u-biz", map[string]string{"cpf": klaviCPF, "cnpj": klaviCNPJ})
	accounts, _ := b.readReport(consentID)
	require.Len(t, accounts, 1)
	require.Positive(t, b.sim.Calls("/data/v1/business/user-data"))
	require.Zero(t, b.sim.Calls("/data/v1/personal/user-data"))
}

func TestUpstreamKlaviRejectedAndDeniedConsentsFail(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, false, time.Second)
	in := b.institution(klavisim.MockBank)
	for _, tc := range []struct{ name, cpf, action string }{
		{"the bank rejects CPF 00000000191", klavisim.RejectedCPF, "approve"},
		{"the user denies", klaviCPF, "deny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conID, _, bankURL := b.start(b.newUser(b.c, "u-"+tc.action), in["id"].(string), map[string]string{"cpf": tc.cpf})
			loc := b.bank(bankURL, tc.action)
			require.Contains(t, loc, "error=access_denied")
			b.callback(loc)
			con := b.connectionReaches(conID, "CONNECTION_STATUS_FAILED")
			require.Equal(t, "FAILURE_REASON_REDIRECT_DENIED", con["reason"])
		})
	}
	// An outage bank refuses the consent at once (416 4004): nothing is created.
	down := b.institution(klavisim.OutageBank)
	r := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": b.newUser(b.c, "u-down"), "institution_id": down["id"],
		"credentials": map[string]string{"cpf": klaviCPF}})
	require.Equal(t, http.StatusServiceUnavailable, r.Status, r.Raw)
	require.Contains(t, r.Raw, "INSTITUTION_UNAVAILABLE")
}

func TestUpstreamKlaviInboundRefusesBadSignaturesAndReplays(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, true, time.Second)
	body := `[{"partnerAppId":"12345678","eventId":"evt-replay","eventType":"api","eventName":"link_created","eventTime":"2024-01-01T00:00:00.000Z","payload":{"linkId":"l1"}}]`
	post := func(sig string) response {
		return b.do(http.MethodPost, "/v1/inbound/klavi", "", body, "X-Klavi-Signature", sig, "X-Klavi-Timestamp", "1740716924")
	}
	require.Equal(t, http.StatusUnauthorized, post(klavisim.Sign("an-old-secret", []byte(body))).Status, "signed with another key")
	require.Equal(t, http.StatusUnauthorized, post(strings.Repeat("0", 64)).Status)
	require.Equal(t, http.StatusUnauthorized, post("").Status)
	require.Equal(t, http.StatusOK, post(klavisim.Sign(klaviSecret, []byte(body))).Status)
	again := post(klavisim.Sign(klaviSecret, []byte(body)))
	require.Equal(t, http.StatusConflict, again.Status, "a replayed eventId is refused: %s", again.Raw)
}

func TestUpstreamKlaviDeletingTheConnectionRevokesTheConsent(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, false, time.Second)
	conID, _ := b.link("u-del", map[string]string{"cpf": klaviCPF})
	r := b.do(http.MethodDelete, "/v1/connections/"+conID, b.c.Token, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	suitetest.WaitUntil(t, 20*time.Second, "the consent is revoked at Klavi", func() (bool, string) {
		return revokedAny(b.sim), ""
	})
}

func revokedAny(sim *klavisim.Server) bool {
	for _, d := range sim.Deliveries() {
		if d.Name == "consent_revoked" {
			return true
		}
	}
	return false
}

func TestUpstreamKlaviFailuresLeaveNothingHalfWritten(t *testing.T) {
	b := setupKlavi(t, nil, slog.LevelDebug, false, time.Second)
	in := b.institution(klavisim.MockBank)
	for _, tc := range []struct {
		name   string
		fault  klavisim.Fault
		status int
		reason string
	}{
		{"garbage", klavisim.Garbage, http.StatusServiceUnavailable, "UPSTREAM_BAD_RESPONSE"},
		{"a hang", klavisim.Hang, http.StatusServiceUnavailable, "UPSTREAM_TIMEOUT"},
		{"a dropped connection", klavisim.Drop, http.StatusServiceUnavailable, "UPSTREAM_UNAVAILABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.sim.Fault("/data/v1/consents", tc.fault)
			defer b.sim.Fault("/data/v1/consents", klavisim.NoFault)
			user := b.newUser(b.c, "u-"+tc.fault.String())
			r := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": user, "institution_id": in["id"],
				"credentials": map[string]string{"cpf": klaviCPF}})
			require.Equal(t, tc.status, r.Status, r.Raw)
			require.Contains(t, r.Raw, tc.reason)
			list := b.do(http.MethodGet, "/v1/connections?user_id="+user, b.c.Token, nil)
			require.Equal(t, http.StatusOK, list.Status, list.Raw)
			cons, _ := list.JSON["connections"].([]any)
			require.Empty(t, cons, "no connection was recorded")
		})
	}
}

// BenchmarkLinkToDataKlavi: one iteration creates a user, links them through Klavi (consent,
// bank approval, callback, consent_authorised webhook) to SUCCEEDED, and reads the accounts and
// transactions of the report Klavi pushes, through REST.
func BenchmarkLinkToDataKlavi(bb *testing.B) {
	// Production's poll interval: the consent_authorised webhook, not a poll, ends the login.
	b := setupKlavi(bb, io.Discard, slog.LevelInfo, false, 10*time.Second)
	bb.ResetTimer()
	for i := 0; bb.Loop(); i++ {
		_, consentID := b.link("bench-"+strings.Repeat("x", i%3)+time.Now().Format("150405.000000000"), map[string]string{"cpf": klaviCPF})
		b.readReport(consentID)
	}
}
