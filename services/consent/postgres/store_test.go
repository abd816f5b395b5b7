package postgres_test

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/services/consent"
	consentpg "puente.dev/services/consent/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is one test's store over its own freshly migrated database.
type bundle struct {
	ctx   context.Context
	url   string // superuser URL of the test's database
	pool  *pgxpool.Pool
	store *consentpg.Store
	now   time.Time // a base time, at the database's (microsecond) precision
}

// setup gives the test its own database, migrated, and a store over it. The pool is large
// enough for the concurrency tests to have every caller inside the database at once.
func setup(t testing.TB) bundle {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, consentpg.Migrate(ctx, dbURL))
	pool, err := postgres.Open(ctx, withPoolSize(t, dbURL, 32), consentpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return bundle{ctx: ctx, url: dbURL, pool: pool, store: consentpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
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

func consentOf(clientID, userID string, at time.Time) consent.Consent {
	return consent.Consent{
		ID: ids.New("cns"), ClientID: clientID, UserID: userID, InstitutionID: ids.New("ins"),
		Products: []string{"ACCOUNTS", "BALANCES"}, Status: consent.AwaitingAuthorisation,
		ExpiresAt: at.Add(24 * time.Hour), CreatedAt: at, UpdatedAt: at,
	}
}

// newConsent stores a consent awaiting authorisation, with its first entry and expiry job.
func newConsent(t testing.TB, b bundle, clientID, userID string) consent.Consent {
	t.Helper()
	c := consentOf(clientID, userID, b.now)
	require.NoError(t, b.store.CreateConsent(b.ctx, c, consent.HistoryEntry{Status: c.Status, At: c.CreatedAt},
		[]consent.Job{{Kind: consent.JobExpire, RunAt: c.ExpiresAt}}))
	return c
}

// to returns an Update function moving a consent to status at time at.
func to(status consent.Status, reason string, at time.Time) func(*consent.Consent) (*consent.HistoryEntry, error) {
	return func(c *consent.Consent) (*consent.HistoryEntry, error) {
		c.Status, c.UpdatedAt = status, at
		return &consent.HistoryEntry{Status: status, Reason: reason, At: at}, nil
	}
}

func consentIDs(cs []consent.Consent) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func statuses(h []consent.HistoryEntry) []consent.Status {
	out := make([]consent.Status, 0, len(h))
	for _, e := range h {
		out = append(out, e.Status)
	}
	return out
}

// superuser connects to the test's database as the cluster's superuser, to look under the store.
func superuser(t testing.TB, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func count(t testing.TB, b bundle, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, superuser(t, b.ctx, b.url).QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

// warm opens n pooled connections up front, so that concurrent callers meet in the database
// instead of queueing on connection set-up.
func warm(t testing.TB, b bundle, n int) {
	t.Helper()
	conns := make([]*pgxpool.Conn, n)
	for i := range conns {
		c, err := b.pool.Acquire(b.ctx)
		require.NoError(t, err)
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
}

// concurrently runs fn n times, every call released at the same moment, and waits for all.
func concurrently(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// ---- Migrations

func TestMigrate(t *testing.T) {
	t.Parallel()
	all, err := consentpg.Migrations()
	require.NoError(t, err)
	files, err := fs.ReadDir(all, ".")
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	require.Equal(t, []string{"001_init.up.sql", "002_outbox.up.sql", "003_jobs.up.sql", "004_jobs_trace.up.sql", "005_jobs_stats.up.sql"}, names)

	// requireMigratedOnce checks that every migration is recorded exactly once and the schema works.
	requireMigratedOnce := func(t *testing.T, ctx context.Context, dbURL string) {
		conn := superuser(t, ctx, dbURL)
		var rows, versions int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM consent.schema_migrations`).Scan(&rows, &versions))
		require.Equal(t, len(files), rows, "rows of consent.schema_migrations")
		require.Equal(t, len(files), versions, "versions in consent.schema_migrations")

		pool, err := postgres.Open(ctx, dbURL, consentpg.Schema)
		require.NoError(t, err)
		defer pool.Close()
		b := bundle{ctx: ctx, url: dbURL, store: consentpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
		c := newConsent(t, b, ids.New("cli"), ids.New("usr"))
		got, _, err := b.store.GetConsent(ctx, c.ClientID, c.ID)
		require.NoError(t, err)
		require.Equal(t, c.ID, got.ID)
	}

	t.Run("running it twice applies each migration once and keeps the data", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dbURL := pgtest.NewDatabase(t)
		require.NoError(t, consentpg.Migrate(ctx, dbURL))

		pool, err := postgres.Open(ctx, dbURL, consentpg.Schema)
		require.NoError(t, err)
		defer pool.Close()
		b := bundle{ctx: ctx, url: dbURL, store: consentpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
		c := newConsent(t, b, ids.New("cli"), ids.New("usr"))

		require.NoError(t, consentpg.Migrate(ctx, dbURL))
		_, h, err := b.store.GetConsent(ctx, c.ClientID, c.ID)
		require.NoError(t, err, "the second run must not touch existing data")
		require.Len(t, h, 1)
		requireMigratedOnce(t, ctx, dbURL)
	})

	t.Run("eight concurrent runs on a fresh database all succeed and apply each migration once", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dbURL := pgtest.NewDatabase(t)
		errs := make([]error, 8)
		concurrently(len(errs), func(i int) { errs[i] = consentpg.Migrate(ctx, dbURL) })
		for i, err := range errs {
			require.NoError(t, err, "run %d", i)
		}
		requireMigratedOnce(t, ctx, dbURL)
	})
}

// ---- Creation

func TestStoreCreateConsent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newConsent(t, b, ids.New("cli"), ids.New("usr"))

	t.Run("the consent reads back as it was stored", func(t *testing.T) {
		got, h, err := b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.NoError(t, err)
		require.Equal(t, c, got)
		require.Equal(t, []consent.HistoryEntry{{Status: consent.AwaitingAuthorisation, At: c.CreatedAt}}, h)
	})

	t.Run("its creation is an event in the outbox", func(t *testing.T) {
		var typ, clientID string
		var data map[string]any
		require.NoError(t, superuser(t, b.ctx, b.url).QueryRow(b.ctx, `SELECT type, client_id, data FROM consent.outbox WHERE flow_id = $1`, c.ID).Scan(&typ, &clientID, &data))
		require.Equal(t, "consent.created", typ)
		require.Equal(t, c.ClientID, clientID)
		require.Equal(t, map[string]any{
			"consent_id": c.ID, "user_id": c.UserID, "institution_id": c.InstitutionID,
			"status": "AWAITING_AUTHORISATION", "reason": "", "connection_id": "",
		}, data)
	})

	t.Run("its expiry job is queued for its expire_time", func(t *testing.T) {
		var kind, state string
		var runAt time.Time
		require.NoError(t, superuser(t, b.ctx, b.url).QueryRow(b.ctx, `SELECT kind, state, run_at FROM consent.jobs WHERE args->>'consent_id' = $1`, c.ID).Scan(&kind, &state, &runAt))
		require.Equal(t, consent.JobExpire, kind)
		require.Equal(t, "available", state)
		require.True(t, c.ExpiresAt.Equal(runAt))
	})

	t.Run("a second consent with the same id stores nothing more", func(t *testing.T) {
		dup := c
		dup.UserID = ids.New("usr")
		err := b.store.CreateConsent(b.ctx, dup, consent.HistoryEntry{Status: dup.Status, At: dup.CreatedAt}, []consent.Job{{Kind: consent.JobExpire, RunAt: dup.ExpiresAt}})
		require.Error(t, err)
		require.Equal(t, 1, count(t, b, `SELECT count(*) FROM consent.outbox WHERE flow_id = $1`, c.ID))
		require.Equal(t, 1, count(t, b, `SELECT count(*) FROM consent.consent_history WHERE consent_id = $1`, c.ID))
		require.Equal(t, 1, count(t, b, `SELECT count(*) FROM consent.jobs WHERE args->>'consent_id' = $1`, c.ID))
	})
}

// ---- Tenant isolation

func TestStoreKeepsClientsApart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clientA, clientB := ids.New("cli"), ids.New("cli")
	user := ids.New("usr") // the same user id under both clients
	a := newConsent(t, b, clientA, user)
	bc := newConsent(t, b, clientB, user)

	t.Run("GetConsent with another client's id reads as not found", func(t *testing.T) {
		_, _, err := b.store.GetConsent(b.ctx, clientB, a.ID)
		require.ErrorIs(t, err, consent.ErrConsentNotFound)
		got, _, err := b.store.GetConsent(b.ctx, clientA, a.ID)
		require.NoError(t, err)
		require.Equal(t, a.ID, got.ID)
	})

	t.Run("ListConsents never returns another client's consent", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			clientID string
			f        consent.Filter
			want     []string
		}{
			{"all of client A's", clientA, consent.Filter{}, []string{a.ID}},
			{"client B by the user both share", clientB, consent.Filter{UserID: user}, []string{bc.ID}},
			{"a client no consent belongs to", ids.New("cli"), consent.Filter{}, []string{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cs, err := b.store.ListConsents(b.ctx, tc.clientID, tc.f, consent.Page{Limit: 100})
				require.NoError(t, err)
				require.Equal(t, tc.want, consentIDs(cs))
				for _, c := range cs {
					require.Equal(t, tc.clientID, c.ClientID)
				}
			})
		}
	})

	t.Run("Update with another client's id reads as not found and changes nothing", func(t *testing.T) {
		ran := false
		_, _, err := b.store.Update(b.ctx, clientB, a.ID, func(c *consent.Consent) (*consent.HistoryEntry, error) {
			ran = true
			return to(consent.Revoked, "", b.now)(c)
		})
		require.ErrorIs(t, err, consent.ErrConsentNotFound)
		require.False(t, ran)
		got, h, err := b.store.GetConsent(b.ctx, clientA, a.ID)
		require.NoError(t, err)
		require.Equal(t, consent.AwaitingAuthorisation, got.Status)
		require.Len(t, h, 1)
	})

	t.Run("Update without a client id is the service's own work and finds any consent", func(t *testing.T) {
		got, _, err := b.store.Update(b.ctx, "", bc.ID, func(*consent.Consent) (*consent.HistoryEntry, error) { return nil, nil })
		require.NoError(t, err)
		require.Equal(t, clientB, got.ClientID)
	})
}

// ---- Updates and history

func TestStoreUpdate(t *testing.T) {
	t.Parallel()

	t.Run("history is kept oldest first, one event per entry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b, ids.New("cli"), ids.New("usr"))
		con := ids.New("con")
		t1, t2 := b.now.Add(time.Minute), b.now.Add(2*time.Minute)
		got, h, err := b.store.Update(b.ctx, c.ClientID, c.ID, func(c *consent.Consent) (*consent.HistoryEntry, error) {
			c.ConnectionID = con
			return to(consent.Authorised, "", t1)(c)
		})
		require.NoError(t, err)
		require.Equal(t, con, got.ConnectionID)
		require.Equal(t, []consent.Status{consent.AwaitingAuthorisation, consent.Authorised}, statuses(h))

		got, h, err = b.store.Update(b.ctx, c.ClientID, c.ID, to(consent.Revoked, "REVOKED_BY_CLIENT", t2))
		require.NoError(t, err)
		require.Equal(t, consent.Revoked, got.Status)
		require.True(t, t2.Equal(got.UpdatedAt))
		require.Equal(t, []consent.HistoryEntry{
			{Status: consent.AwaitingAuthorisation, At: b.now},
			{Status: consent.Authorised, At: t1},
			{Status: consent.Revoked, Reason: "REVOKED_BY_CLIENT", At: t2},
		}, h)

		stored, storedHistory, err := b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.NoError(t, err)
		require.Equal(t, got, stored)
		require.Equal(t, h, storedHistory)

		rows, err := superuser(t, b.ctx, b.url).Query(b.ctx, `SELECT type, data->>'status', data->>'connection_id' FROM consent.outbox WHERE flow_id = $1 ORDER BY created_at`, c.ID)
		require.NoError(t, err)
		evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([3]string, error) {
			var e [3]string
			return e, r.Scan(&e[0], &e[1], &e[2])
		})
		require.NoError(t, err)
		require.Equal(t, [][3]string{
			{"consent.created", "AWAITING_AUTHORISATION", ""},
			{"consent.status_changed", "AUTHORISED", con},
			{"consent.status_changed", "REVOKED", con},
		}, evs)
	})

	t.Run("an update that records no entry writes nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b, ids.New("cli"), ids.New("usr"))
		got, h, err := b.store.Update(b.ctx, c.ClientID, c.ID, func(c *consent.Consent) (*consent.HistoryEntry, error) {
			c.Status = consent.Revoked // changed, but reported as no change
			return nil, nil
		})
		require.NoError(t, err)
		require.Len(t, h, 1)
		require.Equal(t, consent.Revoked, got.Status, "Update returns what fn left")

		stored, _, err := b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.NoError(t, err)
		require.Equal(t, c, stored, "nothing was written")
		require.Equal(t, 1, count(t, b, `SELECT count(*) FROM consent.outbox WHERE flow_id = $1`, c.ID))
	})

	t.Run("a failing update keeps nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b, ids.New("cli"), ids.New("usr"))
		boom := errors.New("boom")
		_, _, err := b.store.Update(b.ctx, c.ClientID, c.ID, func(c *consent.Consent) (*consent.HistoryEntry, error) {
			_, _ = to(consent.Revoked, "", b.now.Add(time.Minute))(c)
			return nil, boom
		})
		require.ErrorIs(t, err, boom)
		stored, h, err := b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.NoError(t, err)
		require.Equal(t, c, stored)
		require.Len(t, h, 1)
	})

	t.Run("concurrent updates take turns: each sees the one before", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b, ids.New("cli"), ids.New("usr"))
		warm(t, b, 16)
		var moved atomic.Int32
		errs := make([]error, 16)
		concurrently(16, func(i int) {
			_, _, errs[i] = b.store.Update(b.ctx, c.ClientID, c.ID, func(c *consent.Consent) (*consent.HistoryEntry, error) {
				if c.Status != consent.AwaitingAuthorisation {
					return nil, nil
				}
				moved.Add(1)
				return to(consent.Revoked, "", b.now.Add(time.Minute))(c)
			})
		})
		for i, err := range errs {
			require.NoError(t, err, "update %d", i)
		}
		require.Equal(t, int32(1), moved.Load())
		_, h, err := b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.NoError(t, err)
		require.Equal(t, []consent.Status{consent.AwaitingAuthorisation, consent.Revoked}, statuses(h))
	})

	t.Run("an unknown consent is not found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, _, err := b.store.Update(b.ctx, "", ids.New("cns"), to(consent.Revoked, "", b.now))
		require.ErrorIs(t, err, consent.ErrConsentNotFound)
	})
}

// ---- Lists

func TestStoreListConsentsPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clientID, user := ids.New("cli"), ids.New("usr")
	var created []string
	for range 5 {
		created = append(created, newConsent(t, b, clientID, user).ID)
	}
	newConsent(t, b, clientID, ids.New("usr")) // another user's, filtered out
	// Lists are newest first by id (ids sort by creation time to the millisecond).
	newestFirst := slices.Clone(created)
	slices.Sort(newestFirst)
	slices.Reverse(newestFirst)

	var walked []string
	var pages int
	p := consent.Page{Limit: 2}
	for {
		page, err := b.store.ListConsents(b.ctx, clientID, consent.Filter{UserID: user}, p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 2)
		if len(page) == 0 {
			break
		}
		pages++
		require.LessOrEqual(t, pages, 5, "pagination does not end")
		walked = append(walked, consentIDs(page)...)
		p.After = page[len(page)-1].ID
	}
	require.Equal(t, newestFirst, walked, "every consent once, newest first")
	require.Equal(t, 3, pages)

	t.Run("a status filter and pagination combine", func(t *testing.T) {
		revoked := newestFirst[1:3]
		for _, id := range revoked {
			_, _, err := b.store.Update(b.ctx, clientID, id, to(consent.Revoked, "", b.now.Add(time.Minute)))
			require.NoError(t, err)
		}
		page, err := b.store.ListConsents(b.ctx, clientID, consent.Filter{Status: consent.Revoked}, consent.Page{Limit: 1})
		require.NoError(t, err)
		require.Equal(t, revoked[:1], consentIDs(page))
		page, err = b.store.ListConsents(b.ctx, clientID, consent.Filter{Status: consent.Revoked}, consent.Page{Limit: 1, After: page[0].ID})
		require.NoError(t, err)
		require.Equal(t, revoked[1:], consentIDs(page))
		page, err = b.store.ListConsents(b.ctx, clientID, consent.Filter{Status: consent.Revoked}, consent.Page{Limit: 1, After: page[0].ID})
		require.NoError(t, err)
		require.Empty(t, page)
	})
}

// ---- Idempotency

func TestStoreIdempotent(t *testing.T) {
	t.Parallel()
	fingerprint := []byte("fingerprint-1")

	t.Run("a repeat with the same fingerprint returns the first response without running create", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var runs int
		create := func(consent.Store) ([]byte, error) {
			runs++
			return []byte("response-" + strconv.Itoa(runs)), nil
		}
		first, err := b.store.Idempotent(b.ctx, "cli_x:CreateConsent", "req-1", fingerprint, create)
		require.NoError(t, err)
		again, err := b.store.Idempotent(b.ctx, "cli_x:CreateConsent", "req-1", fingerprint, create)
		require.NoError(t, err)
		require.Equal(t, []byte("response-1"), first)
		require.Equal(t, first, again)
		require.Equal(t, 1, runs)
	})

	t.Run("the same request id with another fingerprint is ErrRequestIDReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(consent.Store) ([]byte, error) { return []byte("first"), nil })
		require.NoError(t, err)

		ran := false
		_, err = b.store.Idempotent(b.ctx, "scope", "req-1", []byte("another"), func(consent.Store) ([]byte, error) {
			ran = true
			return []byte("second"), nil
		})
		require.ErrorIs(t, err, consent.ErrRequestIDReused)
		require.False(t, ran)

		got, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(consent.Store) ([]byte, error) { return []byte("third"), nil })
		require.NoError(t, err)
		require.Equal(t, []byte("first"), got, "the reuse must not replace the first response")
	})

	t.Run("the same request id in another scope is another request", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, err := b.store.Idempotent(b.ctx, "cli_a:CreateConsent", "req-1", fingerprint, func(consent.Store) ([]byte, error) { return []byte("a"), nil })
		require.NoError(t, err)
		other, err := b.store.Idempotent(b.ctx, "cli_b:CreateConsent", "req-1", fingerprint, func(consent.Store) ([]byte, error) { return []byte("b"), nil })
		require.NoError(t, err)
		require.Equal(t, []byte("a"), a)
		require.Equal(t, []byte("b"), other)
	})

	t.Run("16 concurrent identical calls run create once and all get its response", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		warm(t, b, 16)
		var runs atomic.Int32
		resps := make([][]byte, 16)
		errs := make([]error, 16)
		concurrently(16, func(i int) {
			resps[i], errs[i] = b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(consent.Store) ([]byte, error) {
				n := runs.Add(1)
				return []byte("response-" + strconv.Itoa(int(n))), nil
			})
		})
		require.Equal(t, int32(1), runs.Load())
		for i := range resps {
			require.NoError(t, errs[i], "call %d", i)
			require.Equal(t, []byte("response-1"), resps[i], "call %d", i)
		}
	})

	t.Run("writes through the transaction's store, event and job included, are rolled back when create fails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := consentOf(ids.New("cli"), ids.New("usr"), b.now)
		boom := errors.New("boom")
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(tx consent.Store) ([]byte, error) {
			if err := tx.CreateConsent(b.ctx, c, consent.HistoryEntry{Status: c.Status, At: c.CreatedAt}, []consent.Job{{Kind: consent.JobExpire, RunAt: c.ExpiresAt}}); err != nil {
				return nil, err
			}
			if _, _, err := tx.Update(b.ctx, c.ClientID, c.ID, to(consent.Revoked, "", b.now)); err != nil {
				return nil, err
			}
			return nil, boom
		})
		require.ErrorIs(t, err, boom)
		_, _, err = b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.ErrorIs(t, err, consent.ErrConsentNotFound)
		require.Zero(t, count(t, b, `SELECT (SELECT count(*) FROM consent.outbox) + (SELECT count(*) FROM consent.jobs) + (SELECT count(*) FROM consent.idempotency_keys)`))
	})

	t.Run("writes through the transaction's store are kept when create succeeds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := consentOf(ids.New("cli"), ids.New("usr"), b.now)
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(tx consent.Store) ([]byte, error) {
			return []byte(c.ID), tx.CreateConsent(b.ctx, c, consent.HistoryEntry{Status: c.Status, At: c.CreatedAt}, nil)
		})
		require.NoError(t, err)
		_, _, err = b.store.GetConsent(b.ctx, c.ClientID, c.ID)
		require.NoError(t, err)
	})

	t.Run("DeleteExpired removes request ids a day old, which can then be used afresh", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(consent.Store) ([]byte, error) { return []byte("first"), nil })
		require.NoError(t, err)

		n, err := b.store.DeleteExpired(b.ctx, time.Now().Add(23*time.Hour))
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = b.store.DeleteExpired(b.ctx, time.Now().Add(25*time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(1), n)

		got, err := b.store.Idempotent(b.ctx, "scope", "req-1", []byte("another"), func(consent.Store) ([]byte, error) { return []byte("fresh"), nil })
		require.NoError(t, err)
		require.Equal(t, []byte("fresh"), got)
	})
}
