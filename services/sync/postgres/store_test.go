package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	syncs "puente.dev/services/sync"
	syncpg "puente.dev/services/sync/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is one test's store over its own freshly migrated database.
type bundle struct {
	ctx    context.Context
	url    string
	pool   *pgxpool.Pool
	store  *syncpg.Store
	now    time.Time
	client string
}

// setup gives the test its own database, migrated, and a store over it. The pool is large
// enough for the concurrency tests to have every caller inside the database at once.
func setup(t testing.TB) bundle {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, syncpg.Migrate(ctx, dbURL))
	require.NoError(t, syncpg.Migrate(ctx, dbURL), "migrating twice applies nothing twice")
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(32))
	u.RawQuery = q.Encode()
	pool, err := postgres.Open(ctx, u.String(), syncpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return bundle{ctx: ctx, url: dbURL, pool: pool, store: syncpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond), client: ids.New("cli")}
}

func (b bundle) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(b.ctx, b.url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

// newSync stores a sync of n users, referenced by id, and returns it with the users' ids.
func newSync(t testing.TB, b bundle, n int) (syncs.Sync, []string) {
	t.Helper()
	sy := syncs.Sync{ID: ids.New("syn"), ClientID: b.client, Status: syncs.Running, Total: n, Pending: n, CreatedAt: b.now}
	users := make([]syncs.UserRef, n)
	userIDs := make([]string, n)
	for i := range users {
		userIDs[i] = ids.New("usr")
		users[i] = syncs.UserRef{UserID: userIDs[i]}
	}
	require.NoError(t, b.store.CreateSync(b.ctx, sy, users, syncs.Job{Kind: syncs.JobFanout, Args: map[string]string{"sync_id": sy.ID}, UniqueKey: "fanout:" + sy.ID}))
	return sy, userIDs
}

// resolveAll records every user of sy as found.
func resolveAll(t testing.TB, b bundle, sy syncs.Sync, userIDs []string) {
	t.Helper()
	found := make([]syncs.Resolved, len(userIDs))
	for i, id := range userIDs {
		found[i] = syncs.Resolved{Position: i, UserID: id, Job: syncs.Job{
			Kind: syncs.JobUser, Args: map[string]any{"position": i}, UniqueKey: fmt.Sprintf("user:%s:%d", sy.ID, i),
		}}
	}
	require.NoError(t, b.store.Resolve(b.ctx, b.client, sy.ID, found, nil))
}

func result(sy syncs.Sync, position int, userID string, st syncs.UserStatus, at time.Time) syncs.UserResult {
	return syncs.UserResult{
		SyncID: sy.ID, Position: position, Ref: syncs.UserRef{UserID: userID}, UserID: userID, Status: st, FinishedAt: at,
		Accounts: []syncs.AccountResult{{AccountID: "acc_1", ConsentID: "cns_1", Status: syncs.AccountSuccess}},
	}
}

func TestCreateSyncStoresTheUsersInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sy, userIDs := newSync(t, b, 3)
	got, err := b.store.GetSync(b.ctx, b.client, sy.ID)
	require.NoError(t, err)
	require.Equal(t, sy, got)
	_, err = b.store.GetSync(b.ctx, ids.New("cli"), sy.ID)
	require.ErrorIs(t, err, syncs.ErrSyncNotFound)
	_, err = b.store.ListResults(b.ctx, ids.New("cli"), sy.ID, "", syncs.ResultsPage{After: -1, Limit: 10})
	require.ErrorIs(t, err, syncs.ErrSyncNotFound)

	us, err := b.store.Unresolved(b.ctx, sy.ID, -1, 2)
	require.NoError(t, err)
	require.Equal(t, []string{userIDs[0], userIDs[1]}, []string{us[0].Ref.UserID, us[1].Ref.UserID})
	us, err = b.store.Unresolved(b.ctx, sy.ID, 1, 2)
	require.NoError(t, err)
	require.Len(t, us, 1)
	require.Equal(t, 2, us[0].Position)
	require.Equal(t, syncs.UserPending, us[0].Status)
}

func TestResolveTwiceQueuesAndAnnouncesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sy, userIDs := newSync(t, b, 3)
	found := []syncs.Resolved{{Position: 0, UserID: userIDs[0], Job: syncs.Job{Kind: syncs.JobUser, Args: 0, UniqueKey: "user:" + sy.ID + ":0"}}}
	final := []syncs.UserResult{{SyncID: sy.ID, Position: 1, Ref: syncs.UserRef{UserID: userIDs[1]}, Status: syncs.UserNotFound, FinishedAt: b.now}}
	for range 2 {
		require.NoError(t, b.store.Resolve(b.ctx, b.client, sy.ID, found, final))
	}
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobUser))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.outbox WHERE type = $1`, syncs.EventUserNotFound))
	got, err := b.store.GetSync(b.ctx, b.client, sy.ID)
	require.NoError(t, err)
	require.Equal(t, 2, got.Pending)
	require.Equal(t, 1, got.NotFound)

	// The job done (its key free again), a third record still queues nothing.
	_, err = b.pool.Exec(b.ctx, `UPDATE jobs SET state = 'done', finished_at = now()`)
	require.NoError(t, err)
	require.NoError(t, b.store.Resolve(b.ctx, b.client, sy.ID, found, final))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobUser))
	us, err := b.store.Unresolved(b.ctx, sy.ID, -1, 10)
	require.NoError(t, err)
	require.Len(t, us, 1)
	require.Equal(t, 2, us[0].Position)
}

func TestFinishRecordsAUserOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sy, userIDs := newSync(t, b, 1)
	resolveAll(t, b, sy, userIDs)
	r := result(sy, 0, userIDs[0], syncs.UserSuccess, b.now)

	first, err := b.store.Finish(b.ctx, b.client, r)
	require.NoError(t, err)
	require.True(t, first)
	r.Status = syncs.UserError // a second run that saw something else
	again, err := b.store.Finish(b.ctx, b.client, r)
	require.NoError(t, err)
	require.False(t, again)

	got, err := b.store.User(b.ctx, sy.ID, 0)
	require.NoError(t, err)
	require.Equal(t, syncs.UserSuccess, got.Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.sync_user_accounts`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.outbox WHERE type = $1`, syncs.EventUserFinished))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.outbox WHERE type = $1`, syncs.EventCompleted))
	s, err := b.store.GetSync(b.ctx, b.client, sy.ID)
	require.NoError(t, err)
	require.Equal(t, syncs.Completed, s.Status)
	require.Equal(t, 1, s.Succeeded)
	require.True(t, b.now.Equal(s.CompletedAt))
}

func TestUsersFinishingAtOnceCompleteTheSyncOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 40
	sy, userIDs := newSync(t, b, n)
	resolveAll(t, b, sy, userIDs)
	statuses := []syncs.UserStatus{syncs.UserSuccess, syncs.UserPartial, syncs.UserError, syncs.UserSuccess}

	// Every user is finished twice, all at once.
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	var mu sync.Mutex
	recorded := 0
	for i := range 2 * n {
		wg.Go(func() {
			pos := i % n
			ok, err := b.store.Finish(b.ctx, b.client, result(sy, pos, userIDs[pos], statuses[pos%len(statuses)], b.now))
			errs <- err
			if ok {
				mu.Lock()
				recorded++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, n, recorded)
	s, err := b.store.GetSync(b.ctx, b.client, sy.ID)
	require.NoError(t, err)
	require.Equal(t, syncs.Completed, s.Status)
	require.Equal(t, []int{0, 20, 10, 10}, []int{s.Pending, s.Succeeded, s.Partial, s.Failed})
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM sync.outbox WHERE type = $1`, syncs.EventUserFinished))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.outbox WHERE type = $1`, syncs.EventCompleted))
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM sync.sync_user_accounts`))
}

func TestClaimersTakeEachDueScheduleOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 100
	for range n {
		require.NoError(t, b.store.AddSchedule(b.ctx, syncs.Schedule{
			ConsentID: ids.New("cns"), ClientID: b.client, UserID: ids.New("usr"), IntervalHours: 24, NextRunAt: b.now.Add(-time.Minute),
		}, b.now.Add(-time.Hour)))
	}
	job := func(sc syncs.Schedule) syncs.Job {
		return syncs.Job{Kind: syncs.JobScheduleRefresh, Args: sc.ConsentID, UniqueKey: "schedule:" + sc.ConsentID}
	}
	var wg sync.WaitGroup
	claimed := make(chan int, 1000)
	for range 4 {
		wg.Go(func() {
			for {
				k, err := b.store.ClaimDueSchedules(b.ctx, b.now, 7, job)
				if err != nil || k == 0 {
					claimed <- 0
					return
				}
				claimed <- k
			}
		})
	}
	wg.Wait()
	close(claimed)
	total := 0
	for k := range claimed {
		total += k
	}
	require.Equal(t, n, total)
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobScheduleRefresh))
	require.Equal(t, n, b.count(t, `SELECT count(*) FROM sync.schedules WHERE next_run_at = $1`, b.now.Add(24*time.Hour-time.Minute)))
}
