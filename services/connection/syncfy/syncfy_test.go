package syncfy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	upsyncfy "puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/connection"
	"puente.dev/services/connection/syncfy"
	syncfysim "puente.dev/services/providersim/syncfy"
)

const apiKey = "sk_test_syncfy"

type testBundle struct {
	sim  *syncfysim.Server
	prov *syncfy.Provider
	api  *upsyncfy.Client
	ins  []connection.Institution
}

func setup(t testing.TB) testBundle {
	t.Helper()
	sim := syncfysim.New(syncfysim.Options{APIKey: apiKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	api, err := upsyncfy.New(upsyncfy.Config{URL: srv.URL, APIKey: apiKey, Timeout: 2 * time.Second, RatePerSecond: 200}, nil)
	require.NoError(t, err)
	b := testBundle{sim: sim, prov: syncfy.New(api), api: api}
	b.ins, err = b.prov.Institutions(context.Background())
	require.NoError(t, err)
	return b
}

func (b testBundle) institution(t testing.TB, site string) connection.Institution {
	t.Helper()
	for _, in := range b.ins {
		if in.ExternalID == site {
			return in
		}
	}
	t.Fatalf("no site %s in the catalog", site)
	return connection.Institution{}
}

// run drives a login as the connection service does: Start, then Poll while Running, and
// returns every outcome.
func (b testBundle) run(t testing.TB, l *connection.Login, first connection.Outcome) []connection.Outcome {
	t.Helper()
	outs := []connection.Outcome{first}
	out := first
	for i := 0; out.Status == connection.Running; i++ {
		require.Less(t, i, 20, "the job never ended")
		if out.State != nil {
			l.State = out.State
		}
		require.Positive(t, out.PollAfter)
		var err error
		out, err = b.prov.Poll(context.Background(), *l)
		require.NoError(t, err)
		outs = append(outs, out)
	}
	if out.State != nil {
		l.State = out.State
	}
	return outs
}

func (b testBundle) login(t testing.TB, site, user string, creds map[string]string) (*connection.Login, []connection.Outcome) {
	t.Helper()
	l := &connection.Login{ConnectionID: "con_1", UserID: user, Institution: b.institution(t, site), Credentials: creds}
	out, err := b.prov.Start(context.Background(), *l)
	require.NoError(t, err)
	return l, b.run(t, l, out)
}

func codes(outs []connection.Outcome) []string {
	var c []string
	for _, o := range outs {
		c = append(c, o.UpstreamCode)
	}
	return c
}

var testCreds = map[string]string{"username": syncfysim.Username, "password": syncfysim.Password}

func TestTheCatalogListsBankSitesWithTheirForms(t *testing.T) {
	b := setup(t)
	ins, err := b.prov.Institutions(context.Background())
	require.NoError(t, err)
	byID := map[string]connection.Institution{}
	for _, in := range ins {
		require.Equal(t, "MX", in.Country)
		require.Equal(t, connection.Credentials, in.Auth)
		require.Equal(t, "syncfy", in.Provider)
		byID[in.ExternalID] = in
	}
	require.NotContains(t, byID, syncfysim.SiteSAT, "a Government site holds no accounts")
	require.Len(t, byID, 8)

	sel := byID[syncfysim.SiteSelect]
	require.Equal(t, "Sandbox", sel.OrganizationName)
	require.Equal(t, syncfysim.OrgSandbox, sel.OrganizationID)
	require.True(t, sel.Personal)
	require.True(t, sel.Business)
	require.Equal(t, "https://s.syncfy.com/images/sandbox/avatar.png", sel.LogoURL)
	require.Equal(t, []connection.CredentialField{
		{Name: "username", Type: connection.Text, Label: "Usuario", Required: true, IsUsername: true},
		{Name: "password", Type: connection.Password, Label: "Contraseña", Required: true},
		{Name: "account_kind", Type: connection.Select, Label: "Tipo de cuenta", Required: true,
			Options: []connection.Option{{Value: "01", Label: "Personal"}, {Value: "02", Label: "Empresarial"}}},
	}, sel.Fields)

	banorte := byID[syncfysim.SiteBanorte]
	require.False(t, banorte.Business)
	require.Equal(t, `^[0-9]{16}$`, banorte.Fields[0].Validation)
	require.True(t, banorte.Fields[2].IsToken)
	require.Equal(t, connection.Password, banorte.Fields[2].Type)
}

func TestANormalLoginWalksTheJobToSucceeded(t *testing.T) {
	b := setup(t)
	l, outs := b.login(t, syncfysim.SiteNormal, "usr_1", testCreds)
	require.Equal(t, []string{"100", "101", "102", "200"}, codes(outs))
	last := outs[len(outs)-1]
	require.Equal(t, connection.Succeeded, last.Status)
	require.NotEmpty(t, last.Message)
	var st map[string]any
	require.NoError(t, json.Unmarshal(l.State, &st))
	require.NotEmpty(t, st["id_credential"])
	require.NotEmpty(t, st["id_user"])

	// The same Puente user logs in again: one Syncfy user.
	b.login(t, syncfysim.SiteSelect, "usr_1", map[string]string{"username": "test", "password": "test", "account_kind": "02"})
	require.Equal(t, 1, b.sim.Users())
}

func TestAWrongPasswordFailsInvalidCredentials(t *testing.T) {
	b := setup(t)
	_, outs := b.login(t, syncfysim.SiteNormal, "usr_1", map[string]string{"username": "test", "password": "nope"})
	last := outs[len(outs)-1]
	require.Equal(t, connection.Failed, last.Status)
	require.Equal(t, connection.InvalidCredentials, last.Reason)
	require.Equal(t, "401", last.UpstreamCode)
}

// TestEveryJobCodeEndsTheLoginAsMapped drives the Code Response Simulator through every documented
// code, over the wire, and checks where each leaves the login.
func TestEveryJobCodeEndsTheLoginAsMapped(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		code   int
		status connection.Status
		reason connection.Reason
	}{
		{100, connection.Succeeded, ""}, // a progress code is passed through, then the job finishes
		{101, connection.Succeeded, ""},
		{102, connection.Succeeded, ""},
		{103, connection.Succeeded, ""},
		{200, connection.Succeeded, ""},
		{201, connection.Succeeded, ""},
		{202, connection.Succeeded, ""},
		{203, connection.Succeeded, ""},
		{204, connection.Succeeded, ""},
		{205, connection.Succeeded, ""},
		{206, connection.Succeeded, ""},
		{400, connection.Failed, connection.InvalidCredentials},
		{401, connection.Failed, connection.InvalidCredentials},
		{403, connection.Failed, connection.MFAFailed},
		{405, connection.Failed, connection.Locked},
		{406, connection.Failed, connection.UserActionRequired},
		{408, connection.Failed, connection.UserActionRequired},
		{409, connection.Failed, connection.UserActionRequired},
		{410, connection.WaitingMFA, ""},
		{411, connection.Failed, connection.MFATimeout},
		{413, connection.Failed, connection.LoginRequired},
		{500, connection.Failed, connection.InstitutionUnavailable},
		{501, connection.Failed, connection.InstitutionUnavailable},
		{504, connection.Failed, connection.InstitutionUnavailable},
		{509, connection.Failed, connection.InstitutionUnavailable},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			_, outs := b.login(t, syncfysim.SiteCodeResponse, "usr_codes", map[string]string{"username": fmt.Sprintf("test-%d", tc.code), "password": "test"})
			last := outs[len(outs)-1]
			require.Equal(t, tc.status, last.Status)
			require.Equal(t, tc.reason, last.Reason)
			require.Contains(t, codes(outs), fmt.Sprint(tc.code), "the timeline shows the code Syncfy exposed")
			require.NotEmpty(t, last.Message)
			if tc.status == connection.Succeeded {
				require.Equal(t, fmt.Sprint(max(tc.code, 200)), last.UpstreamCode)
			} else {
				require.Equal(t, fmt.Sprint(tc.code), last.UpstreamCode)
			}
		})
	}
}

