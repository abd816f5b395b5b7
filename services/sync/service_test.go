package syncs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/secretbox"
	syncs "puente.dev/services/sync"
	syncpg "puente.dev/services/sync/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a controlled time source: it moves only when the test moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// ---- fakes of the three services a sync calls

// directory is a fake authtoken: users by client.
type directory struct {
	mu    sync.Mutex
	users map[string][]syncs.DirectoryUser // by client
	calls []int                            // how many references each call asked about
	fail  func(call int) error             // the error of the n-th call (1-based), if any
}

func (d *directory) add(clientID, externalRef string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := ids.New("usr")
	d.users[clientID] = append(d.users[clientID], syncs.DirectoryUser{ID: id, ExternalRef: externalRef})
	return id
}

func (d *directory) Resolve(_ context.Context, clientID string, userIDs, externalRefs []string) ([]syncs.DirectoryUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, len(userIDs)+len(externalRefs))
	if d.fail != nil {
		if err := d.fail(len(d.calls)); err != nil {
			return nil, err
		}
	}
	wantID, wantRef := set(userIDs), set(externalRefs)
	var out []syncs.DirectoryUser
	for _, u := range d.users[clientID] {
		if wantID[u.ID] || (u.ExternalRef != "" && wantRef[u.ExternalRef]) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (d *directory) Calls() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.calls...)
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// consents is a fake consent service: AUTHORISED consents by user.
type consents struct {
	mu     sync.Mutex
	byUser map[string][]syncs.Consent
}

func (c *consents) add(userID, institutionID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := ids.New("cns")
	c.byUser[userID] = append(c.byUser[userID], syncs.Consent{ID: id, InstitutionID: institutionID})
	return id
}

func (c *consents) ListAuthorised(_ context.Context, _, userID string) ([]syncs.Consent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]syncs.Consent(nil), c.byUser[userID]...), nil
}

// refresher is a fake extraction service: a scripted outcome per consent (all accounts
// SUCCESS by default), and an optional hook run on every call.
type refresher struct {
	mu       sync.Mutex
	outcomes map[string]syncs.Refresh
	errs     map[string]error
	calls    map[string]int
	failed   map[string][]string // the upstreamFailed of each consent's last call
	hook     func(ctx context.Context, consentID string)
}

func (r *refresher) set(consentID string, out syncs.Refresh) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[consentID] = out
}

func (r *refresher) fail(consentID string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[consentID] = err
}

func (r *refresher) Refresh(ctx context.Context, _, consentID string, upstreamFailed []string) (syncs.Refresh, error) {
	r.mu.Lock()
	r.calls[consentID]++
	r.failed[consentID] = upstreamFailed
	out, ok := r.outcomes[consentID]
	err, hook := r.errs[consentID], r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(ctx, consentID)
	}
	if err != nil {
		return syncs.Refresh{}, err
	}
	if !ok {
		out = syncs.Refresh{Accounts: []syncs.AccountRefresh{{AccountID: "acc_of_" + consentID, Status: syncs.AccountSuccess}}}
	}
	return out, nil
}

func (r *refresher) Calls(consentID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[consentID]
}

// ---- the bundle

// bundle is one test's service over its own database, with a controlled clock, fakes and a job
// worker on the same clock.
type bundle struct {
	ctx       context.Context
	url       string
	pool      *pgxpool.Pool
	svc       *syncs.Service
	api       *syncs.GRPC
	clock     *clock
	worker    *jobs.Worker
	dir       *directory
	consents  *consents
	refresher *refresher
	client    string
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type options struct {
	cfg syncs.Config // its Workers is the test worker's concurrency, as in the process
}

func setup(t testing.TB, opts ...func(*options)) bundle {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, syncpg.Migrate(ctx, dbURL))
	pool, err := postgres.Open(ctx, withPoolSize(t, dbURL, 32), syncpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	o := options{cfg: syncs.Config{EncryptionKeys: secretbox.NewKeySpec("t1"), InstitutionConcurrency: 8, DefaultInterval: 24 * time.Hour, Workers: 4, Lease: time.Minute,
		UpstreamTimeout: 30 * time.Minute, BatchGather: 2 * time.Second}}
	for _, f := range opts {
		f(&o)
	}
	dir := &directory{users: map[string][]syncs.DirectoryUser{}}
	cons := &consents{byUser: map[string][]syncs.Consent{}}
	ref := &refresher{outcomes: map[string]syncs.Refresh{}, errs: map[string]error{}, calls: map[string]int{}, failed: map[string][]string{}}
	svc, err := syncs.NewService(syncpg.New(pool), dir, cons, ref, o.cfg, discard())
	require.NoError(t, err)
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	svc.SetClock(clk.Now)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Handlers: svc.Handlers(), Now: clk.Now, Logger: discard(), Concurrency: o.cfg.Workers})
	return bundle{
		ctx: ctx, url: dbURL, pool: pool, svc: svc, api: syncs.NewGRPC(svc), clock: clk, worker: w,
		dir: dir, consents: cons, refresher: ref, client: ids.New("cli"),
	}
}

func withPoolSize(t testing.TB, raw string, n int) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

func clientP(clientID string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: clientID}
}

var serviceP = caller.Principal{Kind: apiv1.Principal_PRINCIPAL_SERVICE}

// as is a request context carrying a client's principal, as the auth interceptor makes it.
func (b bundle) as(clientID string) context.Context { return caller.With(b.ctx, clientP(clientID)) }

// runJobs runs every job due by the test's clock.
func (b bundle) runJobs(t testing.TB) {
	t.Helper()
	_, err := b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
}

func (b bundle) createSync(t testing.TB, users ...syncs.UserRef) syncs.Sync {
	t.Helper()
	sy, err := b.svc.CreateSync(b.ctx, clientP(b.client), users)
	require.NoError(t, err)
	return sy
}

func (b bundle) getSync(t testing.TB, id string) syncs.Sync {
	t.Helper()
	sy, err := b.svc.GetSync(b.ctx, clientP(b.client), id)
	require.NoError(t, err)
	return sy
}

func (b bundle) results(t testing.TB, syncID string, st syncs.UserStatus) []syncs.UserResult {
	t.Helper()
	rs, err := b.svc.ListSyncResults(b.ctx, clientP(b.client), syncID, st, syncs.ResultsPage{After: -1, Limit: syncs.MaxPageSize})
	require.NoError(t, err)
	return rs
}

