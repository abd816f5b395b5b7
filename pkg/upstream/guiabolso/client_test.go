package guiabolso_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream"
	gb "puente.dev/pkg/upstream/guiabolso"
	gbsim "puente.dev/services/providersim/guiabolso"
)

type env struct {
	sim    *gbsim.Server
	url    string
	client *gb.Client
	cfg    gb.Config
}

func setup(t *testing.T, o gbsim.Options) env {
	t.Helper()
	o.ClientID, o.ClientSecret = "gbc-client", "gbc-secret"
	sim := gbsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	cfg := gb.Config{URL: srv.URL, ClientID: "gbc-client", ClientSecret: "gbc-secret", Timeout: 2 * time.Second, RatePerSecond: 1000}
	c, err := gb.New(cfg, gb.Options{})
	require.NoError(t, err)
	return env{sim: sim, url: srv.URL, client: c, cfg: cfg}
}

// approve goes through the Connect page as a user who shares their banks, and returns the code.
func (e env) approve(t *testing.T, user string) string {
	t.Helper()
	q := url.Values{"clientId": {"gbc-client"}, "userTrackingId": {user},
		"callbackURL": {"https://puente.test/cb?state=s"}, "fallbackURL": {"https://puente.test/cb?state=s&error=x"}, "action": {"approve"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.cfg.ConnectPage() + "?" + q.Encode())
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "s", loc.Query().Get("state"))
	return loc.Query().Get("code")
}

func TestALinkedUsersDataIsReadAndTheTokenRefreshedOnce(t *testing.T) {
	e := setup(t, gbsim.Options{})
	ctx := context.Background()
	st, err := e.client.ExchangeCode(ctx, "user-1", e.approve(t, "user-1"))
	require.NoError(t, err)
	require.Equal(t, "user-1", st.UserTrackingID)
	require.WithinDuration(t, time.Now().Add(30*time.Minute), st.AccessExpiry, time.Minute, "the access token's exp")

	accs, err := e.client.Accounts(ctx, st)
	require.NoError(t, err)
	require.Len(t, accs, 2)
	require.Equal(t, "001", accs[0].BacenCode)
	txs, err := e.client.Transactions(ctx, st, accs[0].AccountID)
	require.NoError(t, err)
	require.Len(t, txs, 12)
	for _, tx := range txs {
		require.Equal(t, accs[0].AccountID, tx.AccountID)
	}

	// Past the access token's life, concurrent reads all work: the token is refreshed.
	e.sim.Advance(31 * time.Minute)
	old := st
	old.AccessExpiry = time.Now().Add(-time.Minute) // what a state read from storage says
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := e.client.Accounts(ctx, old)
			require.NoError(t, err)
		})
	}
	wg.Wait()
}

func TestACodeWorksOnceAndNotAfterAnHour(t *testing.T) {
	e := setup(t, gbsim.Options{})
	ctx := context.Background()
	code := e.approve(t, "user-1")
	_, err := e.client.ExchangeCode(ctx, "user-1", code)
	require.NoError(t, err)
	_, err = e.client.ExchangeCode(ctx, "user-1", code)
	ee, ok := gb.AsEventError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, gb.TypeUnauthorized, ee.Type)
	require.Equal(t, gb.CodeInvalidCode, ee.Code)

	late := e.approve(t, "user-2")
	e.sim.Advance(61 * time.Minute)
	_, err = e.client.ExchangeCode(ctx, "user-2", late)
	ee, ok = gb.AsEventError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, gb.TypeExpired, ee.Type)
	reason, _, _, _ := gb.LoginFailure(err)
	require.Equal(t, gb.ReasonLoginRequired, reason)
}

