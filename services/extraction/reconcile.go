package extraction

import (
	"cmp"
	"slices"
	"time"
)

// ChangeKind is what happened to a transaction in a reconciliation.
type ChangeKind int

const (
	Added ChangeKind = iota + 1
	Modified
	Removed
)

// Change is one difference between what is stored and what the upstream has.
type Change struct {
	Kind ChangeKind
	ID   string              // the stored transaction's id (Modified, Removed)
	Txn  UpstreamTransaction // its new content (Added, Modified)
}

// bookingWindow is how far apart the day a transaction was authorised (pending) and the day it
// booked may be for the two to be one transaction.
const bookingWindow = 7 * 24 * time.Hour

// Reconcile compares an account's stored transactions with the upstream's list and returns
// the changes that make the first the second. stored holds the account's transactions that are
// not removed; those booked outside the upstream's dates are left alone (the upstream no longer
// shows them; they did not go away).
//
// A stored transaction is the same as an upstream one when, in this order:
//  1. the upstream id is the same;
//  2. the content is the same (amount, currency, booking date, description, status): for
//     upstreams whose ids are not stable, and once per occurrence, so two identical coffees
//     stay two;
//  3. a stored pending transaction and an upstream booked one have the same amount and
//     currency, and booked at most bookingWindow after it was authorised: the pending
//     transaction booked, under the upstream's new id. The closest date wins.
//
// Anything else upstream is added; anything stored that is pending, or booked within the
// upstream's dates, and matched nothing, is removed.
func Reconcile(stored []Transaction, up UpstreamTransactions) []Change {
	var changes []Change
	matched := make([]bool, len(stored))
	byUpstream := make(map[string]int, len(stored))
	for i, s := range stored {
		byUpstream[s.UpstreamTransaction.ID] = i
	}
	seen := make(map[string]bool, len(up.Items))
	var rest []UpstreamTransaction
	for _, t := range up.Items {
		if seen[t.ID] {
			continue // an upstream listing one id twice: the first stands
		}
		seen[t.ID] = true
		if i, ok := byUpstream[t.ID]; ok && !matched[i] {
			matched[i] = true
			if stored[i].UpstreamTransaction != t {
				changes = append(changes, Change{Kind: Modified, ID: stored[i].ID, Txn: t})
			}
			continue
		}
		rest = append(rest, t)
	}

	type content struct {
		amount               int64
		currency, date, desc string
		pending              bool
	}
	key := func(t UpstreamTransaction) content {
		return content{t.AmountMinor, t.Currency, t.BookingDate, t.Description, t.Pending}
	}
	byContent := map[content][]int{}
	for i, s := range stored {
		if !matched[i] {
			k := key(s.UpstreamTransaction)
			byContent[k] = append(byContent[k], i)
		}
	}
	var unmatched []UpstreamTransaction
	for _, t := range rest {
		if is := byContent[key(t)]; len(is) > 0 {
			i := is[0]
			byContent[key(t)] = is[1:]
			matched[i] = true
			changes = append(changes, Change{Kind: Modified, ID: stored[i].ID, Txn: t})
			continue
		}
		unmatched = append(unmatched, t)
	}

	for _, t := range unmatched {
		if i := bookedFrom(stored, matched, t); i >= 0 {
			matched[i] = true
			changes = append(changes, Change{Kind: Modified, ID: stored[i].ID, Txn: t})
			continue
		}
		changes = append(changes, Change{Kind: Added, Txn: t})
	}

	for i, s := range stored {
		if matched[i] {
			continue
		}
		inRange := (up.From == "" || s.BookingDate >= up.From) && (up.To == "" || s.BookingDate <= up.To)
		if s.Pending || inRange {
			changes = append(changes, Change{Kind: Removed, ID: s.ID})
		}
	}
	return changes
}

// bookedFrom returns the stored pending transaction that t, booked, most likely is, or -1.
func bookedFrom(stored []Transaction, matched []bool, t UpstreamTransaction) int {
	if t.Pending {
		return -1
	}
	booked, err := time.Parse(time.DateOnly, t.BookingDate)
	if err != nil {
		return -1
	}
	best, bestGap := -1, time.Duration(0)
	for i, s := range stored {
		if matched[i] || !s.Pending || s.AmountMinor != t.AmountMinor || s.Currency != t.Currency {
			continue
		}
		authorised, err := time.Parse(time.DateOnly, s.BookingDate)
		if err != nil {
			continue
		}
		gap := booked.Sub(authorised)
		if gap < 0 || gap > bookingWindow {
			continue
		}
		if best < 0 || gap < bestGap || (gap == bestGap && s.Description == t.Description && stored[best].Description != t.Description) {
			best, bestGap = i, gap
		}
	}
	return best
}

// SortedChanges orders changes so that numbering them gives a stable, readable history:
// removals, then modifications, then additions oldest first.
func SortedChanges(cs []Change) []Change {
	slices.SortStableFunc(cs, func(a, b Change) int {
		if a.Kind != b.Kind {
			return cmp.Compare(b.Kind, a.Kind)
		}
		return cmp.Compare(a.Txn.BookingDate, b.Txn.BookingDate)
	})
	return cs
}
