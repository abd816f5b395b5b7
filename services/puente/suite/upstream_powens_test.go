package suite_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"puente.dev/services/puente/suite/suitetest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	pw "puente.dev/pkg/upstream/powens"
	powenssim "puente.dev/services/providersim/powens"
	"puente.dev/services/puente/suite"
)

const (
	powensClientID     = "puente-test"
	powensClientSecret = "powens-client-secret-0123456789"
	powensWebhookKey   = "powens-webhook-secret-0123456789"
)

// powensBundle is a suite with Powens enabled against a fresh simulator whose webhooks go to the
// suite's /v1/inbound/powens.
type powensBundle struct {
	*bundle
	sim    *powenssim.Server
	simURL string
	c      client
}

func setupPowens(t testing.TB, w io.Writer, level slog.Level, more ...func(*suite.Config)) *powensBundle {
	t.Helper()
	sim := powenssim.New(powenssim.Options{ClientID: powensClientID, ClientSecret: powensClientSecret, WebhookSecret: powensWebhookKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: hanging requests let go before the server waits on them
	b := setupLogging(t, w, level, func(c *suite.Config) {
		c.Powens = pw.Config{URL: srv.URL + "/2.0", ClientID: powensClientID, ClientSecret: powensClientSecret,
			WebhookSecret: powensWebhookKey, WebhookPath: "/v1/inbound/powens", RatePerSecond: 200,
			Timeout: 2 * time.Second, PollInterval: 50 * time.Millisecond}
		for _, f := range more {
			f(c)
		}
	})
	sim.SetWebhookURL(b.rest + "/v1/inbound/powens")
	return &powensBundle{bundle: b, sim: sim, simURL: srv.URL, c: b.newClient("acme")}
}

// institution is the Powens institution of connector uuid, as REST shows it.
func (b *powensBundle) institution(uuid string) map[string]any {
	b.t.Helper()
	name := map[string]string{powenssim.TestConnectorUUID: "Powens Test Bank", powenssim.WebauthConnectorUUID: "Powens Test OAuth Bank"}[uuid]
	list := b.do(http.MethodGet, "/v1/institutions?country=FR", b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, list.Status, list.Raw)
	for _, in := range list.JSON["institutions"].([]any) {
		m := in.(map[string]any)
		if m["provider"] == "powens" && m["name"] == name {
			return m
		}
	}
	b.t.Fatalf("no Powens institution %s in %s", name, list.Raw)
	return nil
}

// start creates a consent and a connection for it.
func (b *powensBundle) start(user, institution string, creds map[string]string) (conID, consentID string, con map[string]any) {
	b.t.Helper()
	cns := b.do(http.MethodPost, "/v1/consents", b.c.Token, map[string]any{"user_id": user, "institution_id": institution,
		"products": []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}})
	require.Equal(b.t, http.StatusOK, cns.Status, cns.Raw)
	consentID = str(cns.JSON, "consent", "id")
	r := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": user, "institution_id": institution,
		"consent_id": consentID, "credentials": creds})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	return str(r.JSON, "connection", "id"), consentID, r.JSON["connection"].(map[string]any)
}

// reaches waits for the connection to reach want, failing early on another final status.
func (b *powensBundle) reaches(id, want string) map[string]any {
	b.t.Helper()
	var con map[string]any
	suitetest.WaitUntil(b.t, 20*time.Second, "connection "+id+" reaches "+want, func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/connections/"+id, b.c.Token, nil)
		con, _ = r.JSON["connection"].(map[string]any)
		st, _ := con["status"].(string)
		if st != want && (st == "CONNECTION_STATUS_SUCCEEDED" || st == "CONNECTION_STATUS_FAILED") {
			b.t.Fatalf("connection %s ended %s, wanted %s: %s", id, st, want, r.Raw)
		}
		return st == want, r.Raw
	})
	return con
}

