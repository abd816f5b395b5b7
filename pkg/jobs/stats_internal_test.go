package jobs

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
)

// The backlog is read at every scrape from a table that holds a day of done jobs and every failed
// job ever: the query must reach the pending and failed jobs through indexes, never by reading
// the table. With sequential scans priced out, a plan still holding one has no index to use.
func TestStatsReadsOnlyPendingAndFailedJobsThroughIndexes(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, postgres.Migrate(ctx, url, "jobsplan", fstest.MapFS{
		"001_jobs.up.sql":       {Data: []byte(Migration)},
		"002_jobs_trace.up.sql": {Data: []byte(TraceMigration)},
		"003_jobs_stats.up.sql": {Data: []byte(StatsMigration)},
	}))
	pool, err := postgres.Open(ctx, url, "jobsplan")
	require.NoError(t, err)
	defer pool.Close()

	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `EXPLAIN `+statsSQL, nil)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		plan := strings.Join(lines, "\n")
		require.NotContains(t, plan, "Seq Scan", plan)
		require.Contains(t, plan, "jobs_fetch", plan)
		require.Contains(t, plan, "jobs_failed", plan)
		return nil
	}))
}
