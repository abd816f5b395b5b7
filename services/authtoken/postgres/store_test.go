package postgres_test

import (
	"context"
	"crypto/rand"
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
	"puente.dev/services/authtoken"
	authtokenpg "puente.dev/services/authtoken/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is one test's store over its own freshly migrated database.
type bundle struct {
	ctx   context.Context
	url   string // superuser URL of the test's database
	pool  *pgxpool.Pool
	store *authtokenpg.Store
	now   time.Time // a base time, at the database's (microsecond) precision
}

// setup gives the test its own database, migrated, and a store over it. The pool is large
// enough for the concurrency tests to have every caller inside the database at once.
func setup(t testing.TB) bundle {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, authtokenpg.Migrate(ctx, dbURL))
	pool, err := postgres.Open(ctx, withPoolSize(t, dbURL, 32), authtokenpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return bundle{ctx: ctx, url: dbURL, pool: pool, store: authtokenpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
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

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func newAPIKey(t testing.TB, clientID string, at time.Time) authtoken.APIKey {
	return authtoken.APIKey{
		ID: ids.New("key"), ClientID: clientID, Name: "default",
		SecretHash: randomBytes(t, 32), SecretHint: "abcd", CreatedAt: at,
	}
}

// newClient creates a client with its first API key.
func newClient(t testing.TB, b bundle) (authtoken.Client, authtoken.APIKey) {
	t.Helper()
	c := authtoken.Client{ID: ids.New("cli"), Name: "Acme", RedirectURIs: []string{"https://a.example/cb"}, CreatedAt: b.now}
	k := newAPIKey(t, c.ID, b.now)
	require.NoError(t, b.store.CreateClient(b.ctx, c, k))
	return c, k
}

func userOf(clientID, externalRef string, at time.Time) authtoken.User {
	return authtoken.User{ID: ids.New("usr"), ClientID: clientID, ExternalRef: externalRef, Kind: authtoken.Natural, CreatedAt: at}
}

func newUser(t testing.TB, b bundle, clientID, externalRef string) authtoken.User {
	t.Helper()
	u := userOf(clientID, externalRef, b.now)
	require.NoError(t, b.store.CreateUser(b.ctx, u))
	return u
}

// newRefreshToken starts a refresh-token family through key.
func newRefreshToken(t testing.TB, b bundle, key authtoken.APIKey) authtoken.RefreshToken {
	t.Helper()
	r := authtoken.RefreshToken{
		Hash: randomBytes(t, 32), FamilyID: ids.New("rtf"), ClientID: key.ClientID, APIKeyID: key.ID,
		CreatedAt: b.now, FamilyExpiresAt: b.now.Add(720 * time.Hour),
	}
	require.NoError(t, b.store.CreateRefreshToken(b.ctx, r))
	return r
}

// nextRefresh is the successor a rotation at time at would store.
func nextRefresh(t testing.TB, at time.Time) authtoken.RefreshToken {
	return authtoken.RefreshToken{Hash: randomBytes(t, 32), CreatedAt: at}
}

func newLinkToken(t testing.TB, b bundle, u authtoken.User, ttl time.Duration) authtoken.LinkToken {
	t.Helper()
	l := authtoken.LinkToken{
		ID: ids.New("lnk"), ClientID: u.ClientID, UserID: u.ID, Hash: randomBytes(t, 32),
		Products: []string{"ACCOUNTS", "BALANCES"}, Country: "CL", Language: "es", RedirectURI: "https://a.example/cb",
		CreatedAt: b.now, ExpiresAt: b.now.Add(ttl),
	}
	require.NoError(t, b.store.CreateLinkToken(b.ctx, l))
	return l
}

func signingKey(t testing.TB, createdAt, activateAt time.Time) authtoken.SigningKey {
	return authtoken.SigningKey{
		ID: ids.New("sgk"), Public: randomBytes(t, 32), PrivateSealed: randomBytes(t, 64),
		CreatedAt: createdAt, ActivateAt: activateAt,
	}
}

func keyIDs(keys []authtoken.SigningKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func userIDs(us []authtoken.User) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.ID)
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
	files, err := fs.ReadDir(authtokenpg.Migrations(), ".")
	require.NoError(t, err)
	require.NotEmpty(t, files)

	// requireMigratedOnce checks that every migration is recorded exactly once and the schema works.
	requireMigratedOnce := func(t *testing.T, ctx context.Context, dbURL string) {
		conn := superuser(t, ctx, dbURL)
		var rows, versions int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM authtoken.schema_migrations`).Scan(&rows, &versions))
		require.Equal(t, len(files), rows, "rows of authtoken.schema_migrations")
		require.Equal(t, len(files), versions, "versions in authtoken.schema_migrations")

		pool, err := postgres.Open(ctx, dbURL, authtokenpg.Schema)
		require.NoError(t, err)
		defer pool.Close()
		b := bundle{ctx: ctx, url: dbURL, store: authtokenpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
		c, _ := newClient(t, b)
		got, err := b.store.GetClient(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, c.ID, got.ID)
	}

	t.Run("running it twice applies each migration once and keeps the data", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dbURL := pgtest.NewDatabase(t)
		require.NoError(t, authtokenpg.Migrate(ctx, dbURL))

		pool, err := postgres.Open(ctx, dbURL, authtokenpg.Schema)
		require.NoError(t, err)
		defer pool.Close()
		b := bundle{ctx: ctx, url: dbURL, store: authtokenpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
		c, _ := newClient(t, b)

		require.NoError(t, authtokenpg.Migrate(ctx, dbURL))
		_, err = b.store.GetClient(ctx, c.ID)
		require.NoError(t, err, "the second run must not touch existing data")
		requireMigratedOnce(t, ctx, dbURL)
	})

	t.Run("eight concurrent runs on a fresh database all succeed and apply each migration once", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dbURL := pgtest.NewDatabase(t)
		errs := make([]error, 8)
		concurrently(len(errs), func(i int) { errs[i] = authtokenpg.Migrate(ctx, dbURL) })
		for i, err := range errs {
			require.NoError(t, err, "run %d", i)
		}
		requireMigratedOnce(t, ctx, dbURL)
	})
}

// ---- Tenant isolation

func TestStoreKeepsClientsApart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clientA, keyA := newClient(t, b)
	clientB, _ := newClient(t, b)
	userA := newUser(t, b, clientA.ID, "shared-ref")
	userB := newUser(t, b, clientB.ID, "shared-ref")
	otherB := newUser(t, b, clientB.ID, "only-b")

	t.Run("GetUser with another client's id reads as not found", func(t *testing.T) {
		_, err := b.store.GetUser(b.ctx, clientB.ID, userA.ID)
		require.ErrorIs(t, err, authtoken.ErrUserNotFound)

		got, err := b.store.GetUser(b.ctx, clientA.ID, userA.ID)
		require.NoError(t, err)
		require.Equal(t, userA.ID, got.ID)
	})

	t.Run("ListUsers never returns another client's user", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			clientID    string
			externalRef string
			want        []string
		}{
			{"all of client B's users", clientB.ID, "", []string{otherB.ID, userB.ID}},
			{"client B filtering by a ref both clients use", clientB.ID, "shared-ref", []string{userB.ID}},
			{"all of client A's users", clientA.ID, "", []string{userA.ID}},
			{"client A filtering by a ref only B uses", clientA.ID, "only-b", []string{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				us, err := b.store.ListUsers(b.ctx, tc.clientID, tc.externalRef, authtoken.Page{Limit: 100})
				require.NoError(t, err)
				require.Equal(t, tc.want, userIDs(us))
				for _, u := range us {
					require.Equal(t, tc.clientID, u.ClientID)
				}
			})
		}
	})

	t.Run("RevokeAPIKey with another client's id reads as not found and revokes nothing", func(t *testing.T) {
		refresh := newRefreshToken(t, b, keyA)
		_, err := b.store.RevokeAPIKey(b.ctx, clientB.ID, keyA.ID, b.now)
		require.ErrorIs(t, err, authtoken.ErrAPIKeyNotFound)

		k, err := b.store.APIKeyByHash(b.ctx, keyA.SecretHash)
		require.NoError(t, err)
		require.Nil(t, k.RevokedAt, "client A's key must stay valid")
		_, err = b.store.RotateRefreshToken(b.ctx, refresh.Hash, clientA.ID, nextRefresh(t, b.now.Add(time.Minute)))
		require.NoError(t, err, "refresh tokens issued through client A's key must stay valid")
	})

	t.Run("ListAPIKeys never returns another client's key", func(t *testing.T) {
		keys, err := b.store.ListAPIKeys(b.ctx, clientB.ID)
		require.NoError(t, err)
		for _, k := range keys {
			require.NotEqual(t, keyA.ID, k.ID)
			require.Equal(t, clientB.ID, k.ClientID)
		}
	})
}

// ---- Users

func TestStoreCreateUser(t *testing.T) {
	t.Parallel()

	t.Run("a duplicate external_ref under the same client is ErrExternalRefTaken", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		first := newUser(t, b, c.ID, "ref-1")

		err := b.store.CreateUser(b.ctx, userOf(c.ID, "ref-1", b.now))
		require.ErrorIs(t, err, authtoken.ErrExternalRefTaken)

		us, err := b.store.ListUsers(b.ctx, c.ID, "ref-1", authtoken.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []string{first.ID}, userIDs(us), "the first user stays the only one with the ref")
	})

	t.Run("the same external_ref under another client is fine", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, _ := newClient(t, b)
		other, _ := newClient(t, b)
		newUser(t, b, a.ID, "ref-1")

		u := userOf(other.ID, "ref-1", b.now)
		require.NoError(t, b.store.CreateUser(b.ctx, u))
		got, err := b.store.GetUser(b.ctx, other.ID, u.ID)
		require.NoError(t, err)
		require.Equal(t, "ref-1", got.ExternalRef)
	})
}

func TestStoreListUsersPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _ := newClient(t, b)
	var created []string
	for i := range 5 {
		u := newUser(t, b, c.ID, "ref-"+strconv.Itoa(i))
		created = append(created, u.ID)
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	var walked []string
	var pages int
	p := authtoken.Page{Limit: 2}
	for {
		page, err := b.store.ListUsers(b.ctx, c.ID, "", p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 2)
		if len(page) == 0 {
			break
		}
		pages++
		require.LessOrEqual(t, pages, 5, "pagination does not end")
		walked = append(walked, userIDs(page)...)
		p.After = page[len(page)-1].ID
	}
	require.Equal(t, newestFirst, walked, "every user once, newest first")
	require.Equal(t, 3, pages)
}

// ---- Link tokens

func TestStoreExchangeLinkToken(t *testing.T) {
	t.Parallel()

	t.Run("of 64 concurrent exchanges of one token exactly one succeeds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		l := newLinkToken(t, b, newUser(t, b, c.ID, "ref"), 30*time.Minute)

		warm(t, b, 32)
		var ok atomic.Int32
		errs := make([]error, 64)
		concurrently(len(errs), func(i int) {
			got, err := b.store.ExchangeLinkToken(b.ctx, l.Hash, b.now.Add(time.Minute))
			errs[i] = err
			if err == nil {
				ok.Add(1)
				if got.ID != l.ID {
					errs[i] = errors.New("exchanged the wrong token: " + got.ID)
				}
			}
		})
		require.Equal(t, int32(1), ok.Load())
		failed := 0
		for _, err := range errs {
			if err != nil {
				require.ErrorIs(t, err, authtoken.ErrLinkTokenInvalid)
				failed++
			}
		}
		require.Equal(t, 63, failed)
	})

	t.Run("the exchange returns what the token was created with", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		l := newLinkToken(t, b, newUser(t, b, c.ID, "ref"), 30*time.Minute)

		got, err := b.store.ExchangeLinkToken(b.ctx, l.Hash, b.now.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, l.ID, got.ID)
		require.Equal(t, l.ClientID, got.ClientID)
		require.Equal(t, l.UserID, got.UserID)
		require.Equal(t, l.Products, got.Products)
		require.Equal(t, l.Country, got.Country)
		require.Equal(t, l.Language, got.Language)
		require.Equal(t, l.RedirectURI, got.RedirectURI)
		require.True(t, l.ExpiresAt.Equal(got.ExpiresAt))
	})

	for _, tc := range []struct {
		name string
		at   time.Duration // after the token's expiry
	}{
		{"a token cannot be exchanged at the instant it expires", 0},
		{"a token cannot be exchanged after it expired", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c, _ := newClient(t, b)
			l := newLinkToken(t, b, newUser(t, b, c.ID, "ref"), 30*time.Minute)

			_, err := b.store.ExchangeLinkToken(b.ctx, l.Hash, l.ExpiresAt.Add(tc.at))
			require.ErrorIs(t, err, authtoken.ErrLinkTokenInvalid)
		})
	}

	t.Run("an unknown token cannot be exchanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.ExchangeLinkToken(b.ctx, randomBytes(t, 32), b.now)
		require.ErrorIs(t, err, authtoken.ErrLinkTokenInvalid)
	})
}

// ---- Refresh tokens

func TestStoreRotateRefreshToken(t *testing.T) {
	t.Parallel()

	t.Run("a token rotates once into a successor of the same family, which rotates in turn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		first := newRefreshToken(t, b, k)

		second, err := b.store.RotateRefreshToken(b.ctx, first.Hash, c.ID, nextRefresh(t, b.now.Add(time.Hour)))
		require.NoError(t, err)
		require.Equal(t, first.FamilyID, second.FamilyID)
		require.Equal(t, c.ID, second.ClientID)
		require.Equal(t, k.ID, second.APIKeyID)
		require.True(t, first.FamilyExpiresAt.Equal(second.FamilyExpiresAt), "rotation must not extend the family")

		_, err = b.store.RotateRefreshToken(b.ctx, second.Hash, c.ID, nextRefresh(t, b.now.Add(2*time.Hour)))
		require.NoError(t, err)
	})

	t.Run("presenting a spent token again fails and revokes its family", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		first := newRefreshToken(t, b, k)
		second, err := b.store.RotateRefreshToken(b.ctx, first.Hash, c.ID, nextRefresh(t, b.now.Add(time.Minute)))
		require.NoError(t, err)

		_, err = b.store.RotateRefreshToken(b.ctx, first.Hash, c.ID, nextRefresh(t, b.now.Add(2*time.Minute)))
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
		_, err = b.store.RotateRefreshToken(b.ctx, second.Hash, c.ID, nextRefresh(t, b.now.Add(3*time.Minute)))
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant, "the successor must be revoked with its family")

		other := newRefreshToken(t, b, k)
		_, err = b.store.RotateRefreshToken(b.ctx, other.Hash, c.ID, nextRefresh(t, b.now.Add(4*time.Minute)))
		require.NoError(t, err, "another family of the same client is not affected")
	})

	t.Run("another client's token fails, and stays valid for its own client", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		owner, k := newClient(t, b)
		thief, _ := newClient(t, b)
		r := newRefreshToken(t, b, k)

		_, err := b.store.RotateRefreshToken(b.ctx, r.Hash, thief.ID, nextRefresh(t, b.now.Add(time.Minute)))
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
		_, err = b.store.RotateRefreshToken(b.ctx, r.Hash, owner.ID, nextRefresh(t, b.now.Add(2*time.Minute)))
		require.NoError(t, err)
	})

	t.Run("a token whose API key was revoked fails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		r := newRefreshToken(t, b, k)
		revoked, err := b.store.RevokeAPIKey(b.ctx, c.ID, k.ID, b.now.Add(time.Minute))
		require.NoError(t, err)
		require.NotNil(t, revoked.RevokedAt)

		_, err = b.store.RotateRefreshToken(b.ctx, r.Hash, c.ID, nextRefresh(t, b.now.Add(2*time.Minute)))
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
	})

	for _, tc := range []struct {
		name  string
		after time.Duration // after the family's expiry
	}{
		{"a token fails at the instant its family expires", 0},
		{"a token fails after its family expired", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c, k := newClient(t, b)
			r := newRefreshToken(t, b, k)

			_, err := b.store.RotateRefreshToken(b.ctx, r.Hash, c.ID, nextRefresh(t, r.FamilyExpiresAt.Add(tc.after)))
			require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
		})
	}

	t.Run("an unknown token fails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		_, err := b.store.RotateRefreshToken(b.ctx, randomBytes(t, 32), c.ID, nextRefresh(t, b.now))
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
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
		create := func(authtoken.Store) ([]byte, error) {
			runs++
			return []byte("response-" + strconv.Itoa(runs)), nil
		}
		first, err := b.store.Idempotent(b.ctx, "cli_x:CreateUser", "req-1", fingerprint, create)
		require.NoError(t, err)
		again, err := b.store.Idempotent(b.ctx, "cli_x:CreateUser", "req-1", fingerprint, create)
		require.NoError(t, err)
		require.Equal(t, []byte("response-1"), first)
		require.Equal(t, first, again)
		require.Equal(t, 1, runs)
	})

	t.Run("the same request id with another fingerprint is ErrRequestIDReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) { return []byte("first"), nil })
		require.NoError(t, err)

		ran := false
		_, err = b.store.Idempotent(b.ctx, "scope", "req-1", []byte("another"), func(authtoken.Store) ([]byte, error) {
			ran = true
			return []byte("second"), nil
		})
		require.ErrorIs(t, err, authtoken.ErrRequestIDReused)
		require.False(t, ran)

		got, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) { return []byte("third"), nil })
		require.NoError(t, err)
		require.Equal(t, []byte("first"), got, "the reuse must not replace the first response")
	})

	t.Run("the same request id in another scope is another request", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, err := b.store.Idempotent(b.ctx, "cli_a:CreateUser", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) { return []byte("a"), nil })
		require.NoError(t, err)
		other, err := b.store.Idempotent(b.ctx, "cli_b:CreateUser", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) { return []byte("b"), nil })
		require.NoError(t, err)
		require.Equal(t, []byte("a"), a)
		require.Equal(t, []byte("b"), other)
	})

	t.Run("a failed create keeps nothing and a retry runs create again", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		boom := errors.New("boom")
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) { return nil, boom })
		require.ErrorIs(t, err, boom)

		ran := false
		got, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) {
			ran = true
			return []byte("retried"), nil
		})
		require.NoError(t, err)
		require.True(t, ran)
		require.Equal(t, []byte("retried"), got)
	})

	t.Run("16 concurrent identical calls run create once and all get its response", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		warm(t, b, 16)
		var runs atomic.Int32
		resps := make([][]byte, 16)
		errs := make([]error, 16)
		concurrently(16, func(i int) {
			resps[i], errs[i] = b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(authtoken.Store) ([]byte, error) {
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

	t.Run("writes through the transaction's store are rolled back when create fails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		u := userOf(c.ID, "ref-1", b.now)
		boom := errors.New("boom")
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(tx authtoken.Store) ([]byte, error) {
			if err := tx.CreateUser(b.ctx, u); err != nil {
				return nil, err
			}
			if _, err := tx.GetUser(b.ctx, c.ID, u.ID); err != nil {
				return nil, err
			}
			return nil, boom
		})
		require.ErrorIs(t, err, boom)

		_, err = b.store.GetUser(b.ctx, c.ID, u.ID)
		require.ErrorIs(t, err, authtoken.ErrUserNotFound)
		require.NoError(t, b.store.CreateUser(b.ctx, userOf(c.ID, "ref-1", b.now)), "the external_ref must be free again")
	})

	t.Run("writes through the transaction's store are kept when create succeeds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		u := userOf(c.ID, "ref-1", b.now)
		_, err := b.store.Idempotent(b.ctx, "scope", "req-1", fingerprint, func(tx authtoken.Store) ([]byte, error) {
			return []byte(u.ID), tx.CreateUser(b.ctx, u)
		})
		require.NoError(t, err)
		_, err = b.store.GetUser(b.ctx, c.ID, u.ID)
		require.NoError(t, err)
	})
}

// ---- Signing keys

func TestStoreAddSigningKey(t *testing.T) {
	t.Parallel()

	t.Run("onlyIfNone adds the first key, then returns it instead of adding another", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := signingKey(t, b.now, b.now)
		got, err := b.store.AddSigningKey(b.ctx, first, time.Time{}, true)
		require.NoError(t, err)
		require.Equal(t, first.ID, got.ID)

		got, err = b.store.AddSigningKey(b.ctx, signingKey(t, b.now.Add(time.Minute), b.now.Add(time.Minute)), time.Time{}, true)
		require.NoError(t, err)
		require.Equal(t, first.ID, got.ID)
		require.Equal(t, first.Public, got.Public)
		require.Equal(t, first.PrivateSealed, got.PrivateSealed)

		keys, err := b.store.SigningKeys(b.ctx, b.now.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, []string{first.ID}, keyIDs(keys))
	})

	t.Run("a rotation while a key is pending returns the pending key", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.AddSigningKey(b.ctx, signingKey(t, b.now, b.now), time.Time{}, true)
		require.NoError(t, err)
		pending := signingKey(t, b.now, b.now.Add(15*time.Minute))
		got, err := b.store.AddSigningKey(b.ctx, pending, pending.ActivateAt.Add(time.Hour), false)
		require.NoError(t, err)
		require.Equal(t, pending.ID, got.ID)

		at := b.now.Add(5 * time.Minute)
		got, err = b.store.AddSigningKey(b.ctx, signingKey(t, at, at.Add(15*time.Minute)), at.Add(time.Hour), false)
		require.NoError(t, err)
		require.Equal(t, pending.ID, got.ID)
		require.True(t, pending.ActivateAt.Equal(got.ActivateAt))

		keys, err := b.store.SigningKeys(b.ctx, at)
		require.NoError(t, err)
		require.Len(t, keys, 2)
	})

	t.Run("a rotation retires older keys, which leave SigningKeys when their publish_until passes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := signingKey(t, b.now, b.now)
		_, err := b.store.AddSigningKey(b.ctx, first, time.Time{}, true)
		require.NoError(t, err)

		at := b.now.Add(24 * time.Hour)
		second := signingKey(t, at, at.Add(15*time.Minute))
		retireAt := second.ActivateAt.Add(time.Hour + time.Minute)
		got, err := b.store.AddSigningKey(b.ctx, second, retireAt, false)
		require.NoError(t, err)
		require.Equal(t, second.ID, got.ID)

		keys, err := b.store.SigningKeys(b.ctx, at)
		require.NoError(t, err)
		require.Equal(t, []string{second.ID, first.ID}, keyIDs(keys), "newest first, the retired key still published")
		require.Nil(t, keys[0].PublishUntil)
		require.NotNil(t, keys[1].PublishUntil)
		require.True(t, retireAt.Equal(*keys[1].PublishUntil))

		keys, err = b.store.SigningKeys(b.ctx, retireAt.Add(-time.Microsecond))
		require.NoError(t, err)
		require.Equal(t, []string{second.ID, first.ID}, keyIDs(keys))

		keys, err = b.store.SigningKeys(b.ctx, retireAt)
		require.NoError(t, err)
		require.Equal(t, []string{second.ID}, keyIDs(keys))
	})

	t.Run("eight concurrent rotations add exactly one key", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := signingKey(t, b.now, b.now)
		_, err := b.store.AddSigningKey(b.ctx, first, time.Time{}, true)
		require.NoError(t, err)

		at := b.now.Add(time.Hour)
		candidates := make([]authtoken.SigningKey, 8)
		for i := range candidates {
			candidates[i] = signingKey(t, at, at.Add(15*time.Minute))
		}
		warm(t, b, 8)
		got := make([]authtoken.SigningKey, 8)
		errs := make([]error, 8)
		concurrently(8, func(i int) {
			k := candidates[i]
			got[i], errs[i] = b.store.AddSigningKey(b.ctx, k, k.ActivateAt.Add(time.Hour), false)
		})
		for i := range got {
			require.NoError(t, errs[i], "rotation %d", i)
			require.Equal(t, got[0].ID, got[i].ID, "every rotation must return the one key added")
		}

		conn := superuser(t, b.ctx, b.url)
		var n int
		require.NoError(t, conn.QueryRow(b.ctx, `SELECT count(*) FROM authtoken.signing_keys`).Scan(&n))
		require.Equal(t, 2, n)
		keys, err := b.store.SigningKeys(b.ctx, at)
		require.NoError(t, err)
		require.Equal(t, []string{got[0].ID, first.ID}, keyIDs(keys))
	})

	t.Run("eight concurrent first keys add exactly one", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		candidates := make([]authtoken.SigningKey, 8)
		for i := range candidates {
			candidates[i] = signingKey(t, b.now, b.now)
		}
		warm(t, b, 8)
		got := make([]authtoken.SigningKey, 8)
		errs := make([]error, 8)
		concurrently(8, func(i int) {
			got[i], errs[i] = b.store.AddSigningKey(b.ctx, candidates[i], time.Time{}, true)
		})
		for i := range got {
			require.NoError(t, errs[i], "call %d", i)
			require.Equal(t, got[0].ID, got[i].ID)
		}
		keys, err := b.store.SigningKeys(b.ctx, b.now)
		require.NoError(t, err)
		require.Equal(t, []string{got[0].ID}, keyIDs(keys))
	})
}
