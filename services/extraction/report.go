package extraction

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// CashFlow is the cash-flow report: money in and out by month, the balance trend and the income
// that recurs, from booked transactions.
type CashFlow struct {
	From, To  string // YYYY-MM-DD, inclusive
	Months    []CashFlowMonth
	Recurring []RecurringIncome
}

// CashFlowMonth sums one calendar month in one currency.
type CashFlowMonth struct {
	Month          string // YYYY-MM
	Currency       string
	Inflow         int64
	Outflow        int64 // positive
	Net            int64
	ClosingBalance int64 // DEPOSITORY accounts
	Transactions   int
}

// RecurringIncome is money that came in regularly with the same description.
type RecurringIncome struct {
	Description string
	Currency    string
	Frequency   string // MONTHLY or SEMI_MONTHLY
	Average     int64
	Occurrences int
	LastDate    string
}

// AccountData is one account and its transactions, as a report reads them.
type AccountData struct {
	Account      UpstreamAccount
	Transactions []UpstreamTransaction
}

// CashFlowReport computes the cash-flow report of accounts. Closing balances are worked back
// from each DEPOSITORY account's current balance through its booked transactions; pending ones
// count nowhere.
func CashFlowReport(accounts []AccountData) CashFlow {
	type monthKey struct{ month, currency string }
	months := map[monthKey]*CashFlowMonth{}
	var r CashFlow
	type source struct{ desc, currency string }
	incomes := map[source][]UpstreamTransaction{}
	for _, a := range accounts {
		for _, t := range a.Transactions {
			if t.Pending || len(t.BookingDate) < len("2006-01-02") {
				continue
			}
			if r.From == "" || t.BookingDate < r.From {
				r.From = t.BookingDate
			}
			if t.BookingDate > r.To {
				r.To = t.BookingDate
			}
			k := monthKey{t.BookingDate[:7], t.Currency}
			m := months[k]
			if m == nil {
				m = &CashFlowMonth{Month: k.month, Currency: k.currency}
				months[k] = m
			}
			m.Transactions++
			m.Net += t.AmountMinor
			if t.AmountMinor >= 0 {
				m.Inflow += t.AmountMinor
			} else {
				m.Outflow -= t.AmountMinor
			}
			// Income is money in that is not a card payment or a transfer between own accounts.
			if t.AmountMinor > 0 && a.Account.Type == "DEPOSITORY" && t.Category != "CREDIT_CARD_PAYMENT" && t.Category != "TRANSFER" {
				s := source{strings.ToLower(strings.TrimSpace(t.Description)), t.Currency}
				incomes[s] = append(incomes[s], t)
			}
		}
	}
	// Balance trend: the end of each month is today's balance minus what booked after it.
	for _, a := range accounts {
		if a.Account.Type != "DEPOSITORY" {
			continue
		}
		for k, m := range months {
			if k.currency != a.Account.Currency {
				continue
			}
			end := monthEnd(k.month)
			bal := a.Account.Balance.Current
			for _, t := range a.Transactions {
				if !t.Pending && t.BookingDate > end {
					bal -= t.AmountMinor
				}
			}
			m.ClosingBalance += bal
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(months), func(a, b monthKey) int {
		return cmp.Or(cmp.Compare(a.month, b.month), cmp.Compare(a.currency, b.currency))
	}) {
		r.Months = append(r.Months, *months[k])
	}
	for s, ts := range incomes {
		if inc, ok := recurring(ts); ok {
			inc.Description, inc.Currency = ts[0].Description, s.currency
			r.Recurring = append(r.Recurring, inc)
		}
	}
	slices.SortFunc(r.Recurring, func(a, b RecurringIncome) int {
		return cmp.Or(cmp.Compare(b.Average, a.Average), cmp.Compare(a.Description, b.Description))
	})
	return r
}

// recurring reports whether incomes (one source) came regularly: at least three times, with
// gaps that are all about a month or all about half a month.
func recurring(ts []UpstreamTransaction) (RecurringIncome, bool) {
	if len(ts) < 3 {
		return RecurringIncome{}, false
	}
	slices.SortFunc(ts, func(a, b UpstreamTransaction) int { return cmp.Compare(a.BookingDate, b.BookingDate) })
	var monthly, semi int
	var sum int64
	for i, t := range ts {
		sum += t.AmountMinor
		if i == 0 {
			continue
		}
		a, err1 := time.Parse(time.DateOnly, ts[i-1].BookingDate)
		b, err2 := time.Parse(time.DateOnly, t.BookingDate)
		if err1 != nil || err2 != nil {
			return RecurringIncome{}, false
		}
		switch gap := b.Sub(a).Hours() / 24; {
		case gap >= 26 && gap <= 35:
			monthly++
		case gap >= 12 && gap <= 19:
			semi++
		}
	}
	inc := RecurringIncome{Occurrences: len(ts), Average: sum / int64(len(ts)), LastDate: ts[len(ts)-1].BookingDate}
	switch gaps := len(ts) - 1; {
	case monthly == gaps:
		inc.Frequency = "MONTHLY"
	case semi == gaps:
		inc.Frequency = "SEMI_MONTHLY"
	default:
		return RecurringIncome{}, false
	}
	return inc, true
}

// monthEnd is the last day of month (YYYY-MM), YYYY-MM-DD.
func monthEnd(month string) string {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return month + "-31"
	}
	return t.AddDate(0, 1, -1).Format(time.DateOnly)
}
