package extraction_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/sandboxdata"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/extraction"
	extpg "puente.dev/services/extraction/postgres"
	"puente.dev/services/extraction/sandbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ---- a controlled clock

// clock moves only when the test moves it. It starts an hour ahead of the database's clock, so
// that jobs enqueued "now" (by the database's clock) are due for the worker, while jobs the
// service schedules itself (purges, retries) wait until the test moves it.
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

// ---- fakes of the consent and connection services

// fakeConsents is the consent service: consents by id, each of one client.
type fakeConsents struct {
	mu sync.Mutex
	m  map[string]extraction.Consent
}

func (f *fakeConsents) Get(_ context.Context, clientID, id string) (extraction.Consent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.m[id]
	if !ok || c.ClientID != clientID {
		return extraction.Consent{}, extraction.ErrConsentNotFound
	}
	c.Products = slices.Clone(c.Products)
	return c, nil
}

func (f *fakeConsents) ListAuthorised(_ context.Context, clientID, userID string) ([]extraction.Consent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []extraction.Consent
	for _, id := range slices.Sorted(maps.Keys(f.m)) {
		c := f.m[id]
		if c.ClientID == clientID && c.UserID == userID && c.Status == extraction.ConsentAuthorised {
			c.Products = slices.Clone(c.Products)
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeConsents) put(c extraction.Consent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[c.ID] = c
}

func (f *fakeConsents) setStatus(id string, st extraction.ConsentStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.m[id]
	c.Status = st
	f.m[id] = c
}

func (f *fakeConsents) setProducts(id string, products ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.m[id]
	c.Products = products
	f.m[id] = c
}

// fakeConnections is the connection service: links by connection id, each of one client.
type fakeConnections struct {
	mu sync.Mutex
	m  map[string]fakeLink
}

type fakeLink struct {
	clientID string
	link     extraction.Link
}

func (f *fakeConnections) Link(_ context.Context, clientID, id string) (extraction.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.m[id]
	if !ok || l.clientID != clientID {
		return extraction.Link{}, errors.New("fake connections: no such connection")
	}
	out := l.link
	out.State = slices.Clone(out.State)
	return out, nil
}

func (f *fakeConnections) put(clientID string, l extraction.Link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[l.ConnectionID] = fakeLink{clientID: clientID, link: l}
}

func (f *fakeConnections) update(id string, fn func(l *extraction.Link)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.m[id]
	fn(&l.link)
	f.m[id] = l
}

// linkState is the sandbox login state the connection service keeps for a linked user.
func linkState(user string, day int) []byte {
	return fmt.Appendf(nil, `{"v":1,"inst":"sandbox-cl-banco-arena","user":%q,"phase":"linked","day":%d}`, user, day)
}

// flakyProvider is the sandbox behind an upstream that fails as scripted: each queued error
// answers one Accounts call.
type flakyProvider struct {
	inner *sandbox.Provider

	mu       sync.Mutex
	failures []error
	calls    int
}

const flakyName = "flaky"

func (p *flakyProvider) Name() string { return flakyName }

func (p *flakyProvider) failNext(errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = append(p.failures, errs...)
}

func (p *flakyProvider) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *flakyProvider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	p.mu.Lock()
	p.calls++
	var err error
	if len(p.failures) > 0 {
		err, p.failures = p.failures[0], p.failures[1:]
	}
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return p.inner.Accounts(ctx, l)
}

func (p *flakyProvider) Transactions(ctx context.Context, l extraction.Link, accountID string) (extraction.UpstreamTransactions, error) {
	return p.inner.Transactions(ctx, l, accountID)
}

func (p *flakyProvider) Identity(ctx context.Context, l extraction.Link) (extraction.Identity, error) {
	return p.inner.Identity(ctx, l)
}

// ---- one test's world

type bundle struct {
	ctx      context.Context
	pool     *pgxpool.Pool
	admin    *pgx.Conn // superuser, to look under the store
	svc      *extraction.Service
	api      *extraction.GRPC
	store    *extpg.Store
	clock    *clock
	worker   *jobs.Worker
	consents *fakeConsents
	links    *fakeConnections
	flaky    *flakyProvider
	client   string
}

const purgeAfter = 24 * time.Hour

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func setup(t *testing.T) bundle {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, extpg.Migrate(ctx, url))
	pool, err := postgres.Open(ctx, url, extpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })

	consents := &fakeConsents{m: map[string]extraction.Consent{}}
	links := &fakeConnections{m: map[string]fakeLink{}}
	flaky := &flakyProvider{inner: sandbox.New()}
	store := extpg.New(pool)
	cfg := extraction.Config{
		EncryptionKeys: secretbox.NewKeySpec("t1"), Sandbox: true, PurgeAfter: purgeAfter, ProviderConcurrency: 4, Workers: 1,
	}
	svc, err := extraction.NewService(store, consents, links, []extraction.Provider{sandbox.New(), flaky}, cfg, discard())
	require.NoError(t, err)
	clk := &clock{now: time.Now().UTC().Add(time.Hour).Truncate(time.Second)}
	svc.SetClock(clk.Now)
	return bundle{
		ctx: ctx, pool: pool, admin: admin, svc: svc, api: extraction.NewGRPC(svc), store: store, clock: clk,
		worker:   jobs.NewWorker(jobs.Options{Pool: pool, Handlers: svc.Handlers(), Now: clk.Now, Concurrency: 1, Logger: discard()}),
		consents: consents, links: links, flaky: flaky, client: ids.New("cli"),
	}
}

// ---- principals, as the auth interceptor makes them

func clientP(clientID string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: clientID}
}

func taskP(clientID, userID, consentID string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_TASK, ClientID: clientID, UserID: userID, ConsentID: consentID}
}

var serviceP = caller.Principal{Kind: apiv1.Principal_PRINCIPAL_SERVICE}

// ---- helpers

var allProducts = []string{
	extraction.ProductAccounts, extraction.ProductBalances, extraction.ProductTransactions, extraction.ProductIdentity, extraction.ProductReports,
}

// consentSpec says what newConsent makes; zero fields take the bundle's defaults.
type consentSpec struct {
	client, user, seed, provider string
	products                     []string
}

// newConsent makes an AUTHORISED consent of a sandbox user linked at Banco Arena (Chile), day 0.
func (b bundle) newConsent(t *testing.T, s consentSpec) extraction.Consent {
	t.Helper()
	if s.client == "" {
		s.client = b.client
	}
	if s.user == "" {
		s.user = ids.New("usr")
	}
	if s.seed == "" {
		s.seed = "user_good"
	}
	if s.provider == "" {
		s.provider = sandbox.Name
	}
	if s.products == nil {
		s.products = allProducts
	}
	c := extraction.Consent{
		ID: ids.New("cns"), ClientID: s.client, UserID: s.user, InstitutionID: ids.New("ins"), ConnectionID: ids.New("con"),
		Products: slices.Clone(s.products), Status: extraction.ConsentAuthorised,
	}
	b.consents.put(c)
	b.links.put(s.client, extraction.Link{
		ConnectionID: c.ConnectionID, Succeeded: true, Provider: s.provider, InstitutionID: c.InstitutionID,
		InstitutionExternalID: "sandbox-cl-banco-arena", Country: "CL", State: linkState(s.seed, 0),
	})
	return c
}

// setDay moves the sandbox bank of c's connection to day.
func (b bundle) setDay(c extraction.Consent, seed string, day int) {
	b.links.update(c.ConnectionID, func(l *extraction.Link) { l.State = linkState(seed, day) })
}

// runJobs runs every job due by the test's clock.
func (b bundle) runJobs(t *testing.T) int {
	t.Helper()
	ran, err := b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	return ran
}

// extract asks for product of c as its client, runs the jobs and returns the finished extraction.
func (b bundle) extract(t *testing.T, c extraction.Consent, product string) extraction.Extraction {
	t.Helper()
	e, err := b.svc.CreateExtraction(b.ctx, clientP(c.ClientID), c.ID, product)
	require.NoError(t, err)
	b.runJobs(t)
	got, err := b.svc.GetExtraction(b.ctx, clientP(c.ClientID), e.ID)
	require.NoError(t, err)
	require.NotEqual(t, extraction.Pending, got.Status, "the extraction finished")
	return got
}

