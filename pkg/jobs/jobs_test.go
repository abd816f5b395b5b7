package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/jobs"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Enqueue takes a transaction, or a pool for a job on its own.
var (
	_ jobs.Tx = pgx.Tx(nil)
	_ jobs.Tx = (*pgxpool.Pool)(nil)
	_ jobs.Tx = (*pgx.Conn)(nil)
)

const schema = "jobstest"

// setup gives the test a fresh database with the jobs table in schema, and a pool on it.
func setup(t *testing.T) (context.Context, string, *pgxpool.Pool) {
	t.Helper()
	t.Parallel()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, postgres.Migrate(ctx, url, schema, fstest.MapFS{
		"001_jobs.up.sql":       {Data: []byte(jobs.Migration)},
		"002_jobs_trace.up.sql": {Data: []byte(jobs.TraceMigration)},
		"003_jobs_stats.up.sql": {Data: []byte(jobs.StatsMigration)},
	}))
	return ctx, url, open(t, url)
}

func open(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// clock is a settable clock for Options.Now. It starts an hour ahead of the database, so jobs
// enqueued "now" (by the database's clock) are due.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Now().Add(time.Hour).Truncate(time.Microsecond)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

type row struct {
	ID         int64
	Kind       string
	State      string
	Attempts   int
	RunAt      time.Time
	LockedBy   *string
	LastError  *string
	FinishedAt *time.Time
}

func rows(t *testing.T, pool *pgxpool.Pool) []row {
	t.Helper()
	rs, _ := pool.Query(context.Background(), `SELECT id, kind, state, attempts, run_at, locked_by, last_error, finished_at FROM jobs ORDER BY id`)
	out, err := pgx.CollectRows(rs, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	return out
}

func onlyRow(t *testing.T, pool *pgxpool.Pool) row {
	t.Helper()
	rs := rows(t, pool)
	require.Len(t, rs, 1)
	return rs[0]
}

func enqueue(t *testing.T, tx jobs.Tx, kind string, args any, opts jobs.EnqueueOptions) {
	t.Helper()
	require.NoError(t, jobs.Enqueue(context.Background(), tx, kind, args, opts))
}

// recv waits for a value on ch, for at most 10 seconds.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitFor checks cond until it holds, for at most 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// run starts w.Run; stop cancels it and returns what Run returned (once it has).
func run(t *testing.T, w *jobs.Worker) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			timer := time.NewTimer(30 * time.Second)
			defer timer.Stop()
			select {
			case err = <-done:
			case <-timer.C:
				err = errors.New("Run did not return within 30s of its context being cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	return stop
}

type greeting struct {
	Name string `json:"name"`
}

func TestCommittedJobRunsOnceRolledBackNever(t *testing.T) {
	ctx, _, pool := setup(t)
	var (
		mu   sync.Mutex
		seen []greeting
	)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"greet": func(ctx context.Context, j jobs.Job) error {
			var g greeting
			if err := json.Unmarshal(j.Args, &g); err != nil {
				return jobs.Cancel(err)
			}
			mu.Lock()
			seen = append(seen, g)
			mu.Unlock()
			return nil
		},
	}})

	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return jobs.Enqueue(ctx, tx, "greet", greeting{"committed"}, jobs.EnqueueOptions{})
	}))
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	enqueue(t, tx, "greet", greeting{"rolled back"}, jobs.EnqueueOptions{})
	require.NoError(t, tx.Rollback(ctx))

	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, ran, "a done job does not run again")
	require.Equal(t, []greeting{{"committed"}}, seen)

	r := onlyRow(t, pool)
	require.Equal(t, "done", r.State)
	require.Equal(t, 1, r.Attempts)
	require.NotNil(t, r.FinishedAt)
}

