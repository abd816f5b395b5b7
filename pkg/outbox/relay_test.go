package outbox_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/outbox"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// schema holds the test outbox. Roles are global to the cluster; Migrate copes with parallel
// databases creating the same one.
const schema = "outboxtest"

type env struct {
	ctx  context.Context
	url  string // superuser URL of the test's database
	pool *pgxpool.Pool
	now  time.Time
}

// setup gives the test its own database with the outbox table in schema, and a pool over it.
func setup(t *testing.T) env {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, postgres.Migrate(ctx, dbURL, schema, fstest.MapFS{
		"001_outbox.up.sql": &fstest.MapFile{Data: []byte(outbox.Migration)},
	}))
	return env{ctx: ctx, url: dbURL, pool: open(t, dbURL), now: time.Now().UTC().Truncate(time.Microsecond)}
}

func open(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(t.Context(), dbURL, schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// write adds an event created at at, committed at once.
func write(t *testing.T, e env, at time.Time) outbox.Event {
	t.Helper()
	ev, err := outbox.Write(e.ctx, e.pool, "connection.status_changed", "cli_1", "con_1", at, map[string]string{"status": "ACTIVE"})
	require.NoError(t, err)
	return ev
}

// unpublished lists the ids not yet published, oldest first.
func unpublished(t *testing.T, e env) []string {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT id FROM outbox WHERE published_at IS NULL ORDER BY created_at, id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}

func published(t *testing.T, e env) []string {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT id FROM outbox WHERE published_at IS NOT NULL ORDER BY created_at, id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}

// isPublished reports whether id is marked published (false on any error: for Eventually,
// which runs it outside the test's goroutine).
func isPublished(e env, id string) bool {
	var ok bool
	err := e.pool.QueryRow(e.ctx, `SELECT published_at IS NOT NULL FROM outbox WHERE id = $1`, id).Scan(&ok)
	return err == nil && ok
}

func idsOf(events []outbox.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// recorder is a Publish that keeps every batch it is handed.
type recorder struct {
	mu      sync.Mutex
	batches [][]outbox.Event
	fail    error // returned (and the batch still recorded) while set
}

func (r *recorder) publish(_ context.Context, events []outbox.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(events))
	return r.fail
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.batches {
		out = append(out, idsOf(b)...)
	}
	return out
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

func TestRunOncePublishesOldestFirstInBatches(t *testing.T) {
	t.Parallel()
	e := setup(t)

	// Written out of order: the relay goes by created_at, not by insertion.
	offsets := []int{3, 0, 4, 1, 2}
	byOffset := map[int]outbox.Event{}
	for _, o := range offsets {
		byOffset[o] = write(t, e, e.now.Add(time.Duration(o)*time.Minute))
	}
	// Two events at the same instant go in id order.
	same := []outbox.Event{write(t, e, e.now.Add(10*time.Minute)), write(t, e, e.now.Add(10*time.Minute))}
	slices.SortFunc(same, func(a, b outbox.Event) int { return strings.Compare(a.ID, b.ID) })
	want := []string{byOffset[0].ID, byOffset[1].ID, byOffset[2].ID, byOffset[3].ID, byOffset[4].ID, same[0].ID, same[1].ID}

	rec := &recorder{}
	relay := &outbox.Relay{Pool: e.pool, Publish: rec.publish, Batch: 2}

	for i, wantN := range []int{2, 2, 2, 1} {
		n, err := relay.RunOnce(e.ctx)
		require.NoError(t, err)
		require.Equal(t, wantN, n, "round %d", i)
		require.Len(t, rec.batches[i], wantN, "round %d carries Batch events", i)
		// The events sent so far are exactly the oldest ones, and they are now marked published.
		sent := want[:2*i+wantN]
		require.Equal(t, sent, rec.ids(), "round %d publishes the oldest unpublished events, in order", i)
		require.Equal(t, sent, published(t, e), "round %d marks what it published", i)
		require.Equal(t, want[len(sent):], unpublished(t, e))
	}

	n, err := relay.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 4, rec.calls(), "an empty outbox calls no Publish")

	// The envelope comes back as written.
	got := rec.batches[0][0]
	w := byOffset[0]
	require.Equal(t, w.ID, got.ID)
	require.Equal(t, w.Type, got.Type)
	require.Equal(t, w.Version, got.Version)
	require.True(t, w.CreatedAt.Equal(got.CreatedAt), "created_at %s, want %s", got.CreatedAt, w.CreatedAt)
	require.Equal(t, w.FlowID, got.FlowID)
	require.Equal(t, w.ClientID, got.ClientID)
	require.JSONEq(t, string(w.Data), string(got.Data))
}

func TestRunOnceDefaultBatchIs100(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i := range 101 {
		write(t, e, e.now.Add(time.Duration(i)*time.Millisecond))
	}
	rec := &recorder{}
	relay := &outbox.Relay{Pool: e.pool, Publish: rec.publish}
	n, err := relay.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 100, n)
	n, err = relay.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestRunOnceFailedPublishLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var want []string
	for i := range 3 {
		want = append(want, write(t, e, e.now.Add(time.Duration(i)*time.Second)).ID)
	}

	rec := &recorder{}
	relay := &outbox.Relay{Pool: e.pool, Publish: rec.publish, Batch: 10}

	boom := errors.New("event log unavailable")
	rec.setFail(boom)
	n, err := relay.RunOnce(e.ctx)
	require.ErrorIs(t, err, boom)
	require.Zero(t, n)
	require.Equal(t, want, rec.ids(), "the failing publish was handed the batch")
	require.Equal(t, want, unpublished(t, e), "a failed publish leaves its events unpublished")

	// Failing again changes nothing either.
	_, err = relay.RunOnce(e.ctx)
	require.ErrorIs(t, err, boom)
	require.Equal(t, want, unpublished(t, e))

	rec.setFail(nil)
	n, err = relay.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, want, idsOf(rec.batches[2]), "the next round sends the same events again")
	require.Empty(t, unpublished(t, e))
	require.Equal(t, want, published(t, e))
}

