package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"puente.dev/pkg/metrics"
	"puente.dev/pkg/postgres"
)

// Handler runs one job. Returning nil marks it done. Returning an error retries it with
// exponential backoff (1s, 2s, 4s, … capped at 1h, each ±20%) until the job has had MaxAttempts
// runs, then marks it failed. Return Cancel(err) to fail it at once, or Snooze(d) to run it again
// after d without counting an attempt. A panic is recovered and counts as an error.
//
// ctx is cancelled when the worker shuts down and when the job's lease ends (Options.Lease after
// the job was fetched): past that, another worker may run the job too. It carries the span of the
// run ("job <kind>"), a child of the span that enqueued the job, so what the handler does joins
// the enqueuer's trace.
type Handler func(ctx context.Context, j Job) error

// Options configures a Worker.
type Options struct {
	// Pool is the service's pool: its search_path is the schema holding the jobs table.
	Pool *pgxpool.Pool
	// Handlers run jobs, by kind. A job of a kind missing here fails at once (last_error "unknown
	// job kind"), so a service must deploy a kind's handler before it enqueues jobs of that kind.
	Handlers map[string]Handler
	// Concurrency is how many jobs run at once. Default 4.
	Concurrency int
	// Lease is how long a fetched job belongs to this worker: if the worker dies, the job runs
	// again once its lease has ended. It is also the handler's time limit. Default 5m.
	Lease time.Duration
	// PollInterval is how often the worker looks for due jobs without being notified (jobs
	// scheduled for later, missed notifications). Default 1s.
	PollInterval time.Duration
	Logger       *slog.Logger // default slog.Default()
	// Queue names the queue in metrics and spans: the service that owns the table. Default "jobs".
	Queue string
	// Metrics, when set, counts job runs by outcome and reports the queue's backlog (read from
	// the table at every scrape).
	Metrics *metrics.Metrics
	// TracerProvider makes the span of each run. Default otel.GetTracerProvider() (when NewWorker
	// is called).
	TracerProvider trace.TracerProvider
	// Now, for tests, replaces the database's clock in every time comparison and computation
	// the worker makes (due jobs, leases, backoff, pruning). Default: the database's now().
	Now func() time.Time
}

// Worker fetches due jobs from the jobs table and runs their handlers. Any number of workers, in
// any number of processes, can share one table.
type Worker struct {
	pool        *pgxpool.Pool
	handlers    map[string]Handler
	concurrency int
	lease       time.Duration
	poll        time.Duration
	log         *slog.Logger
	now         func() time.Time
	id          string
	wake        chan struct{}
	queue       string
	metrics     *metrics.Metrics
	tracer      trace.Tracer
}

const (
	backoffBase   = time.Second
	backoffMax    = time.Hour
	pruneEvery    = 10 * time.Minute
	pruneAfter    = 24 * time.Hour
	pruneBatch    = 1000
	dbTimeout     = 30 * time.Second // fetch, completion, prune: queries that must not be cut short
	maxErrorBytes = 4000
)