func TestWorkerRefusesAConfigurationThatCouldOnlyFailJobs(t *testing.T) {
	ctx, _, pool := setup(t)
	enqueue(t, pool, "x", nil, jobs.EnqueueOptions{})
	_, err := jobs.NewWorker(jobs.Options{Pool: pool}).RunOnce(ctx)
	require.ErrorContains(t, err, "Handlers")
	require.ErrorContains(t, jobs.NewWorker(jobs.Options{Pool: pool}).Run(ctx), "Handlers")
	_, err = jobs.NewWorker(jobs.Options{Handlers: map[string]jobs.Handler{"x": nil}}).RunOnce(ctx)
	require.ErrorContains(t, err, "Pool")
	require.Equal(t, "available", onlyRow(t, pool).State, "no job was touched")
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	ctx, _, pool := setup(t)
	require.Error(t, jobs.Enqueue(ctx, pool, "", nil, jobs.EnqueueOptions{}), "an empty kind")
	require.Error(t, jobs.Enqueue(ctx, pool, "x", make(chan int), jobs.EnqueueOptions{}), "args that are not JSON")
	require.Empty(t, rows(t, pool))
}

func TestRunWakesOnNotify(t *testing.T) {
	ctx, url, pool := setup(t)
	ran := make(chan jobs.Job, 10)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), PollInterval: time.Minute, Handlers: map[string]jobs.Handler{
		"ping": func(ctx context.Context, j jobs.Job) error { ran <- j; return nil },
	}})
	run(t, w)

	// Wait until the worker listens, so the jobs below can only be found through a notification
	// (the next poll is a minute away).
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	listener := func() (pid int) {
		var pids []int
		waitFor(t, "the worker to LISTEN", func() bool {
			rs, _ := admin.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN "jobs_jobstest"'`)
			var err error
			pids, err = pgx.CollectRows(rs, pgx.RowTo[int])
			require.NoError(t, err)
			return len(pids) == 1
		})
		return pids[0]
	}
	pid := listener()

	enqueue(t, pool, "ping", 1, jobs.EnqueueOptions{})
	first := recv(t, ran, "the first job")
	waitFor(t, "the first job to be done", func() bool { return rows(t, pool)[0].State == "done" })

	// The second comes long after any wake-up the first caused.
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return jobs.Enqueue(ctx, tx, "ping", 2, jobs.EnqueueOptions{})
	}))
	second := recv(t, ran, "the second job")
	// Polling is once a minute and recv gives up after 10 s: only the notification can have
	// woken the worker.
	require.NotEqual(t, first.ID, second.ID)

	// The listening connection breaks: the worker listens again on a new one.
	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	waitFor(t, "the worker to LISTEN again", func() bool {
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN "jobs_jobstest"' AND pid <> $1`, pid).Scan(&n))
		return n == 1
	})
	waitFor(t, "the second job to be done", func() bool { return rows(t, pool)[1].State == "done" })
	enqueue(t, pool, "ping", 3, jobs.EnqueueOptions{})
	third := recv(t, ran, "the third job")
	require.Equal(t, json.RawMessage("3"), third.Args)
}

func TestRetriesWithBackoff(t *testing.T) {
	ctx, _, pool := setup(t)
	clk := newClock()
	var attempts []int
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Now: clk.Now, Handlers: map[string]jobs.Handler{
		"flaky": func(ctx context.Context, j jobs.Job) error {
			attempts = append(attempts, j.Attempt)
			if j.Attempt < 3 {
				return fmt.Errorf("upstream down (attempt %d)", j.Attempt)
			}
			return nil
		},
	}})
	enqueue(t, pool, "flaky", nil, jobs.EnqueueOptions{})

	t0 := clk.Now()
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r := onlyRow(t, pool)
	require.Equal(t, "available", r.State)
	require.Equal(t, 1, r.Attempts)
	require.Nil(t, r.LockedBy)
	require.Equal(t, "upstream down (attempt 1)", *r.LastError)
	require.WithinRange(t, r.RunAt, t0.Add(800*time.Millisecond), t0.Add(1200*time.Millisecond), "1s ±20%")

	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, ran, "not due before its backoff")

	clk.Set(r.RunAt)
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r2 := onlyRow(t, pool)
	require.Equal(t, 2, r2.Attempts)
	require.Equal(t, "upstream down (attempt 2)", *r2.LastError)
	require.WithinRange(t, r2.RunAt, r.RunAt.Add(1600*time.Millisecond), r.RunAt.Add(2400*time.Millisecond), "2s ±20%")

	clk.Set(r2.RunAt)
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r3 := onlyRow(t, pool)
	require.Equal(t, "done", r3.State)
	require.Equal(t, 3, r3.Attempts)
	require.Equal(t, []int{1, 2, 3}, attempts)
}

