package syncs

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyedSemaphoreBoundsEachKey(t *testing.T) {
	t.Parallel()
	k := newKeyedSemaphore(2)
	ctx := t.Context()
	done, cancel := context.WithCancel(ctx)
	cancel() // a done context: acquire gets a slot only if one is free now

	r1, err := k.acquire(ctx, "ins_a")
	require.NoError(t, err)
	r2, err := k.acquire(done, "ins_a")
	require.NoError(t, err, "a free slot is taken even with a done context")
	_, err = k.acquire(done, "ins_a")
	require.ErrorIs(t, err, context.Canceled, "the bound is full")
	require.Equal(t, 2, k.held("ins_a"))

	rb, err := k.acquire(done, "ins_b")
	require.NoError(t, err, "another key has its own slots")

	r1()
	r1() // releasing twice gives back one slot
	require.Equal(t, 1, k.held("ins_a"))
	r3, err := k.acquire(done, "ins_a")
	require.NoError(t, err)

	// A waiter gets the slot a holder gives back.
	got := make(chan func(), 1)
	go func() {
		r, err := k.acquire(ctx, "ins_a")
		if err == nil {
			got <- r
		}
	}()
	r2()
	r4 := <-got

	for _, r := range []func(){r3, r4, rb} {
		r()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	require.Empty(t, k.slots, "keys nobody uses are dropped")
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	ok := AccountResult{AccountID: "acc_1", Status: AccountSuccess}
	bad := func(reason string) AccountResult { return AccountResult{Status: AccountError, Reason: reason} }
	for _, tc := range []struct {
		name    string
		results []AccountResult
		status  UserStatus
		reason  string
	}{
		{"every account refreshed", []AccountResult{ok, ok}, UserSuccess, ""},
		{"some refreshed", []AccountResult{ok, bad("LOGIN_REQUIRED")}, UserPartial, ""},
		{"none refreshed, with each reason once", []AccountResult{bad("LOGIN_REQUIRED"), bad("INSTITUTION_UNAVAILABLE"), bad("LOGIN_REQUIRED")}, UserError, "LOGIN_REQUIRED,INSTITUTION_UNAVAILABLE"},
		{"none refreshed, no reason given", []AccountResult{bad("")}, UserError, ReasonInternal},
		{"no results", nil, UserError, ReasonInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, reason := outcome(tc.results)
			require.Equal(t, tc.status, st)
			require.Equal(t, tc.reason, reason)
		})
	}
}

func TestResultsPageToken(t *testing.T) {
	t.Parallel()
	p, err := ParseResultsPage(0, ResultsPageToken(41))
	require.NoError(t, err)
	require.Equal(t, ResultsPage{After: 41, Limit: 50}, p)
	for _, bad := range []string{"%%%", ResultsPageToken(-1), ResultsPageToken(MaxUsers), "MDQx" /* "041" */} {
		_, err := ParseResultsPage(10, bad)
		require.Error(t, err, bad)
	}
}