func (b bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.admin.QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

type event struct {
	Type     string
	ClientID string
	Data     map[string]any
}

// events returns the outbox rows of a flow (an extraction, a report), oldest first.
func (b bundle) events(t *testing.T, flowID string) []event {
	t.Helper()
	rows, err := b.admin.Query(b.ctx, `SELECT type, client_id, data FROM extraction.outbox WHERE flow_id = $1 ORDER BY created_at, id`, flowID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (e event, err error) {
		err = r.Scan(&e.Type, &e.ClientID, &e.Data)
		return e, err
	})
	require.NoError(t, err)
	return out
}

type jobRow struct {
	State    string
	Attempts int
	RunAt    time.Time
}

func (b bundle) jobOf(t *testing.T, kind, id string) jobRow {
	t.Helper()
	var j jobRow
	require.NoError(t, b.admin.QueryRow(b.ctx, `SELECT state, attempts, run_at FROM extraction.jobs WHERE kind = $1 AND args->>'id' = $2`, kind, id).
		Scan(&j.State, &j.Attempts, &j.RunAt))
	return j
}

// dataRows counts a consent's rows in each table that holds its data.
func (b bundle) dataRows(t *testing.T, consentID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"accounts", "transactions", "identities", "reports"} {
		out[table] = b.count(t, `SELECT count(*) FROM extraction.`+table+` WHERE consent_id = $1`, consentID)
	}
	return out
}

// requireAPIError asserts err carries an *apierr.Error of kind, with reason when reason is set.
func requireAPIError(t *testing.T, err error, kind apierr.Kind, reason string) {
	t.Helper()
	var ae *apierr.Error
	require.True(t, errors.As(err, &ae), "want an *apierr.Error, got %v", err)
	require.Equal(t, kind, ae.Kind, "kind of %v", err)
	if reason != "" {
		require.Equal(t, reason, ae.Reason, "reason of %v", err)
	}
}

func requireNotFound(t *testing.T, err error) {
	t.Helper()
	requireAPIError(t, err, apierr.NotFound, "")
}

func (b bundle) accounts(t *testing.T, c extraction.Consent) []extraction.Account {
	t.Helper()
	accs, err := b.svc.ListAccounts(b.ctx, clientP(c.ClientID), c.ID, "", extraction.Page{Limit: 50})
	require.NoError(t, err)
	return accs
}

func accountOfType(t *testing.T, accs []extraction.Account, typ string) extraction.Account {
	t.Helper()
	for _, a := range accs {
		if a.Type == typ {
			return a
		}
	}
	t.Fatalf("no %s account among %d", typ, len(accs))
	return extraction.Account{}
}

// transactions lists every live transaction of c, by our id.
func (b bundle) transactions(t *testing.T, c extraction.Consent) map[string]extraction.Transaction {
	t.Helper()
	out := map[string]extraction.Transaction{}
	for _, a := range b.accounts(t, c) {
		ts, err := b.svc.ListTransactions(b.ctx, clientP(c.ClientID), a.ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 1000})
		require.NoError(t, err)
		for _, x := range ts {
			out[x.ID] = x
		}
	}
	return out
}

// bank is what the sandbox upstream shows for a seed on a day: the test's oracle.
func bank(seed string, day int) sandboxdata.Bank {
	return sandboxdata.Snapshot(sandboxdata.Login{Seed: seed, Country: "CL"}, day)
}

func upstreamIDs(bk sandboxdata.Bank) []string {
	var out []string
	for _, ts := range bk.Transactions {
		for _, x := range ts {
			out = append(out, x.ID)
		}
	}
	return out
}

// windowFrom is the first date the sandbox's transaction list covers in full on day.
func windowFrom(day int) string {
	anchor, err := time.Parse(time.DateOnly, sandboxdata.AnchorDate)
	if err != nil {
		panic(err)
	}
	return anchor.AddDate(0, 0, day+2-sandboxdata.DataDays).Format(time.DateOnly)
}

func (b bundle) sync(t *testing.T, p caller.Principal, consentID, cursor string, count int) extraction.SyncResult {
	t.Helper()
	r, err := b.svc.SyncTransactions(b.ctx, p, consentID, cursor, count)
	require.NoError(t, err)
	return r
}

// mirror is a client's copy of a consent's transactions, kept by applying syncs.
type mirror map[string]extraction.Transaction

func (m mirror) apply(t *testing.T, r extraction.SyncResult) {
	t.Helper()
	for _, x := range r.Added {
		require.NotContains(t, m, x.ID, "added twice")
		m[x.ID] = x
	}
	for _, x := range r.Modified {
		require.Contains(t, m, x.ID, "modified before it was added")
		m[x.ID] = x
	}
	for _, x := range r.Removed {
		require.Contains(t, m, x.ID, "removed before it was added")
		delete(m, x.ID)
	}
}

// ---- extractions

func TestExtractionSucceedsWithCountsAndOneEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newConsent(t, consentSpec{})
	day0 := bank("user_good", 0)
	total := len(upstreamIDs(day0))
	require.Greater(t, total, 40, "the sandbox's window has transactions")

	e, err := b.svc.CreateExtraction(b.ctx, clientP(b.client), c.ID, extraction.ProductTransactions)
	require.NoError(t, err)
	require.True(t, ids.Valid("ext", e.ID), e.ID)
	require.Equal(t, extraction.Pending, e.Status)
	require.True(t, b.clock.Now().Equal(e.CreatedAt))
	require.Empty(t, b.events(t, e.ID), "nothing is announced before it runs")

	b.clock.Advance(time.Minute)
	require.Equal(t, 1, b.runJobs(t))
	got, err := b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
	require.NoError(t, err)
	require.Equal(t, extraction.Succeeded, got.Status)
	require.Empty(t, got.Reason)
	require.Equal(t, extraction.Counts{Added: total}, got.Counts)
	require.True(t, b.clock.Now().Equal(got.FinishedAt))

	evs := b.events(t, e.ID)
	require.Len(t, evs, 1)
	require.Equal(t, "extraction.completed", evs[0].Type)
	require.Equal(t, b.client, evs[0].ClientID)
	require.Equal(t, map[string]any{
		"extraction_id": e.ID, "consent_id": c.ID, "product": "TRANSACTIONS", "status": "SUCCEEDED",
		"added": float64(total), "modified": float64(0), "removed": float64(0),
	}, evs[0].Data)

	// What is stored is what the upstream has.
	accs := b.accounts(t, c)
	require.Len(t, accs, len(day0.Accounts))
	for _, up := range day0.Accounts {
		i := slices.IndexFunc(accs, func(a extraction.Account) bool { return a.UpstreamAccount.ID == up.ID })
		require.GreaterOrEqual(t, i, 0, "account %s stored", up.ID)
		a := accs[i]
		require.Equal(t, up.Type, a.Type)
		require.Equal(t, "CLP", a.Currency, "Link.Country picks the currency")
		require.True(t, a.HasBalance, "the consent covers BALANCES")
		require.Equal(t, up.BalanceCurrent, a.Balance.Current)
		require.Equal(t, c.UserID, a.UserID)
		ts, err := b.svc.ListTransactions(b.ctx, clientP(b.client), a.ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 1000})
		require.NoError(t, err)
		var gotIDs, wantIDs []string
		for _, x := range ts {
			gotIDs = append(gotIDs, x.UpstreamTransaction.ID)
			require.True(t, ids.Valid("txn", x.ID), "our id %q", x.ID)
		}
		for _, x := range day0.Transactions[up.ID] {
			wantIDs = append(wantIDs, x.ID)
		}
		require.ElementsMatch(t, wantIDs, gotIDs)
	}

	t.Run("extracting again changes nothing", func(t *testing.T) {
		for _, product := range []string{extraction.ProductTransactions, extraction.ProductAccounts, extraction.ProductBalances} {
			again := b.extract(t, c, product)
			require.Equal(t, extraction.Succeeded, again.Status, product)
			require.Equal(t, extraction.Counts{}, again.Counts, product)
			evs := b.events(t, again.ID)
			require.Len(t, evs, 1, product)
			require.Equal(t, float64(0), evs[0].Data["added"])
		}
		require.Len(t, b.transactions(t, c), total, "nothing duplicated")
	})

	t.Run("identity is added once, then updated", func(t *testing.T) {
		first := b.extract(t, c, extraction.ProductIdentity)
		require.Equal(t, extraction.Succeeded, first.Status)
		require.Equal(t, extraction.Counts{Added: 1}, first.Counts)
		id, err := b.svc.GetIdentity(b.ctx, clientP(b.client), c.ID)
		require.NoError(t, err)
		require.Equal(t, day0.Identity.Names, id.Names)
		require.Equal(t, day0.Identity.TaxID, id.TaxID)
		require.Equal(t, "RUT", id.TaxIDType)
		require.True(t, b.clock.Now().Equal(id.UpdatedAt))
		require.Zero(t, b.count(t, `SELECT count(*) FROM extraction.identities WHERE position($1::bytea in sealed) > 0`, []byte(day0.Identity.TaxID)),
			"the identity is stored sealed")

		second := b.extract(t, c, extraction.ProductIdentity)
		require.Equal(t, extraction.Counts{Modified: 1}, second.Counts)
	})

	t.Run("a product that is not extracted is refused", func(t *testing.T) {
		_, err := b.svc.CreateExtraction(b.ctx, clientP(b.client), c.ID, extraction.ProductReports)
		requireAPIError(t, err, apierr.InvalidArgument, "")
	})
}

