package powens_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	api "puente.dev/pkg/upstream/powens"
	"puente.dev/services/connection"
	"puente.dev/services/connection/powens"
	powenssim "puente.dev/services/providersim/powens"
)

type fixture struct {
	sim  *powenssim.Server
	srv  *httptest.Server
	prov *powens.Provider
}

func setup(t *testing.T, mutate ...func(*api.Config, *powenssim.Options)) fixture {
	t.Helper()
	o := powenssim.Options{ClientID: "puente", ClientSecret: "s3cret"}
	cfg := api.Config{ClientID: "puente", ClientSecret: "s3cret", Timeout: 2 * time.Second}
	for _, m := range mutate {
		m(&cfg, &o)
	}
	sim := powenssim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	cfg.URL = srv.URL + "/2.0"
	c, err := api.NewClient(cfg, nil, nil)
	require.NoError(t, err)
	return fixture{sim: sim, srv: srv, prov: powens.New(c, powens.Options{PollAfter: time.Millisecond})}
}

func (f fixture) institution(t *testing.T, uuid string) connection.Institution {
	t.Helper()
	ins, err := f.prov.Institutions(context.Background())
	require.NoError(t, err)
	for _, in := range ins {
		if in.ExternalID == uuid {
			return in
		}
	}
	t.Fatalf("no institution %s", uuid)
	return connection.Institution{}
}

