package idempotency_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/secretbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// schema holds the test's tables. Roles are global to the cluster; Migrate copes with parallel
// databases creating the same one.
const schema = "idempotencytest"

// migration creates the table of the package doc, and things, a table for create to write to,
// to see its writes commit or roll back with the key.
const migration = `CREATE TABLE idempotency_keys (scope text NOT NULL, request_id text NOT NULL, fingerprint bytea NOT NULL,
    response bytea, created_at timestamptz NOT NULL, PRIMARY KEY (scope, request_id));
CREATE TABLE things (id text PRIMARY KEY);`

type env struct {
	ctx  context.Context
	pool *pgxpool.Pool
}

// setup gives the test its own database with idempotency_keys in schema, and a pool over it large
// enough for every concurrent caller to be inside the database at once.
func setup(t *testing.T) env {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, postgres.Migrate(ctx, dbURL, schema, fstest.MapFS{
		"001_init.up.sql": &fstest.MapFile{Data: []byte(migration)},
	}))
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "32")
	u.RawQuery = q.Encode()
	pool, err := postgres.Open(ctx, u.String(), schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return env{ctx: ctx, pool: pool}
}

// do is idempotency.Do over the test's pool, shaped as a store's Idempotent.
func (e env) do(ctx context.Context, scope, requestID string, fingerprint []byte, create func(pgx.Tx) ([]byte, error)) ([]byte, error) {
	return idempotency.Do(ctx, e.pool, scope, requestID, fingerprint, create)
}

func (e env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, sql, args...).Scan(&n))
	return n
}

// age moves a key's first use back by d.
func (e env) age(t *testing.T, scope, requestID string, d time.Duration) {
	t.Helper()
	tag, err := e.pool.Exec(e.ctx, `UPDATE idempotency_keys SET created_at = created_at - $3::interval WHERE scope = $1 AND request_id = $2`,
		scope, requestID, d)
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected())
}

// counting returns a create that counts its runs and answers "response-<run>".
func counting(runs *atomic.Int32) func(pgx.Tx) ([]byte, error) {
	return func(pgx.Tx) ([]byte, error) {
		return []byte("response-" + strconv.Itoa(int(runs.Add(1)))), nil
	}
}

// requireInvalidRequestID checks that err is ErrRequestIDReused and reaches a caller as an
// InvalidArgument naming request_id.
func requireInvalidRequestID(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, idempotency.ErrRequestIDReused)
	st, internal := apierr.Status(err)
	require.False(t, internal)
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Equal(t, "request_id: was already used for a different request", st.Message())
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	require.Equal(t, []string{"request_id"}, fields)
}

const fingerprint = "fingerprint-1"

