package suite_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"puente.dev/services/puente/suite/suitetest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// restLink drives a link and the reading of its data through REST only, as an integrator would:
// a consent and a connection, the connection to SUCCEEDED, the consent AUTHORISED, extractions of
// the accounts and transactions, and both read back.
type restLink struct {
	*bundle
	c client
}

// start creates a consent and a connection at an institution and returns their ids.
func (b restLink) start(user, institutionID string, creds map[string]string) (conID, consentID string) {
	b.t.Helper()
	cns := b.do(http.MethodPost, "/v1/consents", b.c.Token, map[string]any{"user_id": user, "institution_id": institutionID,
		"products": []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}})
	require.Equal(b.t, http.StatusOK, cns.Status, cns.Raw)
	consentID = str(cns.JSON, "consent", "id")
	con := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": user, "institution_id": institutionID,
		"consent_id": consentID, "credentials": creds})
	require.Equal(b.t, http.StatusOK, con.Status, con.Raw)
	return str(con.JSON, "connection", "id"), consentID
}

// connectionReaches waits for the connection to reach want, or to end elsewhere (which fails).
func (b restLink) connectionReaches(id, want string) map[string]any {
	b.t.Helper()
	var con map[string]any
	suitetest.WaitUntil(b.t, 30*time.Second, "connection "+id+" reaches "+want, func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/connections/"+id, b.c.Token, nil)
		con, _ = r.JSON["connection"].(map[string]any)
		st, _ := con["status"].(string)
		return st == want || (want != st && (st == "CONNECTION_STATUS_FAILED" || st == "CONNECTION_STATUS_SUCCEEDED")), r.Raw
	})
	require.Equal(b.t, want, con["status"], "reason %v, code %v", con["reason"], con["upstream_code"])
	return con
}

// authorised waits for the consent to be AUTHORISED (the connection service settles it after
// the connection succeeds).
func (b restLink) authorised(consentID string) {
	b.t.Helper()
	suitetest.WaitUntil(b.t, 20*time.Second, "the consent is authorised", func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/consents/"+consentID, b.c.Token, nil)
		return str(r.JSON, "consent", "status") == "CONSENT_STATUS_AUTHORISED", r.Raw
	})
}

// readData extracts a consent's accounts and transactions and reads them through REST, the
// transactions by account id.
func (b restLink) readData(consentID string) (accounts []any, txns map[string][]any) {
	b.t.Helper()
	b.authorised(consentID)
	for _, product := range []string{"ACCOUNTS", "TRANSACTIONS"} {
		r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": product})
		require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
		id := str(r.JSON, "extraction", "id")
		suitetest.WaitUntil(b.t, 30*time.Second, product+" extraction finishes", func() (bool, string) {
			x := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
			return str(x.JSON, "extraction", "status") != "EXTRACTION_STATUS_PENDING", x.Raw
		})
		x := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
		require.Equal(b.t, "EXTRACTION_STATUS_SUCCEEDED", str(x.JSON, "extraction", "status"), x.Raw)
	}
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, accs.Status, accs.Raw)
	accounts, _ = accs.JSON["accounts"].([]any)
	txns = map[string][]any{}
	for _, a := range accounts {
		id := a.(map[string]any)["id"].(string)
		tr := b.do(http.MethodGet, "/v1/transactions?account_id="+id+"&page_size=500", b.c.Token, nil)
		require.Equal(b.t, http.StatusOK, tr.Status, tr.Raw)
		txns[id], _ = tr.JSON["transactions"].([]any)
	}
	return accounts, txns
}

// BenchmarkLinkToDataSandbox is the baseline of every BenchmarkLinkToData<P> (make bench prints
// their ratios): the same flow through REST, with Puente's built-in Sandbox, whose user_good logs
// in at once and has its data in memory. What a provider costs beyond it is its upstream's
// round trips and waits, and its adapters.
func BenchmarkLinkToDataSandbox(b *testing.B) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo)
	rl := restLink{bundle: bd, c: bd.newClient("acme")}
	in := bd.sandboxInstitution(rl.c.Token, "MX").GetId()
	creds := map[string]string{"username": "user_good", "password": "pass_good"}
	n := 0
	for b.Loop() {
		n++
		conID, consentID := rl.start(rl.newUser(rl.c, fmt.Sprintf("bench-%d", n)), in, creds)
		rl.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
		accounts, txns := rl.readData(consentID)
		require.NotEmpty(b, accounts)
		require.Len(b, txns, len(accounts))
	}
}