func TestExtractionJobRunTwiceRecordsOneOutcome(t *testing.T) {
	t.Parallel()
	total := len(upstreamIDs(bank("user_good", 0)))

	t.Run("the handler called twice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.newConsent(t, consentSpec{})
		e, err := b.svc.CreateExtraction(b.ctx, clientP(b.client), c.ID, extraction.ProductTransactions)
		require.NoError(t, err)
		run := b.svc.Handlers()[extraction.JobExtract]
		job := jobs.Job{Kind: extraction.JobExtract, Args: json.RawMessage(`{"id":"` + e.ID + `"}`), Attempt: 1, MaxAttempts: 8}
		require.NoError(t, run(b.ctx, job))
		first, err := b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
		require.NoError(t, err)

		b.clock.Advance(time.Minute)
		require.NoError(t, run(b.ctx, job))
		require.Equal(t, 1, b.runJobs(t), "the queued job runs too")

		got, err := b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
		require.NoError(t, err)
		require.Equal(t, first, got, "the first outcome stands")
		require.Equal(t, extraction.Counts{Added: total}, got.Counts)
		require.Len(t, b.events(t, e.ID), 1)
		require.Len(t, b.transactions(t, c), total)
	})

	t.Run("a duplicate job row", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.newConsent(t, consentSpec{})
		e, err := b.svc.CreateExtraction(b.ctx, clientP(b.client), c.ID, extraction.ProductTransactions)
		require.NoError(t, err)
		_, err = b.admin.Exec(b.ctx, `SET search_path = extraction`)
		require.NoError(t, err)
		require.NoError(t, jobs.Enqueue(b.ctx, b.admin, extraction.JobExtract, map[string]string{"id": e.ID}, jobs.EnqueueOptions{MaxAttempts: 8}))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM extraction.jobs WHERE args->>'id' = $1`, e.ID))

		require.Equal(t, 2, b.runJobs(t))
		got, err := b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
		require.NoError(t, err)
		require.Equal(t, extraction.Succeeded, got.Status)
		require.Equal(t, extraction.Counts{Added: total}, got.Counts)
		require.Len(t, b.events(t, e.ID), 1)
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM extraction.jobs WHERE args->>'id' = $1 AND state = 'done'`, e.ID))
	})
}

// ---- the bank moving on, and /transactions:sync

func TestAdvancingTheBankDaySyncsAddedModifiedRemoved(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const seed = "user_good"
	c := b.newConsent(t, consentSpec{seed: seed})

	first := b.extract(t, c, extraction.ProductTransactions)
	require.Equal(t, extraction.Succeeded, first.Status)
	r := b.sync(t, clientP(b.client), c.ID, "", 500)
	require.False(t, r.HasMore)
	require.Len(t, r.Added, first.Counts.Added)
	require.Empty(t, r.Modified)
	require.Empty(t, r.Removed)
	m := mirror{}
	m.apply(t, r)
	cursor := r.NextCursor

	// The salary of 2026-01-01 is pending on day 0: it books on day 2 under a new upstream id.
	var salary extraction.Transaction
	for _, x := range m {
		if x.Pending && x.Category == "INCOME" && x.BookingDate == "2026-01-01" {
			salary = x
		}
	}
	require.NotEmpty(t, salary.ID, "day 0 has the salary of 2026-01-01 pending")
	require.True(t, strings.HasPrefix(salary.UpstreamTransaction.ID, "pnd_"))
	pendingAtDay0 := map[string]extraction.Transaction{}
	for id, x := range m {
		if x.Pending {
			pendingAtDay0[id] = x
		}
	}

	var removedInAll int
	for day := 1; day <= 5; day++ {
		b.clock.Advance(24 * time.Hour)
		b.setDay(c, seed, day)
		e := b.extract(t, c, extraction.ProductTransactions)
		require.Equal(t, extraction.Succeeded, e.Status, "day %d", day)
		require.Positive(t, e.Counts.Added, "day %d: every day has a new pending transaction", day)
		require.Positive(t, e.Counts.Modified, "day %d: every day something books or is enriched", day)

		r := b.sync(t, clientP(b.client), c.ID, cursor, 500)
		require.False(t, r.HasMore)
		require.Len(t, r.Added, e.Counts.Added, "day %d", day)
		require.Len(t, r.Modified, e.Counts.Modified, "day %d", day)
		require.Len(t, r.Removed, e.Counts.Removed, "day %d", day)
		m.apply(t, r)
		cursor = r.NextCursor
		removedInAll += e.Counts.Removed

		// The client's copy is what the service has.
		require.Equal(t, map[string]extraction.Transaction(m), b.transactions(t, c), "day %d", day)
		// Every transaction the upstream lists is there once; what it no longer lists is older
		// than its window, booked, and kept (it did not go away).
		upIDs := upstreamIDs(bank(seed, day))
		var gotIDs []string
		for _, x := range m {
			if slices.Contains(upIDs, x.UpstreamTransaction.ID) {
				gotIDs = append(gotIDs, x.UpstreamTransaction.ID)
				continue
			}
			require.False(t, x.Pending, "day %d: %+v", day, x)
			require.Less(t, x.BookingDate, windowFrom(day), "day %d: %+v is in the window but not upstream", day, x)
		}
		require.ElementsMatch(t, upIDs, gotIDs, "day %d: the upstream's transactions, each once", day)

		if day == 2 {
			booked, ok := m[salary.ID]
			require.True(t, ok, "the salary kept our id when it booked")
			require.False(t, booked.Pending)
			require.True(t, strings.HasPrefix(booked.UpstreamTransaction.ID, "txn_"), booked.UpstreamTransaction.ID)
			require.Equal(t, "2026-01-02", booked.BookingDate)
			require.Equal(t, salary.AmountMinor, booked.AmountMinor)
			// Every transaction pending on day 0 has booked under our id, or was a hold and went.
			for id := range pendingAtDay0 {
				if x, ok := m[id]; ok {
					require.False(t, x.Pending, "pending since day 0: %+v", x)
				}
			}
		}
	}
	require.Positive(t, removedInAll, "within five days a hold is released")

	t.Run("an extraction that changes nothing leaves the cursor where it is", func(t *testing.T) {
		e := b.extract(t, c, extraction.ProductTransactions)
		require.Equal(t, extraction.Counts{}, e.Counts)
		r := b.sync(t, clientP(b.client), c.ID, cursor, 500)
		require.Empty(t, r.Added)
		require.Empty(t, r.Modified)
		require.Empty(t, r.Removed)
		require.Equal(t, cursor, r.NextCursor)
	})

	t.Run("a cursor of another consent is refused", func(t *testing.T) {
		other := b.newConsent(t, consentSpec{})
		_, err := b.svc.SyncTransactions(b.ctx, clientP(b.client), other.ID, cursor, 10)
		requireAPIError(t, err, apierr.InvalidArgument, "")
	})
}