func TestTheCatalogueMapsConnectorsSourcesAndFields(t *testing.T) {
	f := setup(t)
	ins, err := f.prov.Institutions(context.Background())
	require.NoError(t, err)
	require.Len(t, ins, 2, "the hidden connector is not listed")

	bank := f.institution(t, powenssim.TestConnectorUUID)
	require.Equal(t, connection.Credentials, bank.Auth)
	require.Equal(t, "FR", bank.Country)
	require.Equal(t, []string{"openapi", "directaccess"}, bank.Sources, "usable sources, lowest priority first; the disabled one is left out")
	byName := map[string]connection.CredentialField{}
	for _, fl := range bank.Fields {
		byName[fl.Name] = fl
	}
	require.Len(t, byName, 5)
	require.Equal(t, connection.Text, byName["login"].Type)
	require.True(t, byName["login"].Required)
	require.True(t, byName["login"].IsUsername)
	require.NotEmpty(t, byName["login"].Validation)
	require.Equal(t, connection.Password, byName["password"].Type)
	require.Equal(t, connection.Select, byName["website"].Type)
	require.Equal(t, []connection.Option{{Value: "par", Label: "Particuliers"}, {Value: "pro", Label: "Professionnels"}}, byName["website"].Options)
	require.Equal(t, connection.Text, byName["birthdate"].Type)
	require.Equal(t, `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, byName["birthdate"].Validation)
	require.Equal(t, `^[0-9]+$`, byName["client_number"].Validation)

	oauth := f.institution(t, powenssim.WebauthConnectorUUID)
	require.Equal(t, connection.Redirect, oauth.Auth)
	require.Len(t, oauth.Fields, 1, "only the fields that apply to webauth")
	require.Equal(t, "website", oauth.Fields[0].Name)
	require.True(t, oauth.Fields[0].Required)
}

func login(in connection.Institution, user string) connection.Login {
	return connection.Login{ConnectionID: "con_1", UserID: "usr_1", Institution: in, Credentials: map[string]string{"login": user, "password": "1234"}}
}

// shareAll answers an account challenge: share the first n accounts, skip the rest.
func share(ch *connection.Challenge, n int) map[string]string {
	out := map[string]string{}
	for i, fl := range ch.Fields {
		if i < n {
			out[fl.Name] = powens.Share
		} else {
			out[fl.Name] = powens.Skip
		}
	}
	return out
}

func TestACredentialsLoginAddsEverySourceThenActivatesTheChosenAccounts(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := login(f.institution(t, powenssim.TestConnectorUUID), "alice")

	out, err := f.prov.Start(ctx, l)
	require.NoError(t, err)
	require.Equal(t, connection.WaitingMFA, out.Status, out.Message)
	ch := out.Challenge
	require.Len(t, ch.Fields, 4, "the accounts of both sources")
	require.True(t, ch.AccountSelection, "a front end shows it as a choice of accounts")
	for _, fl := range ch.Fields {
		require.True(t, strings.HasPrefix(fl.Name, "account_"))
		require.Equal(t, connection.ChallengeOptions, fl.Type)
		require.Len(t, fl.Options, 2)
		require.Contains(t, fl.Label, "••••")
	}
	require.True(t, ch.ExpiresAt.After(time.Now()))
	require.Zero(t, f.sim.EnabledAccounts(), "accounts arrive disabled")

	l.State, l.Round = out.State, 1
	done, err := f.prov.Answer(ctx, l, share(ch, 3))
	require.NoError(t, err)
	require.Equal(t, connection.Succeeded, done.Status, done.Message)
	require.Equal(t, 3, f.sim.EnabledAccounts())

	s, err := api.ParseSession(done.State)
	require.NoError(t, err)
	require.NotEmpty(t, s.Token, "a permanent token")
	require.Empty(t, s.Temporary, "the temporary token is not kept")
	require.NotZero(t, s.Connection)

	// Revoking deletes the connection and the user made for it.
	l.State = done.State
	require.NoError(t, f.prov.Revoke(ctx, l))
	require.Zero(t, f.sim.Connections())
	require.Zero(t, f.sim.Users())
}

func TestSharingNoAccountFailsAndLeavesNothingUpstream(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := login(f.institution(t, powenssim.TestConnectorUUID), "bob")
	out, err := f.prov.Start(ctx, l)
	require.NoError(t, err)
	l.State = out.State
	done, err := f.prov.Answer(ctx, l, share(out.Challenge, 0))
	require.NoError(t, err)
	require.Equal(t, connection.Failed, done.Status)
	require.Equal(t, connection.UserActionRequired, done.Reason)
	require.Zero(t, f.sim.Connections())
}

func TestEveryScriptedLoginEndsAsItsStateSays(t *testing.T) {
	f := setup(t)
	in := f.institution(t, powenssim.TestConnectorUUID)
	for _, tc := range []struct {
		login  string
		reason connection.Reason
		code   string
	}{
		{powenssim.LoginWrongpass, connection.InvalidCredentials, "wrongpass"},
		{powenssim.LoginSCA, connection.LoginRequired, "SCARequired"},
		{powenssim.LoginWebauth, connection.LoginRequired, "webauthRequired"},
		{powenssim.LoginActionNeeded, connection.UserActionRequired, "actionNeeded"},
		{powenssim.LoginPasswordExpired, connection.UserActionRequired, "passwordExpired"},
		{powenssim.LoginRateLimiting, connection.InstitutionUnavailable, "rateLimiting"},
		{powenssim.LoginUnavailable, connection.InstitutionUnavailable, "websiteUnavailable"},
		{powenssim.LoginBug, connection.Internal, "bug"},
	} {
		t.Run(tc.login, func(t *testing.T) {
			out, err := f.prov.Start(context.Background(), login(in, tc.login))
			require.NoError(t, err)
			require.Equal(t, connection.Failed, out.Status)
			require.Equal(t, tc.reason, out.Reason)
			require.Equal(t, tc.code, out.UpstreamCode)
			require.NotContains(t, out.Message, "1234")
			require.Zero(t, f.sim.Connections(), "a failed login leaves no connection at Powens")
		})
	}
}

func TestAnOTPRoundThenTheSources(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := login(f.institution(t, powenssim.TestConnectorUUID), powenssim.LoginOTP)
	out, err := f.prov.Start(ctx, l)
	require.NoError(t, err)
	require.Equal(t, connection.WaitingMFA, out.Status)
	require.Equal(t, "additionalInformationNeeded", out.UpstreamCode)
	require.Len(t, out.Challenge.Fields, 1)
	require.Equal(t, "otp", out.Challenge.Fields[0].Name)

	l.State, l.Round = out.State, 1
	next, err := f.prov.Answer(ctx, l, map[string]string{"otp": "123456"})
	require.NoError(t, err)
	require.Equal(t, connection.WaitingMFA, next.Status)
	require.Len(t, next.Challenge.Fields, 4, "then the account choice, over both sources")

	// A wrong code fails the round.
	l2 := login(f.institution(t, powenssim.TestConnectorUUID), powenssim.LoginOTP)
	out2, err := f.prov.Start(ctx, l2)
	require.NoError(t, err)
	l2.State = out2.State
	bad, err := f.prov.Answer(ctx, l2, map[string]string{"otp": "12"})
	require.NoError(t, err)
	require.Equal(t, connection.Failed, bad.Status)
	require.Equal(t, connection.MFAFailed, bad.Reason)
}

func TestADecoupledValidationIsPolledToTheEnd(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := login(f.institution(t, powenssim.TestConnectorUUID), powenssim.LoginDecoupled)
	out, err := f.prov.Start(ctx, l)
	require.NoError(t, err)
	require.Equal(t, connection.Running, out.Status)
	require.Equal(t, "decoupled", out.UpstreamCode)
	require.Positive(t, out.PollAfter)
	var codes []string
	for out.Status == connection.Running {
		codes = append(codes, out.UpstreamCode)
		require.Less(t, len(codes), 10)
		l.State = out.State
		out, err = f.prov.Poll(ctx, l)
		require.NoError(t, err)
	}
	require.Equal(t, []string{"decoupled", "validating"}, codes)
	require.Equal(t, connection.WaitingMFA, out.Status)
	require.Len(t, out.Challenge.Fields, 4)
}

// follow makes the browser's trip: /webauth, the bank's page, the decision, back to Puente.
func follow(t *testing.T, authURL, decision string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	bank, err := resp.Location()
	require.NoError(t, err)
	resp, err = c.Get(bank.String() + "&decision=" + decision)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	back, err := resp.Location()
	require.NoError(t, err)
	require.Equal(t, "/v1/connections:callback", back.Path)
	return back.Query()
}

func TestAWebauthLoginGoesThroughTheBankAndBack(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	in := f.institution(t, powenssim.WebauthConnectorUUID)
	for _, tc := range []struct {
		decision string
		status   connection.Status
		only     []string // the callback parameters Puente passes on (nil: all)
	}{
		{"approve", connection.WaitingMFA, nil},
		{"approve", connection.Failed, []string{"state"}}, // id_connection lost: nothing to guess from
		{"deny", connection.Failed, nil},
	} {
		t.Run(tc.decision, func(t *testing.T) {
			l := connection.Login{ConnectionID: "con_2", Institution: in, Credentials: map[string]string{"website": "par"}}
			r, err := f.prov.Authorize(ctx, l, "pst_abc", "http://puente.test/v1/connections:callback")
			require.NoError(t, err)
			u, err := url.Parse(r.URL)
			require.NoError(t, err)
			q := u.Query()
			require.Equal(t, "/2.0/webauth", u.Path)
			require.Equal(t, "puente", q.Get("client_id"))
			require.Equal(t, powenssim.WebauthConnectorUUID, q.Get("connector_uuid"))
			require.Equal(t, "openapi", q.Get("source"))
			require.Equal(t, "par", q.Get("website"))
			require.NotEmpty(t, q.Get("token"))

			back := follow(t, r.URL, tc.decision)
			require.Equal(t, "pst_abc", back.Get("state"), "the state comes back untouched")
			params := map[string]string{}
			for k := range back {
				if tc.only == nil || slices.Contains(tc.only, k) {
					params[k] = back.Get(k)
				}
			}
			l.State = r.State
			out, err := f.prov.Callback(ctx, l, params)
			require.NoError(t, err)
			require.Equal(t, tc.status, out.Status, out.Message)
			if tc.decision == "deny" {
				require.Equal(t, connection.RedirectDenied, out.Reason)
				require.Equal(t, "access_denied", out.UpstreamCode)
				return
			}
			if tc.status == connection.Failed {
				require.Equal(t, connection.Internal, out.Reason)
				return
			}
			require.Len(t, out.Challenge.Fields, 1)
			l.State = out.State
			done, err := f.prov.Answer(ctx, l, share(out.Challenge, 1))
			require.NoError(t, err)
			require.Equal(t, connection.Succeeded, done.Status)
		})
	}
}

func TestAnExpiredTemporaryTokenTimesTheChoiceOut(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	f := setup(t, func(_ *api.Config, o *powenssim.Options) { o.Now = func() time.Time { return clock() } })
	ctx := context.Background()
	l := login(f.institution(t, powenssim.TestConnectorUUID), "carol")
	out, err := f.prov.Start(ctx, l)
	require.NoError(t, err)
	require.True(t, out.Challenge.ExpiresAt.Before(time.Now().Add(30*time.Minute)), "the challenge ends before the token")
	clock = func() time.Time { return now.Add(31 * time.Minute) }
	l.State = out.State
	done, err := f.prov.Answer(ctx, l, share(out.Challenge, 1))
	require.NoError(t, err)
	require.Equal(t, connection.Failed, done.Status)
	require.Equal(t, connection.MFATimeout, done.Reason)
}

func TestUpstreamFaultsFailClearlyAndLeaveNothingHalfMade(t *testing.T) {
	for _, tc := range []struct {
		name   string
		route  string
		fault  powenssim.Fault
		reason connection.Reason
	}{
		{"garbage on create", "POST /users/me/connections", powenssim.Garbage, connection.Internal},
		{"wrong shape on create", "POST /users/me/connections", powenssim.WrongShape, connection.Internal},
		{"a hang on create", "POST /users/me/connections", powenssim.Hang, connection.InstitutionUnavailable},
		{"a drop on create", "POST /users/me/connections", powenssim.Drop, connection.InstitutionUnavailable},
		{"garbage on the second source", "POST /users/me/connections/", powenssim.Garbage, connection.Internal},
		{"a drop listing the accounts", "GET /users/me/connections/", powenssim.Drop, connection.InstitutionUnavailable},
		{"a drop at auth/init", "POST /auth/init", powenssim.Drop, connection.InstitutionUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, func(c *api.Config, _ *powenssim.Options) { c.Timeout = 300 * time.Millisecond })
			in := f.institution(t, powenssim.TestConnectorUUID)
			f.sim.Fault(tc.route, tc.fault)
			out, err := f.prov.Start(context.Background(), login(in, "dave"))
			require.NoError(t, err)
			require.Equal(t, connection.Failed, out.Status)
			require.Equal(t, tc.reason, out.Reason)
			f.sim.Fault(tc.route, powenssim.NoFault)
			require.Zero(t, f.sim.Connections(), "no connection is left at Powens")
		})
	}
}