// superuser connects to the test's database as the cluster's superuser, to look under the store.
func (b bundle) superuser(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(b.ctx, b.url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func (b bundle) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.superuser(t).QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

type event struct {
	Type string
	Data map[string]any
}

// events returns the outbox rows of a flow (a sync, a consent), oldest first.
func (b bundle) events(t testing.TB, flowID string) []event {
	t.Helper()
	rows, err := b.superuser(t).Query(b.ctx, `SELECT type, data FROM sync.outbox WHERE flow_id = $1 AND client_id = $2 ORDER BY created_at, id`, flowID, b.client)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (e event, err error) {
		err = r.Scan(&e.Type, &e.Data)
		return e, err
	})
	require.NoError(t, err)
	return out
}

// userEvents indexes a sync's per-user events by the user's reference (user_id or external_ref)
// and checks there is exactly one per user.
func userEvents(t testing.TB, evs []event) map[string]event {
	t.Helper()
	out := map[string]event{}
	for _, e := range evs {
		if e.Type == syncs.EventCompleted {
			continue
		}
		key, _ := e.Data["external_ref"].(string)
		if key == "" {
			key, _ = e.Data["user_id"].(string)
		}
		_, dup := out[key]
		require.False(t, dup, "a second final event for %s: %v", key, e)
		out[key] = e
	}
	return out
}

func typesOf(evs []event) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		out[e.Type]++
	}
	return out
}

func requireInvalid(t testing.TB, err error, field string) *apierr.Error {
	t.Helper()
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, apierr.InvalidArgument, e.Kind, "kind of %v", err)
	require.NotEmpty(t, e.Fields, "field violations of %v", err)
	require.Equal(t, field, e.Fields[0].Field)
	return e
}

func requireKind(t testing.TB, err error, kind apierr.Kind) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, kind, apierr.KindOf(err), "kind of %v", err)
}

func byID(id string) syncs.UserRef   { return syncs.UserRef{UserID: id} }
func byRef(ref string) syncs.UserRef { return syncs.UserRef{ExternalRef: ref} }

func account(id, consentID, st, reason string) map[string]any {
	m := map[string]any{"account_id": id, "consent_id": consentID, "status": st}
	if reason != "" {
		m["reason"] = reason
	}
	return m
}

// ---- accepting a sync

func TestCreateSyncAcceptsFiveThousandUsersAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := &syncv1.CreateSyncRequest{}
	for i := range syncs.MaxUsers {
		if i%2 == 0 {
			req.Users = append(req.Users, &syncv1.UserRef{Ref: &syncv1.UserRef_UserId{UserId: ids.New("usr")}})
		} else {
			req.Users = append(req.Users, &syncv1.UserRef{Ref: &syncv1.UserRef_ExternalRef{ExternalRef: fmt.Sprintf("ref-%d", i)}})
		}
	}
	resp, err := b.api.CreateSync(b.as(b.client), req)
	require.NoError(t, err)
	sy := resp.GetSync()
	require.Equal(t, syncv1.SyncStatus_SYNC_STATUS_RUNNING, sy.GetStatus())
	require.EqualValues(t, 5000, sy.GetTotalUsers())
	require.EqualValues(t, 5000, sy.GetPendingUsers())
	require.Zero(t, sy.GetSucceededUsers()+sy.GetPartialUsers()+sy.GetFailedUsers()+sy.GetNotFoundUsers())
	require.True(t, b.clock.Now().Equal(sy.GetCreateTime().AsTime()))
	require.Nil(t, sy.GetCompleteTime())

	require.Empty(t, b.dir.Calls(), "nothing is resolved before the answer")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs`), "exactly one job")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1 AND unique_key = $2`, syncs.JobFanout, "fanout:"+sy.GetId()))
	require.Equal(t, 5000, b.count(t, `SELECT count(*) FROM sync.sync_users WHERE sync_id = $1 AND status = 'PENDING' AND NOT resolved`, sy.GetId()))

	got, err := b.api.GetSync(b.as(b.client), &syncv1.GetSyncRequest{Id: sy.GetId()})
	require.NoError(t, err)
	require.EqualValues(t, 5000, got.GetSync().GetPendingUsers())

	// The users are kept in the order sent.
	page, err := b.api.ListSyncResults(b.as(b.client), &syncv1.ListSyncResultsRequest{Id: sy.GetId(), PageSize: 3})
	require.NoError(t, err)
	require.Len(t, page.GetResults(), 3)
	for i, r := range page.GetResults() {
		require.Equal(t, req.Users[i].GetUserId(), r.GetUser().GetUserId())
		require.Equal(t, req.Users[i].GetExternalRef(), r.GetUser().GetExternalRef())
		require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_PENDING, r.GetStatus())
	}
}

func TestCreateSyncRefusesBadBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("more than 5000 users, naming users and the limit", func(t *testing.T) {
		users := make([]syncs.UserRef, syncs.MaxUsers+1)
		for i := range users {
			users[i] = byRef(fmt.Sprintf("ref-%d", i))
		}
		_, err := b.svc.CreateSync(b.ctx, clientP(b.client), users)
		e := requireInvalid(t, err, "users")
		require.Contains(t, e.Message, "5000")

		_, err = b.api.CreateSync(b.as(b.client), &syncv1.CreateSyncRequest{Users: make([]*syncv1.UserRef, syncs.MaxUsers+1)})
		require.Equal(t, codes.InvalidArgument, statusCode(err))
	})
	for _, tc := range []struct {
		name  string
		users []syncs.UserRef
		field string
	}{
		{"no users", nil, "users"},
		{"a reference naming nobody", []syncs.UserRef{byRef("a"), {}}, "users[1]"},
		{"a reference naming a user twice over", []syncs.UserRef{{UserID: ids.New("usr"), ExternalRef: "a"}}, "users[0]"},
		{"a user id that is not one", []syncs.UserRef{byID("cli_01JD0000000000000000000000")}, "users[0].user_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.svc.CreateSync(b.ctx, clientP(b.client), tc.users)
			requireInvalid(t, err, tc.field)
		})
	}
	t.Run("only clients", func(t *testing.T) {
		_, err := b.svc.CreateSync(b.ctx, serviceP, []syncs.UserRef{byRef("a")})
		requireKind(t, err, apierr.PermissionDenied)
	})
	require.Zero(t, b.count(t, `SELECT count(*) FROM sync.syncs`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM sync.jobs`))
}

func statusCode(err error) codes.Code {
	if st, internal := apierr.Status(err); !internal {
		return st.Code()
	}
	return status.Code(err)
}

func TestCreateSyncKeepsTheFirstOfDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := ids.New("usr")
	sy := b.createSync(t, byID(alice), byRef("bob"), byID(alice), byRef("bob"), byRef(alice))
	require.Equal(t, 3, sy.Total)
	rs := b.results(t, sy.ID, "")
	require.Len(t, rs, 3)
	require.Equal(t, []syncs.UserRef{byID(alice), byRef("bob"), byRef(alice)}, []syncs.UserRef{rs[0].Ref, rs[1].Ref, rs[2].Ref})
	require.Equal(t, []int{0, 1, 2}, []int{rs[0].Position, rs[1].Position, rs[2].Position})
}

func TestCreateSyncIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.as(b.client)
	req := func(requestID string, refs ...string) *syncv1.CreateSyncRequest {
		r := &syncv1.CreateSyncRequest{RequestId: requestID}
		for _, ref := range refs {
			r.Users = append(r.Users, &syncv1.UserRef{Ref: &syncv1.UserRef_ExternalRef{ExternalRef: ref}})
		}
		return r
	}
	first, err := b.api.CreateSync(ctx, req("req-1", "a", "b"))
	require.NoError(t, err)
	b.clock.Advance(time.Minute)
	again, err := b.api.CreateSync(ctx, req("req-1", "a", "b"))
	require.NoError(t, err)
	require.Equal(t, first.GetSync().GetId(), again.GetSync().GetId())
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.syncs`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs`))

	_, err = b.api.CreateSync(ctx, req("req-1", "a", "c"))
	requireInvalid(t, err, "request_id")
	require.ErrorIs(t, err, syncs.ErrRequestIDReused)

	// Request ids are per client.
	other, err := b.api.CreateSync(b.as(ids.New("cli")), req("req-1", "a", "b"))
	require.NoError(t, err)
	require.NotEqual(t, first.GetSync().GetId(), other.GetSync().GetId())
	// Without one, every request is a sync.
	for range 2 {
		_, err := b.api.CreateSync(ctx, req("", "a"))
		require.NoError(t, err)
	}
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM sync.syncs`))
}

// ---- running a sync