// challenge is the connection's pending challenge: its id and fields.
func challenge(con map[string]any) (string, []map[string]any) {
	mfa, _ := con["mfa"].(map[string]any)
	id, _ := mfa["id"].(string)
	var fields []map[string]any
	for _, f := range mfa["fields"].([]any) {
		fields = append(fields, f.(map[string]any))
	}
	return id, fields
}

func (b *powensBundle) answer(conID, challengeID string, answers map[string]string) {
	b.t.Helper()
	r := b.do(http.MethodPost, "/v1/connections/"+conID+":submitMfa", b.c.Token, map[string]any{"challenge_id": challengeID, "answers": answers})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
}

// chooseAccounts answers the account challenge, sharing the accounts whose label starts with
// one of names; it returns the labels shared.
func (b *powensBundle) chooseAccounts(conID string, names ...string) []string {
	b.t.Helper()
	con := b.reaches(conID, "CONNECTION_STATUS_WAITING_MFA")
	require.Equal(b.t, "CHALLENGE_PURPOSE_ACCOUNT_SELECTION", con["mfa"].(map[string]any)["purpose"], "a front end shows a choice of accounts")
	id, fields := challenge(con)
	answers := map[string]string{}
	var shared []string
	for _, f := range fields {
		require.True(b.t, strings.HasPrefix(f["name"].(string), "account_"), "an account choice: %v", f)
		label := f["label"].(string)
		answers[f["name"].(string)] = "skip"
		for _, n := range names {
			if strings.HasPrefix(label, n) {
				answers[f["name"].(string)] = "share"
				shared = append(shared, label)
			}
		}
	}
	b.answer(conID, id, answers)
	return shared
}

func (b *powensBundle) consentAuthorised(id string) {
	b.t.Helper()
	suitetest.WaitUntil(b.t, 20*time.Second, "consent "+id+" is authorised", func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/consents/"+id, b.c.Token, nil)
		return str(r.JSON, "consent", "status") == "CONSENT_STATUS_AUTHORISED", r.Raw
	})
}

// extract runs an extraction of product and returns its final state.
func (b *powensBundle) extract(consentID, product string) map[string]any {
	b.t.Helper()
	r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": product})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	id := str(r.JSON, "extraction", "id")
	var x map[string]any
	suitetest.WaitUntil(b.t, 20*time.Second, "extraction "+id+" ends", func() (bool, string) {
		g := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
		x, _ = g.JSON["extraction"].(map[string]any)
		return x["status"] != "EXTRACTION_STATUS_PENDING", g.Raw
	})
	return x
}

// readData pulls the transactions and reads the accounts and their transactions through REST.
func (b *powensBundle) readData(consentID string) (accounts []map[string]any, txns map[string][]any) {
	b.t.Helper()
	x := b.extract(consentID, "TRANSACTIONS")
	require.Equal(b.t, "EXTRACTION_STATUS_SUCCEEDED", x["status"], x)
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, accs.Status, accs.Raw)
	txns = map[string][]any{}
	list, _ := accs.JSON["accounts"].([]any)
	for _, a := range list {
		acc := a.(map[string]any)
		accounts = append(accounts, acc)
		tr := b.do(http.MethodGet, "/v1/accounts/"+acc["id"].(string)+"/transactions", b.c.Token, nil)
		if tr.Status == http.StatusNotFound {
			tr = b.do(http.MethodGet, "/v1/transactions?account_id="+acc["id"].(string), b.c.Token, nil)
		}
		require.Equal(b.t, http.StatusOK, tr.Status, tr.Raw)
		txns[acc["id"].(string)], _ = tr.JSON["transactions"].([]any)
	}
	return accounts, txns
}

// webauth plays the browser: /webauth, the bank's page and the user's decision; it returns
// where the bank sends the browser back (Puente's callback).
func (b *powensBundle) webauth(authURL, decision string) *url.URL {
	b.t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	require.NoError(b.t, err)
	resp.Body.Close()
	require.Equal(b.t, http.StatusFound, resp.StatusCode)
	bank, err := resp.Location()
	require.NoError(b.t, err)
	resp, err = noFollow.Get(bank.String() + "&decision=" + decision)
	require.NoError(b.t, err)
	resp.Body.Close()
	require.Equal(b.t, http.StatusFound, resp.StatusCode)
	back, err := resp.Location()
	require.NoError(b.t, err)
	require.Equal(b.t, "/v1/connections:callback", back.Path)
	return back
}