func TestDo(t *testing.T) {
	t.Parallel()

	t.Run("the first call runs create and stores its response under the key", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var runs atomic.Int32
		got, err := e.do(e.ctx, "cli_a:CreateUser", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
		require.Equal(t, []byte("response-1"), got)
		require.Equal(t, int32(1), runs.Load())

		var fp, resp []byte
		var fresh bool
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT fingerprint, response, created_at > now() - interval '1 minute'
			FROM idempotency_keys WHERE scope = $1 AND request_id = $2`, "cli_a:CreateUser", "req-1").Scan(&fp, &resp, &fresh))
		require.Equal(t, []byte(fingerprint), fp)
		require.Equal(t, []byte("response-1"), resp)
		require.True(t, fresh)
	})

	t.Run("a repeat with the same fingerprint replays the first response without running create", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var runs atomic.Int32
		first, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
		again, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
		require.Equal(t, []byte("response-1"), first)
		require.Equal(t, first, again)
		require.Equal(t, int32(1), runs.Load())
	})

	t.Run("a repeat with another fingerprint is an InvalidArgument naming request_id", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var runs atomic.Int32
		_, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)

		_, err = e.do(e.ctx, "scope", "req-1", []byte("another"), counting(&runs))
		requireInvalidRequestID(t, err)
		require.Equal(t, int32(1), runs.Load(), "a reuse must not run create")

		got, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
		require.Equal(t, []byte("response-1"), got, "the reuse must not replace the first response")
	})

	t.Run("the same request id in another scope (client, method, user) is another request", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var runs atomic.Int32
		scopes := []string{"cli_a:CreateUser", "cli_b:CreateUser", "cli_a:CreateApiKey", "cli_a:usr_1:CreateConsent", "cli_a:usr_2:CreateConsent"}
		for i, scope := range scopes {
			got, err := e.do(e.ctx, scope, "req-1", []byte(fingerprint), counting(&runs))
			require.NoError(t, err, scope)
			require.Equal(t, "response-"+strconv.Itoa(i+1), string(got), scope)
		}
		require.Equal(t, len(scopes), e.count(t, `SELECT count(*) FROM idempotency_keys WHERE request_id = 'req-1'`))
	})

	t.Run("16 concurrent repeats run create once and all get its response", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		const n = 16
		// Open the connections first, so that the calls reach the database together.
		conns := make([]*pgxpool.Conn, n)
		for i := range conns {
			c, err := e.pool.Acquire(e.ctx)
			require.NoError(t, err)
			conns[i] = c
		}
		for _, c := range conns {
			c.Release()
		}
		var runs atomic.Int32
		resps := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				resps[i], errs[i] = e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, int32(1), runs.Load())
		for i := range resps {
			require.NoError(t, errs[i], "call %d", i)
			require.Equal(t, []byte("response-1"), resps[i], "call %d", i)
		}
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM idempotency_keys`))
	})

	t.Run("a failed create leaves no key and no writes behind, so a retry runs create again", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		boom := errors.New("boom")
		_, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), func(tx pgx.Tx) ([]byte, error) {
			if _, err := tx.Exec(e.ctx, `INSERT INTO things (id) VALUES ('thing-1')`); err != nil {
				return nil, err
			}
			return nil, boom
		})
		require.ErrorIs(t, err, boom)
		require.Zero(t, e.count(t, `SELECT count(*) FROM idempotency_keys`))
		require.Zero(t, e.count(t, `SELECT count(*) FROM things`))

		ran := false
		got, err := e.do(e.ctx, "scope", "req-1", []byte("another"), func(tx pgx.Tx) ([]byte, error) {
			ran = true
			_, err := tx.Exec(e.ctx, `INSERT INTO things (id) VALUES ('thing-1')`)
			return []byte("retried"), err
		})
		require.NoError(t, err)
		require.True(t, ran)
		require.Equal(t, []byte("retried"), got)
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM things`), "create's writes commit with the key")
	})

	t.Run("a key younger than a day is replayed; an older one is not, and its request id runs afresh", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var runs atomic.Int32
		_, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)

		e.age(t, "scope", "req-1", idempotency.TTL-time.Hour)
		got, err := e.do(e.ctx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
		require.Equal(t, []byte("response-1"), got)

		e.age(t, "scope", "req-1", 2*time.Hour)
		got, err = e.do(e.ctx, "scope", "req-1", []byte("another"), counting(&runs))
		require.NoError(t, err)
		require.Equal(t, []byte("response-2"), got)
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM idempotency_keys WHERE created_at > now() - interval '1 minute'`))
	})

	t.Run("inside a transaction it runs in a savepoint of it", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		tx, err := e.pool.Begin(e.ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(e.ctx) }()
		var runs atomic.Int32
		_, err = idempotency.Do(e.ctx, tx, "scope", "req-1", []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(e.ctx))
		require.Zero(t, e.count(t, `SELECT count(*) FROM idempotency_keys`), "the key goes with the outer transaction")
	})
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var runs atomic.Int32
	for _, id := range []string{"old", "new"} {
		_, err := e.do(e.ctx, "scope", id, []byte(fingerprint), counting(&runs))
		require.NoError(t, err)
	}
	e.age(t, "scope", "old", idempotency.TTL+time.Hour)

	n, err := idempotency.DeleteExpired(e.ctx, e.pool, time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.Zero(t, e.count(t, `SELECT count(*) FROM idempotency_keys WHERE request_id = 'old'`))

	n, err = idempotency.DeleteExpired(e.ctx, e.pool, time.Now().Add(idempotency.TTL-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "a key is kept for a day")
	n, err = idempotency.DeleteExpired(e.ctx, e.pool, time.Now().Add(idempotency.TTL+time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	got, err := e.do(e.ctx, "scope", "new", []byte("another"), counting(&runs))
	require.NoError(t, err)
	require.Equal(t, []byte("response-3"), got, "a pruned request id is free again")
}

func newBox(t *testing.T) *secretbox.Box {
	t.Helper()
	box, err := secretbox.Parse(secretbox.NewKeySpec("k1"))
	require.NoError(t, err)
	return box
}

func TestSealed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	box := newBox(t)
	var runs atomic.Int32
	sealed := func(scope, requestID string) ([]byte, error) {
		return idempotency.Sealed(e.ctx, box, e.do, scope, requestID, []byte(fingerprint), counting(&runs))
	}

	first, err := sealed("scope", "req-1")
	require.NoError(t, err)
	require.Equal(t, []byte("response-1"), first)
	again, err := sealed("scope", "req-1")
	require.NoError(t, err)
	require.Equal(t, first, again)
	require.Equal(t, int32(1), runs.Load())

	var stored []byte
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT response FROM idempotency_keys WHERE request_id = 'req-1'`).Scan(&stored))
	require.NotContains(t, string(stored), "response-1", "the response is stored sealed")
	opened, err := box.Open(stored, []byte("scope\x00req-1"))
	require.NoError(t, err)
	require.Equal(t, first, opened)

	// A sealed response copied to another key does not open there.
	_, err = e.pool.Exec(e.ctx, `INSERT INTO idempotency_keys (scope, request_id, fingerprint, response, created_at) VALUES ('scope', 'req-2', $1, $2, now())`,
		[]byte(fingerprint), stored)
	require.NoError(t, err)
	_, err = sealed("scope", "req-2")
	require.ErrorIs(t, err, secretbox.ErrOpen)

	_, err = idempotency.Sealed(e.ctx, box, e.do, "scope", "req-1", []byte("another"), counting(&runs))
	requireInvalidRequestID(t, err)

	boom := errors.New("boom")
	_, err = idempotency.Sealed(e.ctx, box, e.do, "scope", "req-3", []byte(fingerprint), func(pgx.Tx) ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	require.Zero(t, e.count(t, `SELECT count(*) FROM idempotency_keys WHERE request_id = 'req-3'`))
}

func TestCall(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var runs atomic.Int32
	create := func(tx pgx.Tx) (*authtokenv1.CreateUserResponse, error) {
		n := runs.Add(1)
		return &authtokenv1.CreateUserResponse{User: &authtokenv1.User{Id: "usr_" + strconv.Itoa(int(n)), ExternalRef: "ref-1"}}, nil
	}
	req := &authtokenv1.CreateUserRequest{ExternalRef: "ref-1", RequestId: "req-1"}

	first, err := idempotency.Call(e.ctx, e.do, "cli_a:CreateUser", req.GetRequestId(), req, create)
	require.NoError(t, err)
	require.Equal(t, "usr_1", first.GetUser().GetId())
	again, err := idempotency.Call(e.ctx, e.do, "cli_a:CreateUser", req.GetRequestId(), req, create)
	require.NoError(t, err)
	require.Equal(t, "usr_1", again.GetUser().GetId())
	require.Equal(t, "ref-1", again.GetUser().GetExternalRef())
	require.Equal(t, int32(1), runs.Load())

	other := &authtokenv1.CreateUserRequest{ExternalRef: "ref-2", RequestId: "req-1"}
	_, err = idempotency.Call(e.ctx, e.do, "cli_a:CreateUser", other.GetRequestId(), other, create)
	requireInvalidRequestID(t, err)
	require.Equal(t, int32(1), runs.Load())

	boom := errors.New("boom")
	_, err = idempotency.Call(e.ctx, e.do, "cli_a:CreateUser", "req-2", req, func(pgx.Tx) (*authtokenv1.CreateUserResponse, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	a := &authtokenv1.CreateUserRequest{ExternalRef: "ref-1", RequestId: "req-1"}
	b := &authtokenv1.CreateUserRequest{ExternalRef: "ref-1", RequestId: "req-2"}
	c := &authtokenv1.CreateUserRequest{ExternalRef: "ref-2", RequestId: "req-1"}
	require.Len(t, idempotency.Fingerprint(a), 32)
	require.Equal(t, idempotency.Fingerprint(a), idempotency.Fingerprint(b), "the request_id is not part of the request")
	require.NotEqual(t, idempotency.Fingerprint(a), idempotency.Fingerprint(c))
	require.Equal(t, "req-1", a.GetRequestId(), "the request is not changed")
	require.Equal(t, idempotency.Fingerprint(&authtokenv1.GetJwksRequest{}), idempotency.Fingerprint(&authtokenv1.GetJwksRequest{}), "a request without request_id is hashed whole")
}
