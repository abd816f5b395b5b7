package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"puente.dev/pkg/jobs"
	"puente.dev/pkg/metrics"
)

// recorder is a tracer provider whose ended spans the test reads.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, rec
}

func named(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q", name)
	return found[0]
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func TestJobRunJoinsTheTraceOfTheRequestThatEnqueuedIt(t *testing.T) {
	ctx, _, pool := setup(t)
	tp, rec := recorder(t)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Queue: "consent", TracerProvider: tp, Handlers: map[string]jobs.Handler{
		"greet": func(ctx context.Context, j jobs.Job) error {
			// What the handler does (SQL, gRPC, upstream calls) starts spans from its ctx.
			_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("handler").Start(ctx, "handler work")
			span.End()
			return nil
		},
	}})

	reqCtx, request := tp.Tracer("test").Start(ctx, "request")
	require.NoError(t, pgx.BeginFunc(reqCtx, pool, func(tx pgx.Tx) error {
		return jobs.Enqueue(reqCtx, tx, "greet", greeting{"traced"}, jobs.EnqueueOptions{})
	}))
	request.End()
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)

	req, job, work := named(t, rec, "request"), named(t, rec, "job greet"), named(t, rec, "handler work")
	require.Equal(t, req.SpanContext().TraceID(), job.SpanContext().TraceID(), "the run is in the request's trace")
	require.Equal(t, req.SpanContext().SpanID(), job.Parent().SpanID(), "under the span that enqueued it")
	require.True(t, job.Parent().IsRemote(), "the parent came through the table")
	require.Equal(t, trace.SpanKindConsumer, job.SpanKind())
	require.Equal(t, job.SpanContext().SpanID(), work.Parent().SpanID(), "the handler's work is under the run")
	require.Equal(t, codes.Unset, job.Status().Code)

	a := attrs(job)
	r := onlyRow(t, pool)
	require.Equal(t, "consent", a["job.queue"].AsString())
	require.Equal(t, "greet", a["job.kind"].AsString())
	require.Equal(t, r.ID, a["job.id"].AsInt64())
	require.Equal(t, int64(1), a["job.attempt"].AsInt64())
	require.Equal(t, metrics.JobDone, a["job.outcome"].AsString())
}

func TestJobEnqueuedOutsideATraceStartsItsOwn(t *testing.T) {
	ctx, _, pool := setup(t)
	tp, rec := recorder(t)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), TracerProvider: tp, Handlers: map[string]jobs.Handler{
		"greet": func(context.Context, jobs.Job) error { return nil },
	}})
	enqueue(t, pool, "greet", nil, jobs.EnqueueOptions{})
	var stored *string
	require.NoError(t, pool.QueryRow(ctx, `SELECT trace_context::text FROM jobs`).Scan(&stored))
	require.Nil(t, stored, "no trace context is stored without a span")

	_, err := w.RunOnce(ctx)
	require.NoError(t, err)
	job := named(t, rec, "job greet")
	require.False(t, job.Parent().IsValid(), "the run is a root")
	require.True(t, job.SpanContext().IsValid())
	require.Equal(t, "jobs", attrs(job)["job.queue"].AsString(), "the default queue name")
}

func TestFailedRunsMarkTheirSpans(t *testing.T) {
	ctx, _, pool := setup(t)
	tp, rec := recorder(t)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), TracerProvider: tp, Handlers: map[string]jobs.Handler{
		"flaky":  func(context.Context, jobs.Job) error { return errors.New("upstream unavailable") },
		"broken": func(context.Context, jobs.Job) error { return jobs.Cancel(errors.New("bad args")) },
		"later":  func(context.Context, jobs.Job) error { return jobs.Snooze(time.Hour) },
	}})
	for _, kind := range []string{"flaky", "broken", "later", "unknown"} {
		enqueue(t, pool, kind, nil, jobs.EnqueueOptions{})
	}
	_, err := w.RunOnce(ctx)
	require.NoError(t, err)

	for kind, want := range map[string]struct {
		code    codes.Code
		outcome string
		desc    string
	}{
		"flaky":   {codes.Error, metrics.JobRetry, "upstream unavailable"},
		"broken":  {codes.Error, metrics.JobFailed, "bad args"},
		"later":   {codes.Unset, metrics.JobSnoozed, ""},
		"unknown": {codes.Error, metrics.JobFailed, `unknown job kind "unknown"`},
	} {
		s := named(t, rec, "job "+kind)
		require.Equal(t, want.code, s.Status().Code, kind)
		require.Contains(t, s.Status().Description, want.desc, kind)
		require.Equal(t, want.outcome, attrs(s)["job.outcome"].AsString(), kind)
	}
}

