package suite_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	gb "puente.dev/pkg/upstream/guiabolso"
	gbsim "puente.dev/services/providersim/guiabolso"
	"puente.dev/services/puente/suite"
)

const (
	gbClientID      = "puente-gbc-client"
	gbClientSecret  = "puente-gbc-secret"
	gbWebhookSecret = "puente-gbc-webhook-token"
)

// guiabolsoBundle is a suite with Guiabolso Connect enabled against a fresh simulator, whose
// webhooks go to the suite's inbound endpoint.
func guiabolsoBundle(t testing.TB, o gbsim.Options, configure ...func(*suite.Config)) (*bundle, *gbsim.Server) {
	t.Helper()
	o.ClientID, o.ClientSecret, o.WebhookSecret = gbClientID, gbClientSecret, []byte(gbWebhookSecret)
	sim := gbsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	b := setupLogging(t, nil, 0, func(c *suite.Config) {
		c.Guiabolso = gb.Config{URL: srv.URL, ClientID: gbClientID, ClientSecret: gbClientSecret, WebhookSecret: gbWebhookSecret, Timeout: 2 * time.Second}
		for _, f := range configure {
			f(c)
		}
	})
	sim.SetWebhookURL(b.rest + "/v1/inbound/guiabolso")
	return b, sim
}

func (b *bundle) guiabolsoInstitution(token string) string {
	b.t.Helper()
	list, err := connectionv1.NewInstitutionServiceClient(b.conn).ListInstitutions(bearerCtx(token), &connectionv1.ListInstitutionsRequest{Country: "BR"})
	require.NoError(b.t, err)
	for _, in := range list.GetInstitutions() {
		if in.GetName() == "Guiabolso Connect" {
			require.Equal(b.t, connectionv1.AuthMechanism_AUTH_MECHANISM_REDIRECT, in.GetAuthMechanism())
			return in.GetId()
		}
	}
	b.t.Fatal("Guiabolso Connect is not in the catalog")
	return ""
}

// gbLogin is a Guiabolso connection waiting on the Connect page.
type gbLogin struct {
	consent, connection, authURL string
}

func (b *bundle) startGuiabolso(c client, user, institution string) gbLogin {
	b.t.Helper()
	cns, err := consentv1.NewConsentServiceClient(b.conn).CreateConsent(bearerCtx(c.Token), &consentv1.CreateConsentRequest{
		UserId: user, InstitutionId: institution, Products: []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"},
	})
	require.NoError(b.t, err)
	con, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: institution, ConsentId: cns.GetConsent().GetId(),
	})
	require.NoError(b.t, err)
	require.Equal(b.t, connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_REDIRECT, con.GetConnection().GetStatus())
	return gbLogin{consent: cns.GetConsent().GetId(), connection: con.GetConnection().GetId(), authURL: con.GetConnection().GetAuthorizationUrl()}
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// connectPage acts on the simulator's Connect page as the user and returns where it sends the
// browser back to: Puente's callback, as a path with its query.
func connectPage(t testing.TB, authURL, action string) (callback string, query url.Values) {
	t.Helper()
	resp, err := noFollow.Get(authURL + "&action=" + action)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/v1/connections:callback", loc.Path)
	return loc.Path + "?" + loc.RawQuery, loc.Query()
}

// linkGuiabolso links a new user through the Connect page and returns the SUCCEEDED login.
func (b *bundle) linkGuiabolso(c client, ref, institution string) gbLogin {
	b.t.Helper()
	return b.linkGuiabolsoProfile(c, ref, institution, gbsim.ProfileDefault)
}

