package observability_test

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"puente.dev/deploy/observability"
)

func alerts(t *testing.T) []observability.Rule {
	t.Helper()
	f, err := observability.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	var out []observability.Rule
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q has no name or no rules", g.Name)
		}
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("alerts.yaml holds no rules")
	}
	return out
}

// TestAlertRulesAreWellFormed: each rule is an alert with a unique name, a severity the
// on-call routing knows, a summary and a description, a valid for, and an expression that
// parses and uses only series and labels Puente exposes.
func TestAlertRulesAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range alerts(t) {
		t.Run(r.Alert, func(t *testing.T) {
			if r.Alert == "" || r.Record != "" {
				t.Fatalf("rule %q is not an alerting rule", r.Expr)
			}
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("severity %q, want critical or warning", s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("no %s annotation", a)
				}
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("for: %v", err)
				}
			}
			_, errs := checkExpr(r.Expr)
			for _, err := range errs {
				t.Error(err)
			}
		})
	}
}

// scenario is synthetic data on which an alert must fire (bad) and data on which it must
// not (good), each a list of series in PromQL's test notation.
type scenario struct {
	bad, good []string
}

// Label sets the scenarios share. Namespaces and pods are what the scrape attaches.
const (
	consent   = `namespace="puente", pod="puente-consent-1", service="puente.consent.v1.ConsentService"`
	consent2  = `namespace="puente", pod="puente-consent-2", service="puente.consent.v1.ConsentService"`
	connSvc   = `namespace="puente", pod="puente-connection-1", service="puente.connection.v1.ConnectionService"`
	webhookNS = `namespace="puente", pod="puente-webhook-1"`
	connNS    = `namespace="puente", pod="puente-connection-1"`
)

var (
	rpcLe      = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	attemptLe  = []float64{1, 2, 3, 5, 8, 13, 21}
	upstreamLe = rpcLe
)

func rpc(lbls, method, code string, perMinute float64) string {
	return counter("puente_rpc_requests_total", join(lbls, `method="`+method+`"`, `code="`+code+`"`), perMinute)
}

func concat(groups ...[]string) []string { return slices.Concat(groups...) }