// barrier lets n callers through once all n arrived, or fails them after a timeout (so a relay
// blocked on another's row locks fails the test instead of hanging it).
type barrier struct {
	mu      sync.Mutex
	n, seen int
	open    chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.seen++
	if b.seen == b.n {
		close(b.open)
	}
	b.mu.Unlock()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-b.open:
		return nil
	case <-t.C:
		return errors.New("the other relay never reached Publish: it is blocked behind this one's locks")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestConcurrentRelaysNeverPublishTheSameEventTwice(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const batch, rounds = 5, 4
	var want []string
	for i := range 2 * batch * rounds {
		want = append(want, write(t, e, e.now.Add(time.Duration(i)*time.Millisecond)).ID)
	}

	// Each relay has its own pool, as two processes would. In every round both relays hold their
	// batch (and its row locks) at the same time: each Publish waits for the other's.
	var (
		mu   sync.Mutex
		turn *barrier
	)
	sent := make([][]string, 2)
	relays := make([]*outbox.Relay, 2)
	for i := range relays {
		relays[i] = &outbox.Relay{Pool: open(t, e.url), Batch: batch, Publish: func(ctx context.Context, events []outbox.Event) error {
			mu.Lock()
			b := turn
			sent[i] = append(sent[i], idsOf(events)...)
			mu.Unlock()
			return b.wait(ctx)
		}}
	}

	var all []string
	for round := range rounds + 1 {
		mu.Lock()
		turn = newBarrier(2)
		before := [2]int{len(sent[0]), len(sent[1])}
		mu.Unlock()

		var ns [2]int
		var errs [2]error
		var wg sync.WaitGroup
		for i, r := range relays {
			wg.Go(func() { ns[i], errs[i] = r.RunOnce(e.ctx) })
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs[:]...), "round %d", round)

		a, b := sent[0][before[0]:], sent[1][before[1]:]
		require.Equal(t, []int{len(a), len(b)}, ns[:], "round %d: RunOnce reports what it published", round)
		if round < rounds {
			require.Equal(t, []int{batch, batch}, ns[:], "round %d: each relay takes a full batch of its own", round)
		} else {
			require.Equal(t, []int{0, 0}, ns[:], "nothing is left after %d rounds", rounds)
		}
		for _, id := range a {
			require.NotContains(t, b, id, "round %d: both relays published %s", round, id)
		}
		for _, id := range append(slices.Clone(a), b...) {
			require.NotContains(t, all, id, "round %d: %s published again", round, id)
			all = append(all, id)
		}
	}
	require.ElementsMatch(t, want, all, "together the relays publish every event")
	require.Empty(t, unpublished(t, e))
}

