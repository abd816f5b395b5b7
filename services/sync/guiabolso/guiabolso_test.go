package guiabolso_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gb "puente.dev/pkg/upstream/guiabolso"
	gbsim "puente.dev/services/providersim/guiabolso"
	syncs "puente.dev/services/sync"
	syncgb "puente.dev/services/sync/guiabolso"
)

// inbox keeps the webhooks the simulator sends.
type inbox struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (in *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	in.mu.Lock()
	in.bodies = append(in.bodies, b)
	in.mu.Unlock()
}

func setup(t *testing.T) (*syncgb.Provider, *gbsim.Server, *inbox) {
	t.Helper()
	in := &inbox{}
	hooks := httptest.NewServer(in)
	t.Cleanup(hooks.Close)
	sim := gbsim.New(gbsim.Options{ClientID: "id", ClientSecret: "secret", WebhookURL: hooks.URL, WebhookSecret: []byte("token")})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	sim.SetUser("known", gbsim.User{Accounts: []gbsim.Account{{AccountID: 11, BacenCode: "001"}, {AccountID: 12, BacenCode: "237", SyncError: true}}})
	c, err := gb.New(gb.Config{URL: srv.URL, ClientID: "id", ClientSecret: "secret", Timeout: 500 * time.Millisecond}, gb.Options{})
	require.NoError(t, err)
	return syncgb.New(c), sim, in
}

func TestRequestThenEventsPerUser(t *testing.T) {
	p, sim, in := setup(t)
	require.Equal(t, 5000, p.MaxBatch())
	require.Equal(t, "con_1", p.Ref(syncs.Consent{ID: "cns_1", ConnectionID: "con_1"}), "the connection's userTrackingId")

	id, err := p.Request(context.Background(), []string{"known", "stranger"})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"known", "stranger"}, sim.Synchronization(id))
	<-sim.Idle()
	got := map[string]syncs.BatchEvent{}
	for _, b := range in.bodies {
		ev, err := p.ParseEvent("", b)
		require.NoError(t, err)
		got[ev.Ref] = ev
	}
	require.Equal(t, syncs.BatchEvent{RequestID: id, Ref: "known", FailedAccounts: []string{"12"}}, got["known"])
	require.Equal(t, syncs.BatchEvent{RequestID: id, Ref: "stranger", NotFound: true}, got["stranger"])

	_, err = p.ParseEvent("", []byte(`{"name":"gbconnect:something:else","payload":{}}`))
	require.ErrorIs(t, err, syncs.ErrNotBatchEvent)
	_, err = p.ParseEvent("", []byte(`not json`))
	require.Error(t, err)
	require.NotErrorIs(t, err, syncs.ErrNotBatchEvent)
}

func TestRequestFailuresSayWhetherToTryAgain(t *testing.T) {
	for _, tc := range []struct {
		fault     gbsim.Fault
		reason    string
		temporary bool
	}{
		{gbsim.Garbage, "UPSTREAM_BAD_RESPONSE", false},
		{gbsim.Hang, "UPSTREAM_TIMEOUT", true},
		{gbsim.Drop, "UPSTREAM_UNAVAILABLE", true},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			p, sim, _ := setup(t)
			sim.Fault(gb.EventSyncAccounts, tc.fault)
			_, err := p.Request(context.Background(), []string{"known"})
			var ue *syncs.UpstreamError
			require.True(t, errors.As(err, &ue), "%v", err)
			require.Equal(t, tc.reason, ue.Reason)
			require.Equal(t, tc.temporary, ue.Temporary)
		})
	}
}
