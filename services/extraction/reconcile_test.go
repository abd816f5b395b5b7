package extraction_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/services/extraction"
)

// up is an upstream transaction: a booked one unless pending is set.
func up(id string, amount int64, date, desc string) extraction.UpstreamTransaction {
	return extraction.UpstreamTransaction{ID: id, AmountMinor: amount, Currency: "CLP", BookingDate: date, ValueDate: date, Description: desc}
}

func pendingUp(id string, amount int64, date, desc string) extraction.UpstreamTransaction {
	t := up(id, amount, date, desc)
	t.Pending = true
	return t
}

// stored is a stored transaction with our id and the upstream's content.
func stored(id string, u extraction.UpstreamTransaction) extraction.Transaction {
	return extraction.Transaction{ID: id, ClientID: "cli_1", ConsentID: "cns_1", AccountID: "acc_1", UpstreamTransaction: u}
}

func added(u extraction.UpstreamTransaction) extraction.Change {
	return extraction.Change{Kind: extraction.Added, Txn: u}
}

func modified(id string, u extraction.UpstreamTransaction) extraction.Change {
	return extraction.Change{Kind: extraction.Modified, ID: id, Txn: u}
}

func removed(id string) extraction.Change {
	return extraction.Change{Kind: extraction.Removed, ID: id}
}

