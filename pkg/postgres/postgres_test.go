package postgres_test

import (
	"context"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func migrations(sql string) fstest.MapFS {
	return fstest.MapFS{"001_init.up.sql": {Data: []byte(sql)}}
}

func TestEachServiceOwnsItsSchemaAndCannotReadAnothers(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	require.NoError(t, postgres.Migrate(ctx, url, "alpha", migrations(`CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('alpha-only');`)))
	require.NoError(t, postgres.Migrate(ctx, url, "beta", migrations(`CREATE TABLE notes (v text);`)))

	alpha, err := postgres.Open(ctx, url, "alpha")
	require.NoError(t, err)
	defer alpha.Close()
	beta, err := postgres.Open(ctx, url, "beta")
	require.NoError(t, err)
	defer beta.Close()

	var v string
	require.NoError(t, alpha.QueryRow(ctx, `SELECT v FROM secrets`).Scan(&v), "a service finds its tables on its search path")
	require.Equal(t, "alpha-only", v)

	_, err = beta.Exec(ctx, `SELECT v FROM alpha.secrets`)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "42501", pe.Code, "another service's role is refused: insufficient_privilege")
}

func TestMigrateAppliesEachFileOnceInOrder(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	fs := fstest.MapFS{
		"001_create.up.sql": {Data: []byte(`CREATE TABLE t (n int)`)},
		"002_fill.up.sql":   {Data: []byte(`INSERT INTO t VALUES (1)`)},
	}
	require.NoError(t, postgres.Migrate(ctx, url, "gamma", fs))
	require.NoError(t, postgres.Migrate(ctx, url, "gamma", fs), "a second run is a no-op")
	fs["003_more.up.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO t VALUES (2)`)}
	require.NoError(t, postgres.Migrate(ctx, url, "gamma", fs))

	pool, err := postgres.Open(ctx, url, "gamma")
	require.NoError(t, err)
	defer pool.Close()
	var sum, count int
	require.NoError(t, pool.QueryRow(ctx, `SELECT sum(n), count(*) FROM t`).Scan(&sum, &count))
	require.Equal(t, []int{3, 2}, []int{sum, count})
}

// The migration Jobs share the Deployments' DATABASE_URL, pool settings included.
func TestMigrateTakesAURLWithPoolSettings(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	withPool := url + sep + "pool_max_conns=3&pool_min_conns=1"
	fs := fstest.MapFS{"001_create.up.sql": {Data: []byte(`CREATE TABLE t (n int)`)}}
	require.NoError(t, postgres.Migrate(ctx, withPool, "delta", fs))
	pool, err := postgres.Open(ctx, withPool, "delta")
	require.NoError(t, err)
	defer pool.Close()
	require.EqualValues(t, 3, pool.Config().MaxConns)
}

func TestMigrateRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	for name, tc := range map[string]struct {
		schema string
		fs     fstest.MapFS
	}{
		"a badly named file":        {"delta", fstest.MapFS{"init.sql": {Data: []byte(`SELECT 1`)}}},
		"two files with one number": {"delta", fstest.MapFS{"001_a.up.sql": {Data: []byte(`SELECT 1`)}, "001_b.up.sql": {Data: []byte(`SELECT 1`)}}},
		"a schema name with quotes": {`x"; DROP SCHEMA public; --`, migrations(`SELECT 1`)},
		"a failing migration":       {"epsilon", migrations(`CREATE TABLE broken (`)},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, postgres.Migrate(ctx, url, tc.schema, tc.fs))
		})
	}
	// The failed migration left nothing behind, so a fixed one applies.
	require.NoError(t, postgres.Migrate(ctx, url, "epsilon", migrations(`CREATE TABLE fixed (n int)`)))
}

func TestStatementsOfATraceAreSpansAndOthersAreNot(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	require.NoError(t, postgres.Migrate(ctx, url, "epsilon", fstest.MapFS{"001_none.up.sql": {Data: []byte(`SELECT 1`)}}))
	pool, err := postgres.Open(ctx, url, "epsilon")
	require.NoError(t, err)
	defer pool.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))

	var one int
	require.NoError(t, pool.QueryRow(ctx, `SELECT 1`).Scan(&one), "outside any trace")
	traced, parent := tp.Tracer("test").Start(ctx, "request")
	require.NoError(t, pool.QueryRow(traced, `SELECT $1::int`, 424242).Scan(&one))
	parent.End()

	spans := rec.Ended()
	require.Len(t, spans, 2, "the request and its one statement")
	q := spans[0]
	require.Equal(t, "postgres.query", q.Name())
	require.Equal(t, parent.SpanContext().SpanID(), q.Parent().SpanID())
	for _, a := range q.Attributes() {
		require.NotContains(t, a.Value.String(), "424242", "arguments are never recorded")
	}
}