// linkGuiabolsoProfile links a new user whose Guiabolso data is of the simulator's profile.
func (b *bundle) linkGuiabolsoProfile(c client, ref, institution, profile string) gbLogin {
	b.t.Helper()
	l := b.startGuiabolso(c, b.newUser(c, ref), institution)
	back, _ := connectPage(b.t, l.authURL, "approve&profile="+url.QueryEscape(profile))
	r := b.do(http.MethodGet, back, "", nil)
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	b.watchUntil(c.Token, l.connection, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	b.consentReaches(c.Token, l.consent, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
	return l
}

// readGuiabolsoData extracts and reads a linked consent's accounts and transactions through REST.
func (b *bundle) readGuiabolsoData(c client, l gbLogin) (accounts []any, txns int) {
	b.t.Helper()
	for _, p := range []string{"ACCOUNTS", "TRANSACTIONS"} {
		x := b.extract(c.Token, l.consent, p)
		require.Equal(b.t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED, x.GetStatus(), x.GetReason())
	}
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+l.consent, c.Token, nil)
	require.Equal(b.t, http.StatusOK, accs.Status, accs.Raw)
	accounts, _ = accs.JSON["accounts"].([]any)
	for _, a := range accounts {
		id := a.(map[string]any)["id"].(string)
		tx := b.do(http.MethodGet, "/v1/transactions?account_id="+id, c.Token, nil)
		require.Equal(b.t, http.StatusOK, tx.Status, tx.Raw)
		list, _ := tx.JSON["transactions"].([]any)
		txns += len(list)
	}
	return accounts, txns
}

func TestUpstreamGuiabolsoLinksThroughConnectAndReadsData(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{})
	c := b.newClient("acme")
	inst := b.guiabolsoInstitution(c.Token)
	l := b.linkGuiabolso(c, "u-1", inst)

	page, err := url.Parse(l.authURL)
	require.NoError(t, err)
	require.Equal(t, gbClientID, page.Query().Get("clientId"))
	require.Equal(t, l.connection, page.Query().Get("userTrackingId"), "the connection id: unique and not personal")
	_, known := sim.User(l.connection)
	require.True(t, known)

	accounts, txns := b.readGuiabolsoData(c, l)
	require.Len(t, accounts, 2)
	for _, a := range accounts {
		acc := a.(map[string]any)
		require.Equal(t, "BRL", acc["currency"])
		require.Regexp(t, `^[0-9]{3}$`, acc["bank_code"])
		require.NotEmpty(t, str(acc, "balance", "current_minor"))
	}
	require.Equal(t, 24, txns, "twelve transactions in each account")

}

func TestUpstreamGuiabolsoFailsCodesThatAreReusedExpiredOrNeverGiven(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{})
	c := b.newClient("acme")
	inst := b.guiabolsoInstitution(c.Token)
	user := b.newUser(c, "u-1")

	// A code that already linked a connection does not link another.
	first := b.startGuiabolso(c, user, inst)
	back, q := connectPage(t, first.authURL, "approve")
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, back, "", nil).Status)
	b.watchUntil(c.Token, first.connection, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	usedCode := q.Get("code")

	second := b.startGuiabolso(c, user, inst)
	page, err := url.Parse(second.authURL)
	require.NoError(t, err)
	cb, err := url.Parse(page.Query().Get("callbackURL"))
	require.NoError(t, err)
	reuse := b.do(http.MethodGet, "/v1/connections:callback?state="+url.QueryEscape(cb.Query().Get("state"))+"&code="+url.QueryEscape(usedCode), "", nil)
	require.Equal(t, http.StatusOK, reuse.Status, reuse.Raw)
	done := b.watchUntil(c.Token, second.connection, connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)
	require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_LOGIN_REQUIRED, done.GetReason())
	require.Equal(t, gb.CodeInvalidCode, done.GetUpstreamCode())

	// A code more than an hour old has expired.
	late := b.startGuiabolso(c, user, inst)
	back, _ = connectPage(t, late.authURL, "approve")
	sim.Advance(61 * time.Minute)
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, back, "", nil).Status)
	done = b.watchUntil(c.Token, late.connection, connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)
	require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_LOGIN_REQUIRED, done.GetReason())
	require.Equal(t, gb.CodeExpiredCode, done.GetUpstreamCode())

	// A user who quits the Connect page.
	quit := b.startGuiabolso(c, user, inst)
	back, _ = connectPage(t, quit.authURL, "quit")
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, back, "", nil).Status)
	done = b.watchUntil(c.Token, quit.connection, connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)
	require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_REDIRECT_DENIED, done.GetReason())
}

