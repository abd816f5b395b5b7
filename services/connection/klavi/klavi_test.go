package klavi_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream"
	wire "puente.dev/pkg/upstream/klavi"
	"puente.dev/services/connection"
	connklavi "puente.dev/services/connection/klavi"
	klavisim "puente.dev/services/providersim/klavi"
)

func newClient(t *testing.T, now func() time.Time) (*wire.Client, *klavisim.Server) {
	t.Helper()
	sim := klavisim.New(klavisim.Options{AccessKey: "ak", SecretKey: "sk"})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	c, err := wire.New(wire.Config{URL: srv.URL, AccessKey: "ak", SecretKey: "sk", Timeout: time.Second}, wire.Options{Now: now})
	require.NoError(t, err)
	return c, sim
}

func TestTheAccessTokenIsFetchedAndRefreshedOnceUnderConcurrency(t *testing.T) {
	var offset atomic.Int64
	c, sim := newClient(t, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	p := connklavi.New(c, time.Second)
	ctx := context.Background()
	run := func() {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				_, err := p.Institutions(ctx) // POST /links with the access token
				require.NoError(t, err)
			})
		}
		wg.Wait()
	}
	run()
	require.Equal(t, 1, sim.Calls("/data/v1/auth"), "one token for fifty calls")
	require.Zero(t, sim.Calls("/data/v1/refresh"))
	// 29½ minutes later the token is about to expire: it is refreshed, once, with itself.
	offset.Store(int64(29*time.Minute + 30*time.Second))
	run()
	require.Equal(t, 1, sim.Calls("/data/v1/auth"))
	require.Equal(t, 1, sim.Calls("/data/v1/refresh"))
}

func TestWrongPartnerKeysAreUnauthorized(t *testing.T) {
	sim := klavisim.New(klavisim.Options{AccessKey: "ak", SecretKey: "sk"})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := wire.New(wire.Config{URL: srv.URL, AccessKey: "ak", SecretKey: "wrong", Timeout: time.Second}, wire.Options{})
	require.NoError(t, err)
	_, err = connklavi.New(c, time.Second).Institutions(context.Background())
	e, ok := upstream.AsError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, upstream.Unauthorized, e.Kind)
	require.NotContains(t, err.Error(), "wrong", "the key is never in an error")
}

func TestFaultsOnTheConsentPollAreClassified(t *testing.T) {
	c, sim := newClient(t, nil)
	p := connklavi.New(c, time.Second)
	ctx := context.Background()
	login := connection.Login{ConnectionID: "con_1", Institution: connection.Institution{ExternalID: klavisim.MockBank},
		Credentials: map[string]string{"cpf": "12345678909"}}
	r, err := p.Authorize(ctx, login, "pst_x", "http://puente.test/v1/connections:callback")
	require.NoError(t, err)
	login.State = r.State
	out, err := p.Poll(ctx, login)
	require.NoError(t, err)
	require.Equal(t, connection.Running, out.Status)
	require.Equal(t, "STARTED", out.UpstreamCode)
	for _, tc := range []struct {
		fault klavisim.Fault
		kind  upstream.Kind
	}{
		{klavisim.Garbage, upstream.BadResponse},
		{klavisim.WrongShape, upstream.BadResponse},
		{klavisim.Hang, upstream.Timeout},
		{klavisim.Drop, upstream.Unavailable},
		{klavisim.Unavailable, upstream.Unavailable},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			sim.Fault("/data/v1/consents/*", tc.fault)
			defer sim.Fault("/data/v1/consents/*", klavisim.NoFault)
			_, err := p.Poll(ctx, login)
			e, ok := upstream.AsError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tc.kind, e.Kind)
		})
	}
}

func TestConsentEventsNameTheirConnections(t *testing.T) {
	p := connklavi.New(nil, time.Second)
	ids, err := p.ConnectionsFor(context.Background(), "consent_authorised",
		[]byte(`[{"eventId":"e1","eventName":"consent_authorised","payload":{"consents":{"consentId":"c1","externalTrackId":"con_1"}}},{"eventId":"e2","eventName":"link_created","payload":{"linkId":"l"}}]`))
	require.NoError(t, err)
	require.Equal(t, []string{"con_1"}, ids)
	ids, err = p.ConnectionsFor(context.Background(), "report", []byte(`{"code":200}`))
	require.NoError(t, err)
	require.Empty(t, ids, "a report concerns no login")
}