func TestErrorEventsAreReadWhateverTheHTTPStatus(t *testing.T) {
	for _, withStatus := range []bool{false, true} {
		t.Run(fmt.Sprint("error status ", withStatus), func(t *testing.T) {
			e := setup(t, gbsim.Options{ErrorStatus: withStatus})
			cfg := e.cfg
			cfg.ClientSecret = "wrong"
			c, err := gb.New(cfg, gb.Options{})
			require.NoError(t, err)
			_, err = c.SyncAccounts(context.Background(), []string{"u"}, "")
			ee, ok := gb.AsEventError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, gb.TypeUnauthorized, ee.Type)
			require.Equal(t, gb.CodeInvalidCredentials, ee.Code)
			require.NotContains(t, err.Error(), "wrong", "no secret in errors")
		})
	}
}

func TestFaultsEndInAClassifiedError(t *testing.T) {
	for _, tc := range []struct {
		fault gbsim.Fault
		kind  upstream.Kind
	}{
		{gbsim.Garbage, upstream.BadResponse},
		{gbsim.WrongShape, upstream.BadResponse},
		{gbsim.Hang, upstream.Timeout},
		{gbsim.Drop, upstream.Unavailable},
	} {
		t.Run(fmt.Sprint(tc.kind), func(t *testing.T) {
			e := setup(t, gbsim.Options{})
			cfg := e.cfg
			cfg.Timeout = 300 * time.Millisecond
			c, err := gb.New(cfg, gb.Options{})
			require.NoError(t, err)
			e.sim.Fault(gb.EventSyncAccounts, tc.fault)
			_, err = c.SyncAccounts(context.Background(), []string{"u"}, "")
			ue, ok := upstream.AsError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tc.kind, ue.Kind)
		})
	}
}

func TestSyncAccountsTakesFiveThousandUsersAndEachGetsAWebhook(t *testing.T) {
	var got atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-GBC-Signature-256") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got.Add(1)
	}))
	t.Cleanup(hook.Close)
	e := setup(t, gbsim.Options{WebhookURL: hook.URL, WebhookSecret: []byte("hook-secret")})
	ctx := context.Background()
	_, err := e.client.ExchangeCode(ctx, "known", e.approve(t, "known"))
	require.NoError(t, err)

	ids := make([]string, gb.MaxSyncBatch)
	for i := range ids {
		ids[i] = fmt.Sprintf("unknown-%04d", i)
	}
	ids[0] = "known"
	syncID, err := e.client.SyncAccounts(ctx, ids, "")
	require.NoError(t, err)
	require.NotEmpty(t, syncID)
	require.Len(t, e.sim.Synchronization(syncID), gb.MaxSyncBatch)
	<-e.sim.Idle()
	require.EqualValues(t, gb.MaxSyncBatch, got.Load())
	var finished, notFound int
	for _, d := range e.sim.Deliveries() {
		ev, err := gb.ParseSyncEvent(d.Body)
		require.NoError(t, err)
		require.Equal(t, syncID, ev.SynchronizationID)
		require.Equal(t, gb.DefaultProducerTag, ev.ProducerTag)
		if ev.NotFound {
			notFound++
		} else {
			finished++
			require.Equal(t, "known", ev.UserTrackingID)
			require.Len(t, ev.Accounts, 2)
		}
	}
	require.Equal(t, 1, finished)
	require.Equal(t, gb.MaxSyncBatch-1, notFound)

	_, err = e.client.SyncAccounts(ctx, append(ids, "one-more"), "")
	require.ErrorContains(t, err, "at most 5000", "the caller splits longer lists")
}

func TestWebhooksAreRetriedOnAFailedAnswer(t *testing.T) {
	var calls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(hook.Close)
	e := setup(t, gbsim.Options{WebhookURL: hook.URL, WebhookSecret: []byte("k"), LiteralHeader: true})
	_, err := e.client.SyncAccounts(context.Background(), []string{"nobody"}, "TAG")
	require.NoError(t, err)
	<-e.sim.Idle()
	d := e.sim.Deliveries()
	require.Len(t, d, 1)
	require.Equal(t, 3, d[0].Attempts)
	require.Equal(t, http.StatusOK, d[0].Status)
	require.Contains(t, slices.Collect(maps.Keys(d[0].Header)), "HTTP_X_GBC_SIGNATURE_256", "sent under its literal name")
}
