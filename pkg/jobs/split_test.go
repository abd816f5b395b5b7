package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/jobs"
)

func TestSplitLeavesTimeToRecordAnOutcome(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	work, record, done := jobs.Split(ctx)
	defer done()

	w, ok := work.Deadline()
	require.True(t, ok)
	require.True(t, w.Before(deadline.Add(-14*time.Minute)), "work ends well before the lease: %s", time.Until(w))
	r, ok := record.Deadline()
	require.True(t, ok)
	require.True(t, r.After(deadline), "recording may run past the lease")

	cancel()
	require.Error(t, work.Err(), "work stops with the job")
	require.NoError(t, record.Err(), "recording outlives the job's cancellation")

	plain, rec, done2 := jobs.Split(context.Background())
	defer done2()
	_, ok = plain.Deadline()
	require.False(t, ok)
	_, ok = rec.Deadline()
	require.False(t, ok)
}