func (b *powensBundle) callback(back *url.URL) {
	b.t.Helper()
	r := b.do(http.MethodGet, back.Path+"?"+back.RawQuery, "", nil)
	require.Contains(b.t, []int{http.StatusOK, http.StatusSeeOther, http.StatusFound}, r.Status, r.Raw)
}

var powensCreds = func(login string) map[string]string { return map[string]string{"login": login, "password": "1234"} }

func TestUpstreamPowensCatalog(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	bank := b.institution(powenssim.TestConnectorUUID)
	require.Equal(t, "AUTH_MECHANISM_CREDENTIALS", bank["auth_mechanism"])
	require.Equal(t, []any{"openapi", "directaccess"}, bank["sources"], "usable sources in priority order")
	require.Len(t, bank["credential_fields"], 5)
	oauth := b.institution(powenssim.WebauthConnectorUUID)
	require.Equal(t, "AUTH_MECHANISM_REDIRECT", oauth["auth_mechanism"])
	require.Len(t, oauth["credential_fields"], 1, "only the webauth fields")
}

func TestUpstreamPowensCredentialsLinkToData(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	in := b.institution(powenssim.TestConnectorUUID)
	conID, consentID, _ := b.start(b.newUser(b.c, "u-1"), in["id"].(string), map[string]string{"login": "alice", "password": "hunter2-powens"})

	con := b.reaches(conID, "CONNECTION_STATUS_WAITING_MFA")
	_, fields := challenge(con)
	require.Len(t, fields, 4, "the accounts of both sources, added one after the other")
	require.Zero(t, b.sim.EnabledAccounts(), "accounts arrive disabled")
	shared := b.chooseAccounts(conID, "Compte Chèque", "Livret A")
	require.Len(t, shared, 2)
	b.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	b.consentAuthorised(consentID)
	require.Equal(t, 2, b.sim.EnabledAccounts(), "only the chosen accounts are activated")

	accounts, txns := b.readData(consentID)
	require.Len(t, accounts, 2, "only the shared accounts are readable")
	var names []string
	for _, a := range accounts {
		names = append(names, a["name"].(string))
		require.Len(t, txns[a["id"].(string)], 25, "every transaction of %s", a["name"])
	}
	require.ElementsMatch(t, []string{"Compte Chèque", "Livret A"}, names)

	temporary, permanent := b.sim.DataCalls()
	require.Zero(t, temporary, "data is never read with the temporary token")
	require.Positive(t, permanent, "data is read with the permanent token")

	// Powens' CONNECTION_SYNCED, signed for /v1/inbound/powens, is taken.
	require.NoError(t, b.sim.NotifyConnectionSynced(context.Background(), b.sim.LastConnection()))

	require.NotContains(t, b.logs.String(), "hunter2-powens", "credentials are never logged")

	// Deleting the connection deletes it at Powens.
	require.Equal(t, http.StatusOK, b.do(http.MethodDelete, "/v1/connections/"+conID, b.c.Token, nil).Status)
	suitetest.WaitUntil(t, 20*time.Second, "the connection is deleted at Powens", func() (bool, string) { return b.sim.Connections() == 0, "" })
}