func TestSyncRefreshesEveryUserAndReportsEachOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	insA, insB := ids.New("ins"), ids.New("ins")

	alice := b.dir.add(b.client, "alice-ref") // two consents, every account refreshed: SUCCESS
	aliceC1, aliceC2 := b.consents.add(alice, insA), b.consents.add(alice, insB)
	b.refresher.set(aliceC1, syncs.Refresh{Accounts: []syncs.AccountRefresh{{AccountID: "acc_a1", Status: syncs.AccountSuccess}, {AccountID: "acc_a2", Status: syncs.AccountSuccess}}})
	b.refresher.set(aliceC2, syncs.Refresh{Accounts: []syncs.AccountRefresh{{AccountID: "acc_a3", Status: syncs.AccountSuccess}}})

	bob := b.dir.add(b.client, "bob-ref") // sent by external_ref; one account fails: PARTIAL
	bobC := b.consents.add(bob, insA)
	b.refresher.set(bobC, syncs.Refresh{Accounts: []syncs.AccountRefresh{
		{AccountID: "acc_b1", Status: syncs.AccountSuccess}, {AccountID: "acc_b2", Status: syncs.AccountError, Reason: "LOGIN_REQUIRED"},
	}})

	carol := b.dir.add(b.client, "carol-ref") // no consent: ERROR NO_AUTHORISED_CONSENT

	dave := b.dir.add(b.client, "") // the bank is down for the whole consent: ERROR with its reason
	daveC := b.consents.add(dave, insB)
	b.refresher.set(daveC, syncs.Refresh{Reason: "INSTITUTION_UNAVAILABLE"})

	stranger := b.dir.add(ids.New("cli"), "stranger-ref") // another client's user: NOT_FOUND
	unknown := ids.New("usr")                             // nobody's: NOT_FOUND

	sy := b.createSync(t, byID(alice), byRef("bob-ref"), byID(carol), byID(dave), byID(unknown), byRef("nobody"), byID(stranger), byRef("stranger-ref"))
	b.clock.Advance(time.Second)
	b.runJobs(t)

	got := b.getSync(t, sy.ID)
	require.Equal(t, syncs.Completed, got.Status)
	require.Equal(t, 8, got.Total)
	require.Zero(t, got.Pending)
	require.Equal(t, 1, got.Succeeded)
	require.Equal(t, 1, got.Partial)
	require.Equal(t, 2, got.Failed)
	require.Equal(t, 4, got.NotFound)
	require.True(t, b.clock.Now().Equal(got.CompletedAt))

	rs := b.results(t, sy.ID, "")
	require.Len(t, rs, 8)
	type row struct {
		userID string
		status syncs.UserStatus
		reason string
		n      int
	}
	want := []row{
		{alice, syncs.UserSuccess, "", 3}, {bob, syncs.UserPartial, "", 2}, {carol, syncs.UserError, syncs.ReasonNoAuthorisedConsent, 0},
		{dave, syncs.UserError, "INSTITUTION_UNAVAILABLE", 1},
		{"", syncs.UserNotFound, "", 0}, {"", syncs.UserNotFound, "", 0}, {"", syncs.UserNotFound, "", 0}, {"", syncs.UserNotFound, "", 0},
	}
	for i, w := range want {
		require.Equal(t, i, rs[i].Position)
		require.Equal(t, w, row{rs[i].UserID, rs[i].Status, rs[i].Reason, len(rs[i].Accounts)}, "user %d", i)
		require.True(t, b.clock.Now().Equal(rs[i].FinishedAt), "user %d has its finish time", i)
	}
	require.Equal(t, []syncs.AccountResult{
		{AccountID: "acc_a1", ConsentID: aliceC1, Status: syncs.AccountSuccess},
		{AccountID: "acc_a2", ConsentID: aliceC1, Status: syncs.AccountSuccess},
		{AccountID: "acc_a3", ConsentID: aliceC2, Status: syncs.AccountSuccess},
	}, rs[0].Accounts)
	require.Equal(t, []syncs.AccountResult{{ConsentID: daveC, Status: syncs.AccountError, Reason: "INSTITUTION_UNAVAILABLE"}}, rs[3].Accounts)

	// Exactly one final event per user, and one for the sync.
	evs := b.events(t, sy.ID)
	require.Equal(t, map[string]int{syncs.EventUserFinished: 4, syncs.EventUserNotFound: 4, syncs.EventCompleted: 1}, typesOf(evs))
	require.Equal(t, syncs.EventCompleted, evs[len(evs)-1].Type, "the sync's event comes last")
	require.Equal(t, map[string]any{
		"sync_id": sy.ID, "total_users": 8.0, "succeeded_users": 1.0, "partial_users": 1.0, "failed_users": 2.0, "not_found_users": 4.0,
	}, evs[len(evs)-1].Data)

	byUser := userEvents(t, evs)
	require.Len(t, byUser, 8)
	require.Equal(t, event{syncs.EventUserFinished, map[string]any{
		"sync_id": sy.ID, "user_id": alice, "status": "SUCCESS", "accounts": []any{
			account("acc_a1", aliceC1, "SUCCESS", ""), account("acc_a2", aliceC1, "SUCCESS", ""), account("acc_a3", aliceC2, "SUCCESS", ""),
		},
	}}, byUser[alice])
	require.Equal(t, event{syncs.EventUserFinished, map[string]any{
		"sync_id": sy.ID, "user_id": bob, "external_ref": "bob-ref", "status": "PARTIAL", "accounts": []any{
			account("acc_b1", bobC, "SUCCESS", ""), account("acc_b2", bobC, "ERROR", "LOGIN_REQUIRED"),
		},
	}}, byUser["bob-ref"])
	require.Equal(t, event{syncs.EventUserFinished, map[string]any{
		"sync_id": sy.ID, "user_id": carol, "status": "ERROR", "reason": "NO_AUTHORISED_CONSENT", "accounts": []any{},
	}}, byUser[carol])
	require.Equal(t, event{syncs.EventUserFinished, map[string]any{
		"sync_id": sy.ID, "user_id": dave, "status": "ERROR", "reason": "INSTITUTION_UNAVAILABLE", "accounts": []any{
			account("", daveC, "ERROR", "INSTITUTION_UNAVAILABLE"),
		},
	}}, byUser[dave])
	require.Equal(t, event{syncs.EventUserNotFound, map[string]any{"sync_id": sy.ID, "user_id": unknown}}, byUser[unknown])
	require.Equal(t, event{syncs.EventUserNotFound, map[string]any{"sync_id": sy.ID, "external_ref": "nobody"}}, byUser["nobody"])
	require.Equal(t, event{syncs.EventUserNotFound, map[string]any{"sync_id": sy.ID, "user_id": stranger}}, byUser[stranger])
	require.Equal(t, event{syncs.EventUserNotFound, map[string]any{"sync_id": sy.ID, "external_ref": "stranger-ref"}}, byUser["stranger-ref"])

	// Every refresh ran once; nothing is left to run, and running again changes nothing.
	for _, c := range []string{aliceC1, aliceC2, bobC, daveC} {
		require.Equal(t, 1, b.refresher.Calls(c))
	}
	require.Equal(t, []int{8}, b.dir.Calls(), "one chunk, one call")
	b.clock.Advance(24 * time.Hour)
	b.runJobs(t)
	require.Len(t, b.events(t, sy.ID), 9)

	t.Run("results filter by status", func(t *testing.T) {
		nf := b.results(t, sy.ID, syncs.UserNotFound)
		require.Len(t, nf, 4)
		require.Equal(t, 4, nf[0].Position)
		errs := b.results(t, sy.ID, syncs.UserError)
		require.Equal(t, []int{2, 3}, []int{errs[0].Position, errs[1].Position})
		resp, err := b.api.ListSyncResults(b.as(b.client), &syncv1.ListSyncResultsRequest{Id: sy.ID, Status: syncv1.UserResultStatus_USER_RESULT_STATUS_PARTIAL})
		require.NoError(t, err)
		require.Len(t, resp.GetResults(), 1)
		p := resp.GetResults()[0]
		require.Equal(t, "bob-ref", p.GetUser().GetExternalRef())
		require.Equal(t, bob, p.GetUserId())
		require.Len(t, p.GetAccounts(), 2)
		require.Equal(t, syncv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_ERROR, p.GetAccounts()[1].GetStatus())
		require.Equal(t, "LOGIN_REQUIRED", p.GetAccounts()[1].GetReason())
	})

	t.Run("results page by position", func(t *testing.T) {
		var got []string
		var sizes []int
		token := ""
		for {
			require.Less(t, len(sizes), 10)
			resp, err := b.api.ListSyncResults(b.as(b.client), &syncv1.ListSyncResultsRequest{Id: sy.ID, PageSize: 3, PageToken: token})
			require.NoError(t, err)
			sizes = append(sizes, len(resp.GetResults()))
			for _, r := range resp.GetResults() {
				got = append(got, r.GetUser().GetUserId()+r.GetUser().GetExternalRef())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		require.Equal(t, []int{3, 3, 2}, sizes)
		require.Equal(t, []string{alice, "bob-ref", carol, dave, unknown, "nobody", stranger, "stranger-ref"}, got)
		_, err := b.api.ListSyncResults(b.as(b.client), &syncv1.ListSyncResultsRequest{Id: sy.ID, PageToken: "not-a-token"})
		requireInvalid(t, err, "page_token")
	})
}

// userJob is the job of one user of a sync, as the fan-out queues it.
func userJob(t testing.TB, b bundle, sy syncs.Sync, position int, userID string, attempt int) jobs.Job {
	t.Helper()
	args, err := json.Marshal(map[string]any{"sync_id": sy.ID, "client_id": b.client, "position": position, "user_id": userID})
	require.NoError(t, err)
	return jobs.Job{Kind: syncs.JobUser, Args: args, Attempt: attempt, MaxAttempts: 10}
}

func TestAUserJobRunTwiceRecordsOneResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice, bob := b.dir.add(b.client, ""), b.dir.add(b.client, "")
	aliceC := b.consents.add(alice, ids.New("ins"))
	b.consents.add(bob, ids.New("ins"))
	sy := b.createSync(t, byID(alice), byID(bob))

	// The fan-out queues the users' jobs; a duplicate of alice's (a crash after her refresh,
	// before the job was marked done) is queued beside it.
	b.runFanoutOnly(t, sy)
	require.NoError(t, jobs.Enqueue(b.ctx, b.pool, syncs.JobUser, json.RawMessage(userJob(t, b, sy, 0, alice, 1).Args), jobs.EnqueueOptions{RunAt: b.clock.Now()}))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobUser))
	b.runJobs(t)

	// And the handler once more, by hand.
	require.NoError(t, b.svc.Handlers()[syncs.JobUser](b.ctx, userJob(t, b, sy, 0, alice, 1)))

	got := b.getSync(t, sy.ID)
	require.Equal(t, syncs.Completed, got.Status)
	require.Equal(t, 2, got.Succeeded)
	evs := b.events(t, sy.ID)
	require.Equal(t, map[string]int{syncs.EventUserFinished: 2, syncs.EventCompleted: 1}, typesOf(evs))
	require.Len(t, userEvents(t, evs), 2)
	require.Len(t, b.results(t, sy.ID, "")[0].Accounts, 1, "one set of account results")
	require.LessOrEqual(t, b.refresher.Calls(aliceC), 2, "the handler found her finished and refreshed nothing more")
}