func TestUpstreamGuiabolsoWebhooksAreVerified(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{})
	c := b.newClient("acme")
	l := b.linkGuiabolso(c, "u-1", b.guiabolsoInstitution(c.Token))

	// A sync request: one finished webhook for the linked user, one notFound for a stranger,
	// both signed by the simulator and taken.
	client, err := gb.New(b.cfg.Guiabolso, gb.Options{})
	require.NoError(t, err)
	syncID, err := client.SyncAccounts(context.Background(), []string{l.connection, "stranger"}, "")
	require.NoError(t, err)
	<-sim.Idle()
	deliveries := sim.Deliveries()
	require.Len(t, deliveries, 2)
	for _, d := range deliveries {
		require.Equal(t, http.StatusOK, d.Status, "%s was refused", d.Name)
		ev, err := gb.ParseSyncEvent(d.Body)
		require.NoError(t, err)
		require.Equal(t, syncID, ev.SynchronizationID)
		require.Equal(t, d.UserTrackingID == "stranger", ev.NotFound)
	}

	post := func(body []byte, t0 time.Time, sig string) response {
		return b.do(http.MethodPost, "/v1/inbound/guiabolso", "", string(body),
			"X-GBC-Signature-256", "t="+strconv.FormatInt(t0.UnixMilli(), 10)+",v1="+sig)
	}
	// A body whose MAC has its first bit set: Java renders it negative.
	now := time.Now()
	var body []byte
	var mac []byte
	for i := 0; ; i++ {
		body = fmt.Appendf(nil, `{"name":"gbconnect:user:notFound","version":1,"id":"neg-%d","flowId":"f","payload":{"userTrackingId":"x","synchronizationId":"s","producerTag":"DEFAULT"},"identity":{},"auth":{},"metadata":{}}`, i)
		if mac = gbsim.MAC([]byte(gbWebhookSecret), now.UnixMilli(), body); mac[0]&0x80 != 0 {
			break
		}
	}
	java := gbsim.JavaHex(mac)
	require.Equal(t, byte('-'), java[0])
	ok := post(body, now, java)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)

	replay := post(body, now, java)
	require.Equal(t, http.StatusConflict, replay.Status, "the same event id again: %s", replay.Raw)
	require.Contains(t, replay.Raw, "DUPLICATE_WEBHOOK")

	other := []byte(`{"name":"gbconnect:user:notFound","version":1,"id":"bad-sig"}`)
	forged := post(other, now, gbsim.JavaHex(gbsim.MAC([]byte("not the token"), now.UnixMilli(), other)))
	require.Equal(t, http.StatusUnauthorized, forged.Status, forged.Raw)
	require.Contains(t, forged.Raw, "INVALID_SIGNATURE")

	old := now.Add(-10 * time.Minute)
	staleBody := []byte(`{"name":"gbconnect:user:notFound","version":1,"id":"stale"}`)
	stale := post(staleBody, old, gbsim.JavaHex(gbsim.MAC([]byte(gbWebhookSecret), old.UnixMilli(), staleBody)))
	require.Equal(t, http.StatusUnauthorized, stale.Status, stale.Raw)
	require.Contains(t, stale.Raw, "STALE_TIMESTAMP")
}

func TestUpstreamGuiabolsoSyncTurnsWalletMonitoringIntoResultsPerUser(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{})
	c := b.newClient("acme")
	inst := b.guiabolsoInstitution(c.Token)
	b.linkGuiabolso(c, "u-ok", inst)
	partial := b.linkGuiabolsoProfile(c, "u-partial", inst, gbsim.ProfileSyncError)
	gone := b.linkGuiabolso(c, "u-gone", inst)
	sim.Forget(gone.connection) // Guiabolso no longer knows this user
	sandbox := b.link(c, "u-sandbox", "user_good", "CL", "ACCOUNTS", "TRANSACTIONS")

	r := b.do(http.MethodPost, "/v1/syncs", c.Token, map[string]any{"users": []map[string]string{
		{"external_ref": "u-ok"}, {"external_ref": "u-partial"}, {"external_ref": "u-gone"}, {"user_id": sandbox.user}, {"external_ref": "nobody"},
	}})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	id := str(r.JSON, "sync", "id")
	s := b.syncCompletes(c.Token, id, 60*time.Second)
	require.Equal(t, int32(2), s.GetSucceededUsers(), s.String())
	require.Equal(t, int32(1), s.GetPartialUsers())
	require.Equal(t, int32(1), s.GetFailedUsers())
	require.Equal(t, int32(1), s.GetNotFoundUsers())

	byRef := map[string]*syncv1.UserResult{}
	for _, u := range b.syncResults(c.Token, id) {
		byRef[u.GetUser().GetExternalRef()+u.GetUser().GetUserId()] = u
	}
	ok := byRef["u-ok"]
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_SUCCESS, ok.GetStatus())
	require.Len(t, ok.GetAccounts(), 2)

	// Guiabolso's own sync of the second account failed: that account is ERROR, with its data
	// as Guiabolso last had it.
	p := byRef["u-partial"]
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_PARTIAL, p.GetStatus())
	reasons := map[string]int{}
	for _, a := range p.GetAccounts() {
		require.Equal(t, partial.consent, a.GetConsentId())
		reasons[a.GetReason()]++
	}
	require.Equal(t, map[string]int{"": 1, "UPSTREAM_SYNC_FAILED": 1}, reasons)

	g := byRef["u-gone"]
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_ERROR, g.GetStatus())
	require.Equal(t, "UPSTREAM_USER_NOT_FOUND", g.GetReason())
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_SUCCESS, byRef[sandbox.user].GetStatus(), "a Sandbox user is refreshed directly")
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_NOT_FOUND, byRef["nobody"].GetStatus())

	// One request carried the three Guiabolso users, and each webhook was taken once.
	<-sim.Idle()
	requests := map[string]bool{}
	for _, d := range sim.Deliveries() {
		require.Equal(t, http.StatusOK, d.Status, "%s was refused", d.Name)
		ev, err := gb.ParseSyncEvent(d.Body)
		require.NoError(t, err)
		requests[ev.SynchronizationID] = true
	}
	require.Len(t, sim.Deliveries(), 3)
	require.Len(t, requests, 1)
	for id := range requests {
		require.Len(t, sim.Synchronization(id), 3)
	}
}

