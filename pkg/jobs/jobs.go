// Package jobs is a small, durable job queue kept in a table of the service's own schema.
//
// A service enqueues a job in the same transaction as the state that needs it, so a crash can
// delay the work but never lose it:
//
//	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		if _, err := tx.Exec(ctx, `UPDATE consents SET state = 'expiring' WHERE id = $1`, id); err != nil {
//			return err
//		}
//		return jobs.Enqueue(ctx, tx, "consent.expire", expireArgs{ConsentID: id}, jobs.EnqueueOptions{})
//	})
//
// and runs a Worker next to its server:
//
//	w := jobs.NewWorker(jobs.Options{Pool: pool, Handlers: map[string]jobs.Handler{"consent.expire": expire}})
//	go w.Run(ctx)
//
// Delivery is at least once: a job whose worker dies is run again after its lease, so handlers
// must be idempotent. Jobs run in run_at order, but nothing orders jobs across workers.
//
// The table is created by Migration, which the service appends to its own migrations. Rows of
// done jobs are deleted by the workers 24 hours after they finish; failed jobs are kept (with
// last_error) until an operator deletes them, or requeues them with
// UPDATE jobs SET state = 'available', finished_at = NULL, attempts = 0, run_at = now() WHERE id = ....
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Migration is the SQL a service appends to its own migrations (as its NNN_jobs.up.sql file) to
// create the queue table in its schema.
const Migration = `CREATE TABLE jobs (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind <> ''),
    args         jsonb       NOT NULL DEFAULT 'null',
    state        text        NOT NULL DEFAULT 'available'
                             CHECK (state IN ('available', 'running', 'done', 'failed')),
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempts     int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts int         NOT NULL DEFAULT 25 CHECK (max_attempts > 0),
    locked_until timestamptz NULL,
    locked_by    text        NULL,
    last_error   text        NULL,
    unique_key   text        NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz NULL,
    CHECK ((state IN ('done', 'failed')) = (finished_at IS NOT NULL)),
    CHECK (state <> 'running' OR (locked_until IS NOT NULL AND locked_by IS NOT NULL))
);

-- At most one pending (available or running) job per unique_key; finished jobs free the key.
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key) WHERE state IN ('available', 'running');

-- The fetch query: pending jobs in run_at order.
CREATE INDEX jobs_fetch ON jobs (run_at, id) WHERE state IN ('available', 'running');

-- Pruning done jobs.
CREATE INDEX jobs_done ON jobs (finished_at) WHERE state = 'done';
`

// TraceMigration follows Migration (as the service's next NNN_jobs_trace.up.sql): the trace
// context of the request that enqueued a job (W3C traceparent and tracestate, as a JSON object),
// so that the job's run joins the request's trace.
const TraceMigration = `ALTER TABLE jobs ADD COLUMN trace_context jsonb NULL;
`

// StatsMigration follows TraceMigration (as the service's next NNN_jobs_stats.up.sql): failed
// jobs are kept until an operator deletes them, so without this index counting them for the
// backlog metrics (at every scrape) would read the whole table, a day of done jobs included.
const StatsMigration = `CREATE INDEX jobs_failed ON jobs (kind) WHERE state = 'failed';
`

// DefaultMaxAttempts is the MaxAttempts of a job enqueued without one.
const DefaultMaxAttempts = 25

// Tx is where Enqueue inserts: a pgx.Tx (the usual case, so the job commits with the state that
// needs it), a *pgxpool.Pool or a *pgx.Conn.
type Tx interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// Job is one run of a job, as a Handler sees it.
type Job struct {
	ID          int64
	Kind        string
	Args        json.RawMessage // the JSON encoding of the args given to Enqueue
	Attempt     int             // 1 on the first run; a Snooze does not count
	MaxAttempts int
	RunAt       time.Time // when this run was due

	// traceContext is the W3C trace context of the request that enqueued the job, if any.
	traceContext propagation.MapCarrier
}

// EnqueueOptions tunes one Enqueue. The zero value runs the job now, with DefaultMaxAttempts.
type EnqueueOptions struct {
	RunAt       time.Time // zero: now (the database's clock)
	MaxAttempts int       // zero: DefaultMaxAttempts
	// UniqueKey, if set, makes Enqueue a no-op while a job with the same key is pending
	// (available or running). Once that job is done or failed the key can be used again.
	UniqueKey string
}

// The channel is named after the schema the jobs table is found in (the first of the search
// path). Schema names of Puente services are at most 41 bytes, well under the 63 of a channel.
const channelSQL = `'jobs_' || current_schema()`