func TestJobRunsAreCountedByOutcome(t *testing.T) {
	ctx, _, pool := setup(t)
	m := metrics.New(metrics.Options{})
	clk := newClock()
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Queue: "webhook", Metrics: m, Now: clk.Now, Handlers: map[string]jobs.Handler{
		"ok":     func(context.Context, jobs.Job) error { return nil },
		"flaky":  func(context.Context, jobs.Job) error { return errors.New("timeout") },
		"broken": func(context.Context, jobs.Job) error { return jobs.Cancel(errors.New("bad args")) },
		"later":  func(context.Context, jobs.Job) error { return jobs.Snooze(time.Minute) },
	}})
	enqueue(t, pool, "ok", nil, jobs.EnqueueOptions{})
	enqueue(t, pool, "ok", nil, jobs.EnqueueOptions{})
	enqueue(t, pool, "flaky", nil, jobs.EnqueueOptions{MaxAttempts: 2})
	enqueue(t, pool, "broken", nil, jobs.EnqueueOptions{})
	enqueue(t, pool, "later", nil, jobs.EnqueueOptions{})
	_, err := w.RunOnce(ctx)
	require.NoError(t, err)
	clk.Add(time.Hour) // the retry is due: its second and last attempt fails the job
	_, err = w.RunOnce(ctx)
	require.NoError(t, err)

	runs := func(kind, outcome string) float64 {
		return jobRuns(t, m, "webhook", kind, outcome)
	}
	require.Equal(t, 2.0, runs("ok", metrics.JobDone))
	require.Equal(t, 1.0, runs("flaky", metrics.JobRetry))
	require.Equal(t, 1.0, runs("flaky", metrics.JobFailed))
	require.Equal(t, 1.0, runs("broken", metrics.JobFailed))
	require.Equal(t, 2.0, runs("later", metrics.JobSnoozed), "a snooze counts as a run, not an attempt")
	require.Equal(t, 0.0, runs("ok", metrics.JobRetry))
}

// jobRuns reads puente_job_runs_total's series for the labels from a scrape.
func jobRuns(t *testing.T, m *metrics.Metrics, queue, kind, outcome string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "puente_job_runs_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["queue"] == queue && labels["kind"] == kind && labels["outcome"] == outcome {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// gauges reads the backlog gauges of queue from a scrape: metric name → kind → value.
func gauges(t *testing.T, m *metrics.Metrics, queue string) map[string]map[string]float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	out := map[string]map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "puente_jobs_") {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["queue"] != queue {
				continue
			}
			if out[f.GetName()] == nil {
				out[f.GetName()] = map[string]float64{}
			}
			out[f.GetName()][labels["kind"]] = s.GetGauge().GetValue()
		}
	}
	return out
}

