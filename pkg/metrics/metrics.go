// Package metrics holds the Prometheus metrics a Puente process exposes to the platform team that
// runs it. Each process makes one *Metrics (there is no global registry, so two suites in one test
// binary count apart) and serves it on its own port, away from the API.
//
// Every label takes values from a closed set (gRPC methods, job kinds, providers, outcomes) or,
// for the ones that grow with tenants and the catalog (webhook endpoints, institutions), from a
// set capped at Options.MaxEndpoints / MaxInstitutions: values past the cap count as "other",
// so a scrape's size is bounded whatever callers do.
//
// A nil *Metrics records nothing: code under test that does not look at metrics passes none.
package metrics

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// Other is the label value that stands for every value past a label's cap.
const Other = "other"

// Options bound the labels that grow with use.
type Options struct {
	MaxEndpoints    int // distinct webhook endpoint ids; default 1000
	MaxInstitutions int // distinct institution ids; default 2000
}

// Metrics is a process's collectors and their registry.
type Metrics struct {
	reg *prometheus.Registry

	rpcRequests      *prometheus.CounterVec
	rpcDuration      *prometheus.HistogramVec
	jobRuns          *prometheus.CounterVec
	jobDuration      *prometheus.HistogramVec
	deliveryAttempts *prometheus.CounterVec
	deliveries       *prometheus.CounterVec
	attemptsPerDeliv *prometheus.HistogramVec
	connections      *prometheus.CounterVec
	upstream         *prometheus.HistogramVec

	endpoints, institutions *capped
}

// Metric describes one metric Puente exposes: the README's table and the dashboards are checked
// against these.
type Metric struct {
	Name   string
	Type   string // counter, histogram or gauge
	Labels []string
	Help   string
}

// The metrics' names and labels, in one place.
var (
	rpcRequests      = Metric{"puente_rpc_requests_total", "counter", []string{"service", "method", "code"}, "gRPC calls handled, by method and status code (REST calls count here too, as the gRPC calls the gateway makes)."}
	rpcDuration      = Metric{"puente_rpc_duration_seconds", "histogram", []string{"service", "method"}, "Time to handle a gRPC call (for streams, the stream's life)."}
	jobRuns          = Metric{"puente_job_runs_total", "counter", []string{"queue", "kind", "outcome"}, "Background job runs, by outcome: done, retry, failed, snoozed or requeued (handed back at shutdown)."}
	jobDuration      = Metric{"puente_job_duration_seconds", "histogram", []string{"queue", "kind"}, "Time a job's handler ran."}
	jobsReady        = Metric{"puente_jobs_ready", "gauge", []string{"queue", "kind"}, "Jobs due now and waiting for a worker (read from the queue table at scrape time)."}
	jobsScheduled    = Metric{"puente_jobs_scheduled", "gauge", []string{"queue", "kind"}, "Jobs waiting for a later time: retries' backoff, snoozes, scheduled work."}
	jobsRunning      = Metric{"puente_jobs_running", "gauge", []string{"queue", "kind"}, "Jobs leased to a worker."}
	jobsFailed       = Metric{"puente_jobs_failed", "gauge", []string{"queue", "kind"}, "Jobs that used up their attempts and wait for an operator (kept with last_error)."}
	jobsOldestReady  = Metric{"puente_jobs_oldest_ready_age_seconds", "gauge", []string{"queue", "kind"}, "How long the oldest ready job has waited past its due time; 0 when none waits."}
	deliveryAttempts = Metric{"puente_webhook_delivery_attempts_total", "counter", []string{"endpoint", "result"}, "Webhook POSTs, by result: success, client_error (4xx), server_error (5xx), timeout, network or refused (an address Puente will not call)."}
	deliveries       = Metric{"puente_webhook_deliveries_total", "counter", []string{"endpoint", "outcome"}, "Webhook deliveries that reached a final outcome: delivered, or failed after their last attempt."}
	attemptsPerDeliv = Metric{"puente_webhook_delivery_attempts", "histogram", []string{"endpoint"}, "Attempts a delivery took to reach its final outcome."}
	connections      = Metric{"puente_connections_total", "counter", []string{"provider", "institution", "outcome"}, "Connections that finished, by outcome: succeeded, user_error (credentials, MFA, consent denied), institution_error (the bank or provider failed) or internal_error."}
	upstream         = Metric{"puente_upstream_request_duration_seconds", "histogram", []string{"provider", "outcome"}, "Time of each HTTP call to an upstream provider, by outcome: ok, or the failure kind (unavailable, timeout, rate_limited, unauthorized, bad_response, rejected)."}
)