// scenarios holds, for every alert in alerts.yaml, the data it must fire on and the data it
// must ignore. The good data is chosen near each alert's edge: client errors, idle services,
// streams, replicas reporting one queue, old failures, a single failing receiver.
var scenarios = map[string]scenario{
	"PuenteRPCErrorRatioHigh": {
		bad: []string{
			rpc(consent, "GetConsent", "OK", 90),
			rpc(consent, "GetConsent", "Unavailable", 6),
			rpc(consent, "GetConsent", "Internal", 4),
		},
		good: []string{
			// Callers' mistakes are not the service's failures.
			rpc(consent, "GetConsent", "OK", 90),
			rpc(consent, "GetConsent", "InvalidArgument", 30),
			rpc(consent, "GetConsent", "NotFound", 30),
			rpc(consent, "GetConsent", "Internal", 1),
			// An idle service failing its one call a minute is below the traffic floor.
			rpc(connSvc, "GetConnection", "Internal", 1),
		},
	},
	"PuenteRPCLatencyHigh": {
		bad: concat(
			histogramOf("puente_rpc_duration_seconds", join(consent, `method="GetConsent"`), rpcLe, 60, 2),
		),
		good: concat(
			histogramOf("puente_rpc_duration_seconds", join(consent, `method="GetConsent"`), rpcLe, 60, 0.04),
			// A stream's duration is its life, not a latency.
			histogramOf("puente_rpc_duration_seconds", join(connSvc, `method="WatchConnection"`), rpcLe, 5, 30),
		),
	},
	"PuenteJobQueueStalled": {
		bad: []string{
			gauge("puente_jobs_oldest_ready_age_seconds", `namespace="puente", pod="puente-sync-1", queue="sync", kind="sync.refresh"`, 900),
			gauge("puente_jobs_oldest_ready_age_seconds", `namespace="puente", pod="puente-sync-2", queue="sync", kind="sync.refresh"`, 900),
		},
		good: []string{
			// Three replicas report the same 200 s: summed they would cross 300.
			gauge("puente_jobs_oldest_ready_age_seconds", `namespace="puente", pod="puente-sync-1", queue="sync", kind="sync.refresh"`, 200),
			gauge("puente_jobs_oldest_ready_age_seconds", `namespace="puente", pod="puente-sync-2", queue="sync", kind="sync.refresh"`, 200),
			gauge("puente_jobs_oldest_ready_age_seconds", `namespace="puente", pod="puente-sync-3", queue="sync", kind="sync.refresh"`, 200),
		},
	},
	"PuenteJobsFailed": {
		bad: []string{
			counter("puente_job_runs_total", `namespace="puente", pod="puente-webhook-1", queue="webhook", kind="webhook.deliver", outcome="done"`, 10),
			stepAt("puente_job_runs_total", `namespace="puente", pod="puente-webhook-1", queue="webhook", kind="webhook.deliver", outcome="failed"`, minutes-5),
		},
		good: []string{
			counter("puente_job_runs_total", `namespace="puente", pod="puente-webhook-1", queue="webhook", kind="webhook.deliver", outcome="done"`, 10),
			counter("puente_job_runs_total", `namespace="puente", pod="puente-webhook-1", queue="webhook", kind="webhook.deliver", outcome="retry"`, 3),
			// Failures from long ago, already seen.
			gauge("puente_job_runs_total", `namespace="puente", pod="puente-webhook-1", queue="webhook", kind="webhook.deliver", outcome="failed"`, 4),
		},
	},
	"PuenteWebhookDeliveriesFailing": {
		bad: []string{
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_1", outcome="delivered"`), 5),
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_1", outcome="failed"`), 0.1),
		},
		good: []string{
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_1", outcome="delivered"`), 5),
			gauge("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_1", outcome="failed"`), 2),
		},
	},
	"PuenteWebhookDeliveriesFailingEverywhere": {
		bad: []string{
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_1", outcome="failed"`), 2),
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_2", outcome="failed"`), 2),
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_3", outcome="failed"`), 2),
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_4", outcome="delivered"`), 1),
		},
		good: []string{
			// One broken receiver, however busy, is its tenant's problem.
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_1", outcome="failed"`), 10),
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_2", outcome="delivered"`), 1),
			counter("puente_webhook_deliveries_total", join(webhookNS, `endpoint="we_3", outcome="delivered"`), 1),
		},
	},
	"PuenteWebhookAttemptsRising": {
		bad:  histogramOf("puente_webhook_delivery_attempts", join(webhookNS, `endpoint="we_1"`), attemptLe, 2, 5),
		good: histogramOf("puente_webhook_delivery_attempts", join(webhookNS, `endpoint="we_1"`), attemptLe, 2, 1),
	},
	"PuenteInstitutionErrors": {
		bad: []string{
			counter("puente_connections_total", join(connNS, `provider="boufin", institution="bank_a", outcome="institution_error"`), 2),
			counter("puente_connections_total", join(connNS, `provider="boufin", institution="bank_a", outcome="succeeded"`), 1),
		},
		good: []string{
			// Mostly fine, and user errors (wrong password) are not the bank's.
			counter("puente_connections_total", join(connNS, `provider="boufin", institution="bank_a", outcome="institution_error"`), 1),
			counter("puente_connections_total", join(connNS, `provider="boufin", institution="bank_a", outcome="user_error"`), 5),
			counter("puente_connections_total", join(connNS, `provider="boufin", institution="bank_a", outcome="succeeded"`), 3),
			// One failed login at a quiet bank is below the volume floor.
			stepAt("puente_connections_total", join(connNS, `provider="boufin", institution="bank_b", outcome="institution_error"`), minutes-10),
		},
	},
	"PuenteUpstreamLatencyHigh": {
		bad:  histogramOf("puente_upstream_request_duration_seconds", join(connNS, `provider="boufin", outcome="ok"`), upstreamLe, 10, 8),
		good: histogramOf("puente_upstream_request_duration_seconds", join(connNS, `provider="boufin", outcome="ok"`), upstreamLe, 10, 0.3),
	},
	"PuenteUpstreamErrorsHigh": {
		bad: concat(
			histogramOf("puente_upstream_request_duration_seconds", join(connNS, `provider="boufin", outcome="ok"`), upstreamLe, 6, 0.3),
			histogramOf("puente_upstream_request_duration_seconds", join(connNS, `provider="boufin", outcome="timeout"`), upstreamLe, 3, 10),
		),
		good: concat(
			histogramOf("puente_upstream_request_duration_seconds", join(connNS, `provider="boufin", outcome="ok"`), upstreamLe, 20, 0.3),
			histogramOf("puente_upstream_request_duration_seconds", join(connNS, `provider="boufin", outcome="rate_limited"`), upstreamLe, 1, 0.1),
		),
	},
	"PuenteTargetDown": {
		bad: []string{
			gauge("up", `job="puente", namespace="puente", pod="puente-sync-1", instance="10.0.0.7:9464"`, 0),
			gauge("up", `job="puente", namespace="puente", pod="puente-sync-2", instance="10.0.0.8:9464"`, 1),
		},
		good: []string{
			gauge("up", `job="puente", namespace="puente", pod="puente-sync-1", instance="10.0.0.7:9464"`, 1),
			// Another job's target is not ours to page on.
			gauge("up", `job="node", instance="10.0.0.1:9100"`, 0),
		},
	},
}