func TestTwoFactorRounds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		site    string
		answers map[string]string
		check   func(t *testing.T, ch *connection.Challenge)
		want    connection.Status
		reason  connection.Reason
	}{
		{"token", syncfysim.SiteToken, map[string]string{"token": syncfysim.Token}, func(t *testing.T, ch *connection.Challenge) {
			require.Equal(t, []connection.ChallengeField{{Name: "token", Type: connection.ChallengeText, Label: "Token"}}, ch.Fields)
			require.Empty(t, ch.Image)
		}, connection.Succeeded, ""},
		{"wrong token", syncfysim.SiteToken, map[string]string{"token": "000"}, nil, connection.Failed, connection.MFAFailed},
		{"captcha", syncfysim.SiteCaptcha, map[string]string{"captcha": "TEST"}, func(t *testing.T, ch *connection.Challenge) {
			require.Equal(t, "captcha", ch.Fields[0].Name)
			require.NotEmpty(t, ch.Image)
			require.Regexp(t, `^iVBORw0KGgo`, ch.Image, "a base64 PNG")
		}, connection.Succeeded, ""},
		{"multiple image", syncfysim.SiteMultipleImage, map[string]string{"image": "2"}, func(t *testing.T, ch *connection.Challenge) {
			f := ch.Fields[0]
			require.Equal(t, connection.ChallengeOptions, f.Type)
			require.Len(t, f.Options, 3)
			for _, o := range f.Options {
				require.NotEmpty(t, o.Value)
				require.Regexp(t, `^iVBORw0KGgo`, o.Image)
			}
		}, connection.Succeeded, ""},
		{"multiple text", syncfysim.SiteMultipleText, map[string]string{"answer1": "Firulais", "answer2": "Puebla"}, func(t *testing.T, ch *connection.Challenge) {
			require.Len(t, ch.Fields, 2)
			require.Equal(t, connection.ChallengeText, ch.Fields[0].Type)
			require.Equal(t, connection.ChallengePassword, ch.Fields[1].Type)
		}, connection.Succeeded, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			start := time.Now()
			l, outs := b.login(t, tc.site, "usr_1", testCreds)
			waiting := outs[len(outs)-1]
			require.Equal(t, connection.WaitingMFA, waiting.Status)
			require.Equal(t, "410", waiting.UpstreamCode)
			ch := waiting.Challenge
			require.Equal(t, 1, ch.Round)
			require.WithinRange(t, ch.ExpiresAt, start.Add(upsyncfy.ChallengeWindow-time.Minute), time.Now().Add(upsyncfy.ChallengeWindow+time.Second))
			if tc.check != nil {
				tc.check(t, ch)
			}
			out, err := b.prov.Answer(context.Background(), *l, tc.answers)
			require.NoError(t, err)
			outs = b.run(t, l, out)
			last := outs[len(outs)-1]
			require.Equal(t, tc.want, last.Status)
			require.Equal(t, tc.reason, last.Reason)
			require.Equal(t, "103", outs[0].UpstreamCode, "Syncfy received the answer")
		})
	}
}