// A client that starts from an empty cursor has seen nothing: walking the pages must hand it
// every live transaction as added, and nothing it never saw as modified or removed.
func TestSyncFromScratchInPagesAddsEveryTransactionOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const seed = "user_good"
	c := b.newConsent(t, consentSpec{seed: seed})
	b.extract(t, c, extraction.ProductTransactions)
	b.setDay(c, seed, 3)
	e := b.extract(t, c, extraction.ProductTransactions)
	require.Positive(t, e.Counts.Modified)
	live := b.transactions(t, c)

	t.Run("in one page", func(t *testing.T) {
		r := b.sync(t, clientP(b.client), c.ID, "", 1000)
		require.False(t, r.HasMore)
		m := mirror{}
		m.apply(t, r)
		require.Empty(t, r.Modified)
		require.Empty(t, r.Removed)
		require.Equal(t, map[string]extraction.Transaction(m), live)
	})

	t.Run("in pages of ten", func(t *testing.T) {
		var added, modified, removed []string
		cursor, pages := "", 0
		for {
			r := b.sync(t, clientP(b.client), c.ID, cursor, 10)
			pages++
			require.LessOrEqual(t, len(r.Added)+len(r.Modified)+len(r.Removed), 10)
			for _, x := range r.Added {
				added = append(added, x.ID)
			}
			for _, x := range r.Modified {
				modified = append(modified, x.ID)
			}
			for _, x := range r.Removed {
				removed = append(removed, x.ID)
			}
			cursor = r.NextCursor
			if !r.HasMore {
				break
			}
			require.Less(t, pages, 100)
		}
		require.Greater(t, pages, 1)
		describe := func(ids []string) []string {
			var out []string
			for _, id := range ids {
				x := live[id]
				out = append(out, fmt.Sprintf("%s (created at change %d, changed at %d)", id, x.Created, x.Version))
			}
			return out
		}
		require.Empty(t, modified, "nothing the client never saw is modified: %v", describe(modified))
		require.Empty(t, removed, "nothing the client never saw is removed")
		require.ElementsMatch(t, slices.Collect(maps.Keys(live)), added, "every live transaction comes once, as added")
	})
}

func TestListTransactionsPagesNewestFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newConsent(t, consentSpec{})
	b.extract(t, c, extraction.ProductTransactions)
	checking := accountOfType(t, b.accounts(t, c), "DEPOSITORY")
	ctx := caller.With(b.ctx, clientP(b.client))

	all, err := b.svc.ListTransactions(b.ctx, clientP(b.client), checking.ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 1000})
	require.NoError(t, err)
	var want []string
	for _, x := range all {
		want = append(want, x.ID)
	}
	var walked []string
	token := ""
	for range 50 {
		resp, err := b.api.ListTransactions(ctx, &extractionv1.ListTransactionsRequest{AccountId: checking.ID, PageSize: 7, PageToken: token})
		require.NoError(t, err)
		for _, x := range resp.GetTransactions() {
			walked = append(walked, x.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, want, walked, "each transaction once, in the list's order")
	require.True(t, slices.IsSortedFunc(all, func(x, y extraction.Transaction) int { return strings.Compare(y.BookingDate, x.BookingDate) }),
		"newest booking date first")

	t.Run("a date range", func(t *testing.T) {
		ts, err := b.svc.ListTransactions(b.ctx, clientP(b.client), checking.ID, extraction.TransactionFilter{From: "2025-12-01", To: "2025-12-31"}, extraction.TransactionPage{Limit: 1000})
		require.NoError(t, err)
		require.NotEmpty(t, ts)
		for _, x := range ts {
			require.True(t, x.BookingDate >= "2025-12-01" && x.BookingDate <= "2025-12-31", x.BookingDate)
		}
		_, err = b.svc.ListTransactions(b.ctx, clientP(b.client), checking.ID, extraction.TransactionFilter{From: "2026-01-02", To: "2026-01-01"}, extraction.TransactionPage{Limit: 10})
		requireAPIError(t, err, apierr.InvalidArgument, "")
	})

	t.Run("a page token whose date is not a date is refused as such", func(t *testing.T) {
		tok := base64.RawURLEncoding.EncodeToString([]byte("2026-13-45." + ids.New("txn")))
		_, err := b.api.ListTransactions(ctx, &extractionv1.ListTransactionsRequest{AccountId: checking.ID, PageToken: tok})
		requireAPIError(t, err, apierr.InvalidArgument, "")
	})
}

// ---- refreshing for the sync service

func TestRefreshConsent(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("user_partial: the credit card fails, the checking account succeeds", func(t *testing.T) {
		c := b.newConsent(t, consentSpec{seed: "user_partial", products: []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}})
		bk := bank("user_partial", 0)
		var checkingUp sandboxdata.Account
		for _, a := range bk.Accounts {
			if a.Type == "DEPOSITORY" {
				checkingUp = a
			}
		}

		r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
		require.NoError(t, err)
		require.Empty(t, r.Reason)
		require.Len(t, r.Accounts, 2)
		accs := b.accounts(t, c)
		credit, checking := accountOfType(t, accs, "CREDIT"), accountOfType(t, accs, "DEPOSITORY")
		require.ElementsMatch(t, []extraction.AccountResult{
			{AccountID: credit.ID, UpstreamID: credit.UpstreamAccount.ID, OK: false, Reason: "INSTITUTION_UNAVAILABLE"},
			{AccountID: checking.ID, UpstreamID: checking.UpstreamAccount.ID, OK: true},
		}, r.Accounts)
		require.Equal(t, extraction.Counts{Added: len(bk.Transactions[checkingUp.ID])}, r.Counts)

		// Through the API: one account in ERROR, the other SUCCESS; a second refresh adds nothing.
		resp, err := b.api.RefreshConsent(caller.With(b.ctx, serviceP), &extractionv1.RefreshConsentRequest{ClientId: b.client, ConsentId: c.ID})
		require.NoError(t, err)
		require.Empty(t, resp.GetReason())
		require.Zero(t, resp.GetAdded())
		byID := map[string]*extractionv1.AccountResult{}
		for _, a := range resp.GetAccounts() {
			byID[a.GetAccountId()] = a
		}
		require.Len(t, byID, 2)
		require.Equal(t, extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_ERROR, byID[credit.ID].GetStatus())
		require.Equal(t, "INSTITUTION_UNAVAILABLE", byID[credit.ID].GetReason())
		require.Equal(t, extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_SUCCESS, byID[checking.ID].GetStatus())

		// The provider's own synchronization failed for the checking account (a batch refresh's
		// webhook said so): its result is ERROR, an id the consent does not hold changes nothing.
		resp, err = b.api.RefreshConsent(caller.With(b.ctx, serviceP), &extractionv1.RefreshConsentRequest{
			ClientId: b.client, ConsentId: c.ID, UpstreamFailedAccountIds: []string{checking.UpstreamAccount.ID, "no-such-account"},
		})
		require.NoError(t, err)
		for _, a := range resp.GetAccounts() {
			require.Equal(t, extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_ERROR, a.GetStatus())
			if a.GetAccountId() == checking.ID {
				require.Equal(t, "UPSTREAM_SYNC_FAILED", a.GetReason())
			} else {
				require.Equal(t, "INSTITUTION_UNAVAILABLE", a.GetReason(), "a failure of Puente's own read is kept")
			}
		}

		// An extraction of the transactions succeeds, saying it is partial.
		e := b.extract(t, c, extraction.ProductTransactions)
		require.Equal(t, extraction.Succeeded, e.Status)
		require.Equal(t, "PARTIAL: INSTITUTION_UNAVAILABLE", e.Reason)
		require.Equal(t, "PARTIAL: INSTITUTION_UNAVAILABLE", b.events(t, e.ID)[0].Data["reason"])
	})

	for _, tc := range []struct {
		status extraction.ConsentStatus
		reason string
	}{
		{extraction.ConsentRevoked, "CONSENT_REVOKED"},
		{extraction.ConsentExpired, "CONSENT_EXPIRED"},
		{extraction.ConsentRejected, "CONSENT_NOT_AUTHORISED"},
	} {
		t.Run(fmt.Sprintf("a %s consent is a reason and no accounts", tc.status), func(t *testing.T) {
			c := b.newConsent(t, consentSpec{})
			b.consents.setStatus(c.ID, tc.status)
			r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
			require.NoError(t, err)
			require.Equal(t, tc.reason, r.Reason)
			require.Empty(t, r.Accounts)
			require.Equal(t, extraction.Counts{}, r.Counts)
			require.Equal(t, map[string]int{"accounts": 0, "transactions": 0, "identities": 0, "reports": 0}, b.dataRows(t, c.ID))
		})
	}

	t.Run("a consent covering none of accounts, balances and transactions", func(t *testing.T) {
		c := b.newConsent(t, consentSpec{products: []string{"IDENTITY"}})
		r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
		require.NoError(t, err)
		require.Equal(t, extraction.ReasonProductNotConsented, r.Reason)
		require.Empty(t, r.Accounts)
	})

	t.Run("only the service token may refresh, and only naming the consent's client", func(t *testing.T) {
		c := b.newConsent(t, consentSpec{})
		_, err := b.svc.RefreshConsent(b.ctx, clientP(b.client), b.client, c.ID)
		requireAPIError(t, err, apierr.PermissionDenied, "")
		_, err = b.svc.RefreshConsent(b.ctx, serviceP, ids.New("cli"), c.ID)
		requireNotFound(t, err)
		require.Zero(t, b.dataRows(t, c.ID)["accounts"])
	})
}