func TestBacklogIsReadAtEveryScrape(t *testing.T) {
	ctx, _, pool := setup(t)
	m := metrics.New(metrics.Options{})
	clk := newClock() // an hour ahead of the database: jobs enqueued now have waited an hour
	block, started := make(chan struct{}), make(chan struct{}, 1)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Queue: "sync", Metrics: m, Now: clk.Now, Concurrency: 1, Handlers: map[string]jobs.Handler{
		"refresh": func(ctx context.Context, j jobs.Job) error {
			started <- struct{}{}
			<-block
			return nil
		},
		"broken": func(context.Context, jobs.Job) error { return jobs.Cancel(errors.New("bad args")) },
		"idle":   func(context.Context, jobs.Job) error { return nil },
	}})
	require.Empty(t, gauges(t, m, "sync")["puente_jobs_ready"]["refresh"])

	enqueue(t, pool, "broken", nil, jobs.EnqueueOptions{})
	_, err := w.RunOnce(ctx)
	require.NoError(t, err)
	for range 3 {
		enqueue(t, pool, "refresh", nil, jobs.EnqueueOptions{})
	}
	enqueue(t, pool, "refresh", nil, jobs.EnqueueOptions{RunAt: clk.Now().Add(time.Hour)})
	enqueue(t, pool, "stranger", nil, jobs.EnqueueOptions{})

	// One refresh runs (and blocks) while the rest wait.
	done := make(chan error, 1)
	go func() { _, err := w.RunOnce(ctx); done <- err }()
	recv(t, started, "a refresh job to start")

	g := gauges(t, m, "sync")
	require.Equal(t, 1.0, g["puente_jobs_running"]["refresh"])
	require.Equal(t, 2.0, g["puente_jobs_ready"]["refresh"])
	require.Equal(t, 1.0, g["puente_jobs_scheduled"]["refresh"])
	require.Equal(t, 0.0, g["puente_jobs_failed"]["refresh"])
	require.Equal(t, 1.0, g["puente_jobs_failed"]["broken"], "a failed job is counted until an operator deletes it")
	require.Equal(t, 0.0, g["puente_jobs_ready"]["broken"])
	require.Equal(t, 1.0, g["puente_jobs_ready"]["stranger"], "a kind no handler takes shows while it has jobs")
	age := time.Duration(g["puente_jobs_oldest_ready_age_seconds"]["refresh"] * float64(time.Second))
	require.GreaterOrEqual(t, age, 59*time.Minute, "the oldest ready job has waited about the hour the clock is ahead")
	require.Less(t, age, 2*time.Hour)
	require.Contains(t, g["puente_jobs_ready"], "idle", "every handled kind is reported, at zero when idle")
	require.Equal(t, 0.0, g["puente_jobs_ready"]["idle"])
	require.Equal(t, 0.0, g["puente_jobs_oldest_ready_age_seconds"]["idle"])

	close(block)
	for range 2 {
		recv(t, started, "the next refresh job to start")
	}
	require.NoError(t, recv(t, done, "RunOnce to return"))
	g = gauges(t, m, "sync")
	require.Equal(t, 0.0, g["puente_jobs_ready"]["refresh"], "read again at the next scrape")
	require.Equal(t, 0.0, g["puente_jobs_running"]["refresh"])
	require.Equal(t, 0.0, g["puente_jobs_oldest_ready_age_seconds"]["refresh"])
}

func TestAnUnreadableQueueLeavesTheRestOfTheScrape(t *testing.T) {
	ctx, _, pool := setup(t)
	m := metrics.New(metrics.Options{})
	jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Queue: "consent", Metrics: m, Handlers: map[string]jobs.Handler{"x": nil}})
	_, err := pool.Exec(ctx, `DROP TABLE jobs`)
	require.NoError(t, err)
	m.JobRun("consent", "x", metrics.JobDone, time.Millisecond)
	families, err := m.Registry().Gather()
	require.ErrorContains(t, err, "queue stats", "the failed read is reported")
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	require.Contains(t, names, "puente_job_runs_total", "the rest of the scrape is served")
}

func TestASecondWorkerOnTheSameQueueRunsUnwatched(t *testing.T) {
	_, _, pool := setup(t)
	m := metrics.New(metrics.Options{})
	var logs strings.Builder
	opts := jobs.Options{Pool: pool, Queue: "consent", Metrics: m, Handlers: map[string]jobs.Handler{"x": nil}}
	jobs.NewWorker(opts)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	jobs.NewWorker(opts)
	require.Contains(t, logs.String(), "watching the job queue's backlog", "the duplicate is logged, not fatal")
	require.Contains(t, gauges(t, m, "consent")["puente_jobs_ready"], "x", "the first registration stands")
}
