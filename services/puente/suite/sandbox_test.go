package suite_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
)

func TestSandboxControls(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")

	t.Run("a connection asked to log in again fails LOGIN_REQUIRED and re-authenticates in place", func(t *testing.T) {
		con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
		b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)

		r := b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":requireLogin", c.Token, map[string]any{})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.Equal(t, "CONNECTION_STATUS_FAILED", str(r.JSON, "connection", "status"))
		require.Equal(t, "FAILURE_REASON_LOGIN_REQUIRED", str(r.JSON, "connection", "reason"))
		again := b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":requireLogin", c.Token, map[string]any{})
		require.Equal(t, http.StatusBadRequest, again.Status, "only a SUCCEEDED connection: %s", again.Raw)
		require.Contains(t, again.Raw, "NOT_SUCCEEDED")

		re := b.do(http.MethodPost, "/v1/connections/"+con.GetId()+":reauthenticate", c.Token, map[string]any{})
		require.Equal(t, http.StatusOK, re.Status, re.Raw)
		done := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
		require.Contains(t, statuses(done), "FAILED")
	})

	t.Run("a fired event lands in the outbox marked as the sandbox's", func(t *testing.T) {
		con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
		b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
		r := b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":fireEvent", c.Token, map[string]any{"type": "SANDBOX_EVENT_TYPE_CONNECTION_STATUS_CHANGED"})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		id := str(r.JSON, "event_id")
		require.Regexp(t, `^evt_`, id)
		var typ, status, client string
		var sandbox bool
		b.scan(`SELECT type, data->>'status', client_id, (data->>'sandbox')::bool FROM connection.outbox WHERE id = $1`, []any{id}, &typ, &status, &client, &sandbox)
		require.Equal(t, "connection.status_changed", typ)
		require.Equal(t, "SUCCEEDED", status)
		require.Equal(t, c.ID, client)
		require.True(t, sandbox)

		none := b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":fireEvent", c.Token, map[string]any{})
		require.Equal(t, http.StatusBadRequest, none.Status, "the type is required: %s", none.Raw)
		require.Contains(t, none.Raw, "type")
	})

	t.Run("a consent expired now is EXPIRED with the reason in its history", func(t *testing.T) {
		cns := b.newConsent(c.Token, user, in.GetId())
		r := b.do(http.MethodPost, "/v1/sandbox/consents/"+cns.GetId()+":expire", c.Token, map[string]any{})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.Equal(t, "CONSENT_STATUS_EXPIRED", str(r.JSON, "consent", "status"))
		got := b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_EXPIRED)
		require.Equal(t, "EXPIRED_BY_SANDBOX", got.GetHistory()[len(got.GetHistory())-1].GetReason())
		require.Equal(t, http.StatusOK, b.do(http.MethodPost, "/v1/sandbox/consents/"+cns.GetId()+":expire", c.Token, map[string]any{}).Status, "expiring twice changes nothing")
	})

	t.Run("another client's connection and consent are not found", func(t *testing.T) {
		con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
		cns := b.newConsent(c.Token, user, in.GetId())
		other := b.newClient("other")
		require.Equal(t, http.StatusNotFound, b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":requireLogin", other.Token, map[string]any{}).Status)
		require.Equal(t, http.StatusNotFound, b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":fireEvent", other.Token, map[string]any{"type": "SANDBOX_EVENT_TYPE_CONNECTION_STATUS_CHANGED"}).Status)
		require.Equal(t, http.StatusNotFound, b.do(http.MethodPost, "/v1/sandbox/consents/"+cns.GetId()+":expire", other.Token, map[string]any{}).Status)
	})

	t.Run("a production client and a widget session are refused every control", func(t *testing.T) {
		prod := b.createClient(&authtokenv1.CreateClientRequest{Name: "live", Environment: authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_PRODUCTION})
		prodUser := b.newUser(prod, "u-1")
		con := b.connect(prod.Token, prodUser, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
		cns := b.newConsent(prod.Token, prodUser, in.GetId())
		for _, r := range []response{
			b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":requireLogin", prod.Token, map[string]any{}),
			b.do(http.MethodPost, "/v1/sandbox/connections/"+con.GetId()+":fireEvent", prod.Token, map[string]any{"type": "SANDBOX_EVENT_TYPE_CONNECTION_STATUS_CHANGED"}),
			b.do(http.MethodPost, "/v1/sandbox/consents/"+cns.GetId()+":expire", prod.Token, map[string]any{}),
		} {
			require.Equal(t, http.StatusForbidden, r.Status, r.Raw)
			require.Contains(t, r.Raw, "SANDBOX_ONLY")
		}
		lt := b.do(http.MethodPost, "/v1/link-tokens", c.Token, map[string]any{"user_id": user, "products": []string{"ACCOUNTS"}, "country": "CL"})
		session := str(b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": str(lt.JSON, "link_token")}).JSON, "session_token")
		require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/v1/sandbox/consents/"+cns.GetId()+":expire", session, map[string]any{}).Status)
	})
}