func TestUpstreamPowensFailedLogins(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	in := b.institution(powenssim.TestConnectorUUID)
	user := b.newUser(b.c, "u-1")
	for _, tc := range []struct {
		login, reason, code string
	}{
		{powenssim.LoginWrongpass, "FAILURE_REASON_INVALID_CREDENTIALS", "wrongpass"},
		{powenssim.LoginSCA, "FAILURE_REASON_LOGIN_REQUIRED", "SCARequired"},
		{powenssim.LoginActionNeeded, "FAILURE_REASON_USER_ACTION_REQUIRED", "actionNeeded"},
		{powenssim.LoginUnavailable, "FAILURE_REASON_INSTITUTION_UNAVAILABLE", "websiteUnavailable"},
	} {
		t.Run(tc.login, func(t *testing.T) {
			conID, _, _ := b.start(user, in["id"].(string), powensCreds(tc.login))
			con := b.reaches(conID, "CONNECTION_STATUS_FAILED")
			require.Equal(t, tc.reason, con["reason"])
			require.Equal(t, tc.code, con["upstream_code"])
			require.Zero(t, b.sim.Connections(), "nothing is left at Powens")
		})
	}
}

func TestUpstreamPowensOTPRound(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	in := b.institution(powenssim.TestConnectorUUID)
	conID, consentID, _ := b.start(b.newUser(b.c, "u-1"), in["id"].(string), powensCreds(powenssim.LoginOTP))
	con := b.reaches(conID, "CONNECTION_STATUS_WAITING_MFA")
	require.Equal(t, "CHALLENGE_PURPOSE_VERIFICATION", con["mfa"].(map[string]any)["purpose"])
	id, fields := challenge(con)
	require.Len(t, fields, 1)
	require.Equal(t, "otp", fields[0]["name"])
	b.answer(conID, id, map[string]string{"otp": "123456"})
	suitetest.WaitUntil(t, 20*time.Second, "the account choice follows the code", func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/connections/"+conID, b.c.Token, nil)
		c, _ := r.JSON["connection"].(map[string]any)
		if c["status"] != "CONNECTION_STATUS_WAITING_MFA" {
			return false, r.Raw
		}
		next, fs := challenge(c)
		return next != id && len(fs) == 4, r.Raw
	})
	b.chooseAccounts(conID, "Compte Chèque")
	b.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	b.consentAuthorised(consentID)
}

func TestUpstreamPowensDecoupledValidation(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	in := b.institution(powenssim.TestConnectorUUID)
	conID, consentID, _ := b.start(b.newUser(b.c, "u-1"), in["id"].(string), powensCreds(powenssim.LoginDecoupled))
	b.chooseAccounts(conID, "Carte Visa")
	done := b.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	var steps []string
	for _, s := range done["timeline"].([]any) {
		steps = append(steps, strings.TrimPrefix(s.(map[string]any)["status"].(string), "CONNECTION_STATUS_"))
	}
	require.Contains(t, steps, "RUNNING", "the decoupled validation was waited for: %v", steps)
	b.consentAuthorised(consentID)
	accounts, _ := b.readData(consentID)
	require.Len(t, accounts, 1)
}