// All lists every metric Puente defines, besides the Go runtime's and the process's (go_*,
// process_*).
func All() []Metric {
	return []Metric{rpcRequests, rpcDuration, jobRuns, jobDuration, jobsReady, jobsScheduled, jobsRunning, jobsFailed,
		jobsOldestReady, deliveryAttempts, deliveries, attemptsPerDeliv, connections, upstream}
}

var (
	// Latency buckets from 1 ms to 30 s: RPCs are milliseconds, upstream logins seconds.
	durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// Jobs run from milliseconds to minutes (a sync batch, a slow bank).
	jobBuckets     = []float64{.005, .025, .1, .5, 1, 5, 15, 60, 300}
	attemptBuckets = []float64{1, 2, 3, 5, 8, 13, 21}
)

// New returns a process's metrics, with the Go runtime's and the process's collectors.
func New(o Options) *Metrics {
	if o.MaxEndpoints <= 0 {
		o.MaxEndpoints = 1000
	}
	if o.MaxInstitutions <= 0 {
		o.MaxInstitutions = 2000
	}
	m := &Metrics{
		reg:              prometheus.NewRegistry(),
		rpcRequests:      counter(rpcRequests),
		rpcDuration:      histogram(rpcDuration, durationBuckets),
		jobRuns:          counter(jobRuns),
		jobDuration:      histogram(jobDuration, jobBuckets),
		deliveryAttempts: counter(deliveryAttempts),
		deliveries:       counter(deliveries),
		attemptsPerDeliv: histogram(attemptsPerDeliv, attemptBuckets),
		connections:      counter(connections),
		upstream:         histogram(upstream, durationBuckets),
		endpoints:        &capped{max: o.MaxEndpoints, seen: map[string]bool{}},
		institutions:     &capped{max: o.MaxInstitutions, seen: map[string]bool{}},
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.rpcRequests, m.rpcDuration, m.jobRuns, m.jobDuration, m.deliveryAttempts, m.deliveries, m.attemptsPerDeliv,
		m.connections, m.upstream)
	return m
}

func counter(d Metric) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.Name, Help: d.Help}, d.Labels)
}

func histogram(d Metric, buckets []float64) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: d.Name, Help: d.Help, Buckets: buckets}, d.Labels)
}

// Handler serves the metrics in Prometheus' text format. A queue that cannot be read is left out
// of that scrape; the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Registry: m.reg})
}

// Registry is where the metrics are registered, for tests that gather them.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// RPC records one gRPC call to fullMethod ("/puente.consent.v1.ConsentService/GetConsent").
func (m *Metrics) RPC(fullMethod string, code codes.Code, d time.Duration) {
	if m == nil {
		return
	}
	service, method := splitMethod(fullMethod)
	m.rpcRequests.WithLabelValues(service, method, code.String()).Inc()
	m.rpcDuration.WithLabelValues(service, method).Observe(d.Seconds())
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// Job outcomes.
const (
	JobDone     = "done"
	JobRetry    = "retry"
	JobFailed   = "failed"
	JobSnoozed  = "snoozed"
	JobRequeued = "requeued"
)

// JobRun records one run of a job of kind from queue (the service's name) that took d.
func (m *Metrics) JobRun(queue, kind, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.jobRuns.WithLabelValues(queue, kind, outcome).Inc()
	m.jobDuration.WithLabelValues(queue, kind).Observe(d.Seconds())
}

// QueueStats is one job kind's backlog in a queue.
type QueueStats struct {
	Kind                              string
	Ready, Scheduled, Running, Failed int64
	OldestReady                       time.Duration
}

// WatchQueue reports queue's backlog at every scrape, as stats reads it from the queue's table.
// Each replica of a service reports the same table: aggregate with max, not sum.
func (m *Metrics) WatchQueue(queue string, stats func(context.Context) ([]QueueStats, error)) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(&queueCollector{queue: queue, stats: stats})
}