func TestARedirectSendsTheBrowserBackToTheClient(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme") // registers https://app.example/done
	user := b.newUser(c, "u-1")
	redirect := b.redirectInstitution(c.Token)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	unregistered := b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{"user_id": user, "institution_id": redirect, "redirect_uri": "https://evil.example/steal"})
	require.Equal(t, http.StatusBadRequest, unregistered.Status, unregistered.Raw)
	require.Contains(t, unregistered.Raw, "redirect_uri")

	for _, tc := range []struct{ result, query string }{{"approve", ""}, {"deny", "&error=access_denied"}} {
		t.Run(tc.result, func(t *testing.T) {
			created := b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{"user_id": user, "institution_id": redirect, "redirect_uri": "https://app.example/done?tab=banks"})
			require.Equal(t, http.StatusBadRequest, created.Status, "a registered URI matches exactly, query included: %s", created.Raw)

			created = b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{"user_id": user, "institution_id": redirect, "redirect_uri": "https://app.example/done"})
			require.Equal(t, http.StatusOK, created.Status, created.Raw)
			id := str(created.JSON, "connection", "id")
			authURL, err := url.Parse(str(created.JSON, "connection", "authorization_url"))
			require.NoError(t, err)
			resp, err := noFollow.Get(b.rest + "/v1/connections:callback?state=" + url.QueryEscape(authURL.Query().Get("state")) + "&result=" + tc.result + tc.query)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			back, err := url.Parse(resp.Header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, "https://app.example/done", back.Scheme+"://"+back.Host+back.Path)
			require.Equal(t, id, back.Query().Get("connection_id"))
			if tc.query != "" {
				require.Equal(t, "access_denied", back.Query().Get("error"))
			}
		})
	}

	t.Run("without a redirect_uri the callback answers with the connection", func(t *testing.T) {
		con := b.connect(c.Token, user, redirect, nil)
		authURL, err := url.Parse(con.GetAuthorizationUrl())
		require.NoError(t, err)
		r := b.do(http.MethodGet, "/v1/connections:callback?state="+url.QueryEscape(authURL.Query().Get("state"))+"&result=approve", "", nil)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.Equal(t, con.GetId(), str(r.JSON, "connection", "id"))
	})
}

func TestAWidgetSessionIsReadableByItsClientsOriginsOnly(t *testing.T) {
	b := setup(t)
	shop := b.createClient(&authtokenv1.CreateClientRequest{Name: "shop", AllowedOrigins: []string{"https://shop.example"}})
	other := b.createClient(&authtokenv1.CreateClientRequest{Name: "other", AllowedOrigins: []string{"https://other.example"}})
	session := func(c client) string {
		lt := b.do(http.MethodPost, "/v1/link-tokens", c.Token, map[string]any{"user_id": b.newUser(c, "u-1"), "products": []string{"ACCOUNTS"}, "country": "CL"})
		return str(b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": str(lt.JSON, "link_token")}).JSON, "session_token")
	}
	s := session(shop)

	pre := b.do(http.MethodOptions, "/v1/institutions", "", nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	require.Equal(t, http.StatusNoContent, pre.Status)
	require.Equal(t, "https://shop.example", pre.Header.Get("Access-Control-Allow-Origin"))

	ok := b.do(http.MethodGet, "/v1/institutions", s, nil, "Origin", "https://shop.example")
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	require.Equal(t, "https://shop.example", ok.Header.Get("Access-Control-Allow-Origin"))

	foreign := b.do(http.MethodGet, "/v1/institutions", s, nil, "Origin", "https://other.example")
	require.Empty(t, foreign.Header.Get("Access-Control-Allow-Origin"), "another client's origin cannot read this client's session")
	require.Equal(t, "https://other.example", b.do(http.MethodGet, "/v1/institutions", session(other), nil, "Origin", "https://other.example").Header.Get("Access-Control-Allow-Origin"))

	backend := b.do(http.MethodGet, "/v1/institutions", shop.Token, nil, "Origin", "https://shop.example")
	require.Equal(t, http.StatusOK, backend.Status)
	require.Empty(t, backend.Header.Get("Access-Control-Allow-Origin"), "a backend's token is not for browsers")
}