// ---- who may read what

func TestReadsThroughAConsentThatIsNotAuthorised(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		status extraction.ConsentStatus
		reason string
	}{
		{extraction.ConsentRevoked, "CONSENT_REVOKED"},
		{extraction.ConsentExpired, "CONSENT_EXPIRED"},
		{extraction.ConsentRejected, "CONSENT_NOT_AUTHORISED"},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			c := b.newConsent(t, consentSpec{})
			b.extract(t, c, extraction.ProductTransactions)
			b.extract(t, c, extraction.ProductIdentity)
			rpt, err := b.svc.CreateReport(b.ctx, clientP(b.client), c.ID, "CASH_FLOW")
			require.NoError(t, err)
			b.runJobs(t)
			acc := b.accounts(t, c)[0]
			b.consents.setStatus(c.ID, tc.status)

			p := clientP(b.client)
			denied := func(what string, err error) {
				t.Helper()
				require.Error(t, err, what)
				requireAPIError(t, err, apierr.PermissionDenied, tc.reason)
			}
			_, err = b.svc.ListAccounts(b.ctx, p, c.ID, "", extraction.Page{Limit: 10})
			denied("ListAccounts", err)
			_, err = b.svc.GetAccount(b.ctx, p, acc.ID)
			denied("GetAccount", err)
			_, err = b.svc.ListTransactions(b.ctx, p, acc.ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 10})
			denied("ListTransactions", err)
			_, err = b.svc.SyncTransactions(b.ctx, p, c.ID, "", 10)
			denied("SyncTransactions", err)
			_, err = b.svc.GetIdentity(b.ctx, p, c.ID)
			denied("GetIdentity", err)
			_, err = b.svc.CreateExtraction(b.ctx, p, c.ID, extraction.ProductTransactions)
			denied("CreateExtraction", err)
			_, err = b.svc.CreateReport(b.ctx, p, c.ID, "CASH_FLOW")
			denied("CreateReport", err)
			_, err = b.svc.GetReport(b.ctx, p, rpt.ID)
			denied("GetReport", err)

			// Listing by user skips it.
			accs, err := b.svc.ListAccounts(b.ctx, p, "", c.UserID, extraction.Page{Limit: 10})
			require.NoError(t, err)
			require.Empty(t, accs)
		})
	}
}

func TestProductsNotCovered(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("a consent of accounts only", func(t *testing.T) {
		c := b.newConsent(t, consentSpec{products: []string{"ACCOUNTS"}})
		e := b.extract(t, c, extraction.ProductAccounts)
		require.Equal(t, extraction.Succeeded, e.Status)
		require.Equal(t, extraction.Counts{Added: 2}, e.Counts)
		acc := b.accounts(t, c)[0]
		require.False(t, acc.HasBalance)
		require.Equal(t, extraction.Balance{}, acc.Balance)
		require.Zero(t, b.count(t, `SELECT count(*) FROM extraction.accounts WHERE consent_id = $1 AND (has_balance OR balance_current <> 0)`, c.ID),
			"no balance is stored for a consent without BALANCES")

		p := clientP(b.client)
		notConsented := func(what string, err error) {
			t.Helper()
			require.Error(t, err, what)
			requireAPIError(t, err, apierr.PermissionDenied, extraction.ReasonProductNotConsented)
		}
		_, err := b.svc.ListTransactions(b.ctx, p, acc.ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 10})
		notConsented("ListTransactions", err)
		_, err = b.svc.SyncTransactions(b.ctx, p, c.ID, "", 10)
		notConsented("SyncTransactions", err)
		_, err = b.svc.GetIdentity(b.ctx, p, c.ID)
		notConsented("GetIdentity", err)
		for _, prod := range []string{extraction.ProductTransactions, extraction.ProductIdentity, extraction.ProductBalances} {
			_, err = b.svc.CreateExtraction(b.ctx, p, c.ID, prod)
			notConsented("CreateExtraction "+prod, err)
		}
		_, err = b.svc.CreateReport(b.ctx, p, c.ID, "CASH_FLOW")
		notConsented("CreateReport", err)
	})

	t.Run("a consent of transactions without accounts", func(t *testing.T) {
		c := b.newConsent(t, consentSpec{products: []string{"TRANSACTIONS"}})
		e := b.extract(t, c, extraction.ProductTransactions)
		require.Equal(t, extraction.Succeeded, e.Status)
		_, err := b.svc.ListAccounts(b.ctx, clientP(b.client), c.ID, "", extraction.Page{Limit: 10})
		requireAPIError(t, err, apierr.PermissionDenied, extraction.ReasonProductNotConsented)
	})

	t.Run("balances stored under BALANCES are hidden once the consent no longer covers them", func(t *testing.T) {
		c := b.newConsent(t, consentSpec{products: []string{"ACCOUNTS", "BALANCES"}})
		b.extract(t, c, extraction.ProductAccounts)
		withBalance := accountOfType(t, b.accounts(t, c), "DEPOSITORY")
		require.True(t, withBalance.HasBalance)
		require.NotZero(t, withBalance.Balance.Current)

		b.consents.setProducts(c.ID, "ACCOUNTS")
		got, err := b.svc.GetAccount(b.ctx, clientP(b.client), withBalance.ID)
		require.NoError(t, err)
		require.False(t, got.HasBalance)
		require.Equal(t, extraction.Balance{}, got.Balance)
		for _, a := range b.accounts(t, c) {
			require.False(t, a.HasBalance)
			require.Equal(t, extraction.Balance{}, a.Balance)
		}
		resp, err := b.api.GetAccount(caller.With(b.ctx, clientP(b.client)), &extractionv1.GetAccountRequest{Id: withBalance.ID})
		require.NoError(t, err)
		require.Nil(t, resp.GetAccount().GetBalance())
	})
}