func TestScheduledJobWaitsForItsTime(t *testing.T) {
	ctx, _, pool := setup(t)
	clk := newClock()
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Now: clk.Now, Handlers: map[string]jobs.Handler{
		"later": func(ctx context.Context, j jobs.Job) error { runs.Add(1); return nil },
	}})
	at := clk.Now().Add(time.Hour)
	enqueue(t, pool, "later", nil, jobs.EnqueueOptions{RunAt: at})
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, ran)
	clk.Set(at)
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	require.EqualValues(t, 1, runs.Load())
}

func TestCancelFailsAtOnce(t *testing.T) {
	ctx, _, pool := setup(t)
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"doomed": func(ctx context.Context, j jobs.Job) error {
			runs.Add(1)
			return fmt.Errorf("wrapped: %w", jobs.Cancel(errors.New("consent revoked")))
		},
	}})
	enqueue(t, pool, "doomed", nil, jobs.EnqueueOptions{})
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r := onlyRow(t, pool)
	require.Equal(t, "failed", r.State)
	require.Equal(t, 1, r.Attempts, "with 24 attempts left")
	require.Equal(t, "wrapped: consent revoked", *r.LastError)
	require.NotNil(t, r.FinishedAt)
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, ran)
	require.EqualValues(t, 1, runs.Load())
}

func TestSnoozeDoesNotCountAnAttempt(t *testing.T) {
	ctx, _, pool := setup(t)
	clk := newClock()
	var attempts []int
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Now: clk.Now, Handlers: map[string]jobs.Handler{
		"poll": func(ctx context.Context, j jobs.Job) error {
			attempts = append(attempts, j.Attempt)
			if len(attempts) < 3 {
				return jobs.Snooze(time.Minute)
			}
			return nil
		},
	}})
	enqueue(t, pool, "poll", nil, jobs.EnqueueOptions{MaxAttempts: 1})
	for range 2 {
		t0 := clk.Now()
		ran, err := w.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, ran)
		r := onlyRow(t, pool)
		require.Equal(t, "available", r.State)
		require.Equal(t, 0, r.Attempts)
		require.True(t, r.RunAt.Equal(t0.Add(time.Minute)), "run_at %s", r.RunAt)
		ran, err = w.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 0, ran, "not due before the snooze ends")
		clk.Add(time.Minute)
	}
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	require.Equal(t, "done", onlyRow(t, pool).State)
	require.Equal(t, []int{1, 1, 1}, attempts, "snoozes do not use up the one attempt allowed")
}

func TestSnoozeZeroWaitsForTheNextRunOnce(t *testing.T) {
	ctx, _, pool := setup(t)
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"again": func(ctx context.Context, j jobs.Job) error { runs.Add(1); return jobs.Snooze(0) },
	}})
	enqueue(t, pool, "again", nil, jobs.EnqueueOptions{})
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran, "RunOnce runs each job once")
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	require.EqualValues(t, 2, runs.Load())
}

func TestMaxAttemptsThenFailed(t *testing.T) {
	ctx, _, pool := setup(t)
	clk := newClock()
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Now: clk.Now, Handlers: map[string]jobs.Handler{
		"broken": func(ctx context.Context, j jobs.Job) error {
			runs.Add(1)
			return fmt.Errorf("still broken on attempt %d of %d", j.Attempt, j.MaxAttempts)
		},
	}})
	enqueue(t, pool, "broken", nil, jobs.EnqueueOptions{MaxAttempts: 3})
	for i := range 3 {
		ran, err := w.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, ran)
		r := onlyRow(t, pool)
		if i < 2 {
			require.Equal(t, "available", r.State)
		}
		clk.Add(10 * time.Second)
	}
	r := onlyRow(t, pool)
	require.Equal(t, "failed", r.State)
	require.Equal(t, 3, r.Attempts)
	require.Equal(t, "still broken on attempt 3 of 3", *r.LastError)
	require.NotNil(t, r.FinishedAt)
	clk.Add(2 * time.Hour)
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, ran)
	require.EqualValues(t, 3, runs.Load())
}