func TestUpstreamPowensWebhooksPollTheLoginTheyName(t *testing.T) {
	// Polls an hour apart: only Powens' webhooks can move the login on within the test.
	b := setupPowens(t, nil, slog.LevelDebug, func(c *suite.Config) { c.Powens.PollInterval = time.Hour })
	in := b.institution(powenssim.TestConnectorUUID)
	user := b.newUser(b.c, "u-1")
	conID, consentID, _ := b.start(user, in["id"].(string), powensCreds(powenssim.LoginDecoupled))
	upstreamCode := func(want string) {
		t.Helper()
		suitetest.WaitUntil(t, 20*time.Second, "connection "+conID+" shows upstream code "+want, func() (bool, string) {
			r := b.do(http.MethodGet, "/v1/connections/"+conID, b.c.Token, nil)
			return str(r.JSON, "connection", "upstream_code") == want, r.Raw
		})
	}
	upstreamCode("decoupled")
	powensConn := b.sim.LastConnection()

	// A login of another user of the same client, waiting too: the webhooks are not about it.
	other, _, _ := b.start(b.newUser(b.c, "u-2"), in["id"].(string), powensCreds(powenssim.LoginDecoupled))
	suitetest.WaitUntil(t, 20*time.Second, "the other login waits on its validation", func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/connections/"+other, b.c.Token, nil)
		return str(r.JSON, "connection", "upstream_code") == "decoupled", r.Raw
	})

	// Powens sends webhooks only about users with a permanent token: the client's backend makes
	// one for the login's user, as it may (POST /auth/renew).
	renew, err := http.PostForm(b.simURL+"/2.0/auth/renew", url.Values{"grant_type": {"client_credentials"},
		"client_id": {powensClientID}, "client_secret": {powensClientSecret}, "id_user": {strconv.FormatInt(b.sim.UserOf(powensConn), 10)}})
	require.NoError(t, err)
	renew.Body.Close()
	require.Equal(t, http.StatusOK, renew.StatusCode)

	// The user validated in the bank's app; Powens says the connection synced: the first poll
	// resumes the validation, the second finds it through.
	require.NoError(t, b.sim.NotifyConnectionSynced(t.Context(), powensConn))
	upstreamCode("validating")
	require.NoError(t, b.sim.NotifyConnectionSynced(t.Context(), powensConn))
	b.chooseAccounts(conID, "Carte Visa")
	b.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	b.consentAuthorised(consentID)

	r := b.do(http.MethodGet, "/v1/connections/"+other, b.c.Token, nil)
	require.Equal(t, "CONNECTION_STATUS_RUNNING", str(r.JSON, "connection", "status"), r.Raw)
	require.Equal(t, "decoupled", str(r.JSON, "connection", "upstream_code"), "a webhook polls only the login it names: %s", r.Raw)
}

func TestUpstreamPowensWebauth(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	in := b.institution(powenssim.WebauthConnectorUUID)
	user := b.newUser(b.c, "u-1")

	t.Run("the user approves", func(t *testing.T) {
		conID, consentID, con := b.start(user, in["id"].(string), map[string]string{"website": "par"})
		require.Equal(t, "CONNECTION_STATUS_WAITING_REDIRECT", con["status"])
		authURL := con["authorization_url"].(string)
		require.Contains(t, authURL, "/webauth?")
		require.NotContains(t, authURL, powensClientSecret)
		b.callback(b.webauth(authURL, "approve"))
		b.chooseAccounts(conID, "Compte Courant")
		b.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
		b.consentAuthorised(consentID)
		accounts, txns := b.readData(consentID)
		require.Len(t, accounts, 1)
		require.NotEmpty(t, txns[accounts[0]["id"].(string)])
	})
	t.Run("the user denies", func(t *testing.T) {
		before := b.sim.Connections()
		conID, _, con := b.start(user, in["id"].(string), map[string]string{"website": "pro"})
		back := b.webauth(con["authorization_url"].(string), "deny")
		require.Equal(t, "access_denied", back.Query().Get("error"))
		b.callback(back)
		failed := b.reaches(conID, "CONNECTION_STATUS_FAILED")
		require.Equal(t, "FAILURE_REASON_REDIRECT_DENIED", failed["reason"])
		require.Equal(t, before, b.sim.Connections())
	})
}