func TestWhoSeesWhat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice, bob := ids.New("usr"), ids.New("usr")
	a1 := b.newConsent(t, consentSpec{user: alice, seed: "user_good"})
	a2 := b.newConsent(t, consentSpec{user: alice, seed: "user_relogin"})
	b1 := b.newConsent(t, consentSpec{user: bob, seed: "user_good"})
	type data struct {
		consent    extraction.Consent
		accounts   []extraction.Account
		extraction string
		report     string
	}
	all := map[string]*data{}
	for _, c := range []extraction.Consent{a1, a2, b1} {
		e := b.extract(t, c, extraction.ProductTransactions)
		b.extract(t, c, extraction.ProductIdentity)
		r, err := b.svc.CreateReport(b.ctx, clientP(b.client), c.ID, "CASH_FLOW")
		require.NoError(t, err)
		b.runJobs(t)
		all[c.ID] = &data{consent: c, accounts: b.accounts(t, c), extraction: e.ID, report: r.ID}
	}

	// canRead reports whether p reads c's accounts, transactions, sync, identity and report,
	// requiring NotFound for each when it may not.
	canRead := func(t *testing.T, p caller.Principal, c extraction.Consent) {
		t.Helper()
		d := all[c.ID]
		_, err := b.svc.ListAccounts(b.ctx, p, c.ID, "", extraction.Page{Limit: 10})
		require.NoError(t, err)
		_, err = b.svc.GetAccount(b.ctx, p, d.accounts[0].ID)
		require.NoError(t, err)
		_, err = b.svc.ListTransactions(b.ctx, p, d.accounts[0].ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 10})
		require.NoError(t, err)
		_, err = b.svc.SyncTransactions(b.ctx, p, c.ID, "", 10)
		require.NoError(t, err)
		_, err = b.svc.GetIdentity(b.ctx, p, c.ID)
		require.NoError(t, err)
		_, err = b.svc.GetReport(b.ctx, p, d.report)
		require.NoError(t, err)
	}
	cannotRead := func(t *testing.T, p caller.Principal, c extraction.Consent) {
		t.Helper()
		d := all[c.ID]
		_, err := b.svc.ListAccounts(b.ctx, p, c.ID, "", extraction.Page{Limit: 10})
		requireNotFound(t, err)
		_, err = b.svc.GetAccount(b.ctx, p, d.accounts[0].ID)
		requireNotFound(t, err)
		_, err = b.svc.ListTransactions(b.ctx, p, d.accounts[0].ID, extraction.TransactionFilter{}, extraction.TransactionPage{Limit: 10})
		requireNotFound(t, err)
		_, err = b.svc.SyncTransactions(b.ctx, p, c.ID, "", 10)
		requireNotFound(t, err)
		_, err = b.svc.GetIdentity(b.ctx, p, c.ID)
		requireNotFound(t, err)
		_, err = b.svc.GetReport(b.ctx, p, d.report)
		requireNotFound(t, err)
	}
	accountIDs := func(accs []extraction.Account) []string {
		out := []string{}
		for _, a := range accs {
			out = append(out, a.ID)
		}
		return out
	}
	listByUser := func(t *testing.T, p caller.Principal, userID string) []string {
		t.Helper()
		accs, err := b.svc.ListAccounts(b.ctx, p, "", userID, extraction.Page{Limit: 50})
		require.NoError(t, err)
		return accountIDs(accs)
	}

	t.Run("the client reads all of its consents", func(t *testing.T) {
		for _, c := range []extraction.Consent{a1, a2, b1} {
			canRead(t, clientP(b.client), c)
			_, err := b.svc.GetExtraction(b.ctx, clientP(b.client), all[c.ID].extraction)
			require.NoError(t, err)
		}
		require.ElementsMatch(t, append(accountIDs(all[a1.ID].accounts), accountIDs(all[a2.ID].accounts)...), listByUser(t, clientP(b.client), alice))
	})

	t.Run("a task token of one user reads that user's consents only", func(t *testing.T) {
		p := taskP(b.client, alice, "")
		canRead(t, p, a1)
		canRead(t, p, a2)
		cannotRead(t, p, b1)
		require.ElementsMatch(t, append(accountIDs(all[a1.ID].accounts), accountIDs(all[a2.ID].accounts)...), listByUser(t, p, ""))
		require.Empty(t, listByUser(t, p, bob), "another user's accounts are not listed")
	})

	t.Run("a task token of one consent reads that consent only", func(t *testing.T) {
		p := taskP(b.client, alice, a1.ID)
		canRead(t, p, a1)
		cannotRead(t, p, a2)
		cannotRead(t, p, b1)
		require.ElementsMatch(t, accountIDs(all[a1.ID].accounts), listByUser(t, p, ""))
	})

	t.Run("a task token creates nothing", func(t *testing.T) {
		_, err := b.svc.CreateExtraction(b.ctx, taskP(b.client, alice, ""), a1.ID, extraction.ProductTransactions)
		requireAPIError(t, err, apierr.PermissionDenied, "")
		_, err = b.svc.CreateReport(b.ctx, taskP(b.client, alice, ""), a1.ID, "CASH_FLOW")
		requireAPIError(t, err, apierr.PermissionDenied, "")
	})

	t.Run("another client's ids read as not found", func(t *testing.T) {
		other := clientP(ids.New("cli"))
		for _, c := range []extraction.Consent{a1, a2, b1} {
			cannotRead(t, other, c)
			_, err := b.svc.GetExtraction(b.ctx, other, all[c.ID].extraction)
			requireNotFound(t, err)
			_, err = b.svc.CreateExtraction(b.ctx, other, c.ID, extraction.ProductTransactions)
			requireNotFound(t, err)
			_, err = b.svc.CreateReport(b.ctx, other, c.ID, "CASH_FLOW")
			requireNotFound(t, err)
		}
		require.Empty(t, listByUser(t, other, alice))
		// And through the API, as a caller sees it.
		ctx := caller.With(b.ctx, other)
		_, err := b.api.GetAccount(ctx, &extractionv1.GetAccountRequest{Id: all[a1.ID].accounts[0].ID})
		requireNotFound(t, err)
		_, err = b.api.GetIdentity(ctx, &extractionv1.GetIdentityRequest{ConsentId: a1.ID})
		requireNotFound(t, err)
		_, err = b.api.GetReport(ctx, &extractionv1.GetReportRequest{Id: all[a1.ID].report})
		requireNotFound(t, err)
	})
}

// ---- consents that end

func TestEndedConsentIsPurgedAtPurgeTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newConsent(t, consentSpec{})
	b.extract(t, c, extraction.ProductTransactions)
	b.extract(t, c, extraction.ProductIdentity)
	_, err := b.svc.CreateReport(b.ctx, clientP(b.client), c.ID, "CASH_FLOW")
	require.NoError(t, err)
	b.runJobs(t)
	before := b.dataRows(t, c.ID)
	for table, n := range before {
		require.Positive(t, n, table)
	}
	// Another consent of the same client keeps its data throughout.
	kept := b.newConsent(t, consentSpec{})
	b.extract(t, kept, extraction.ProductTransactions)
	keptRows := b.dataRows(t, kept.ID)

	require.ErrorIs(t, b.svc.ConsentChanged(b.ctx, clientP(b.client), b.client, c.ID, extraction.ConsentRevoked, b.clock.Now()), extraction.ErrPermissionDenied)
	require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, b.client, c.ID, extraction.ConsentAuthorised, b.clock.Now()))
	require.Zero(t, b.count(t, `SELECT count(*) FROM extraction.jobs WHERE kind = $1`, extraction.JobPurge), "only an end schedules a purge")

	endedAt := b.clock.Now()
	purgeAt := endedAt.Add(purgeAfter)
	require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, b.client, c.ID, extraction.ConsentRevoked, endedAt))
	require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, b.client, c.ID, extraction.ConsentRevoked, endedAt), "a repeat is harmless")
	j := b.jobOf(t, extraction.JobPurge, c.ID)
	require.Equal(t, "available", j.State)
	require.True(t, purgeAt.Equal(j.RunAt), "the purge runs at %s, not %s", purgeAt, j.RunAt)

	t.Run("later ingests fail and write nothing", func(t *testing.T) {
		// The consent service has not caught up: the consent still reads AUTHORISED.
		r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
		require.NoError(t, err)
		require.Equal(t, "CONSENT_NOT_AUTHORISED", r.Reason)
		e := b.extract(t, c, extraction.ProductTransactions)
		require.Equal(t, extraction.Failed, e.Status)
		require.Equal(t, "CONSENT_NOT_AUTHORISED", e.Reason)

		_, _, err = b.store.SaveAccounts(b.ctx, c, nil, true, b.clock.Now())
		require.ErrorIs(t, err, extraction.ErrConsentEnded)
		acc := b.accounts(t, c)[0]
		_, err = b.store.SaveTransactions(b.ctx, acc, extraction.UpstreamTransactions{}, b.clock.Now(), b.clock.Now())
		require.ErrorIs(t, err, extraction.ErrConsentEnded)
		_, err = b.store.SaveIdentity(b.ctx, c, []byte("sealed"), b.clock.Now())
		require.ErrorIs(t, err, extraction.ErrConsentEnded)
		require.Equal(t, before, b.dataRows(t, c.ID))
	})

	b.consents.setStatus(c.ID, extraction.ConsentRevoked)

	t.Run("before its time the purge is not due", func(t *testing.T) {
		b.clock.Set(purgeAt.Add(-time.Second))
		b.runJobs(t)
		require.Equal(t, before, b.dataRows(t, c.ID))
		require.Equal(t, "available", b.jobOf(t, extraction.JobPurge, c.ID).State)
	})

	t.Run("run early, the purge snoozes until its time and deletes nothing", func(t *testing.T) {
		// The queue's clock runs ahead of the service's: the job is due, the purge is not.
		b.clock.Set(purgeAt.Add(-time.Minute))
		queueNow := purgeAt.Add(time.Minute)
		early := jobs.NewWorker(jobs.Options{Pool: b.pool, Handlers: b.svc.Handlers(), Now: func() time.Time { return queueNow }, Logger: discard()})
		ran, err := early.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, ran)
		require.Equal(t, before, b.dataRows(t, c.ID))
		j := b.jobOf(t, extraction.JobPurge, c.ID)
		require.Equal(t, "available", j.State)
		require.Zero(t, j.Attempts, "a snooze is not an attempt")
		require.True(t, queueNow.Add(time.Minute).Equal(j.RunAt), "snoozed for the minute left: %s", j.RunAt)
	})

	t.Run("at its time the purge deletes the consent's data and nothing else", func(t *testing.T) {
		b.clock.Set(purgeAt)
		j := b.jobOf(t, extraction.JobPurge, c.ID)
		late := jobs.NewWorker(jobs.Options{Pool: b.pool, Handlers: b.svc.Handlers(), Now: func() time.Time { return j.RunAt }, Logger: discard()})
		ran, err := late.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, ran)
		require.Equal(t, map[string]int{"accounts": 0, "transactions": 0, "identities": 0, "reports": 0}, b.dataRows(t, c.ID))
		require.Equal(t, "done", b.jobOf(t, extraction.JobPurge, c.ID).State)
		require.Equal(t, keptRows, b.dataRows(t, kept.ID))
	})

	t.Run("the ended consent is not written again", func(t *testing.T) {
		require.NoError(t, b.store.EnsureConsent(b.ctx, c, b.clock.Now()))
		_, _, err := b.store.SaveAccounts(b.ctx, c, []extraction.UpstreamAccount{{ID: "acc_x", Type: "DEPOSITORY", Currency: "CLP"}}, true, b.clock.Now())
		require.ErrorIs(t, err, extraction.ErrConsentEnded)
		_, err = b.store.SaveIdentity(b.ctx, c, []byte("sealed"), b.clock.Now())
		require.ErrorIs(t, err, extraction.ErrConsentEnded)

		b.consents.setStatus(c.ID, extraction.ConsentAuthorised) // a consent service gone wrong
		r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
		require.NoError(t, err)
		require.Equal(t, "CONSENT_NOT_AUTHORISED", r.Reason)
		require.Equal(t, map[string]int{"accounts": 0, "transactions": 0, "identities": 0, "reports": 0}, b.dataRows(t, c.ID))
	})
}