func TestUnknownKindFails(t *testing.T) {
	ctx, _, pool := setup(t)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"known": func(ctx context.Context, j jobs.Job) error { return nil },
	}})
	enqueue(t, pool, "mystery", nil, jobs.EnqueueOptions{})
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r := onlyRow(t, pool)
	require.Equal(t, "failed", r.State)
	require.Contains(t, *r.LastError, `unknown job kind "mystery"`)
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	ctx, _, pool := setup(t)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"explode": func(ctx context.Context, j jobs.Job) error { panic("boom") },
	}})
	enqueue(t, pool, "explode", nil, jobs.EnqueueOptions{})
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r := onlyRow(t, pool)
	require.Equal(t, "available", r.State)
	require.Equal(t, 1, r.Attempts)
	require.Contains(t, *r.LastError, "panicked: boom")
}

func TestCrashedWorkersJobIsTakenOverAfterItsLease(t *testing.T) {
	ctx, _, pool := setup(t)
	clkA := newClock()
	started := make(chan jobs.Job, 1)
	release := make(chan struct{})
	a := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t).With("worker", "a"), Lease: time.Minute, Now: clkA.Now, Handlers: map[string]jobs.Handler{
		"login": func(ctx context.Context, j jobs.Job) error {
			started <- j
			<-release // hung: as good as crashed, until the test lets it finish late
			return nil
		},
	}})
	clkB := &clock{t: clkA.Now().Add(30 * time.Second)}
	taken := make(chan jobs.Job, 1)
	b := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t).With("worker", "b"), Lease: time.Minute, Now: clkB.Now, Handlers: map[string]jobs.Handler{
		"login": func(ctx context.Context, j jobs.Job) error {
			taken <- j
			return errors.New("bank says try later")
		},
	}})
	enqueue(t, pool, "login", nil, jobs.EnqueueOptions{})

	type result struct {
		ran int
		err error
	}
	aDone := make(chan result, 1)
	go func() {
		ran, err := a.RunOnce(ctx)
		aDone <- result{ran, err}
	}()
	require.Equal(t, 1, recv(t, started, "worker a to start the job").Attempt)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	ran, err := b.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, ran, "the job is a's until its lease ends")

	clkB.Set(clkA.Now().Add(time.Minute + time.Second))
	ran, err = b.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran, "b takes over once the lease has ended")
	require.Equal(t, 2, recv(t, taken, "worker b to run the job").Attempt)
	after := onlyRow(t, pool)
	require.Equal(t, "available", after.State)
	require.Equal(t, 2, after.Attempts)
	require.Equal(t, "bank says try later", *after.LastError)

	close(release) // a finishes late, "successfully"
	res := recv(t, aDone, "worker a's RunOnce")
	require.NoError(t, res.err)
	require.Equal(t, 1, res.ran)
	require.Equal(t, after, onlyRow(t, pool), "a's late outcome does not overwrite b's")
}

func TestLeaseEndingOnTheLastAttemptFailsTheJob(t *testing.T) {
	ctx, _, pool := setup(t)
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"oom": func(ctx context.Context, j jobs.Job) error { runs.Add(1); return nil },
	}})
	enqueue(t, pool, "oom", nil, jobs.EnqueueOptions{MaxAttempts: 1})
	// Its only attempt was fetched by a worker that died.
	_, err := pool.Exec(ctx, `UPDATE jobs SET state = 'running', attempts = 1, locked_by = 'dead', locked_until = now() - interval '1 second'`)
	require.NoError(t, err)
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	r := onlyRow(t, pool)
	require.Equal(t, "failed", r.State)
	require.Contains(t, *r.LastError, "lease")
	require.Zero(t, runs.Load())
}