// TestAlertsFireOnBadDataAndStayQuiet evaluates each alert's expression with Prometheus'
// engine over its scenario, at every step of its for duration up to the end of the data: on
// the bad data it returns a series at each step (so the alert fires), carrying every label its
// annotations print; on the good data it returns nothing.
func TestAlertsFireOnBadDataAndStayQuiet(t *testing.T) {
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	rules := alerts(t)
	names := map[string]bool{}
	for _, r := range rules {
		names[r.Alert] = true
		t.Run(r.Alert, func(t *testing.T) {
			sc, ok := scenarios[r.Alert]
			if !ok {
				t.Fatal("no scenario: add the data it must fire on and the data it must ignore to scenarios")
			}
			hold := time.Duration(0)
			if r.For != "" {
				d, err := model.ParseDuration(r.For)
				if err != nil {
					t.Fatal(err)
				}
				hold = time.Duration(d)
			}
			end := time.UnixMilli(0).Add(minutes * step)
			start := end.Add(-hold)

			bad := evaluate(t, engine, r.Expr, sc.bad, start, end)
			for ts := start; !ts.After(end); ts = ts.Add(step) {
				if len(bad[ts.UnixMilli()]) == 0 {
					t.Errorf("does not fire on the bad data at %v before the end (for: %s)", end.Sub(ts), r.For)
				}
			}
			printed := labelsPrinted(r)
			for _, results := range bad {
				for _, lset := range results {
					for _, l := range printed {
						if !lset.Has(l) {
							t.Errorf("its annotations print $labels.%s, which the result %s lacks", l, lset)
						}
					}
				}
			}
			good := evaluate(t, engine, r.Expr, sc.good, start, end)
			for _, ts := range slices.Sorted(maps.Keys(good)) {
				if len(good[ts]) > 0 {
					t.Errorf("fires on the good data at %v before the end: %v", end.Sub(time.UnixMilli(ts)), good[ts])
				}
			}
		})
	}
	for name := range scenarios {
		if !names[name] {
			t.Errorf("a scenario for %s, which alerts.yaml does not define", name)
		}
	}
}

type labelSet map[string]string

func (l labelSet) Has(name string) bool { _, ok := l[name]; return ok }

// evaluate runs expr over data from start to end, one step a minute, and returns each step's
// result series by timestamp.
func evaluate(t *testing.T, engine *promql.Engine, expr string, data []string, start, end time.Time) map[int64][]labelSet {
	t.Helper()
	store, err := load(data...)
	if err != nil {
		t.Fatal(err)
	}
	q, err := engine.NewRangeQuery(context.Background(), store, nil, expr, start, end, step)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("evaluate: %v", res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][]labelSet{}
	for _, s := range m {
		l := labelSet(s.Metric.Map())
		for _, p := range s.Floats {
			out[p.T] = append(out[p.T], l)
		}
	}
	return out
}

var printedLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

func labelsPrinted(r observability.Rule) []string {
	var out []string
	for _, a := range r.Annotations {
		for _, m := range printedLabel.FindAllStringSubmatch(a, -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	return out
}
