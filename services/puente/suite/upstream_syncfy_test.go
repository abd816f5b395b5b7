package suite_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"puente.dev/services/puente/suite/suitetest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	upsyncfy "puente.dev/pkg/upstream/syncfy"
	syncfysim "puente.dev/services/providersim/syncfy"
	"puente.dev/services/puente/suite"
)

const syncfyKey = "sk_test_puente_syncfy"

// syncfyBundle is a suite with Syncfy enabled against a fresh simulator.
type syncfyBundle struct {
	restLink
	sim *syncfysim.Server
}

func setupSyncfy(t testing.TB, w io.Writer, level slog.Level) *syncfyBundle {
	t.Helper()
	sim := syncfysim.New(syncfysim.Options{APIKey: syncfyKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: hanging requests let go before the server waits on them
	// A simulated job moves on at each read of its status, not with time: tests read it every
	// 20 ms. A benchmark keeps production's intervals, part of what it measures.
	_, bench := t.(*testing.B)
	b := setupLogging(t, w, level, func(c *suite.Config) {
		c.Syncfy = upsyncfy.Config{URL: srv.URL, APIKey: syncfyKey, Timeout: 2 * time.Second, RatePerSecond: 100}
		if !bench {
			c.Syncfy.PollInterval, c.Connection.MinPollInterval = 20*time.Millisecond, 20*time.Millisecond
		}
	})
	return &syncfyBundle{restLink: restLink{bundle: b, c: b.newClient("acme")}, sim: sim}
}

// syncfySites are the simulator's sites by id (REST shows names, not upstream ids).
var syncfySites = map[string]string{
	syncfysim.SiteNormal: "Normal (Simple Auth)", syncfysim.SiteSelect: "Select Input (Simple Auth)",
	syncfysim.SiteCodeResponse: "Code Response Simulator (Simple Auth)", syncfysim.SiteToken: "Token (2FA)",
	syncfysim.SiteCaptcha: "Captcha (2FA)", syncfysim.SiteMultipleImage: "Multiple Image (2FA)",
	syncfysim.SiteBanorte: "Banorte Personal",
}

func (b *syncfyBundle) institution(site string) map[string]any {
	b.t.Helper()
	list := b.do(http.MethodGet, "/v1/institutions?country=MX&page_size=200", b.c.Token, nil)
	require.Equal(b.t, http.StatusOK, list.Status, list.Raw)
	for _, in := range list.JSON["institutions"].([]any) {
		m := in.(map[string]any)
		if m["provider"] == "syncfy" && m["name"] == syncfySites[site] {
			return m
		}
	}
	b.t.Fatalf("no Syncfy site %s in %s", site, list.Raw)
	return nil
}

// start creates a consent and a connection at site and returns their ids.
func (b *syncfyBundle) start(user, site string, creds map[string]string) (conID, consentID string) {
	b.t.Helper()
	return b.restLink.start(user, b.institution(site)["id"].(string), creds)
}

// submit answers the connection's challenge through REST.
func (b *syncfyBundle) submit(conID string, con map[string]any, answers map[string]string) {
	b.t.Helper()
	ch := con["mfa"].(map[string]any)
	r := b.do(http.MethodPost, "/v1/connections/"+conID+":submitMfa", b.c.Token, map[string]any{"challenge_id": ch["id"], "answers": answers})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
}

// timelineCodes are the upstream codes on a connection's timeline, oldest first.
func timelineCodes(con map[string]any) []string {
	var out []string
	steps, _ := con["timeline"].([]any)
	for _, st := range steps {
		if c, _ := st.(map[string]any)["upstream_code"].(string); c != "" {
			out = append(out, c)
		}
	}
	return out
}

var syncfyTest = map[string]string{"username": syncfysim.Username, "password": syncfysim.Password}

func TestUpstreamSyncfyCatalog(t *testing.T) {
	b := setupSyncfy(t, nil, slog.LevelDebug)
	sel := b.institution(syncfysim.SiteSelect)
	require.Equal(t, "MX", sel["country"])
	require.Equal(t, "Sandbox", sel["organization_name"])
	require.Equal(t, "AUTH_MECHANISM_CREDENTIALS", sel["auth_mechanism"])
	require.Equal(t, true, sel["personal"])
	require.Equal(t, true, sel["business"])
	require.Equal(t, "https://s.syncfy.com/images/sandbox/avatar.png", sel["logo_url"])
	fields := sel["credential_fields"].([]any)
	require.Len(t, fields, 3)
	user, pass, kind := fields[0].(map[string]any), fields[1].(map[string]any), fields[2].(map[string]any)
	require.Equal(t, "username", user["name"])
	require.Equal(t, true, user["is_username"])
	require.Equal(t, "password", pass["name"])
	require.Contains(t, pass["type"], "PASSWORD")
	require.Equal(t, "account_kind", kind["name"])
	require.Contains(t, kind["type"], "SELECT")
	require.Len(t, kind["options"], 2)

	banorte := b.institution(syncfysim.SiteBanorte)
	bf := banorte["credential_fields"].([]any)
	require.Equal(t, `^[0-9]{16}$`, bf[0].(map[string]any)["validation"])
	require.Equal(t, true, bf[2].(map[string]any)["is_token"])
	require.NotContains(t, b.do(http.MethodGet, "/v1/institutions?country=MX&page_size=200", b.c.Token, nil).Raw, "SAT CIEC",
		"a site without accounts is not offered")

	// A username the site's validation refuses never reaches Syncfy.
	r := b.do(http.MethodPost, "/v1/connections", b.c.Token, map[string]any{"user_id": b.newUser(b.c, "u-bad"), "institution_id": banorte["id"],
		"credentials": map[string]string{"username": "12", "password": "test"}})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Zero(t, b.sim.Requests("/v1/credentials"))
}

func TestUpstreamSyncfyLinkToData(t *testing.T) {
	b := setupSyncfy(t, nil, slog.LevelDebug)
	conID, consentID := b.start(b.newUser(b.c, "u-1"), syncfysim.SiteNormal, syncfyTest)
	con := b.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
	require.Equal(t, "200", con["upstream_code"])
	codes := timelineCodes(con)
	require.Equal(t, "100", codes[0], "the job Syncfy registered")
	require.Equal(t, "200", codes[len(codes)-1])

	accounts, txns := b.readData(consentID)
	require.Len(t, accounts, 2)
	var balances []string
	for _, a := range accounts {
		acc := a.(map[string]any)
		require.Equal(t, "MXN", acc["currency"])
		balances = append(balances, str(acc, "balance", "current_minor"))
		list := txns[acc["id"].(string)]
		require.Len(t, list, 30)
		var pending int
		for _, tx := range list {
			m := tx.(map[string]any)
			require.Regexp(t, `^\d{4}-\d{2}-\d{2}$`, m["booking_date"])
			if m["status"] == "TRANSACTION_STATUS_PENDING" {
				pending++
			}
		}
		require.Equal(t, 2, pending, "is_pending is kept")
	}
	require.ElementsMatch(t, []string{"1523457", "-321029"}, balances, "major units become centavos exactly")
	var amounts []string
	for _, tx := range txns[accounts[0].(map[string]any)["id"].(string)] {
		amounts = append(amounts, str(tx.(map[string]any), "amount_minor"))
	}
	require.Contains(t, amounts, "-1029", "-10.29 is -1029 centavos, not -1028")

	ident := b.do(http.MethodGet, "/v1/consents/"+consentID+"/identity", b.c.Token, nil)
	require.NotEqual(t, http.StatusOK, ident.Status, "Syncfy has no identity product: %s", ident.Raw)
}

func TestUpstreamSyncfyTwoFactor(t *testing.T) {
	b := setupSyncfy(t, nil, slog.LevelDebug)
	for _, tc := range []struct {
		name    string
		site    string
		answers map[string]string
		check   func(t *testing.T, mfa map[string]any)
	}{
		{"token", syncfysim.SiteToken, map[string]string{"token": syncfysim.Token}, func(t *testing.T, mfa map[string]any) {
			f := mfa["fields"].([]any)[0].(map[string]any)
			require.Equal(t, "token", f["name"])
			require.Empty(t, mfa["image"])
		}},
		{"captcha", syncfysim.SiteCaptcha, map[string]string{"captcha": syncfysim.Captcha}, func(t *testing.T, mfa map[string]any) {
			require.Regexp(t, `^iVBORw0KGgo`, mfa["image"], "the captcha image, base64 PNG")
		}},
		{"multiple image", syncfysim.SiteMultipleImage, map[string]string{"image": "3"}, func(t *testing.T, mfa map[string]any) {
			f := mfa["fields"].([]any)[0].(map[string]any)
			require.Contains(t, f["type"], "OPTIONS")
			opts := f["options"].([]any)
			require.Len(t, opts, 3)
			for _, o := range opts {
				require.Regexp(t, `^iVBORw0KGgo`, o.(map[string]any)["image"])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conID, _ := b.start(b.newUser(b.c, "u-"+tc.name), tc.site, syncfyTest)
			waiting := b.connectionReaches(conID, "CONNECTION_STATUS_WAITING_MFA")
			require.Equal(t, "410", waiting["upstream_code"])
			mfa := waiting["mfa"].(map[string]any)
			require.NotEmpty(t, mfa["expire_time"])
			tc.check(t, mfa)
			b.submit(conID, waiting, tc.answers)
			done := b.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
			codes := timelineCodes(done)
			require.Contains(t, codes, "410")
			require.Less(t, slices.Index(codes, "410"), slices.Index(codes, "200"), "as Syncfy exposed them: %v", codes)
		})
	}
}

func TestUpstreamSyncfyFailures(t *testing.T) {
	b := setupSyncfy(t, nil, slog.LevelDebug)

	t.Run("wrong password", func(t *testing.T) {
		conID, _ := b.start(b.newUser(b.c, "u-pass"), syncfysim.SiteNormal, map[string]string{"username": "test", "password": "wrong"})
		con := b.connectionReaches(conID, "CONNECTION_STATUS_FAILED")
		require.Equal(t, "FAILURE_REASON_INVALID_CREDENTIALS", con["reason"])
		require.Equal(t, "401", con["upstream_code"])
	})
	t.Run("locked, as the code simulator says", func(t *testing.T) {
		conID, _ := b.start(b.newUser(b.c, "u-405"), syncfysim.SiteCodeResponse, map[string]string{"username": "test-405", "password": "test"})
		con := b.connectionReaches(conID, "CONNECTION_STATUS_FAILED")
		require.Equal(t, "FAILURE_REASON_LOCKED", con["reason"])
		require.Equal(t, "405", con["upstream_code"])
	})
	t.Run("two-factor timeout", func(t *testing.T) {
		conID, _ := b.start(b.newUser(b.c, "u-411"), syncfysim.SiteToken, syncfyTest)
		waiting := b.connectionReaches(conID, "CONNECTION_STATUS_WAITING_MFA")
		require.Equal(t, 1, b.sim.ExpireTwofa(), "the user took too long at Syncfy")
		b.submit(conID, waiting, map[string]string{"token": syncfysim.Token})
		con := b.connectionReaches(conID, "CONNECTION_STATUS_FAILED")
		require.Equal(t, "FAILURE_REASON_MFA_TIMEOUT", con["reason"])
		require.Equal(t, "411", con["upstream_code"])
		codes := timelineCodes(con)
		require.Less(t, slices.Index(codes, "410"), slices.Index(codes, "411"), "as Syncfy exposed them: %v", codes)
	})
	t.Run("wrong token", func(t *testing.T) {
		conID, _ := b.start(b.newUser(b.c, "u-403"), syncfysim.SiteToken, syncfyTest)
		waiting := b.connectionReaches(conID, "CONNECTION_STATUS_WAITING_MFA")
		b.submit(conID, waiting, map[string]string{"token": "11111111"})
		con := b.connectionReaches(conID, "CONNECTION_STATUS_FAILED")
		require.Equal(t, "FAILURE_REASON_MFA_FAILED", con["reason"])
		require.Equal(t, "403", con["upstream_code"])
	})
}

func TestUpstreamSyncfyFaultsLeaveAClearFailure(t *testing.T) {
	b := setupSyncfy(t, nil, slog.LevelDebug)
	for _, tc := range []struct {
		fault syncfysim.Fault
		code  string
	}{
		{syncfysim.Garbage, "UPSTREAM_BAD_RESPONSE"},
		{syncfysim.Hang, "UPSTREAM_TIMEOUT"},
		{syncfysim.Drop, "UPSTREAM_UNAVAILABLE"},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			b.sim.Fault("/v1/credentials", tc.fault)
			defer b.sim.Fault("/v1/credentials", syncfysim.NoFault)
			before := b.sim.Requests("/v1/credentials")
			conID, consentID := b.start(b.newUser(b.c, "u-"+string(tc.fault)), syncfysim.SiteNormal, syncfyTest)
			con := b.connectionReaches(conID, "CONNECTION_STATUS_FAILED")
			require.Equal(t, "FAILURE_REASON_INSTITUTION_UNAVAILABLE", con["reason"])
			require.Equal(t, tc.code, con["upstream_code"])
			require.Equal(t, before+1, b.sim.Requests("/v1/credentials"), "a login is posted once, never blindly again")
			require.Empty(t, b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil).JSON["accounts"])
		})
	}

	t.Run("garbage while reading data", func(t *testing.T) {
		conID, consentID := b.start(b.newUser(b.c, "u-data"), syncfysim.SiteNormal, syncfyTest)
		b.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
		b.authorised(consentID)
		b.sim.Fault("/v1/transactions", syncfysim.Garbage)
		defer b.sim.Fault("/v1/transactions", syncfysim.NoFault)
		r := b.do(http.MethodPost, "/v1/extractions", b.c.Token, map[string]any{"consent_id": consentID, "product": "TRANSACTIONS"})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		id := str(r.JSON, "extraction", "id")
		var x response
		suitetest.WaitUntil(t, 30*time.Second, "the extraction ends", func() (bool, string) {
			x = b.do(http.MethodGet, "/v1/extractions/"+id, b.c.Token, nil)
			return str(x.JSON, "extraction", "status") != "EXTRACTION_STATUS_PENDING", x.Raw
		})
		require.Equal(t, "EXTRACTION_STATUS_FAILED", str(x.JSON, "extraction", "status"), x.Raw)
		require.Contains(t, x.Raw, "UPSTREAM_BAD_RESPONSE")
		accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+consentID, b.c.Token, nil)
		for _, a := range accs.JSON["accounts"].([]any) {
			tr := b.do(http.MethodGet, "/v1/transactions?account_id="+a.(map[string]any)["id"].(string), b.c.Token, nil)
			require.Empty(t, tr.JSON["transactions"], "no transaction half-written")
		}
	})
}

// BenchmarkLinkToDataSyncfy: one op is a new user linked through Syncfy's simulator to SUCCEEDED,
// then their accounts and transactions extracted and read through REST.
func BenchmarkLinkToDataSyncfy(b *testing.B) {
	bd := setupSyncfy(b, io.Discard, slog.LevelInfo)
	n := 0
	for b.Loop() {
		n++
		conID, consentID := bd.start(bd.newUser(bd.c, fmt.Sprintf("bench-%d", n)), syncfysim.SiteNormal, syncfyTest)
		bd.connectionReaches(conID, "CONNECTION_STATUS_SUCCEEDED")
		accounts, txns := bd.readData(consentID)
		require.Len(b, accounts, 2)
		require.Len(b, txns, 2)
	}
}