const enqueueSQL = `WITH ins AS (
    INSERT INTO jobs (kind, args, run_at, max_attempts, unique_key, trace_context)
    VALUES ($1, $2::jsonb, coalesce($3::timestamptz, now()), $4, $5, $6::jsonb)
    ON CONFLICT (unique_key) WHERE state IN ('available', 'running') DO NOTHING
    RETURNING run_at
)
SELECT pg_notify(` + channelSQL + `, '') FROM ins WHERE run_at <= now()`

// Enqueue inserts a job of kind with args (encoded as JSON) in tx. The job becomes visible when
// tx commits; then (for a job due now) the workers listening on the schema's channel are woken at
// once, since the NOTIFY sent inside tx is delivered on commit. With a UniqueKey that is already
// pending, Enqueue does nothing and returns nil.
//
// The trace context of ctx's span goes with the job, so that its run joins the enqueuer's trace.
func Enqueue(ctx context.Context, tx Tx, kind string, args any, opts EnqueueOptions) error {
	if kind == "" {
		return errors.New("jobs: enqueue: empty kind")
	}
	b, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("jobs: enqueue %s: encode args: %w", kind, err)
	}
	maxAttempts := opts.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	var runAt, uniqueKey any
	if !opts.RunAt.IsZero() {
		runAt = opts.RunAt
	}
	if opts.UniqueKey != "" {
		uniqueKey = opts.UniqueKey
	}
	if _, err := tx.Exec(ctx, enqueueSQL, kind, b, runAt, maxAttempts, uniqueKey, traceContext(ctx)); err != nil {
		return fmt.Errorf("jobs: enqueue %s: %w", kind, err)
	}
	return nil
}

// traceContext is ctx's W3C trace context (traceparent, tracestate) as JSON, or NULL without a
// span. The W3C propagator is used directly: the process's global one may be unset, and this
// format is what the worker reads back whatever the process propagates on the wire.
func traceContext(ctx context.Context) any {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	b, err := json.Marshal(carrier)
	if err != nil {
		return nil // a map of strings always encodes
	}
	return string(b)
}

// Advance makes the pending job with uniqueKey due now, if it waits for later (a snooze, a
// retry's backoff), and wakes the workers. It does nothing to a running or finished job.
func Advance(ctx context.Context, tx Tx, uniqueKey string) error {
	if _, err := tx.Exec(ctx, `WITH up AS (
			UPDATE jobs SET run_at = now() WHERE unique_key = $1 AND state = 'available' AND run_at > now() RETURNING 1
		) SELECT pg_notify(`+channelSQL+`, '') FROM up`, uniqueKey); err != nil {
		return fmt.Errorf("jobs: advance %s: %w", uniqueKey, err)
	}
	return nil
}

// AdvanceTo makes the pending job with uniqueKey due at `at` when it waits for later (a job
// gathering work: each new piece pulls the job's next run to at most a short delay away). It
// does nothing to a running or finished job, nor to one due sooner. No worker is woken: at is
// meant to be in the future, which the workers' polling finds.
func AdvanceTo(ctx context.Context, tx Tx, uniqueKey string, at time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE jobs SET run_at = $2 WHERE unique_key = $1 AND state = 'available' AND run_at > $2`, uniqueKey, at); err != nil {
		return fmt.Errorf("jobs: advance %s: %w", uniqueKey, err)
	}
	return nil
}

// Cancel wraps err so that the job fails at once, without the retries it has left. A Handler
// returns it for errors that retrying cannot fix (bad args, a refusal from upstream).
func Cancel(err error) error { return &cancelError{err} }

type cancelError struct{ err error }

func (e *cancelError) Error() string {
	if e.err == nil {
		return "jobs: cancelled"
	}
	return e.err.Error()
}

func (e *cancelError) Unwrap() error { return e.err }

// Snooze asks for the job to run again after d, without counting this run as an attempt: for a
// Handler polling an upstream that is not ready yet.
func Snooze(d time.Duration) error { return &snoozeError{max(d, 0)} }

type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("jobs: snoozed for %s", e.d) }

// Split divides what is left of a job's lease (ctx's deadline): work gets three quarters of it,
// for the calls that may hang; record outlives ctx's cancellation, and its deadline by
// recordGrace, so that a handler whose work ran out of time, on its last attempt above all, can
// still write down how it ended instead of leaving its state pending for ever.
func Split(ctx context.Context) (work, record context.Context, cancel func()) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, context.WithoutCancel(ctx), func() {}
	}
	work, cancelWork := context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)*3/4))
	record, cancelRecord := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(recordGrace))
	return work, record, func() { cancelWork(); cancelRecord() }
}

// recordGrace is how long past its lease a job may take to write down its outcome.
const recordGrace = 30 * time.Second