type queueCollector struct {
	queue string
	stats func(context.Context) ([]QueueStats, error)
}

var queueDescs = func() map[string]*prometheus.Desc {
	out := map[string]*prometheus.Desc{}
	for _, d := range []Metric{jobsReady, jobsScheduled, jobsRunning, jobsFailed, jobsOldestReady} {
		out[d.Name] = prometheus.NewDesc(d.Name, d.Help, d.Labels, nil)
	}
	return out
}()

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range queueDescs {
		ch <- d
	}
}

// scrapeTimeout bounds the backlog query, so a slow database cannot hold a scrape.
const scrapeTimeout = 5 * time.Second

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	stats, err := c.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDescs[jobsReady.Name], err)
		return
	}
	for _, s := range stats {
		gauge := func(d Metric, v float64) {
			ch <- prometheus.MustNewConstMetric(queueDescs[d.Name], prometheus.GaugeValue, v, c.queue, s.Kind)
		}
		gauge(jobsReady, float64(s.Ready))
		gauge(jobsScheduled, float64(s.Scheduled))
		gauge(jobsRunning, float64(s.Running))
		gauge(jobsFailed, float64(s.Failed))
		gauge(jobsOldestReady, s.OldestReady.Seconds())
	}
}

// Webhook delivery results of one attempt.
const (
	AttemptSuccess     = "success"
	AttemptClientError = "client_error"
	AttemptServerError = "server_error"
	AttemptTimeout     = "timeout"
	AttemptNetwork     = "network"
	AttemptRefused     = "refused"
)

// DeliveryAttempt records one POST to a webhook endpoint.
func (m *Metrics) DeliveryAttempt(endpoint, result string) {
	if m == nil {
		return
	}
	m.deliveryAttempts.WithLabelValues(m.endpoints.value(endpoint), result).Inc()
}

// Final outcomes of a webhook delivery.
const (
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// DeliveryFinished records a delivery that reached its final outcome after attempts attempts.
func (m *Metrics) DeliveryFinished(endpoint, outcome string, attempts int) {
	if m == nil {
		return
	}
	ep := m.endpoints.value(endpoint)
	m.deliveries.WithLabelValues(ep, outcome).Inc()
	m.attemptsPerDeliv.WithLabelValues(ep).Observe(float64(attempts))
}

// Connection outcomes.
const (
	ConnectionSucceeded        = "succeeded"
	ConnectionUserError        = "user_error"
	ConnectionInstitutionError = "institution_error"
	ConnectionInternalError    = "internal_error"
)

// Connection records a connection to institution through provider that finished with outcome.
func (m *Metrics) Connection(provider, institution, outcome string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(provider, m.institutions.value(institution), outcome).Inc()
}

// UpstreamOK is the outcome of an upstream call that got an answer Puente could use.
const UpstreamOK = "ok"

// Upstream records one HTTP call to provider's API that took d and ended with outcome (UpstreamOK
// or the lower-case failure kind).
func (m *Metrics) Upstream(provider, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(provider, outcome).Observe(d.Seconds())
}

// capped admits the first max distinct values of a label; later ones become Other.
type capped struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

func (c *capped) value(v string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[v] {
		return v
	}
	if len(c.seen) >= c.max {
		return Other
	}
	c.seen[v] = true
	return v
}