func TestConsentEndedBeforeAnyExtraction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newConsent(t, consentSpec{})
	require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, b.client, c.ID, extraction.ConsentExpired, time.Time{}))
	j := b.jobOf(t, extraction.JobPurge, c.ID)
	require.True(t, b.clock.Now().Add(purgeAfter).Equal(j.RunAt), "a zero time is the service's now")

	// A refresh in flight (the consent still reads AUTHORISED) writes nothing.
	r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
	require.NoError(t, err)
	require.Equal(t, "CONSENT_NOT_AUTHORISED", r.Reason)
	require.Zero(t, b.dataRows(t, c.ID)["accounts"])

	t.Run("another client's consent id ends nothing of ours", func(t *testing.T) {
		mine := b.newConsent(t, consentSpec{})
		require.NoError(t, b.svc.ConsentChanged(b.ctx, serviceP, ids.New("cli"), mine.ID, extraction.ConsentRevoked, b.clock.Now()))
		e := b.extract(t, mine, extraction.ProductTransactions)
		require.Equal(t, extraction.Succeeded, e.Status, "reason %q", e.Reason)
		require.Zero(t, b.count(t, `SELECT count(*) FROM extraction.jobs WHERE kind = $1 AND args->>'id' = $2`, extraction.JobPurge, mine.ID))
	})
}

// ---- upstream failures

func TestProviderFailures(t *testing.T) {
	t.Parallel()

	t.Run("a temporary failure is retried by the job", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.newConsent(t, consentSpec{provider: flakyName})
		b.flaky.failNext(&extraction.ProviderError{Reason: "UPSTREAM_ERROR", Temporary: true, Err: errors.New("503")})
		e, err := b.svc.CreateExtraction(b.ctx, clientP(b.client), c.ID, extraction.ProductTransactions)
		require.NoError(t, err)

		require.Equal(t, 1, b.runJobs(t))
		got, err := b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
		require.NoError(t, err)
		require.Equal(t, extraction.Pending, got.Status, "not failed: it will be retried")
		require.Empty(t, b.events(t, e.ID))
		j := b.jobOf(t, extraction.JobExtract, e.ID)
		require.Equal(t, "available", j.State)
		require.Equal(t, 1, j.Attempts)
		require.Zero(t, b.runJobs(t), "the retry waits for its backoff")

		b.clock.Advance(time.Hour)
		require.Equal(t, 1, b.runJobs(t))
		got, err = b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
		require.NoError(t, err)
		require.Equal(t, extraction.Succeeded, got.Status)
		require.Equal(t, extraction.Counts{Added: len(upstreamIDs(bank("user_good", 0)))}, got.Counts)
		require.Equal(t, 2, b.flaky.Calls())
		require.Len(t, b.events(t, e.ID), 1)
	})

	t.Run("a temporary failure on the last attempt fails the extraction with its reason", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.newConsent(t, consentSpec{provider: flakyName})
		e, err := b.svc.CreateExtraction(b.ctx, clientP(b.client), c.ID, extraction.ProductAccounts)
		require.NoError(t, err)
		var maxAttempts int
		require.NoError(t, b.admin.QueryRow(b.ctx, `SELECT max_attempts FROM extraction.jobs WHERE args->>'id' = $1`, e.ID).Scan(&maxAttempts))
		for range maxAttempts {
			b.flaky.failNext(&extraction.ProviderError{Reason: "UPSTREAM_ERROR", Temporary: true, Err: errors.New("503")})
		}
		for attempt := 1; attempt <= maxAttempts; attempt++ {
			require.Equal(t, 1, b.runJobs(t), "attempt %d", attempt)
			b.clock.Advance(2 * time.Hour)
		}
		got, err := b.svc.GetExtraction(b.ctx, clientP(b.client), e.ID)
		require.NoError(t, err)
		require.Equal(t, extraction.Failed, got.Status)
		require.Equal(t, "UPSTREAM_ERROR", got.Reason)
		require.Equal(t, maxAttempts, b.flaky.Calls())
		require.Equal(t, "done", b.jobOf(t, extraction.JobExtract, e.ID).State)
		require.Len(t, b.events(t, e.ID), 1)
	})

	t.Run("a failure that is not temporary fails the extraction at once with its reason", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.newConsent(t, consentSpec{provider: flakyName})
		b.flaky.failNext(&extraction.ProviderError{Reason: "LOGIN_REQUIRED", Err: errors.New("session expired")})
		e := b.extract(t, c, extraction.ProductTransactions)
		require.Equal(t, extraction.Failed, e.Status)
		require.Equal(t, "LOGIN_REQUIRED", e.Reason)
		require.Equal(t, extraction.Counts{}, e.Counts)
		require.Equal(t, 1, b.flaky.Calls())
		evs := b.events(t, e.ID)
		require.Len(t, evs, 1)
		require.Equal(t, "FAILED", evs[0].Data["status"])
		require.Equal(t, "LOGIN_REQUIRED", evs[0].Data["reason"])
		require.Equal(t, "done", b.jobOf(t, extraction.JobExtract, e.ID).State)
	})

	for _, tc := range []struct {
		name   string
		change func(l *extraction.Link)
		reason string
	}{
		{"a connection that must log in again fails with its reason", func(l *extraction.Link) {
			l.Succeeded, l.FailureReason = false, "LOGIN_REQUIRED"
		}, "LOGIN_REQUIRED"},
		{"a connection not linked yet fails CONNECTION_NOT_READY", func(l *extraction.Link) {
			l.Succeeded = false
		}, "CONNECTION_NOT_READY"},
		{"a provider without an adapter fails PROVIDER_NOT_SUPPORTED", func(l *extraction.Link) {
			l.Provider = "nobody"
		}, extraction.ReasonNoProvider},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := b.newConsent(t, consentSpec{provider: flakyName})
			b.links.update(c.ConnectionID, tc.change)
			e := b.extract(t, c, extraction.ProductTransactions)
			require.Equal(t, extraction.Failed, e.Status)
			require.Equal(t, tc.reason, e.Reason)
			require.Zero(t, b.flaky.Calls(), "the upstream is not called")
			require.Equal(t, tc.reason, b.events(t, e.ID)[0].Data["reason"])
			r, err := b.svc.RefreshConsent(b.ctx, serviceP, b.client, c.ID)
			require.NoError(t, err)
			require.Equal(t, tc.reason, r.Reason, "a refresh says the same, as a result")
		})
	}

	t.Run("a sandbox login that is not linked fails LOGIN_REQUIRED", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := b.newConsent(t, consentSpec{})
		b.links.update(c.ConnectionID, func(l *extraction.Link) {
			l.State = []byte(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_otp","phase":"mfa"}`)
		})
		e := b.extract(t, c, extraction.ProductAccounts)
		require.Equal(t, extraction.Failed, e.Status)
		require.Equal(t, extraction.ReasonLoginRequired, e.Reason)
	})
}