// runFanoutOnly runs a sync's fan-out job by hand, leaving the user jobs it queues in the queue.
func (b bundle) runFanoutOnly(t testing.TB, sy syncs.Sync) {
	t.Helper()
	args, err := json.Marshal(map[string]string{"sync_id": sy.ID, "client_id": b.client})
	require.NoError(t, err)
	require.NoError(t, b.svc.Handlers()[syncs.JobFanout](b.ctx, jobs.Job{Kind: syncs.JobFanout, Args: args, Attempt: 1, MaxAttempts: 12}))
}

func TestAnInterruptedFanoutResumesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = syncs.FanoutChunk + 100
	refs := make([]syncs.UserRef, n)
	for i := range refs {
		if i%3 == 2 {
			refs[i] = byRef(fmt.Sprintf("nobody-%d", i)) // not found
			continue
		}
		refs[i] = byID(b.dir.add(b.client, "")) // found, without consents: ERROR
	}
	// The directory answers the first chunk, then fails once.
	b.dir.fail = func(call int) error {
		if call == 2 {
			return status.Error(codes.Unavailable, "authtoken is restarting")
		}
		return nil
	}
	sy := b.createSync(t, refs...)
	b.runJobs(t)

	require.Equal(t, []int{syncs.FanoutChunk, 100}, b.dir.Calls())
	require.Equal(t, syncs.FanoutChunk, b.count(t, `SELECT count(*) FROM sync.sync_users WHERE sync_id = $1 AND resolved`, sy.ID))
	require.Equal(t, 100, b.getSync(t, sy.ID).Pending, "the first chunk is done, the second waits")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1 AND state = 'available'`, syncs.JobFanout), "the fan-out waits to retry")

	b.clock.Advance(time.Hour)
	b.runJobs(t)
	require.Equal(t, []int{syncs.FanoutChunk, 100, 100}, b.dir.Calls(), "the retry asks about the second chunk only")

	got := b.getSync(t, sy.ID)
	require.Equal(t, syncs.Completed, got.Status)
	require.Equal(t, n/3, got.NotFound)
	require.Equal(t, n-n/3, got.Failed)
	require.Equal(t, n-n/3, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobUser), "one job per user found")
	require.Equal(t, n-n/3, b.count(t, `SELECT count(DISTINCT unique_key) FROM sync.jobs WHERE kind = $1`, syncs.JobUser))
	evs := b.events(t, sy.ID)
	require.Len(t, userEvents(t, evs), n)
	require.Equal(t, map[string]int{syncs.EventUserFinished: n - n/3, syncs.EventUserNotFound: n / 3, syncs.EventCompleted: 1}, typesOf(evs))

	// A fan-out run again (a lease that ended) finds nothing to do.
	b.runFanoutOnly(t, sy)
	require.Len(t, b.dir.Calls(), 3)
	require.Len(t, b.events(t, sy.ID), n+1)
}

func TestAFanoutWhoseDirectoryKeepsFailingEndsItsUsersInternal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.dir.fail = func(int) error { return status.Error(codes.Unavailable, "down") }
	alice := ids.New("usr")
	sy := b.createSync(t, byID(alice), byRef("bob-ref"))
	attempts := b.count(t, `SELECT max_attempts FROM sync.jobs WHERE kind = $1`, syncs.JobFanout)
	require.Greater(t, attempts, 1)
	for attempt := 1; attempt <= attempts; attempt++ {
		b.runJobs(t)
		require.Len(t, b.dir.Calls(), attempt)
		if attempt < attempts {
			require.Equal(t, syncs.Running, b.getSync(t, sy.ID).Status, "attempt %d", attempt)
		}
		b.clock.Advance(2 * time.Hour)
	}
	got := b.getSync(t, sy.ID)
	require.Equal(t, syncs.Completed, got.Status)
	require.Equal(t, 2, got.Failed)
	byUser := userEvents(t, b.events(t, sy.ID))
	require.Equal(t, event{syncs.EventUserFinished, map[string]any{
		"sync_id": sy.ID, "user_id": alice, "status": "ERROR", "reason": "INTERNAL", "accounts": []any{},
	}}, byUser[alice])
	require.Equal(t, "INTERNAL", byUser["bob-ref"].Data["reason"])
}

func TestARefreshThatKeepsFailingIsRetriedThenEndsInternal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.dir.add(b.client, "")
	c := b.consents.add(alice, ids.New("ins"))
	b.refresher.fail(c, status.Error(codes.Unavailable, "extraction is down"))
	sy := b.createSync(t, byID(alice))

	b.runJobs(t) // the fan-out, and the user's first attempt
	attempts := b.count(t, `SELECT max_attempts FROM sync.jobs WHERE kind = $1`, syncs.JobUser)
	require.Greater(t, attempts, 1)
	for attempt := 1; attempt <= attempts; attempt++ {
		require.Equal(t, attempt, b.refresher.Calls(c))
		if attempt < attempts {
			require.Equal(t, syncs.UserPending, b.results(t, sy.ID, "")[0].Status, "attempt %d: retried, not final yet", attempt)
			require.Empty(t, userEvents(t, b.events(t, sy.ID)))
		}
		b.clock.Advance(time.Hour) // past any backoff
		b.runJobs(t)
	}
	require.Equal(t, attempts, b.refresher.Calls(c), "no attempt after the last")
	r := b.results(t, sy.ID, "")[0]
	require.Equal(t, syncs.UserError, r.Status)
	require.Equal(t, syncs.ReasonInternal, r.Reason)
	require.Equal(t, []syncs.AccountResult{{ConsentID: c, Status: syncs.AccountError, Reason: "INTERNAL"}}, r.Accounts)
	require.Equal(t, syncs.Completed, b.getSync(t, sy.ID).Status)
	ev := userEvents(t, b.events(t, sy.ID))[alice]
	require.Equal(t, "ERROR", ev.Data["status"])
	require.Equal(t, "INTERNAL", ev.Data["reason"])
	require.Zero(t, b.count(t, `SELECT count(*) FROM sync.jobs WHERE state IN ('available', 'running')`))
}

func TestRefreshesPerInstitutionStayWithinTheBound(t *testing.T) {
	t.Parallel()
	const bound = 2
	b := setup(t, func(o *options) {
		o.cfg.InstitutionConcurrency = bound
		o.cfg.Workers = 10
	})
	busy, quiet := ids.New("ins"), ids.New("ins")
	institution := map[string]string{}
	var refs []syncs.UserRef
	for i := range 7 {
		u := b.dir.add(b.client, "")
		ins := busy
		if i == 6 {
			ins = quiet
		}
		institution[b.consents.add(u, ins)] = ins
		refs = append(refs, byID(u))
	}

	// Every refresh reports that it started, and waits for the test to let it go.
	type entry struct{ institution string }
	entered := make(chan entry, 16)
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight, most := map[string]int{}, map[string]int{}
	b.refresher.hook = func(ctx context.Context, consentID string) {
		ins := institution[consentID]
		mu.Lock()
		inFlight[ins]++
		most[ins] = max(most[ins], inFlight[ins])
		mu.Unlock()
		entered <- entry{ins}
		select {
		case <-release:
		case <-ctx.Done():
		}
		mu.Lock()
		inFlight[ins]--
		mu.Unlock()
	}

	sy := b.createSync(t, refs...)
	done := make(chan error, 1)
	go func() {
		_, err := b.worker.RunOnce(b.ctx)
		done <- err
	}()
	// Seven user jobs run at once: the busy institution's bound fills, and the quiet one is not
	// held up behind it.
	seen := map[string]int{}
	for seen[busy] < bound || seen[quiet] < 1 {
		e := <-entered
		seen[e.institution]++
		require.LessOrEqual(t, seen[busy], bound, "more refreshes at once than the bound")
	}
	close(release)
	require.NoError(t, <-done)

	mu.Lock()
	require.Equal(t, bound, most[busy])
	require.Equal(t, 1, most[quiet])
	mu.Unlock()
	got := b.getSync(t, sy.ID)
	require.Equal(t, syncs.Completed, got.Status)
	require.Equal(t, 7, got.Succeeded)
}

// ---- tenancy

func TestAnotherClientsSyncsAndSchedulesReadAsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sy := b.createSync(t, byRef("a"))
	consentID := ids.New("cns")
	require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, syncs.ConsentChange{
		ClientID: b.client, ConsentID: consentID, UserID: ids.New("usr"), Status: syncs.ConsentAuthorised,
	}))
	other := b.as(ids.New("cli"))

	_, err := b.api.GetSync(other, &syncv1.GetSyncRequest{Id: sy.ID})
	requireNotFound(t, err, "sync not found")
	_, err = b.api.ListSyncResults(other, &syncv1.ListSyncResultsRequest{Id: sy.ID})
	requireNotFound(t, err, "sync not found")
	_, err = b.api.GetSchedule(other, &syncv1.GetScheduleRequest{ConsentId: consentID})
	requireNotFound(t, err, "schedule not found")
	paused := true
	_, err = b.api.UpdateSchedule(other, &syncv1.UpdateScheduleRequest{ConsentId: consentID, Paused: &paused})
	requireNotFound(t, err, "schedule not found")

	// Unknown ids read the same.
	_, err = b.api.GetSync(b.as(b.client), &syncv1.GetSyncRequest{Id: ids.New("syn")})
	requireNotFound(t, err, "sync not found")
	_, err = b.api.GetSchedule(b.as(b.client), &syncv1.GetScheduleRequest{ConsentId: ids.New("cns")})
	requireNotFound(t, err, "schedule not found")

	// And the owner's are untouched.
	sc, err := b.svc.GetSchedule(b.ctx, clientP(b.client), consentID)
	require.NoError(t, err)
	require.False(t, sc.Paused)
}

func requireNotFound(t testing.TB, err error, message string) {
	t.Helper()
	requireKind(t, err, apierr.NotFound)
	require.EqualError(t, err, message)
}

// ---- schedules

func (b bundle) consentChanged(t testing.TB, consentID, userID, st string, at time.Time) {
	t.Helper()
	require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, syncs.ConsentChange{
		ClientID: b.client, ConsentID: consentID, UserID: userID, Status: st, ChangedAt: at,
	}))
}

func (b bundle) schedule(t testing.TB, consentID string) (syncs.Schedule, error) {
	t.Helper()
	return b.svc.GetSchedule(b.ctx, clientP(b.client), consentID)
}

func TestAnAuthorisedConsentGetsASpreadSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := b.clock.Now().Add(-time.Minute)
	first, second := "cns_01JD0000000000000000000001", "cns_01JD0000000000000000000002"
	user := ids.New("usr")
	b.consentChanged(t, first, user, syncs.ConsentAuthorised, at)
	b.consentChanged(t, second, user, syncs.ConsentAuthorised, at)

	a, err := b.schedule(t, first)
	require.NoError(t, err)
	require.Equal(t, 24, a.IntervalHours)
	require.False(t, a.Paused)
	require.True(t, a.LastRunAt.IsZero())
	for _, sc := range []syncs.Schedule{a, must(b.schedule(t, second))} {
		require.False(t, sc.NextRunAt.Before(at), "first run at or after the change")
		require.True(t, sc.NextRunAt.Before(at.Add(24*time.Hour)), "first run within one interval")
	}
	require.NotEqual(t, a.NextRunAt, must(b.schedule(t, second)).NextRunAt, "two consents authorised at once refresh at different times")

	// Told twice, nothing moves.
	b.consentChanged(t, first, user, syncs.ConsentAuthorised, at.Add(time.Second))
	require.Equal(t, a, must(b.schedule(t, first)))

	// Only the consent service tells.
	err = b.svc.ConsentChanged(b.ctx, clientP(b.client), syncs.ConsentChange{ClientID: b.client, ConsentID: first, UserID: user, Status: syncs.ConsentRevoked})
	requireKind(t, err, apierr.PermissionDenied)
	resp, err := b.api.GetSchedule(b.as(b.client), &syncv1.GetScheduleRequest{ConsentId: first})
	require.NoError(t, err)
	require.EqualValues(t, 24, resp.GetSchedule().GetIntervalHours())
	require.True(t, a.NextRunAt.Equal(resp.GetSchedule().GetNextRunTime().AsTime()))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAFinalStatusEndsTheScheduleForGood(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := b.clock.Now()
	user := ids.New("usr")

	t.Run("revoked, then a stale AUTHORISED", func(t *testing.T) {
		c := ids.New("cns")
		b.consentChanged(t, c, user, syncs.ConsentAuthorised, at)
		_, err := b.schedule(t, c)
		require.NoError(t, err)
		b.consentChanged(t, c, user, syncs.ConsentRevoked, at.Add(time.Hour))
		_, err = b.schedule(t, c)
		requireNotFound(t, err, "schedule not found")

		b.consentChanged(t, c, user, syncs.ConsentAuthorised, at)
		_, err = b.schedule(t, c)
		requireNotFound(t, err, "schedule not found")
		b.consentChanged(t, c, user, syncs.ConsentAuthorised, at.Add(2*time.Hour)) // even a later one: final is final
		_, err = b.schedule(t, c)
		requireNotFound(t, err, "schedule not found")
		b.consentChanged(t, c, user, syncs.ConsentRevoked, at.Add(time.Hour)) // a repeat
		_, err = b.schedule(t, c)
		requireNotFound(t, err, "schedule not found")
	})
	t.Run("expired before AUTHORISED arrived", func(t *testing.T) {
		c := ids.New("cns")
		b.consentChanged(t, c, user, syncs.ConsentExpired, at.Add(time.Hour))
		b.consentChanged(t, c, user, syncs.ConsentAuthorised, at)
		_, err := b.schedule(t, c)
		requireNotFound(t, err, "schedule not found")
	})
	t.Run("rejected", func(t *testing.T) {
		c := ids.New("cns")
		b.consentChanged(t, c, user, syncs.ConsentRejected, at)
		_, err := b.schedule(t, c)
		requireNotFound(t, err, "schedule not found")
	})
	t.Run("an ended schedule is never run", func(t *testing.T) {
		c := ids.New("cns")
		b.consentChanged(t, c, user, syncs.ConsentAuthorised, at)
		b.consentChanged(t, c, user, syncs.ConsentRevoked, at)
		b.clock.Advance(48 * time.Hour)
		require.NoError(t, b.svc.RunDueSchedules(b.ctx))
		require.Zero(t, b.count(t, `SELECT count(*) FROM sync.jobs WHERE unique_key = $1`, "schedule:"+c))
	})
}

func TestDueSchedulesRefreshOnceAndMoveOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user := ids.New("usr")
	c := ids.New("cns")
	b.consentChanged(t, c, user, syncs.ConsentAuthorised, b.clock.Now())
	sc := must(b.schedule(t, c))
	refreshJobs := func() int {
		return b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1 AND unique_key = $2`, syncs.JobScheduleRefresh, "schedule:"+c)
	}

	b.clock.Set(sc.NextRunAt.Add(-time.Second))
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	require.Zero(t, refreshJobs(), "not due yet")

	b.clock.Set(sc.NextRunAt)
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	require.Equal(t, 1, refreshJobs(), "queued once")
	moved := must(b.schedule(t, c))
	require.True(t, sc.NextRunAt.Add(24*time.Hour).Equal(moved.NextRunAt), "the next run is an interval on")

	b.refresher.set(c, syncs.Refresh{
		Accounts: []syncs.AccountRefresh{{AccountID: "acc_1", Status: syncs.AccountSuccess}, {AccountID: "acc_2", Status: syncs.AccountError, Reason: "LOGIN_REQUIRED"}},
	})
	b.runJobs(t)
	require.Equal(t, 1, b.refresher.Calls(c))
	ran := must(b.schedule(t, c))
	require.True(t, b.clock.Now().Equal(ran.LastRunAt))
	require.Equal(t, syncs.UserPartial, ran.LastStatus)
	require.Empty(t, b.events(t, c), "changed transactions are announced by the extraction service, with the data")

	b.refresher.set(c, syncs.Refresh{Accounts: []syncs.AccountRefresh{{AccountID: "acc_1", Status: syncs.AccountSuccess}}})
	b.clock.Set(moved.NextRunAt)
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	b.runJobs(t)
	require.Equal(t, 2, b.refresher.Calls(c))
	require.Equal(t, syncs.UserSuccess, must(b.schedule(t, c)).LastStatus)

	// Days missed (the process was down): one refresh, and the next run keeps its phase.
	next := must(b.schedule(t, c)).NextRunAt
	b.clock.Set(next.Add(3*24*time.Hour + time.Minute))
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	b.runJobs(t)
	require.Equal(t, 3, b.refresher.Calls(c))
	require.True(t, next.Add(4*24*time.Hour).Equal(must(b.schedule(t, c)).NextRunAt))
}

func TestUpdateSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := ids.New("cns")
	b.consentChanged(t, c, ids.New("usr"), syncs.ConsentAuthorised, b.clock.Now())
	ctx := b.as(b.client)
	paused, resumed := true, false

	resp, err := b.api.UpdateSchedule(ctx, &syncv1.UpdateScheduleRequest{ConsentId: c, Paused: &paused})
	require.NoError(t, err)
	require.True(t, resp.GetSchedule().GetPaused())
	sc := must(b.schedule(t, c))
	require.True(t, sc.Paused)

	// Paused, it is not run however late it gets.
	b.clock.Set(sc.NextRunAt.Add(time.Hour))
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	require.Zero(t, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobScheduleRefresh))

	// Resumed, it runs.
	_, err = b.api.UpdateSchedule(ctx, &syncv1.UpdateScheduleRequest{ConsentId: c, Paused: &resumed})
	require.NoError(t, err)
	require.NoError(t, b.svc.RunDueSchedules(b.ctx))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.jobs WHERE kind = $1`, syncs.JobScheduleRefresh))
	b.runJobs(t)
	lastRun := must(b.schedule(t, c)).LastRunAt
	require.True(t, b.clock.Now().Equal(lastRun))

	// A new interval counts from the last run.
	b.clock.Advance(time.Hour)
	resp, err = b.api.UpdateSchedule(ctx, &syncv1.UpdateScheduleRequest{ConsentId: c, IntervalHours: 6})
	require.NoError(t, err)
	require.EqualValues(t, 6, resp.GetSchedule().GetIntervalHours())
	require.False(t, resp.GetSchedule().GetPaused(), "a field not sent stays as it is")
	require.True(t, lastRun.Add(6*time.Hour).Equal(resp.GetSchedule().GetNextRunTime().AsTime()))

	// Zero leaves it; out of range is refused.
	resp, err = b.api.UpdateSchedule(ctx, &syncv1.UpdateScheduleRequest{ConsentId: c})
	require.NoError(t, err)
	require.EqualValues(t, 6, resp.GetSchedule().GetIntervalHours())
	_, err = b.svc.UpdateSchedule(b.ctx, clientP(b.client), c, syncs.ScheduleUpdate{IntervalHours: syncs.MaxIntervalHours + 1})
	requireInvalid(t, err, "interval_hours")

	// Before any run, from now.
	fresh := ids.New("cns")
	b.consentChanged(t, fresh, ids.New("usr"), syncs.ConsentAuthorised, b.clock.Now())
	sc, err = b.svc.UpdateSchedule(b.ctx, clientP(b.client), fresh, syncs.ScheduleUpdate{IntervalHours: 2})
	require.NoError(t, err)
	require.True(t, b.clock.Now().Add(2*time.Hour).Equal(sc.NextRunAt))
}

func TestHousekeepDeletesOldRequestIDsAndTombstones(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.api.CreateSync(b.as(b.client), &syncv1.CreateSyncRequest{RequestId: "req-1", Users: []*syncv1.UserRef{{Ref: &syncv1.UserRef_ExternalRef{ExternalRef: "a"}}}})
	require.NoError(t, err)
	c := ids.New("cns")
	b.consentChanged(t, c, ids.New("usr"), syncs.ConsentRevoked, b.clock.Now())
	live := ids.New("cns")
	b.consentChanged(t, live, ids.New("usr"), syncs.ConsentAuthorised, b.clock.Now())

	require.NoError(t, b.svc.Housekeep(b.ctx))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.idempotency_keys`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM sync.schedules`))

	b.clock.Advance(31 * 24 * time.Hour)
	require.NoError(t, b.svc.Housekeep(b.ctx))
	require.Zero(t, b.count(t, `SELECT count(*) FROM sync.idempotency_keys`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sync.schedules`), "the live schedule stays")
	_, err = b.schedule(t, live)
	require.NoError(t, err)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	ok := syncs.Config{EncryptionKeys: secretbox.NewKeySpec("t1"), InstitutionConcurrency: 8, DefaultInterval: 24 * time.Hour, Workers: 16, Lease: time.Minute,
		UpstreamTimeout: 30 * time.Minute, BatchGather: 2 * time.Second}
	require.NoError(t, ok.Validate())
	for name, f := range map[string]func(*syncs.Config){
		"no keys":               func(c *syncs.Config) { c.EncryptionKeys = "" },
		"no concurrency":        func(c *syncs.Config) { c.InstitutionConcurrency = 0 },
		"no workers":            func(c *syncs.Config) { c.Workers = 0 },
		"an interval of 90m":    func(c *syncs.Config) { c.DefaultInterval = 90 * time.Minute },
		"an interval of 31days": func(c *syncs.Config) { c.DefaultInterval = 31 * 24 * time.Hour },
		"no upstream timeout":   func(c *syncs.Config) { c.UpstreamTimeout = 0 },
		"a gather of 2m":        func(c *syncs.Config) { c.BatchGather = 2 * time.Minute },
	} {
		c := ok
		f(&c)
		require.Error(t, c.Validate(), name)
	}
}