// NewWorker returns a worker; it does nothing until Run or RunOnce.
func NewWorker(o Options) *Worker {
	w := &Worker{
		pool:        o.Pool,
		handlers:    make(map[string]Handler, len(o.Handlers)),
		concurrency: o.Concurrency,
		lease:       o.Lease,
		poll:        o.PollInterval,
		log:         o.Logger,
		now:         o.Now,
		wake:        make(chan struct{}, 1),
		queue:       o.Queue,
		metrics:     o.Metrics,
	}
	for k, h := range o.Handlers {
		w.handlers[k] = h
	}
	if w.concurrency <= 0 {
		w.concurrency = 4
	}
	if w.lease <= 0 {
		w.lease = 5 * time.Minute
	}
	if w.poll <= 0 {
		w.poll = time.Second
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.log = w.log.With("component", "jobs")
	if w.queue == "" {
		w.queue = "jobs"
	}
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	w.tracer = tp.Tracer("puente.dev/pkg/jobs")
	host, _ := os.Hostname()
	w.id = fmt.Sprintf("%s/%d/%08x", host, os.Getpid(), rand.Uint32())
	if w.metrics != nil && w.pool != nil {
		// Not fatal: the worker runs jobs without its backlog being watched.
		if err := w.metrics.WatchQueue(w.queue, w.Stats); err != nil {
			w.log.Error("watching the job queue's backlog", "queue", w.queue, "error", err)
		}
	}
	return w
}

// Run fetches and runs jobs until ctx is done: whenever an Enqueue commits (it listens for the
// notification on a connection of its own, reconnecting on error), every PollInterval, and
// whenever a handler finishes while more jobs may be due. Once ctx is done it stops fetching,
// cancels the context of the running handlers, waits for them to return and returns nil.
//
// A job whose handler fails because of the shutdown goes back to the queue to run again at once,
// without counting the attempt. Run also deletes done jobs 24 hours after they finished.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.check(); err != nil {
		return err
	}
	var bg sync.WaitGroup
	bg.Go(func() { postgres.Listen(ctx, w.pool, channelSQL, w.wakeUp, w.log) })
	bg.Go(func() { w.pruneLoop(ctx) })
	defer bg.Wait()

	var handlers sync.WaitGroup
	defer handlers.Wait()
	freed := make(chan struct{}, w.concurrency) // one send per finished handler: never blocks
	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()

	running, want := 0, true
	for {
		// Count every handler that finished, so a fetch takes all the free slots.
	drain:
		for {
			select {
			case <-freed:
				running--
			default:
				break drain
			}
		}
		if want && running < w.concurrency && ctx.Err() == nil {
			n := w.concurrency - running
			batch, err := w.fetch(ctx, n, nil)
			if err != nil {
				w.log.ErrorContext(ctx, "fetching jobs", "error", err)
			}
			if ctx.Err() != nil {
				// Shutdown began during the fetch (which may even have taken a job that a
				// handler interrupted by the shutdown just handed back): start no handler.
				w.release(ctx, batch)
				batch = nil
			}
			for _, j := range batch {
				running++
				handlers.Go(func() {
					defer func() { freed <- struct{}{} }()
					if err := w.execute(ctx, j); err != nil {
						w.log.ErrorContext(ctx, "recording the outcome of a job", "kind", j.Kind, "id", j.ID, "attempt", j.Attempt, "error", err)
					}
				})
			}
			// A full batch: more may be due, so fetch again as soon as a slot is free.
			want = err == nil && len(batch) == n
		}
		select {
		case <-ctx.Done():
			return nil
		case <-freed:
			running--
		case <-w.wake:
			want = true
		case <-ticker.C:
			want = true
		}
	}
}