// listening waits until a session of the test's database is LISTENing on the outbox channel, so
// that an event committed from then on notifies it.
func listening(t *testing.T, e env) {
	t.Helper()
	admin, err := pgx.Connect(e.ctx, e.url)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	channel := pgx.Identifier{"outbox_" + schema}.Sanitize()
	require.Eventually(t, func() bool {
		var n int
		err := admin.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle' AND query = $1`, "LISTEN "+channel).Scan(&n)
		return err == nil && n == 1
	}, 30*time.Second, 10*time.Millisecond, "the relay never listened on %s", channel)
}

func TestRunWakesOnCommittedEventAndNeverPublishesARolledBackOne(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rec := &recorder{}
	// An hour's poll: within this test only a notification can wake the relay.
	relay := &outbox.Relay{Pool: e.pool, Publish: rec.publish, Poll: time.Hour}

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	listening(t, e)
	require.Zero(t, rec.calls(), "the outbox was empty when Run started")

	// Rolled back: the row and its notification both vanish.
	var rolledBack outbox.Event
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	rolledBack, err = outbox.Write(e.ctx, tx, "consent.created", "cli_1", "cns_1", e.now, map[string]int{"n": 1})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(e.ctx))

	// Committed: its notification wakes the relay.
	var committed outbox.Event
	require.NoError(t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		committed, err = outbox.Write(e.ctx, tx, "consent.created", "cli_1", "cns_2", e.now.Add(time.Second), map[string]int{"n": 2})
		return err
	}))
	// Publish is called before the relay's transaction commits: wait for both.
	require.Eventually(t, func() bool { return slices.Contains(rec.ids(), committed.ID) && isPublished(e, committed.ID) },
		30*time.Second, 5*time.Millisecond, "Run was not woken by the commit of %s", committed.ID)
	require.Equal(t, []string{committed.ID}, rec.ids(), "exactly the committed event was published, once")
	require.Equal(t, []string{committed.ID}, published(t, e))

	// A second commit wakes it again (the listener keeps listening).
	again := write(t, e, e.now.Add(2*time.Second))
	require.Eventually(t, func() bool { return slices.Contains(rec.ids(), again.ID) && isPublished(e, again.ID) },
		30*time.Second, 5*time.Millisecond, "Run was not woken by the second commit")
	require.Equal(t, []string{committed.ID, again.ID}, rec.ids())

	// The rolled-back event is nowhere: not in the outbox, not published, not found by a round.
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM outbox WHERE id = $1`, rolledBack.ID).Scan(&n))
	require.Zero(t, n)
	cancel()
	<-done
	left, err := (&outbox.Relay{Pool: e.pool, Publish: rec.publish}).RunOnce(e.ctx)
	require.NoError(t, err)
	require.Zero(t, left)
	assert.NotContains(t, rec.ids(), rolledBack.ID)
}

func TestRunDrainsABacklogAndStopsWithItsContext(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var want []string
	for i := range 25 {
		want = append(want, write(t, e, e.now.Add(time.Duration(i)*time.Millisecond)).ID)
	}
	rec := &recorder{}
	// Batch 10: Run loops while batches come back full, so the whole backlog goes at start
	// without any wake-up.
	relay := &outbox.Relay{Pool: e.pool, Publish: rec.publish, Batch: 10, Poll: time.Hour}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Run(ctx)
	}()
	require.Eventually(t, func() bool { return len(rec.ids()) == len(want) && isPublished(e, want[len(want)-1]) },
		30*time.Second, 5*time.Millisecond, "the backlog was not drained")
	require.Equal(t, want, rec.ids())
	require.Equal(t, 3, rec.calls(), "25 events in batches of 10")
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestPruneDeletesOnlyEventsPublishedBefore(t *testing.T) {
	e := setup(t)
	for range 3 {
		write(t, e, e.now)
	}
	r := &outbox.Relay{Pool: e.pool, Publish: func(context.Context, []outbox.Event) error { return nil }}
	n, err := r.RunOnce(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	waiting := write(t, e, e.now)

	gone, err := r.Prune(e.ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, gone, "recently published events stay")
	gone, err = r.Prune(e.ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 3, gone)
	require.Equal(t, []string{waiting.ID}, unpublished(t, e), "an unpublished event is never pruned")
	require.Empty(t, published(t, e))
}