// ---- reports

func TestCashFlowReportOfASandboxUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newConsent(t, consentSpec{products: []string{"ACCOUNTS", "TRANSACTIONS", "REPORTS"}})
	bk := bank("user_good", 0)

	r, err := b.svc.CreateReport(b.ctx, clientP(b.client), c.ID, "CASH_FLOW")
	require.NoError(t, err)
	require.True(t, ids.Valid("rpt", r.ID), r.ID)
	require.Equal(t, extraction.Pending, r.Status)
	require.Nil(t, r.CashFlow)

	b.clock.Advance(time.Minute)
	require.Equal(t, 1, b.runJobs(t))
	got, err := b.svc.GetReport(b.ctx, clientP(b.client), r.ID)
	require.NoError(t, err)
	require.Equal(t, extraction.Succeeded, got.Status)
	require.True(t, b.clock.Now().Equal(got.FinishedAt))
	require.NotNil(t, got.CashFlow)
	cf := got.CashFlow

	// The months and dates are those of the upstream's booked transactions, all in CLP.
	months := map[string]bool{}
	var checking sandboxdata.Account
	var salaries []sandboxdata.Transaction
	for _, a := range bk.Accounts {
		if a.Type == "DEPOSITORY" {
			checking = a
		}
		for _, x := range bk.Transactions[a.ID] {
			if x.Pending {
				continue
			}
			months[x.BookingDate[:7]] = true
			if a.Type == "DEPOSITORY" && x.Category == "INCOME" {
				salaries = append(salaries, x)
			}
		}
	}
	var gotMonths []string
	for _, m := range cf.Months {
		require.Equal(t, "CLP", m.Currency)
		gotMonths = append(gotMonths, m.Month)
	}
	require.Equal(t, slices.Sorted(maps.Keys(months)), gotMonths)
	require.GreaterOrEqual(t, len(gotMonths), 3)
	last := cf.Months[len(cf.Months)-1]
	require.Equal(t, checking.BalanceCurrent, last.ClosingBalance, "the last month closes at today's balance")

	// The salary comes on the 1st and the 15th: SEMI_MONTHLY.
	require.Len(t, cf.Recurring, 1)
	inc := cf.Recurring[0]
	require.Equal(t, "Remuneraciones", inc.Description)
	require.Equal(t, "CLP", inc.Currency)
	require.Equal(t, "SEMI_MONTHLY", inc.Frequency)
	require.Equal(t, len(salaries), inc.Occurrences)
	require.GreaterOrEqual(t, inc.Occurrences, 3)
	var sum int64
	lastDate := ""
	for _, s := range salaries {
		sum += s.AmountMinor
		lastDate = max(lastDate, s.BookingDate)
	}
	require.Equal(t, sum/int64(len(salaries)), inc.Average)
	require.Equal(t, lastDate, inc.LastDate)

	evs := b.events(t, r.ID)
	require.Len(t, evs, 1)
	require.Equal(t, "report.completed", evs[0].Type)
	require.Equal(t, map[string]any{"report_id": r.ID, "consent_id": c.ID, "type": "CASH_FLOW", "status": "SUCCEEDED"}, evs[0].Data)

	// Through the API.
	resp, err := b.api.GetReport(caller.With(b.ctx, clientP(b.client)), &extractionv1.GetReportRequest{Id: r.ID})
	require.NoError(t, err)
	require.Equal(t, extractionv1.ReportStatus_REPORT_STATUS_SUCCEEDED, resp.GetReport().GetStatus())
	require.Len(t, resp.GetReport().GetCashFlow().GetRecurringIncome(), 1)
	require.Equal(t, "SEMI_MONTHLY", resp.GetReport().GetCashFlow().GetRecurringIncome()[0].GetFrequency())

	t.Run("a report is not stored data: no transactions were extracted for it", func(t *testing.T) {
		require.Zero(t, b.dataRows(t, c.ID)["transactions"])
	})

	t.Run("the report's requests are checked", func(t *testing.T) {
		_, err := b.svc.CreateReport(b.ctx, clientP(b.client), c.ID, "BALANCE_SHEET")
		requireAPIError(t, err, apierr.InvalidArgument, "")
		noReports := b.newConsent(t, consentSpec{products: []string{"ACCOUNTS", "TRANSACTIONS"}})
		_, err = b.svc.CreateReport(b.ctx, clientP(b.client), noReports.ID, "CASH_FLOW")
		requireAPIError(t, err, apierr.PermissionDenied, extraction.ReasonProductNotConsented)
	})

	t.Run("a report on a connection that must log in again fails with the reason", func(t *testing.T) {
		other := b.newConsent(t, consentSpec{})
		b.links.update(other.ConnectionID, func(l *extraction.Link) { l.Succeeded, l.FailureReason = false, "LOGIN_REQUIRED" })
		r, err := b.svc.CreateReport(b.ctx, clientP(b.client), other.ID, "CASH_FLOW")
		require.NoError(t, err)
		b.runJobs(t)
		got, err := b.svc.GetReport(b.ctx, clientP(b.client), r.ID)
		require.NoError(t, err)
		require.Equal(t, extraction.Failed, got.Status)
		require.Equal(t, "LOGIN_REQUIRED", got.Reason)
		require.Nil(t, got.CashFlow)
		evs := b.events(t, r.ID)
		require.Len(t, evs, 1)
		require.Equal(t, "FAILED", evs[0].Data["status"])
		require.Equal(t, "LOGIN_REQUIRED", evs[0].Data["reason"])
	})
}

func TestChangedTransactionsAreAnnouncedWithTheDataAndAnOlderListLoses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newConsent(t, consentSpec{})
	first := b.extract(t, c, extraction.ProductTransactions)
	require.Equal(t, extraction.Succeeded, first.Status)
	updates := func() (n, added int) {
		for _, e := range b.events(t, c.ID) {
			if e.Type == "transactions.updates_available" {
				n++
				added += int(e.Data["added"].(float64))
			}
		}
		return n, added
	}
	n, added := updates()
	require.Equal(t, 2, n, "one event per account that changed, flowing under the consent")
	require.Equal(t, first.Counts.Added, added)

	// Nothing changed: nothing announced.
	require.Zero(t, b.extract(t, c, extraction.ProductTransactions).Counts)
	again, _ := updates()
	require.Equal(t, 2, again)

	// A list read before the one last applied is ignored: an overlapping, slower pull cannot
	// undo a newer one.
	acc := b.accounts(t, c)[0]
	before := b.transactions(t, c)
	stale := b.clock.Now().Add(-time.Hour)
	counts, err := b.store.SaveTransactions(b.ctx, acc, extraction.UpstreamTransactions{From: "2000-01-01", To: "2100-01-01"}, stale, b.clock.Now())
	require.NoError(t, err)
	require.Zero(t, counts, "an empty list read an hour ago would have removed everything")
	require.Equal(t, before, b.transactions(t, c))
}