// RunOnce fetches and runs every job due now (Concurrency at a time) and returns how many it ran
// once none is left. Each job runs at most once per call, so a job that is snoozed or retried
// without delay waits for the next call. For tests, and for draining a queue.
func (w *Worker) RunOnce(ctx context.Context) (ran int, err error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	seen := []int64{}
	for ctx.Err() == nil {
		batch, err := w.fetch(ctx, w.concurrency, seen)
		if err != nil {
			return ran, err
		}
		if ctx.Err() != nil {
			w.release(ctx, batch)
			break
		}
		if len(batch) == 0 {
			return ran, nil
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, j := range batch {
			seen = append(seen, j.ID)
			wg.Go(func() {
				if err := w.execute(ctx, j); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		ran += len(batch)
		if len(errs) > 0 {
			return ran, errors.Join(errs...)
		}
	}
	return ran, ctx.Err()
}

// check refuses a worker that could only fail jobs: one without handlers would fail every job
// it fetched as of an unknown kind.
func (w *Worker) check() error {
	if w.pool == nil {
		return errors.New("jobs: Options.Pool is nil")
	}
	if len(w.handlers) == 0 {
		return errors.New("jobs: Options.Handlers is empty")
	}
	return nil
}

// clock is the worker's "now" as a query argument: NULL means the database's now().
func (w *Worker) clock() any {
	if w.now == nil {
		return nil
	}
	return w.now()
}

const nowSQL = `coalesce($1::timestamptz, now())`

const fetchSQL = `UPDATE jobs
SET state = 'running', attempts = attempts + 1, locked_by = $2,
    locked_until = ` + nowSQL + ` + $3::bigint * interval '1 microsecond'
WHERE id IN (
    SELECT id FROM jobs
    WHERE ((state = 'available' AND run_at <= ` + nowSQL + `)
        OR (state = 'running' AND locked_until < ` + nowSQL + `))
      AND NOT (id = ANY ($5::bigint[]))
    ORDER BY run_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind, args, attempts, max_attempts, run_at, trace_context`

// fetch takes up to n due jobs (not in skip), including jobs whose lease has ended, and leases
// them to this worker.
func (w *Worker) fetch(ctx context.Context, n int, skip []int64) ([]Job, error) {
	if skip == nil {
		skip = []int64{}
	}
	// Not cancelled with ctx: a fetch cut short after the server committed it would leave jobs
	// leased to nobody until their lease ends.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	rows, _ := w.pool.Query(ctx, fetchSQL, w.clock(), w.id, w.lease.Microseconds(), n, skip)
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) {
		var j Job
		var args []byte
		err := r.Scan(&j.ID, &j.Kind, &args, &j.Attempt, &j.MaxAttempts, &j.RunAt, &j.traceContext)
		j.Args = args
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: fetch: %w", err)
	}
	return jobs, nil
}

// execute runs j's handler and records the outcome. It returns only errors recording it.
func (w *Worker) execute(ctx context.Context, j Job) error {
	ctx, span := w.startSpan(ctx, j)
	defer span.End()
	log := w.log.With("kind", j.Kind, "id", j.ID, "attempt", j.Attempt)
	h, ok := w.handlers[j.Kind]
	switch {
	case j.Attempt > j.MaxAttempts:
		// Its last attempt was fetched by a worker that never finished it (it died, or the
		// handler outlived the lease). Running it again could loop forever on a job that kills
		// its worker.
		err := errors.New("jobs: the lease of the last attempt ended before it finished")
		w.ran(span, j, metrics.JobFailed, 0, err)
		return w.finish(ctx, log, j, "failed", err)
	case !ok:
		err := fmt.Errorf("jobs: unknown job kind %q", j.Kind)
		w.ran(span, j, metrics.JobFailed, 0, err)
		return w.finish(ctx, log, j, "failed", err)
	}

	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, w.lease)
	err := w.call(hctx, log, h, j)
	cancel()
	took := time.Since(start)
	log = log.With("duration", took)

	var snooze *snoozeError
	var cancelled *cancelError
	switch {
	case err == nil:
		w.ran(span, j, metrics.JobDone, took, nil)
		return w.finish(ctx, log, j, "done", nil)
	case errors.As(err, &cancelled):
		w.ran(span, j, metrics.JobFailed, took, err)
		return w.finish(ctx, log, j, "failed", err)
	case errors.As(err, &snooze):
		w.ran(span, j, metrics.JobSnoozed, took, nil)
		log.DebugContext(ctx, "job snoozed", "for", snooze.d)
		return w.reschedule(ctx, log, j, snooze.d, nil, true)
	case ctx.Err() != nil:
		w.ran(span, j, metrics.JobRequeued, took, err)
		log.InfoContext(ctx, "job interrupted by shutdown; requeued", "error", err)
		return w.reschedule(ctx, log, j, 0, err, true)
	case j.Attempt >= j.MaxAttempts:
		w.ran(span, j, metrics.JobFailed, took, err)
		return w.finish(ctx, log, j, "failed", err)
	default:
		w.ran(span, j, metrics.JobRetry, took, err)
		d := backoff(j.Attempt)
		log.WarnContext(ctx, "job failed; will retry", "error", err, "max_attempts", j.MaxAttempts, "retry_in", d)
		return w.reschedule(ctx, log, j, d, err, false)
	}
}

// startSpan starts the span of j's run, as a child of the span that enqueued j when there was one.
// It covers the handler and the recording of its outcome.
func (w *Worker) startSpan(ctx context.Context, j Job) (context.Context, trace.Span) {
	if len(j.traceContext) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, j.traceContext)
	}
	return w.tracer.Start(ctx, "job "+j.Kind, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("job.queue", w.queue),
		attribute.String("job.kind", j.Kind),
		attribute.Int64("job.id", j.ID),
		attribute.Int("job.attempt", j.Attempt),
	))
}

// ran records a run's outcome in the metrics and on its span; cause, when set, is why the run
// did not succeed (a snooze is not a failure).
func (w *Worker) ran(span trace.Span, j Job, outcome string, took time.Duration, cause error) {
	w.metrics.JobRun(w.queue, j.Kind, outcome, took)
	span.SetAttributes(attribute.String("job.outcome", outcome))
	if cause != nil {
		span.SetStatus(codes.Error, errorText(cause).(string))
	}
}

// call runs h, turning a panic into an error.
func (w *Worker) call(ctx context.Context, log *slog.Logger, h Handler, j Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "panic in job handler", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("jobs: handler panicked: %v", r)
		}
	}()
	return h(ctx, j)
}