func window(from, to string, items ...extraction.UpstreamTransaction) extraction.UpstreamTransactions {
	return extraction.UpstreamTransactions{From: from, To: to, Items: items}
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	coffee := up("u1", -3_500, "2026-01-10", "COFFEE")
	withCategory := coffee
	withCategory.Description, withCategory.Category, withCategory.CounterpartyName = "Coffee Shop", "RESTAURANTS", "Coffee Shop"
	renamed := coffee
	renamed.ID = "u1-new"

	authorised := pendingUp("pnd_1", -20_000, "2026-01-10", "COMPRA POS 1234 FALABELLA")
	bookedAfter := func(id, date string) extraction.UpstreamTransaction {
		return up(id, -20_000, date, "COMPRA POS 1234 FALABELLA")
	}

	for _, tc := range []struct {
		name   string
		stored []extraction.Transaction
		up     extraction.UpstreamTransactions
		want   []extraction.Change
	}{
		{
			name:   "the same upstream id with the same content changes nothing",
			stored: []extraction.Transaction{stored("txn_a", coffee)},
			up:     window("2026-01-01", "2026-01-31", coffee),
			want:   nil,
		},
		{
			name:   "the same upstream id with other content is modified",
			stored: []extraction.Transaction{stored("txn_a", coffee)},
			up:     window("2026-01-01", "2026-01-31", withCategory),
			want:   []extraction.Change{modified("txn_a", withCategory)},
		},
		{
			name:   "an upstream whose ids are not stable: a new id with the same content is modified, not added",
			stored: []extraction.Transaction{stored("txn_a", coffee)},
			up:     window("2026-01-01", "2026-01-31", renamed),
			want:   []extraction.Change{modified("txn_a", renamed)},
		},
		{
			name: "two identical coffees on one day stay two, each matched once, and a third is added",
			stored: []extraction.Transaction{
				stored("txn_a", up("x1", -3_500, "2026-01-10", "COFFEE")),
				stored("txn_b", up("x2", -3_500, "2026-01-10", "COFFEE")),
			},
			up: window("2026-01-01", "2026-01-31",
				up("y1", -3_500, "2026-01-10", "COFFEE"),
				up("y2", -3_500, "2026-01-10", "COFFEE"),
				up("y3", -3_500, "2026-01-10", "COFFEE"),
			),
			want: []extraction.Change{
				modified("txn_a", up("y1", -3_500, "2026-01-10", "COFFEE")),
				modified("txn_b", up("y2", -3_500, "2026-01-10", "COFFEE")),
				added(up("y3", -3_500, "2026-01-10", "COFFEE")),
			},
		},
		{
			name: "two identical coffees keeping their ids change nothing, and a third identical one is added",
			stored: []extraction.Transaction{
				stored("txn_a", up("x1", -3_500, "2026-01-10", "COFFEE")),
				stored("txn_b", up("x2", -3_500, "2026-01-10", "COFFEE")),
			},
			up: window("2026-01-01", "2026-01-31",
				up("x1", -3_500, "2026-01-10", "COFFEE"),
				up("x2", -3_500, "2026-01-10", "COFFEE"),
				up("x3", -3_500, "2026-01-10", "COFFEE"),
			),
			want: []extraction.Change{added(up("x3", -3_500, "2026-01-10", "COFFEE"))},
		},
		{
			name:   "a pending transaction that books three days later under a new id is modified",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up:     window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-13")),
			want:   []extraction.Change{modified("txn_p", bookedAfter("txn_u", "2026-01-13"))},
		},
		{
			name:   "a pending transaction that books exactly seven days later is still the same one",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up:     window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-17")),
			want:   []extraction.Change{modified("txn_p", bookedAfter("txn_u", "2026-01-17"))},
		},
		{
			name:   "a booking more than seven days after the authorisation is another transaction: added, and the pending removed",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up:     window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-18")),
			want:   []extraction.Change{added(bookedAfter("txn_u", "2026-01-18")), removed("txn_p")},
		},
		{
			name:   "a booking before the authorisation is another transaction",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up:     window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-09")),
			want:   []extraction.Change{added(bookedAfter("txn_u", "2026-01-09")), removed("txn_p")},
		},
		{
			name:   "a booking in another currency is another transaction",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up: window("2026-01-01", "2026-01-31", func() extraction.UpstreamTransaction {
				u := bookedAfter("txn_u", "2026-01-11")
				u.Currency = "USD"
				return u
			}()),
			want: []extraction.Change{
				added(func() extraction.UpstreamTransaction {
					u := bookedAfter("txn_u", "2026-01-11")
					u.Currency = "USD"
					return u
				}()),
				removed("txn_p"),
			},
		},
		{
			name:   "a booking of another amount is another transaction",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up:     window("2026-01-01", "2026-01-31", up("txn_u", -20_001, "2026-01-11", "COMPRA POS 1234 FALABELLA")),
			want:   []extraction.Change{added(up("txn_u", -20_001, "2026-01-11", "COMPRA POS 1234 FALABELLA")), removed("txn_p")},
		},
		{
			name:   "an upstream pending transaction under a new id and date is not taken for a stored pending one",
			stored: []extraction.Transaction{stored("txn_p", authorised)},
			up:     window("2026-01-01", "2026-01-31", pendingUp("pnd_2", -20_000, "2026-01-11", "COMPRA POS 1234 FALABELLA")),
			want:   []extraction.Change{added(pendingUp("pnd_2", -20_000, "2026-01-11", "COMPRA POS 1234 FALABELLA")), removed("txn_p")},
		},
		{
			name: "of two pending transactions that could have booked, the closest date wins",
			stored: []extraction.Transaction{
				stored("txn_far", pendingUp("pnd_far", -20_000, "2026-01-05", "COMPRA POS 1234 FALABELLA")),
				stored("txn_near", pendingUp("pnd_near", -20_000, "2026-01-09", "COMPRA POS 1234 FALABELLA")),
			},
			up: window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-10")),
			want: []extraction.Change{
				modified("txn_near", bookedAfter("txn_u", "2026-01-10")),
				removed("txn_far"),
			},
		},
		{
			name: "the closest date wins whatever the stored order",
			stored: []extraction.Transaction{
				stored("txn_near", pendingUp("pnd_near", -20_000, "2026-01-09", "COMPRA POS 1234 FALABELLA")),
				stored("txn_far", pendingUp("pnd_far", -20_000, "2026-01-05", "COMPRA POS 1234 FALABELLA")),
			},
			up: window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-10")),
			want: []extraction.Change{
				modified("txn_near", bookedAfter("txn_u", "2026-01-10")),
				removed("txn_far"),
			},
		},
		{
			name: "two pending transactions booking on one day each take the booking closest to them",
			stored: []extraction.Transaction{
				stored("txn_1", pendingUp("pnd_1", -20_000, "2026-01-08", "A")),
				stored("txn_2", pendingUp("pnd_2", -20_000, "2026-01-09", "B")),
			},
			up: window("2026-01-01", "2026-01-31", up("txn_x", -20_000, "2026-01-10", "B"), up("txn_y", -20_000, "2026-01-10", "A")),
			want: []extraction.Change{
				modified("txn_2", up("txn_x", -20_000, "2026-01-10", "B")),
				modified("txn_1", up("txn_y", -20_000, "2026-01-10", "A")),
			},
		},
		{
			name: "at the same distance, the pending transaction with the same description wins",
			stored: []extraction.Transaction{
				stored("txn_other", pendingUp("pnd_1", -20_000, "2026-01-09", "SOMETHING ELSE")),
				stored("txn_same", pendingUp("pnd_2", -20_000, "2026-01-09", "COMPRA POS 1234 FALABELLA")),
			},
			up: window("2026-01-01", "2026-01-31", bookedAfter("txn_u", "2026-01-10")),
			want: []extraction.Change{
				modified("txn_same", bookedAfter("txn_u", "2026-01-10")),
				removed("txn_other"),
			},
		},
		{
			name:   "a stored pending transaction missing upstream is removed, even before the upstream's dates",
			stored: []extraction.Transaction{stored("txn_p", pendingUp("pnd_1", -5_000, "2025-12-01", "HOLD"))},
			up:     window("2026-01-01", "2026-01-31"),
			want:   []extraction.Change{removed("txn_p")},
		},
		{
			name: "stored booked transactions outside the upstream's dates and missing are left alone",
			stored: []extraction.Transaction{
				stored("txn_before", up("u_before", -1_000, "2025-12-31", "OLD")),
				stored("txn_after", up("u_after", -1_000, "2026-02-01", "LATER")),
			},
			up:   window("2026-01-01", "2026-01-31"),
			want: nil,
		},
		{
			name: "stored booked transactions within the upstream's dates, bounds included, and missing are removed",
			stored: []extraction.Transaction{
				stored("txn_first", up("u1", -1_000, "2026-01-01", "FIRST DAY")),
				stored("txn_mid", up("u2", -1_000, "2026-01-15", "MIDDLE")),
				stored("txn_last", up("u3", -1_000, "2026-01-31", "LAST DAY")),
			},
			up:   window("2026-01-01", "2026-01-31"),
			want: []extraction.Change{removed("txn_first"), removed("txn_mid"), removed("txn_last")},
		},
		{
			name:   "without dates the upstream covers everything: a missing booked transaction is removed",
			stored: []extraction.Transaction{stored("txn_a", up("u1", -1_000, "2019-05-05", "ANCIENT"))},
			up:     window("", ""),
			want:   []extraction.Change{removed("txn_a")},
		},
		{
			name:   "an upstream listing one id twice: the first stands",
			stored: []extraction.Transaction{stored("txn_a", coffee)},
			up:     window("2026-01-01", "2026-01-31", withCategory, coffee),
			want:   []extraction.Change{modified("txn_a", withCategory)},
		},
		{
			name:   "an upstream listing a new id twice: added once, with the first's content",
			stored: nil,
			up:     window("2026-01-01", "2026-01-31", up("dup", -1_000, "2026-01-02", "FIRST"), up("dup", -9_000, "2026-01-03", "SECOND")),
			want:   []extraction.Change{added(up("dup", -1_000, "2026-01-02", "FIRST"))},
		},
		{
			name:   "nothing stored: everything upstream is added",
			stored: nil,
			up:     window("2026-01-01", "2026-01-31", coffee, authorised),
			want:   []extraction.Change{added(coffee), added(authorised)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := extraction.Reconcile(tc.stored, tc.up)
			require.ElementsMatch(t, tc.want, got)
		})
	}
}

