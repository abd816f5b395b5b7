package suite_test

import (
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

	consentv1 "puente.dev/gen/go/puente/consent/v1"
	bf "puente.dev/pkg/upstream/boufin"
	boufinsim "puente.dev/services/providersim/boufin"
	"puente.dev/services/puente/suite"
)

const (
	boufinKey      = "bk_test_0123456789abcdef"
	boufinClientID = "puente-test"
)

// boufinBundle is a suite with Boufin enabled against a fresh simulator.
type boufinBundle struct {
	*bundle
	sim *boufinsim.Server
	c   client
}

func setupBoufin(t testing.TB, w io.Writer, level slog.Level) *boufinBundle {
	t.Helper()
	sim := boufinsim.New(boufinsim.Options{APIKey: boufinKey, ClientIDs: []string{boufinClientID}, RunningPolls: 1})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: hanging requests let go before the server waits on them
	b := setupLogging(t, w, level, func(c *suite.Config) {
		c.Boufin = bf.Config{URL: srv.URL + "/api/v1", APIKey: boufinKey, ClientID: boufinClientID,
			Timeout: 2 * time.Second, PollInterval: 10 * time.Millisecond}
	})
	return &boufinBundle{bundle: b, sim: sim, c: b.newClient("acme")}
}

// institution finds a Boufin bank in the catalog through REST.
func (b *boufinBundle) institution(token, name string) map[string]any {
	b.t.Helper()
	list := b.do(http.MethodGet, "/v1/institutions?country=CL", token, nil)
	require.Equal(b.t, http.StatusOK, list.Status, list.Raw)
	for _, in := range list.JSON["institutions"].([]any) {
		m := in.(map[string]any)
		if m["provider"] == "boufin" && m["name"] == name {
			return m
		}
	}
	b.t.Fatalf("no Boufin institution %q in %s", name, list.Raw)
	return nil
}