// backoff is the delay before the run after failed attempt n (1-based): 1s·2^(n-1), at most 1h,
// then ±20%.
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt <= 12 { // 2^12 s > 1h
		d = min(backoffBase<<max(attempt-1, 0), backoffMax)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// ours restricts a completion to the run this worker fetched: if the lease ended and another
// worker took the job over, its outcome stands and this one is dropped.
const ours = ` WHERE id = $2 AND locked_by = $3 AND attempts = $4 AND state = 'running'`

const finishSQL = `UPDATE jobs
SET state = $5, finished_at = ` + nowSQL + `, locked_until = NULL, last_error = coalesce($6, last_error)` + ours

const rescheduleSQL = `UPDATE jobs
SET state = 'available', run_at = ` + nowSQL + ` + $5::bigint * interval '1 microsecond',
    attempts = attempts - $6, locked_until = NULL, locked_by = NULL, last_error = coalesce($7, last_error)` + ours

// finish marks j done or failed (with cause).
func (w *Worker) finish(ctx context.Context, log *slog.Logger, j Job, state string, cause error) error {
	if state == "failed" {
		log.ErrorContext(ctx, "job failed", "error", cause, "max_attempts", j.MaxAttempts)
	} else {
		log.DebugContext(ctx, "job done")
	}
	return w.complete(ctx, log, j, finishSQL, state, errorText(cause))
}

// reschedule makes j available again after d; uncount gives the attempt back.
func (w *Worker) reschedule(ctx context.Context, log *slog.Logger, j Job, d time.Duration, cause error, uncount bool) error {
	n := 0
	if uncount {
		n = 1
	}
	return w.complete(ctx, log, j, rescheduleSQL, d.Microseconds(), n, errorText(cause))
}

func (w *Worker) complete(ctx context.Context, log *slog.Logger, j Job, sql string, args ...any) error {
	// Recorded even when ctx is done: that is how a shutdown hands the job back.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	tag, err := w.pool.Exec(ctx, sql, append([]any{w.clock(), j.ID, w.id, j.Attempt}, args...)...)
	if err != nil {
		return fmt.Errorf("jobs: complete job %d: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		log.WarnContext(ctx, "job outcome dropped: its lease ended and another worker took it over")
	}
	return nil
}

// errorText is err as last_error: valid UTF-8 without NULs (or Postgres refuses it), bounded.
func errorText(err error) any {
	if err == nil {
		return nil
	}
	s := err.Error()
	if len(s) > maxErrorBytes {
		s = s[:maxErrorBytes]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// release hands back jobs fetched but not run, without counting the attempt.
func (w *Worker) release(ctx context.Context, batch []Job) {
	for _, j := range batch {
		log := w.log.With("kind", j.Kind, "id", j.ID, "attempt", j.Attempt)
		log.InfoContext(ctx, "job fetched during shutdown; requeued")
		if err := w.reschedule(ctx, log, j, 0, nil, true); err != nil {
			log.ErrorContext(ctx, "requeuing a job", "error", err)
		}
	}
}

// wakeUp asks Run to fetch; a wake already pending is enough.
func (w *Worker) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

const pruneSQL = `DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs WHERE state = 'done' AND finished_at < ` + nowSQL + ` - $2::bigint * interval '1 microsecond'
    LIMIT $3)`

// pruneLoop deletes done jobs 24h after they finished: at start, then every pruneEvery.
func (w *Worker) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if err := w.prune(ctx); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "pruning done jobs", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) prune(ctx context.Context) error {
	for ctx.Err() == nil {
		tag, err := w.pool.Exec(ctx, pruneSQL, w.clock(), pruneAfter.Microseconds(), pruneBatch)
		if err != nil {
			return err
		}
		if tag.RowsAffected() < pruneBatch {
			return nil
		}
	}
	return nil
}

// statsSQL reads the backlog by kind in one pass over the pending jobs (the jobs_fetch index)
// and the failed ones (jobs_failed, from StatsMigration), never over the done jobs.
const statsSQL = `SELECT kind,
    count(*) FILTER (WHERE state = 'available' AND run_at <= ` + nowSQL + `),
    count(*) FILTER (WHERE state = 'available' AND run_at > ` + nowSQL + `),
    count(*) FILTER (WHERE state = 'running'),
    count(*) FILTER (WHERE state = 'failed'),
    coalesce(extract(epoch FROM ` + nowSQL + ` - min(run_at) FILTER (WHERE state = 'available' AND run_at <= ` + nowSQL + `)), 0)::float8
FROM jobs
WHERE state IN ('available', 'running') OR state = 'failed'
GROUP BY kind
ORDER BY kind`

// Stats reads the queue's backlog by kind, as the metrics report it at every scrape. Every kind
// the worker handles is there, with zeros when none of its jobs waits, so that an alert on a
// kind's backlog sees 0 rather than no series; kinds it does not handle appear while they have
// jobs.
func (w *Worker) Stats(ctx context.Context) ([]metrics.QueueStats, error) {
	rows, _ := w.pool.Query(ctx, statsSQL, w.clock())
	stats, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (metrics.QueueStats, error) {
		var s metrics.QueueStats
		var oldest float64
		err := r.Scan(&s.Kind, &s.Ready, &s.Scheduled, &s.Running, &s.Failed, &oldest)
		s.OldestReady = time.Duration(oldest * float64(time.Second))
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: queue stats: %w", err)
	}
	seen := make(map[string]bool, len(stats))
	for _, s := range stats {
		seen[s.Kind] = true
	}
	for kind := range w.handlers {
		if !seen[kind] {
			stats = append(stats, metrics.QueueStats{Kind: kind})
		}
	}
	slices.SortFunc(stats, func(a, b metrics.QueueStats) int { return strings.Compare(a.Kind, b.Kind) })
	return stats, nil
}