func TestReconcileMatchesEachStoredTransactionOnce(t *testing.T) {
	t.Parallel()
	// A stored transaction matched by id is not also matched by content or as a booking: the
	// upstream's copy with a new id is a second transaction.
	a := up("u1", -3_500, "2026-01-10", "COFFEE")
	copyOfA := a
	copyOfA.ID = "u2"
	got := extraction.Reconcile([]extraction.Transaction{stored("txn_a", a)}, window("2026-01-01", "2026-01-31", copyOfA, a))
	require.Equal(t, []extraction.Change{added(copyOfA)}, got)
}

func TestSortedChanges(t *testing.T) {
	t.Parallel()
	cs := []extraction.Change{
		added(up("a3", 1, "2026-01-20", "A3")),
		modified("txn_m2", up("m2", 1, "2026-01-15", "M2")),
		removed("txn_r1"),
		added(up("a1", 1, "2026-01-05", "A1")),
		modified("txn_m1", up("m1", 1, "2026-01-02", "M1")),
		removed("txn_r2"),
		added(up("a2", 1, "2026-01-05", "A2")),
	}
	got := extraction.SortedChanges(cs)
	require.Equal(t, []extraction.Change{
		removed("txn_r1"),
		removed("txn_r2"),
		modified("txn_m1", up("m1", 1, "2026-01-02", "M1")),
		modified("txn_m2", up("m2", 1, "2026-01-15", "M2")),
		added(up("a1", 1, "2026-01-05", "A1")),
		added(up("a2", 1, "2026-01-05", "A2")),
		added(up("a3", 1, "2026-01-20", "A3")),
	}, got, "removals, then modifications, then additions, oldest first; ties keep their order")
	require.Equal(t, got, cs, "sorted in place")
	require.Empty(t, extraction.SortedChanges(nil))
}