// start creates a consent and a connection for it (as the widget session or the client, by
// token), and returns the connection and consent ids and the Connect app URL.
func (b *boufinBundle) start(token, user, institution string, creds map[string]string) (conID, consentID, appURL string) {
	b.t.Helper()
	body := map[string]any{"institution_id": institution, "products": []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS", "IDENTITY"}}
	if user != "" {
		body["user_id"] = user
	}
	cns := b.do(http.MethodPost, "/v1/consents", token, body)
	require.Equal(b.t, http.StatusOK, cns.Status, cns.Raw)
	consentID = str(cns.JSON, "consent", "id")
	body = map[string]any{"institution_id": institution, "consent_id": consentID, "credentials": creds}
	if user != "" {
		body["user_id"] = user
	}
	con := b.do(http.MethodPost, "/v1/connections", token, body)
	require.Equal(b.t, http.StatusOK, con.Status, con.Raw)
	require.Equal(b.t, "CONNECTION_STATUS_WAITING_REDIRECT", str(con.JSON, "connection", "status"))
	return str(con.JSON, "connection", "id"), consentID, str(con.JSON, "connection", "authorization_url")
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// login plays the user in the Connect app: it opens the page, submits the form and returns
// where the app sends the browser (status and Location).
func (b *boufinBundle) login(appURL, entity, rut, password string) (int, string) {
	b.t.Helper()
	page, err := http.Get(appURL)
	require.NoError(b.t, err)
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	require.Equal(b.t, http.StatusOK, page.StatusCode, string(html))
	require.Contains(b.t, string(html), entity, "the app offers the bank")
	u, err := url.Parse(appURL)
	require.NoError(b.t, err)
	q := u.Query()
	form := url.Values{"token": {q.Get("token")}, "redirect_uri": {q.Get("redirect_uri")}, "state": {q.Get("state")},
		"entity": {entity}, "username": {rut}, "password": {password}}
	u.RawQuery = ""
	resp, err := noRedirects.PostForm(u.String(), form)
	require.NoError(b.t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// callback follows the app's redirect to Puente's callback (the configured public URL is not
// served in tests: the same path and query go to the REST address).
func (b *boufinBundle) callback(location string) response {
	b.t.Helper()
	u, err := url.Parse(location)
	require.NoError(b.t, err)
	require.Equal(b.t, "/v1/connections:callback", u.Path)
	return b.do(http.MethodGet, u.Path+"?"+u.RawQuery, "", nil)
}

func (b *boufinBundle) connectionReaches(token, id, want string) map[string]any {
	b.t.Helper()
	var con map[string]any
	suitetest.WaitUntil(b.t, 20*time.Second, "connection "+id+" reaches "+want, func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/connections/"+id, token, nil)
		con, _ = r.JSON["connection"].(map[string]any)
		st, _ := con["status"].(string)
		return st == want, r.Raw
	})
	return con
}

// extractREST runs an extraction through REST and waits for it to finish.
func (b *boufinBundle) extractREST(consentID, product string) map[string]any {
	b.t.Helper()
	r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": product})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	id := str(r.JSON, "extraction", "id")
	var x map[string]any
	suitetest.WaitUntil(b.t, 30*time.Second, "extraction "+product+" finishes", func() (bool, string) {
		g := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
		x, _ = g.JSON["extraction"].(map[string]any)
		return x["status"] != "EXTRACTION_STATUS_PENDING", g.Raw
	})
	return x
}

// linkBoufin links a user end to end (client token) and returns the connection and consent.
func (b *boufinBundle) linkBoufin(ref string, creds map[string]string) (conID, consentID string) {
	b.t.Helper()
	user := b.newUser(b.c, ref)
	in := b.institution(b.c.Token, "Banco de los Andes")
	conID, consentID, appURL := b.start(b.c.Token, user, in["id"].(string), creds)
	status, loc := b.login(appURL, "banco-andes", creds["rut"], boufinsim.Password)
	require.Equal(b.t, http.StatusFound, status)
	back := b.callback(loc)
	require.Equal(b.t, http.StatusOK, back.Status, back.Raw)
	b.connectionReaches(b.c.Token, conID, "CONNECTION_STATUS_SUCCEEDED")
	b.consentReaches(b.c.Token, consentID, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
	return conID, consentID
}

func TestUpstreamBoufinCatalog(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	in := b.institution(b.c.Token, "Banco de los Andes")
	require.Equal(t, "CL", in["country"])
	require.Equal(t, "AUTH_MECHANISM_REDIRECT", in["auth_mechanism"])
	require.Equal(t, true, in["business"], "legal persons may link it")
	fields := in["credential_fields"].([]any)
	require.Len(t, fields, 2)
	rut, company := fields[0].(map[string]any), fields[1].(map[string]any)
	require.Equal(t, "rut", rut["name"])
	require.Equal(t, true, rut["required"])
	require.Equal(t, true, rut["is_username"])
	require.NotEmpty(t, rut["validation"])
	require.Equal(t, "company_rut", company["name"])
	require.NotEqual(t, true, company["required"])

	// A malformed RUT is refused before anything reaches Boufin.
	user := b.newUser(b.c, "u-bad")
	r := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": user, "institution_id": in["id"], "credentials": map[string]string{"rut": "not-a-rut"}})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Zero(t, b.sim.Calls("/connect/token-otp"))
}

// readAll checks the accounts, transactions and identity a linked consent reads through REST.
func (b *boufinBundle) readAll(consentID string, wantAccounts int, wantRUT string) {
	b.t.Helper()
	for _, product := range []string{"ACCOUNTS", "TRANSACTIONS", "IDENTITY"} {
		x := b.extractREST(consentID, product)
		require.Equal(b.t, "EXTRACTION_STATUS_SUCCEEDED", x["status"], "%s: %v", product, x)
	}
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, accs.Status, accs.Raw)
	list, _ := accs.JSON["accounts"].([]any)
	require.Len(b.t, list, wantAccounts, accs.Raw)
	var txns int
	for _, a := range list {
		acc := a.(map[string]any)
		require.Equal(b.t, "CLP", acc["currency"])
		bal := acc["balance"].(map[string]any)
		require.NotEmpty(b.t, bal["current_minor"], "CLP balances are whole pesos, stored as minor units")
		tr := b.do(http.MethodGet, "/v1/transactions?account_id="+acc["id"].(string), b.c.Token, nil)
		require.Equal(b.t, http.StatusOK, tr.Status, tr.Raw)
		items, _ := tr.JSON["transactions"].([]any)
		txns += len(items)
	}
	require.Positive(b.t, txns, "the movements were read")
	id := b.do(http.MethodGet, "/v1/consents/"+consentID+"/identity", b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, id.Status, id.Raw)
	require.Equal(b.t, wantRUT, str(id.JSON, "identity", "tax_id"))
}

func TestUpstreamBoufinNaturalPersonLinksThroughTheWidgetAndReadsEveryProduct(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	user := b.newUser(b.c, "u-1")
	lt := b.do(http.MethodPost, "/v1/link-tokens", b.c.Token, map[string]any{"user_id": user, "products": []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS", "IDENTITY"}, "country": "CL"})
	require.Equal(t, http.StatusOK, lt.Status, lt.Raw)
	session := str(b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": str(lt.JSON, "link_token")}).JSON, "session_token")
	require.NotEmpty(t, session)

	in := b.institution(session, "Banco de los Andes")
	conID, consentID, appURL := b.start(session, "", in["id"].(string), map[string]string{"rut": "11.111.111-1"})
	require.True(t, strings.HasPrefix(appURL, b.cfg.Boufin.URL+"/connect/app?"), appURL)
	require.NotContains(t, appURL, boufinKey, "the API key never reaches a browser")
	upstream := b.sim.Consents()
	require.Len(t, upstream, 1)
	require.Equal(t, "PENDING", upstream[0].Status)
	require.Equal(t, "natural", upstream[0].PersonType)

	status, loc := b.login(appURL, "banco-andes", "11.111.111-1", boufinsim.Password)
	require.Equal(t, http.StatusFound, status)
	require.Contains(t, loc, "consentId="+upstream[0].ConsentID)
	back := b.callback(loc)
	require.Equal(t, http.StatusOK, back.Status, back.Raw)
	b.connectionReaches(b.c.Token, conID, "CONNECTION_STATUS_SUCCEEDED")
	b.consentReaches(b.c.Token, consentID, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
	require.Equal(t, "ACTIVE", b.sim.Consents()[0].Status)

	b.readAll(consentID, 2, "11111111-1")
	require.NotContains(t, b.logs.String(), boufinKey, "the API key is never logged")
	// Every call to Boufin was timed, by provider and outcome only.
	scrape := b.scrapeUntil(`puente_upstream_request_duration_seconds_count{outcome="ok",provider="boufin"}`)
	require.NotContains(t, scrape, boufinKey)
	require.NotContains(t, scrape, upstream[0].ConsentID, "no upstream id is a label")
}

func TestUpstreamBoufinLegalPersonLinksTheCompany(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	_, consentID := b.linkBoufin("c-1", map[string]string{"rut": "11.111.111-1", "company_rut": "76.086.428-5"})
	upstream := b.sim.Consents()
	require.Len(t, upstream, 1)
	require.Equal(t, "legal", upstream[0].PersonType)
	require.Equal(t, boufinsim.CompanyRUT, upstream[0].Target, "the consent is the company's")
	b.readAll(consentID, 1, boufinsim.CompanyRUT)
}

func TestUpstreamBoufinWrongPasswordFailsWithInvalidCredentials(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	user := b.newUser(b.c, "u-1")
	in := b.institution(b.c.Token, "Banco de los Andes")
	conID, _, appURL := b.start(b.c.Token, user, in["id"].(string), map[string]string{"rut": "11.111.111-1"})
	status, loc := b.login(appURL, "banco-andes", "11.111.111-1", "wrong")
	require.Equal(t, http.StatusFound, status)
	require.Contains(t, loc, "error=wrong_login")
	require.Equal(t, http.StatusOK, b.callback(loc).Status)
	con := b.connectionReaches(b.c.Token, conID, "CONNECTION_STATUS_FAILED")
	require.Equal(t, "FAILURE_REASON_INVALID_CREDENTIALS", con["reason"])
}

func TestUpstreamBoufinOTPIsSingleUse(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	user := b.newUser(b.c, "u-1")
	in := b.institution(b.c.Token, "Banco de los Andes")
	conID, _, appURL := b.start(b.c.Token, user, in["id"].(string), map[string]string{"rut": "11.111.111-1"})
	status, loc := b.login(appURL, "banco-andes", "11.111.111-1", boufinsim.Password)
	require.Equal(t, http.StatusFound, status)
	require.Equal(t, http.StatusOK, b.callback(loc).Status)
	b.connectionReaches(b.c.Token, conID, "CONNECTION_STATUS_SUCCEEDED")

	// The same OTP again: the app refuses to open or to submit, and the callback the first
	// submit produced cannot complete the connection a second time.
	page, err := http.Get(appURL)
	require.NoError(t, err)
	page.Body.Close()
	require.Equal(t, http.StatusUnauthorized, page.StatusCode)
	u, _ := url.Parse(appURL)
	q := u.Query()
	u.RawQuery = ""
	resp, err := noRedirects.PostForm(u.String(), url.Values{"token": {q.Get("token")}, "redirect_uri": {q.Get("redirect_uri")},
		"state": {q.Get("state")}, "entity": {"banco-andes"}, "username": {"11.111.111-1"}, "password": {boufinsim.Password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Location"), "no way back to Puente")
	again := b.callback(loc)
	require.Equal(t, http.StatusBadRequest, again.Status, again.Raw)
	require.Contains(t, again.Raw, "REDIRECT_STATE_INVALID")
	con := b.do(http.MethodGet, "/v1/connections/"+conID, b.c.Token, nil)
	timeline, _ := con.JSON["connection"].(map[string]any)["timeline"].([]any)
	var succeeded int
	for _, st := range timeline {
		if st.(map[string]any)["status"] == "CONNECTION_STATUS_SUCCEEDED" {
			succeeded++
		}
	}
	require.Equal(t, 1, succeeded, "the connection succeeded once")
}

func TestUpstreamBoufinDeletingTheConnectionRevokesTheConsentUpstream(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	conID, _ := b.linkBoufin("u-1", map[string]string{"rut": "11.111.111-1"})
	require.Equal(t, "ACTIVE", b.sim.Consents()[0].Status)
	r := b.do(http.MethodDelete, "/v1/connections/"+conID, b.c.Token, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	suitetest.WaitUntil(t, 20*time.Second, "the consent is revoked at Boufin", func() (bool, string) {
		c := b.sim.Consents()[0]
		return c.Status == "REVOKED", c.Status
	})
}

func TestUpstreamBoufinFaultsDuringExtractionWriteNothing(t *testing.T) {
	b := setupBoufin(t, nil, slog.LevelDebug)
	_, consentID := b.linkBoufin("u-1", map[string]string{"rut": "11.111.111-1"})

	t.Run("garbage fails the extraction as a bad response", func(t *testing.T) {
		for _, kind := range []boufinsim.FaultKind{boufinsim.FaultGarbage, boufinsim.FaultWrongShape} {
			b.sim.Fault("/products/cuentas", boufinsim.Fault{Kind: kind})
			x := b.extractREST(consentID, "ACCOUNTS")
			require.Equal(t, "EXTRACTION_STATUS_FAILED", x["status"])
			require.Equal(t, "UPSTREAM_BAD_RESPONSE", x["reason"])
			accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
			require.Empty(t, accs.JSON["accounts"], "no account written")
		}
		b.sim.Fault("/products/cuentas", boufinsim.Fault{})
	})

	for _, tc := range []struct {
		name   string
		kind   boufinsim.FaultKind
		reason string
		// times is how many requests meet the fault: enough for one job run's three attempts
		// (a dropped keep-alive GET is also retried once by Go's transport).
		times int
	}{
		{"hang", boufinsim.FaultHang, "UPSTREAM_TIMEOUT", 3},
		{"drop", boufinsim.FaultDrop, "UPSTREAM_UNAVAILABLE", 6},
	} {
		t.Run("a "+tc.name+" is retried, with nothing written meanwhile", func(t *testing.T) {
			_, consentID := b.linkBoufin("u-"+tc.name, map[string]string{"rut": "11.111.111-1"})
			before := b.sim.Calls("/products/cuentas")
			b.sim.Fault("/products/cuentas", boufinsim.Fault{Kind: tc.kind, Times: tc.times})
			r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": "ACCOUNTS"})
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			id := str(r.JSON, "extraction", "id")
			suitetest.WaitUntil(t, 20*time.Second, "the fault is met and its reason logged", func() (bool, string) {
				n := b.sim.Calls("/products/cuentas")
				return n >= before+tc.times && strings.Contains(b.logs.String(), tc.reason), strconv.Itoa(n-before) + " calls; logs:\n" + grepLines(b.logs.String(), "extraction")
			})
			accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
			require.Empty(t, accs.JSON["accounts"], "no account written while the upstream fails")
			var x map[string]any
			suitetest.WaitUntil(t, 30*time.Second, "the retried extraction finishes", func() (bool, string) {
				g := b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
				x, _ = g.JSON["extraction"].(map[string]any)
				return x["status"] != "EXTRACTION_STATUS_PENDING", g.Raw
			})
			require.Equal(t, "EXTRACTION_STATUS_SUCCEEDED", x["status"], "the upstream is back: %v", x)
		})
	}
}

func BenchmarkLinkToDataBoufin(b *testing.B) {
	bb := setupBoufin(b, io.Discard, slog.LevelInfo)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, consentID := bb.linkBoufin("bench-"+strconv.Itoa(i), map[string]string{"rut": "11.111.111-1"})
		for _, product := range []string{"ACCOUNTS", "TRANSACTIONS"} {
			if x := bb.extractREST(consentID, product); x["status"] != "EXTRACTION_STATUS_SUCCEEDED" {
				b.Fatalf("%s: %v", product, x)
			}
		}
		accs := bb.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, bb.c.Token, nil)
		list, _ := accs.JSON["accounts"].([]any)
		if len(list) != 2 {
			b.Fatalf("accounts: %s", accs.Raw)
		}
		for _, a := range list {
			if tr := bb.do(http.MethodGet, "/v1/transactions?account_id="+a.(map[string]any)["id"].(string), bb.c.Token, nil); tr.Status != http.StatusOK {
				b.Fatalf("transactions: %s", tr.Raw)
			}
		}
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
