package webhook_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/page"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/services/webhook"
	whpg "puente.dev/services/webhook/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// deliveryRig is a webhook service over a fresh database, on a clock the test moves, whose
// delivery jobs the test runs by hand.
type deliveryRig struct {
	svc     *webhook.Service
	metrics *metrics.Metrics
	client  caller.Principal
	now     time.Time
}

func newDeliveryRig(t *testing.T) *deliveryRig {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, whpg.Migrate(ctx, dbURL))
	pool, err := postgres.Open(ctx, dbURL, whpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r := &deliveryRig{
		metrics: metrics.New(metrics.Options{}),
		client:  caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: "cli_metrics"},
		now:     time.Now().UTC().Truncate(time.Second),
	}
	r.svc, err = webhook.NewService(whpg.New(pool), webhook.Config{
		EncryptionKeys: "k1:" + base64.StdEncoding.EncodeToString(key), AllowInsecureURLs: true,
		Timeout: 5 * time.Second, RetryWindow: time.Minute, RetryBase: time.Second, RetryMax: time.Second,
		Workers: 4, PerEndpoint: 2, Lease: time.Minute, Retention: 720 * time.Hour, Metrics: r.metrics,
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	r.svc.SetClock(func() time.Time { return r.now })
	return r
}

// endpoint registers url and sends it a test event; it returns the endpoint's id.
func (r *deliveryRig) endpoint(t *testing.T, url string) string {
	t.Helper()
	e, _, err := r.svc.CreateEndpoint(t.Context(), r.client, webhook.NewEndpoint{URL: url})
	require.NoError(t, err)
	_, err = r.svc.SendTestEvent(t.Context(), r.client, e.ID)
	require.NoError(t, err)
	return e.ID
}

// runDelivery runs the delivery job of endpoint's one delivery, as a worker would, and returns
// the delivery as it is afterwards.
func (r *deliveryRig) runDelivery(t *testing.T, endpointID string) webhook.Delivery {
	t.Helper()
	list := func() webhook.Delivery {
		ds, err := r.svc.ListDeliveries(t.Context(), r.client, webhook.DeliveryFilter{EndpointID: endpointID}, page.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, ds, 1)
		return ds[0]
	}
	d := list()
	args, _ := json.Marshal(webhook.DeliverArgs{DeliveryID: d.ID, Generation: d.Generation})
	err := r.svc.Handlers()[webhook.JobDeliver](t.Context(), jobs.Job{Kind: webhook.JobDeliver, Args: args, Attempt: 1})
	if err != nil {
		require.Contains(t, err.Error(), "snoozed", "a delivery job either ends or snoozes until its retry")
	}
	return list()
}

// webhookSeries reads the puente_webhook_* series: attempts by endpoint and result, deliveries by
// endpoint and outcome, and the attempts histogram's count and sum by endpoint.
type webhookSeries struct {
	attempts  map[[2]string]float64
	finished  map[[2]string]float64
	histCount map[string]uint64
	histSum   map[string]float64
}

func readWebhookSeries(t *testing.T, m *metrics.Metrics) webhookSeries {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	s := webhookSeries{attempts: map[[2]string]float64{}, finished: map[[2]string]float64{}, histCount: map[string]uint64{}, histSum: map[string]float64{}}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			switch f.GetName() {
			case "puente_webhook_delivery_attempts_total":
				s.attempts[[2]string{l["endpoint"], l["result"]}] += mt.GetCounter().GetValue()
			case "puente_webhook_deliveries_total":
				s.finished[[2]string{l["endpoint"], l["outcome"]}] += mt.GetCounter().GetValue()
			case "puente_webhook_delivery_attempts":
				s.histCount[l["endpoint"]] += mt.GetHistogram().GetSampleCount()
				s.histSum[l["endpoint"]] += mt.GetHistogram().GetSampleSum()
			}
		}
	}
	return s
}

func TestDeliveriesAreCountedPerAttemptAndOnceWhenTheyEnd(t *testing.T) {
	r := newDeliveryRig(t)
	var flakyCalls atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/flaky":
			if flakyCalls.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case "/broken":
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(receiver.Close)
	// An address nothing listens on: the POST cannot connect.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := lis.Addr().String()
	require.NoError(t, lis.Close())

	flaky := r.endpoint(t, receiver.URL+"/flaky")
	broken := r.endpoint(t, receiver.URL+"/broken")
	dead := r.endpoint(t, "http://"+deadAddr+"/hooks")

	// First attempts: a 503, a 400 and no connection; each is retried.
	for _, ep := range []string{flaky, broken, dead} {
		require.Equal(t, webhook.Pending, r.runDelivery(t, ep).Status)
	}
	// The retries fall due. The flaky endpoint answers; the broken one's next retry would fall
	// past the retry window, so it fails.
	r.now = r.now.Add(time.Minute)
	require.Equal(t, webhook.Delivered, r.runDelivery(t, flaky).Status)
	require.Equal(t, webhook.Failed, r.runDelivery(t, broken).Status)
	// A job that runs again for a delivery that has ended posts and counts nothing.
	require.Equal(t, webhook.Delivered, r.runDelivery(t, flaky).Status)
	require.Equal(t, webhook.Failed, r.runDelivery(t, broken).Status)

	s := readWebhookSeries(t, r.metrics)
	require.Equal(t, map[[2]string]float64{
		{flaky, metrics.AttemptServerError}:  1,
		{flaky, metrics.AttemptSuccess}:      1,
		{broken, metrics.AttemptClientError}: 2,
		{dead, metrics.AttemptNetwork}:       1,
	}, s.attempts)
	require.Equal(t, map[[2]string]float64{
		{flaky, metrics.DeliveryDelivered}: 1,
		{broken, metrics.DeliveryFailed}:   1,
	}, s.finished, "the dead endpoint's delivery is still retrying: not finished")
	require.Equal(t, map[string]uint64{flaky: 1, broken: 1}, s.histCount)
	require.Equal(t, map[string]float64{flaky: 2, broken: 2}, s.histSum, "each took two attempts")
}
