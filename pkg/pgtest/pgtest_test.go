package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func dbName(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	return strings.TrimPrefix(parsed.Path, "/")
}

func TestNewDatabase(t *testing.T) {
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	t.Run("group", func(t *testing.T) {
		for i := range 20 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				begin := time.Now()
				u := pgtest.NewDatabase(t)
				t.Logf("NewDatabase took %s", time.Since(begin))

				name := dbName(t, u)
				assert.Regexp(t, `^t_[0-9a-f]{16}$`, name)
				mu.Lock()
				assert.False(t, names[name], "database %s handed out twice", name)
				names[name] = true
				mu.Unlock()

				conn, err := pgx.Connect(t.Context(), u)
				require.NoError(t, err)
				defer conn.Close(context.Background())
				var current string
				var relations int
				require.NoError(t, conn.QueryRow(t.Context(),
					"select current_database(), (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast'))",
				).Scan(&current, &relations))
				assert.Equal(t, name, current)
				assert.Zero(t, relations, "a fresh database is empty")

				// Left open on purpose: the drop must cut it.
				leaked, err := pgx.Connect(t.Context(), u)
				require.NoError(t, err)
				_ = leaked
				_, err = conn.Exec(t.Context(), "create table mine (id int)")
				require.NoError(t, err)
			})
		}
	})
	require.Len(t, names, 20)

	conn, err := pgx.Connect(t.Context(), mustEnv(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var left int
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	require.NoError(t, conn.QueryRow(t.Context(), "select count(*) from pg_database where datname = any($1)", list).Scan(&left))
	assert.Zero(t, left, "databases are dropped when their test ends")
}

func mustEnv(t *testing.T) string {
	t.Helper()
	u, ok := os.LookupEnv(pgtest.EnvURL)
	require.True(t, ok, "%s is set by pgtest.Main", pgtest.EnvURL)
	return u
}

// fatalTB records Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()                           {}
func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestNewDatabaseWithoutURL(t *testing.T) {
	t.Setenv(pgtest.EnvURL, "")
	tb := &fatalTB{TB: t}
	assert.Empty(t, pgtest.NewDatabase(tb))
	assert.Contains(t, tb.msg, pgtest.EnvURL+" is not set")
}

func TestNewDatabaseSpeed(t *testing.T) {
	const n = 10
	var total time.Duration
	for range n {
		t.Run("db", func(t *testing.T) {
			begin := time.Now()
			pgtest.NewDatabase(t)
			total += time.Since(begin)
		})
	}
	t.Logf("NewDatabase took %s on average, one at a time", total/n)
}
