package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"puente.dev/pkg/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(body)
}

func TestANilMetricsRecordsNothingAndDoesNotPanic(t *testing.T) {
	var m *metrics.Metrics
	m.RPC("/a.B/C", codes.OK, time.Millisecond)
	m.JobRun("q", "k", metrics.JobDone, time.Millisecond)
	m.DeliveryAttempt("whe_1", metrics.AttemptSuccess)
	m.DeliveryFinished("whe_1", metrics.DeliveryDelivered, 1)
	m.Connection("sandbox", "ins_1", metrics.ConnectionSucceeded)
	m.Upstream("boufin", metrics.UpstreamOK, time.Millisecond)
	require.NoError(t, m.WatchQueue("q", nil))
}

func TestRPCsAreCountedByServiceMethodAndCode(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.RPC("/puente.consent.v1.ConsentService/GetConsent", codes.OK, 3*time.Millisecond)
	m.RPC("/puente.consent.v1.ConsentService/GetConsent", codes.NotFound, time.Millisecond)
	m.RPC("/puente.consent.v1.ConsentService/GetConsent", codes.OK, time.Millisecond)
	body := scrape(t, m)
	require.Contains(t, body, `puente_rpc_requests_total{code="OK",method="GetConsent",service="puente.consent.v1.ConsentService"} 2`)
	require.Contains(t, body, `puente_rpc_requests_total{code="NotFound",method="GetConsent",service="puente.consent.v1.ConsentService"} 1`)
	require.Contains(t, body, `puente_rpc_duration_seconds_count{method="GetConsent",service="puente.consent.v1.ConsentService"} 3`)
	require.Contains(t, body, "go_goroutines", "the runtime's metrics are served too")
}

func TestEndpointAndInstitutionLabelsAreCapped(t *testing.T) {
	m := metrics.New(metrics.Options{MaxEndpoints: 3, MaxInstitutions: 2})
	for i := range 10 {
		m.DeliveryAttempt(fmt.Sprintf("whe_%d", i), metrics.AttemptSuccess)
		m.Connection("sandbox", fmt.Sprintf("ins_%d", i), metrics.ConnectionSucceeded)
	}
	m.DeliveryAttempt("whe_0", metrics.AttemptTimeout) // an admitted value stays itself
	body := scrape(t, m)
	require.Equal(t, 5, strings.Count(body, "puente_webhook_delivery_attempts_total{"), body)
	require.Contains(t, body, `puente_webhook_delivery_attempts_total{endpoint="other",result="success"} 7`)
	require.Contains(t, body, `puente_webhook_delivery_attempts_total{endpoint="whe_0",result="timeout"} 1`)
	require.Equal(t, 3, strings.Count(body, "puente_connections_total{"), body)
	require.Contains(t, body, `puente_connections_total{institution="other",outcome="succeeded",provider="sandbox"} 8`)
}

func TestQueueBacklogIsReadAtScrapeTime(t *testing.T) {
	m := metrics.New(metrics.Options{})
	ready := int64(0)
	require.NoError(t, m.WatchQueue("webhook", func(context.Context) ([]metrics.QueueStats, error) {
		ready++
		return []metrics.QueueStats{{Kind: "webhook.deliver", Ready: ready, Scheduled: 4, Running: 1, Failed: 2, OldestReady: 1500 * time.Millisecond}}, nil
	}))
	require.Contains(t, scrape(t, m), `puente_jobs_ready{kind="webhook.deliver",queue="webhook"} 1`)
	body := scrape(t, m)
	require.Contains(t, body, `puente_jobs_ready{kind="webhook.deliver",queue="webhook"} 2`)
	require.Contains(t, body, `puente_jobs_scheduled{kind="webhook.deliver",queue="webhook"} 4`)
	require.Contains(t, body, `puente_jobs_running{kind="webhook.deliver",queue="webhook"} 1`)
	require.Contains(t, body, `puente_jobs_failed{kind="webhook.deliver",queue="webhook"} 2`)
	require.Contains(t, body, `puente_jobs_oldest_ready_age_seconds{kind="webhook.deliver",queue="webhook"} 1.5`)
}

func TestAQueueThatCannotBeReadLeavesTheRestOfTheScrape(t *testing.T) {
	m := metrics.New(metrics.Options{})
	require.NoError(t, m.WatchQueue("sync", func(context.Context) ([]metrics.QueueStats, error) {
		return nil, errors.New("database is down")
	}))
	m.Upstream("boufin", metrics.UpstreamOK, 20*time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Contains(t, rec.Body.String(), `puente_upstream_request_duration_seconds_count{outcome="ok",provider="boufin"} 1`)
	require.NotContains(t, rec.Body.String(), "puente_jobs_ready")
}

func TestEveryDefinedMetricIsRegisteredWithItsLabels(t *testing.T) {
	m := metrics.New(metrics.Options{})
	require.NoError(t, m.WatchQueue("q", func(context.Context) ([]metrics.QueueStats, error) {
		return []metrics.QueueStats{{Kind: "k"}}, nil
	}))
	m.RPC("/a.B/C", codes.OK, 0)
	m.JobRun("q", "k", metrics.JobDone, 0)
	m.DeliveryAttempt("e", metrics.AttemptSuccess)
	m.DeliveryFinished("e", metrics.DeliveryDelivered, 1)
	m.Connection("p", "i", metrics.ConnectionSucceeded)
	m.Upstream("p", metrics.UpstreamOK, 0)
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	got := map[string][]string{}
	for _, f := range families {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		got[f.GetName()] = labels
	}
	for _, d := range metrics.All() {
		require.Contains(t, got, d.Name)
		require.ElementsMatch(t, d.Labels, got[d.Name], d.Name)
		require.True(t, strings.HasPrefix(d.Name, "puente_"), d.Name)
	}
	require.Equal(t, 1, testutil.CollectAndCount(m.Registry(), "puente_connections_total"))
}