func TestUpstreamPowensFaultsFailClearly(t *testing.T) {
	b := setupPowens(t, nil, slog.LevelDebug)
	in := b.institution(powenssim.TestConnectorUUID)
	user := b.newUser(b.c, "u-1")
	for _, tc := range []struct {
		name, route string
		fault       powenssim.Fault
		reason      string
	}{
		{"garbage", "POST /users/me/connections", powenssim.Garbage, "FAILURE_REASON_INTERNAL"},
		{"a hang", "POST /users/me/connections", powenssim.Hang, "FAILURE_REASON_INSTITUTION_UNAVAILABLE"},
		{"a dropped connection", "POST /users/me/connections", powenssim.Drop, "FAILURE_REASON_INSTITUTION_UNAVAILABLE"},
		{"a drop while listing the accounts to choose", "GET /users/me/connections/", powenssim.Drop, "FAILURE_REASON_INSTITUTION_UNAVAILABLE"},
	} {
		t.Run("login: "+tc.name, func(t *testing.T) {
			b.sim.Fault(tc.route, tc.fault)
			defer b.sim.Fault(tc.route, powenssim.NoFault)
			conID, _, _ := b.start(user, in["id"].(string), powensCreds("frank"))
			con := b.reaches(conID, "CONNECTION_STATUS_FAILED")
			require.Equal(t, tc.reason, con["reason"])
			require.Zero(t, b.sim.Connections(), "nothing is left half-made at Powens")
		})
	}

	// Data: a linked connection whose reads fail stores nothing and says why.
	conID, consentID, _ := b.start(user, in["id"].(string), powensCreds("grace"))
	b.chooseAccounts(conID, "Compte Chèque")
	b.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	b.consentAuthorised(consentID)
	stored := func() int {
		t.Helper()
		accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
		require.Equal(t, http.StatusOK, accs.Status, accs.Raw)
		list, _ := accs.JSON["accounts"].([]any)
		return len(list)
	}
	t.Run("data: garbage", func(t *testing.T) {
		b.sim.Fault("GET /users/me/accounts", powenssim.Garbage)
		defer b.sim.Fault("GET /users/me/accounts", powenssim.NoFault)
		x := b.extract(consentID, "TRANSACTIONS")
		require.Equal(t, "EXTRACTION_STATUS_FAILED", x["status"], x)
		require.Equal(t, "UPSTREAM_BAD_RESPONSE", x["reason"], x)
		require.Zero(t, stored(), "nothing half-written")
	})
	for _, tc := range []struct {
		name  string
		fault powenssim.Fault
	}{{"a hang", powenssim.Hang}, {"a dropped connection", powenssim.Drop}} {
		t.Run("data: "+tc.name, func(t *testing.T) {
			// A temporary failure: the extraction waits and tries again, and stores nothing
			// until Powens answers.
			before, had := b.sim.Faulted(), stored()
			b.sim.Fault("GET /users/me/accounts", tc.fault)
			r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": "TRANSACTIONS"})
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			id := str(r.JSON, "extraction", "id")
			suitetest.WaitUntil(t, 20*time.Second, "every retry of the first attempt meets the fault", func() (bool, string) {
				return b.sim.Faulted() >= before+3, ""
			})
			g := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
			require.Equal(t, "EXTRACTION_STATUS_PENDING", str(g.JSON, "extraction", "status"), g.Raw)
			require.Equal(t, had, stored(), "nothing half-written")
			b.sim.Fault("GET /users/me/accounts", powenssim.NoFault)
			suitetest.WaitUntil(t, 30*time.Second, "the extraction succeeds once Powens answers", func() (bool, string) {
				g := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
				return str(g.JSON, "extraction", "status") == "EXTRACTION_STATUS_SUCCEEDED", g.Raw
			})
		})
	}
	accounts, _ := b.readData(consentID)
	require.Len(t, accounts, 1, "once Powens answers again, the data comes")
}

// BenchmarkLinkToDataPowens: one iteration creates a user, links it through Powens (credentials,
// two sources, the account choice) against the simulator to SUCCEEDED, then reads the accounts
// and their transactions through REST.
func BenchmarkLinkToDataPowens(b *testing.B) {
	pb := setupPowens(b, io.Discard, slog.LevelInfo)
	in := pb.institution(powenssim.TestConnectorUUID)["id"].(string)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		user := pb.newUser(pb.c, "bench-"+strconv.Itoa(i))
		conID, consentID, _ := pb.start(user, in, powensCreds("bench"))
		pb.chooseAccounts(conID, "Compte Chèque", "Livret A")
		pb.reaches(conID, "CONNECTION_STATUS_SUCCEEDED")
		pb.consentAuthorised(consentID)
		accounts, txns := pb.readData(consentID)
		if len(accounts) != 2 || len(txns) != 2 {
			b.Fatalf("read %d accounts", len(accounts))
		}
	}
}