func TestAnExpiredTwoFactorFailsMFATimeout(t *testing.T) {
	b := setup(t)
	l, outs := b.login(t, syncfysim.SiteToken, "usr_1", testCreds)
	require.Equal(t, connection.WaitingMFA, outs[len(outs)-1].Status)
	require.Equal(t, 1, b.sim.ExpireTwofa())
	out, err := b.prov.Answer(context.Background(), *l, map[string]string{"token": syncfysim.Token})
	require.NoError(t, err, "a late answer is not an error of Puente's")
	outs = b.run(t, l, out)
	last := outs[len(outs)-1]
	require.Equal(t, connection.Failed, last.Status)
	require.Equal(t, connection.MFATimeout, last.Reason)
	require.Equal(t, "411", last.UpstreamCode)
}

func TestAnExpiredSessionIsRenewedOnce(t *testing.T) {
	b := setup(t)
	l := &connection.Login{UserID: "usr_1", Institution: b.institution(t, syncfysim.SiteNormal), Credentials: testCreds}
	out, err := b.prov.Start(context.Background(), *l)
	require.NoError(t, err)
	sessions := b.sim.Requests("/v1/sessions")
	b.sim.ExpireSessions()
	outs := b.run(t, l, out)
	require.Equal(t, connection.Succeeded, outs[len(outs)-1].Status)
	require.Equal(t, sessions+1, b.sim.Requests("/v1/sessions"))
}

func TestUpstreamFaultsEndTheLoginClearly(t *testing.T) {
	for _, tc := range []struct {
		fault syncfysim.Fault
		code  string
	}{
		{syncfysim.Garbage, "UPSTREAM_BAD_RESPONSE"},
		{syncfysim.WrongShape, "UPSTREAM_BAD_RESPONSE"},
		{syncfysim.Drop, "UPSTREAM_UNAVAILABLE"},
		{syncfysim.Hang, "UPSTREAM_TIMEOUT"},
		{syncfysim.Unavailable, "UPSTREAM_UNAVAILABLE"},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			b := setup(t)
			l := connection.Login{UserID: "usr_1", Institution: b.institution(t, syncfysim.SiteNormal), Credentials: testCreds}
			b.sim.Fault("/v1/credentials", tc.fault)
			out, err := b.prov.Start(context.Background(), l)
			require.NoError(t, err, "a credential POST that may have arrived is not retried")
			require.Equal(t, connection.Failed, out.Status)
			require.Equal(t, connection.InstitutionUnavailable, out.Reason)
			require.Equal(t, tc.code, out.UpstreamCode)
			require.Equal(t, 1, b.sim.Requests("/v1/credentials"), "posted once")
		})
	}
}

func TestAStatusReadThatKeepsFailingIsRetriedByTheJob(t *testing.T) {
	b := setup(t)
	l := connection.Login{UserID: "usr_1", Institution: b.institution(t, syncfysim.SiteNormal), Credentials: testCreds}
	out, err := b.prov.Start(context.Background(), l)
	require.NoError(t, err)
	l.State = out.State
	b.sim.Fault("/v1/jobs/", syncfysim.Drop)
	_, err = b.prov.Poll(context.Background(), l)
	require.Error(t, err, "a dropped status read may pass later")
	require.NotContains(t, err.Error(), "token")
	b.sim.Fault("/v1/jobs/", syncfysim.Garbage)
	bad, err := b.prov.Poll(context.Background(), l)
	require.NoError(t, err)
	require.Equal(t, connection.Failed, bad.Status)
	require.Equal(t, "UPSTREAM_BAD_RESPONSE", bad.UpstreamCode)
}

func TestConcurrentLoginsOfOneUserMakeOneSyncfyUser(t *testing.T) {
	b := setup(t)
	l := connection.Login{UserID: "usr_many", Institution: b.institution(t, syncfysim.SiteNormal), Credentials: testCreds}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			out, err := b.prov.Start(context.Background(), l)
			assert.NoError(t, err)
			assert.Equal(t, connection.Running, out.Status)
		})
	}
	wg.Wait()
	require.Equal(t, 1, b.sim.Users())
	require.Equal(t, 1, b.sim.Requests("/v1/sessions"), "one session token, shared")
}