func TestManyWorkersRunEveryJobOnce(t *testing.T) {
	ctx, url, pool := setup(t)
	const total = 200
	var (
		mu     sync.Mutex
		counts = map[int64]int{}
		by     = map[string]int{}
	)
	all := make(chan struct{})
	handler := func(name string) jobs.Handler {
		return func(ctx context.Context, j jobs.Job) error {
			mu.Lock()
			defer mu.Unlock()
			counts[j.ID]++
			by[name]++
			if len(counts) == total {
				select {
				case <-all:
				default:
					close(all)
				}
			}
			return nil
		}
	}
	enqueueBatches := func(from, to int) {
		for batch := from; batch < to; batch++ {
			require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				for i := range total / 20 {
					if err := jobs.Enqueue(ctx, tx, "work", batch*100+i, jobs.EnqueueOptions{}); err != nil {
						return err
					}
				}
				return nil
			}))
		}
	}
	enqueueBatches(0, 10) // half waiting when the workers start, so they all race for them
	var stops []func() error
	for i := range 3 {
		name := fmt.Sprintf("w%d", i)
		w := jobs.NewWorker(jobs.Options{
			Pool:         open(t, url), // as if in its own process
			Logger:       logger(t).With("worker", name),
			PollInterval: 50 * time.Millisecond,
			Handlers:     map[string]jobs.Handler{"work": handler(name)},
		})
		stops = append(stops, run(t, w))
	}
	enqueueBatches(10, 20) // and half while they run
	recv(t, all, "every job to run")
	for _, stop := range stops {
		require.NoError(t, stop())
	}

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, counts, total)
	for id, n := range counts {
		require.Equal(t, 1, n, "job %d", id)
	}
	t.Logf("jobs run per worker: %v", by)
	var done int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1`).Scan(&done))
	require.Equal(t, total, done)
}

func TestUniqueKey(t *testing.T) {
	ctx, _, pool := setup(t)
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"sync": func(ctx context.Context, j jobs.Job) error {
			runs.Add(1)
			if string(j.Args) == `"conn-1"` {
				// A running job still holds its key.
				return jobs.Enqueue(ctx, pool, "sync", "conn-1", jobs.EnqueueOptions{UniqueKey: "conn-1"})
			}
			return nil
		},
	}})
	opts := jobs.EnqueueOptions{UniqueKey: "conn-1"}
	enqueue(t, pool, "sync", "conn-1", opts)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := jobs.Enqueue(ctx, tx, "sync", "conn-1", opts); err != nil {
			return err
		}
		return jobs.Enqueue(ctx, tx, "sync", "conn-1", opts)
	}))
	require.Len(t, rows(t, pool), 1, "one pending job per key")
	enqueue(t, pool, "sync", "conn-2", jobs.EnqueueOptions{UniqueKey: "conn-2"})
	enqueue(t, pool, "sync", nil, jobs.EnqueueOptions{}) // no key: never deduplicated
	enqueue(t, pool, "sync", nil, jobs.EnqueueOptions{})
	require.Len(t, rows(t, pool), 4)

	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, ran)
	require.EqualValues(t, 4, runs.Load())
	rs := rows(t, pool)
	require.Len(t, rs, 4, "enqueuing conn-1 while it ran was a no-op")
	for _, r := range rs {
		require.Equal(t, "done", r.State)
	}

	enqueue(t, pool, "sync", "conn-1", opts)
	enqueue(t, pool, "sync", "conn-1", opts)
	rs = rows(t, pool)
	require.Len(t, rs, 5, "once done, the key is free again, once")
	require.Equal(t, "available", rs[4].State)
}

func TestRunWaitsForTheRunningHandlerOnShutdown(t *testing.T) {
	ctx, _, pool := setup(t)
	started, sawCancel, proceed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Handlers: map[string]jobs.Handler{
		"long": func(ctx context.Context, j jobs.Job) error {
			close(started)
			<-ctx.Done()
			close(sawCancel)
			<-proceed
			finished.Store(true)
			return ctx.Err()
		},
	}})
	enqueue(t, pool, "long", nil, jobs.EnqueueOptions{})
	runCtx, cancel := context.WithCancel(ctx)
	returned := make(chan error, 1)
	go func() { returned <- w.Run(runCtx) }()
	recv(t, started, "the handler to start")

	cancel()
	recv(t, sawCancel, "the handler's context to be cancelled")
	select {
	case <-returned:
		t.Fatal("Run returned while its handler was still running")
	default:
	}
	close(proceed)
	require.NoError(t, recv(t, returned, "Run to return"))
	require.True(t, finished.Load())

	r := onlyRow(t, pool)
	require.Equal(t, "available", r.State, "handed back for the next worker")
	require.Equal(t, 0, r.Attempts, "the interrupted run does not count")
	require.Contains(t, *r.LastError, "context canceled")
}

func TestDoneJobsArePrunedAfterADay(t *testing.T) {
	ctx, _, pool := setup(t)
	clk := newClock()
	now := clk.Now()
	for _, j := range []struct {
		kind, state string
		finished    time.Time
	}{
		{"old-done", "done", now.Add(-25 * time.Hour)},
		{"recent-done", "done", now.Add(-time.Hour)},
		{"old-failed", "failed", now.Add(-48 * time.Hour)},
	} {
		_, err := pool.Exec(ctx, `INSERT INTO jobs (kind, state, finished_at) VALUES ($1, $2, $3)`, j.kind, j.state, j.finished)
		require.NoError(t, err)
	}
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Now: clk.Now, PollInterval: time.Minute, Handlers: map[string]jobs.Handler{
		"any": func(ctx context.Context, j jobs.Job) error { return nil },
	}})
	run(t, w)
	waitFor(t, "the old done job to be deleted", func() bool { return len(rows(t, pool)) == 2 })
	var kinds []string
	for _, r := range rows(t, pool) {
		kinds = append(kinds, r.Kind)
	}
	require.Equal(t, []string{"recent-done", "old-failed"}, kinds)
}

// syncBuffer is a bytes.Buffer safe for the worker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsNeverHoldArgs(t *testing.T) {
	ctx, _, pool := setup(t)
	var logs syncBuffer
	w := jobs.NewWorker(jobs.Options{
		Pool:   pool,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Handlers: map[string]jobs.Handler{
			"fail":   func(ctx context.Context, j jobs.Job) error { return errors.New("upstream 503") },
			"cancel": func(ctx context.Context, j jobs.Job) error { return jobs.Cancel(errors.New("refused")) },
			"panic":  func(ctx context.Context, j jobs.Job) error { panic("boom") },
			"ok":     func(ctx context.Context, j jobs.Job) error { return nil },
			"snooze": func(ctx context.Context, j jobs.Job) error { return jobs.Snooze(time.Second) },
		},
	})
	secret := map[string]string{"name": "Jane Secretname", "iban": "ES9121000418450200051332"}
	for _, kind := range []string{"fail", "cancel", "panic", "ok", "snooze", "unknown"} {
		enqueue(t, pool, kind, secret, jobs.EnqueueOptions{})
	}
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, ran)
	out := logs.String()
	t.Log(out)
	for _, r := range rows(t, pool) {
		require.Contains(t, out, fmt.Sprintf("kind=%s id=%d attempt=1", r.Kind, r.ID))
	}
	require.NotContains(t, out, "Secretname")
	require.NotContains(t, out, "ES9121000418450200051332")
}

func TestAdvanceToPullsAWaitingJobEarlierNeverLater(t *testing.T) {
	ctx, _, pool := setup(t)
	clk := newClock()
	var runs atomic.Int32
	w := jobs.NewWorker(jobs.Options{Pool: pool, Logger: logger(t), Now: clk.Now, Handlers: map[string]jobs.Handler{
		"gather": func(ctx context.Context, j jobs.Job) error { runs.Add(1); return nil },
	}})
	far := clk.Now().Add(time.Hour)
	enqueue(t, pool, "gather", nil, jobs.EnqueueOptions{RunAt: far, UniqueKey: "g"})

	// Later than it is due: nothing changes.
	require.NoError(t, jobs.AdvanceTo(ctx, pool, "g", far.Add(time.Minute)))
	require.True(t, onlyRow(t, pool).RunAt.Equal(far))
	// Sooner: it is due then, and runs then, not before.
	soon := clk.Now().Add(2 * time.Second)
	require.NoError(t, jobs.AdvanceTo(ctx, pool, "g", soon))
	require.True(t, onlyRow(t, pool).RunAt.Equal(soon))
	ran, err := w.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, ran)
	clk.Set(soon)
	ran, err = w.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)

	// A finished job is left alone.
	require.NoError(t, jobs.AdvanceTo(ctx, pool, "g", soon.Add(-time.Minute)))
	r := onlyRow(t, pool)
	require.Equal(t, "done", r.State)
	require.True(t, r.RunAt.Equal(soon))
	require.EqualValues(t, 1, runs.Load())
}