// ---- the accept path against its baseline

// BenchmarkCreateSync5000 accepts a sync of 5,000 users; BenchmarkBareCopy5000 is its baseline,
// the bare COPY of 5,000 such rows in a transaction.
func BenchmarkCreateSync5000(b *testing.B) {
	bb := setup(b)
	users := make([]syncs.UserRef, syncs.MaxUsers)
	for i := range users {
		users[i] = byID(ids.New("usr"))
	}
	for b.Loop() {
		if _, err := bb.svc.CreateSync(bb.ctx, clientP(bb.client), users); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareCopy5000(b *testing.B) {
	bb := setup(b)
	rows := make([][]any, syncs.MaxUsers)
	for i := range rows {
		rows[i] = []any{"", int32(i), "user_id", ids.New("usr")}
	}
	for b.Loop() {
		id := ids.New("syn")
		for _, r := range rows {
			r[0] = id
		}
		err := pgx.BeginFunc(bb.ctx, bb.pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(bb.ctx, pgx.Identifier{"sync_users"}, []string{"sync_id", "position", "ref_kind", "ref_value"}, pgx.CopyFromRows(rows))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func TestAUserWhoseJobFailedForGoodIsSweptToOneFinalResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.dir.add(b.client, "")
	bob := b.dir.add(b.client, "")
	c := b.consents.add(alice, ids.New("ins"))
	b.consents.add(bob, ids.New("ins"))
	sy := b.createSync(t, byID(alice), byID(bob))
	require.NoError(t, b.svc.Sweep(b.ctx))
	require.Equal(t, 2, b.getSync(t, sy.ID).Pending, "a fan-out still to run strands no one")

	b.runJobs(t)
	require.Equal(t, syncs.Completed, b.getSync(t, sy.ID).Status)

	// A process that dies during a job's last attempt leaves the job failed without running it
	// again: here alice's user job of a second sync.
	b.refresher.fail(c, status.Error(codes.Unavailable, "extraction is down"))
	sy2 := b.createSync(t, byID(alice), byID(bob))
	b.runJobs(t)
	_, err := b.superuser(t).Exec(b.ctx, `UPDATE sync.jobs SET state = 'failed', finished_at = now() WHERE kind = $1 AND state = 'available'`, syncs.JobUser)
	require.NoError(t, err)
	require.Equal(t, 1, b.getSync(t, sy2.ID).Pending)

	require.NoError(t, b.svc.Sweep(b.ctx))
	require.NoError(t, b.svc.Sweep(b.ctx), "a second sweep finds nothing")
	s := b.getSync(t, sy2.ID)
	require.Equal(t, syncs.Completed, s.Status)
	r := b.results(t, sy2.ID, "")[0]
	require.Equal(t, syncs.UserError, r.Status)
	require.Equal(t, syncs.ReasonInternal, r.Reason)
	require.Len(t, userEvents(t, b.events(t, sy2.ID)), 2, "one event per user, the swept one included")
}