func TestUpstreamGuiabolsoSyncFailuresEndUsersWithClearReasons(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{}, func(c *suite.Config) { c.Sync.UpstreamTimeout = time.Second })
	c := b.newClient("acme")
	b.linkGuiabolso(c, "u-1", b.guiabolsoInstitution(c.Token))
	syncOne := func() *syncv1.UserResult {
		t.Helper()
		r := b.do(http.MethodPost, "/v1/syncs", c.Token, map[string]any{"users": []map[string]string{{"external_ref": "u-1"}}})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		id := str(r.JSON, "sync", "id")
		b.syncCompletes(c.Token, id, 30*time.Second)
		rs := b.syncResults(c.Token, id)
		require.Len(t, rs, 1)
		return rs[0]
	}

	// The sync request is answered with garbage: not retried (it is not safe to repeat), the
	// user ends ERROR at once.
	sim.Fault(gb.EventSyncAccounts, gbsim.Garbage)
	u := syncOne()
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_ERROR, u.GetStatus())
	require.Equal(t, "UPSTREAM_BAD_RESPONSE", u.GetReason())

	// Guiabolso synchronizes and never says so: the user ends ERROR at the deadline.
	sim.Fault(gb.EventSyncAccounts, gbsim.NoFault)
	sim.SetWebhookURL("")
	u = syncOne()
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_ERROR, u.GetStatus())
	require.Equal(t, "UPSTREAM_TIMEOUT", u.GetReason())
}

func TestUpstreamGuiabolsoWebhooksInEitherRenderingAndHeader(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{CanonicalHex: true, LiteralHeader: true})
	client, err := gb.New(b.cfg.Guiabolso, gb.Options{})
	require.NoError(t, err)
	_, err = client.SyncAccounts(context.Background(), []string{"a", "b", "c"}, "")
	require.NoError(t, err)
	<-sim.Idle()
	for _, d := range sim.Deliveries() {
		require.Equal(t, http.StatusOK, d.Status)
		require.Contains(t, slices.Collect(maps.Keys(d.Header)), "HTTP_X_GBC_SIGNATURE_256", "sent under its literal name")
	}
}

func BenchmarkLinkToDataGuiabolso(b *testing.B) {
	bb, _ := guiabolsoBundle(b, gbsim.Options{})
	c := bb.newClient("acme")
	inst := bb.guiabolsoInstitution(c.Token)
	b.ResetTimer()
	for i := range b.N {
		l := bb.linkGuiabolso(c, "bench-"+strconv.Itoa(i), inst)
		accounts, txns := bb.readGuiabolsoData(c, l)
		if len(accounts) == 0 || txns == 0 {
			b.Fatal("no data")
		}
	}
}

func TestUpstreamGuiabolsoGarbageFailsTheExtractionAndWritesNothing(t *testing.T) {
	b, sim := guiabolsoBundle(t, gbsim.Options{})
	c := b.newClient("acme")
	l := b.linkGuiabolso(c, "u-1", b.guiabolsoInstitution(c.Token))
	sim.Fault(gb.EventUserAccounts, gbsim.Garbage)
	x := b.extract(c.Token, l.consent, "ACCOUNTS")
	require.Equal(t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_FAILED, x.GetStatus())
	require.Equal(t, "UPSTREAM_BAD_RESPONSE", x.GetReason())
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+l.consent, c.Token, nil)
	require.Equal(t, http.StatusOK, accs.Status, accs.Raw)
	require.Empty(t, accs.JSON["accounts"], "nothing half-written")
}
