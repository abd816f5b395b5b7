package extraction_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/services/extraction"
)

// tx is a booked transaction for the report tests.
func tx(date string, amount int64, currency, desc, category string) extraction.UpstreamTransaction {
	return extraction.UpstreamTransaction{
		ID: "t-" + date + "-" + desc, AmountMinor: amount, Currency: currency, BookingDate: date, ValueDate: date,
		Description: desc, Category: category,
	}
}

func pendingTx(date string, amount int64, currency, desc string) extraction.UpstreamTransaction {
	t := tx(date, amount, currency, desc, "")
	t.Pending = true
	return t
}

func account(typ, currency string, current int64) extraction.UpstreamAccount {
	return extraction.UpstreamAccount{ID: typ + "-" + currency, Type: typ, Currency: currency, Balance: extraction.Balance{Current: current}}
}

func TestCashFlowReport(t *testing.T) {
	t.Parallel()
	checkingCLP := extraction.AccountData{
		Account: account("DEPOSITORY", "CLP", 3_000_000),
		Transactions: []extraction.UpstreamTransaction{
			// January
			tx("2026-01-01", 500_000, "CLP", "Salary", "INCOME"),
			tx("2026-01-03", 50_000, "CLP", "Gift", ""),
			tx("2026-01-05", 300_000, "CLP", "Freelance Client", ""),
			tx("2026-01-08", 200_000, "CLP", "From savings", "TRANSFER"),
			tx("2026-01-10", 50_000, "CLP", "Gift", ""),
			tx("2026-01-15", 500_000, "CLP", "Salary", "INCOME"),
			tx("2026-01-20", -100_000, "CLP", "Rent", "TRANSFER"),
			tx("2026-01-22", 40_000, "CLP", "Card refund", "CREDIT_CARD_PAYMENT"),
			// February
			tx("2026-02-01", 500_000, "CLP", "Salary", "INCOME"),
			tx("2026-02-05", 310_000, "CLP", "Freelance Client", ""),
			tx("2026-02-08", 200_000, "CLP", "From savings", "TRANSFER"),
			tx("2026-02-15", 500_000, "CLP", " salary ", "INCOME"),
			tx("2026-02-20", -50_000, "CLP", "Groceries", "GROCERIES"),
			tx("2026-02-22", 40_000, "CLP", "Card refund", "CREDIT_CARD_PAYMENT"),
			// March
			tx("2026-03-01", 500_000, "CLP", "Salary", "INCOME"),
			tx("2026-03-06", 320_000, "CLP", "freelance client", ""),
			tx("2026-03-08", 200_000, "CLP", "From savings", "TRANSFER"),
			tx("2026-03-20", 50_000, "CLP", "Gift", ""),
			tx("2026-03-22", 40_000, "CLP", "Card refund", "CREDIT_CARD_PAYMENT"),
			tx("2026-03-25", -700_000, "CLP", "Car", "SHOPPING"),
			// Pending: counted nowhere, not even in the report's dates.
			pendingTx("2026-04-02", -30_000, "CLP", "Coffee"),
			pendingTx("2026-04-03", 20_000, "CLP", "Refund"),
		},
	}
	cardCLP := extraction.AccountData{
		Account: account("CREDIT", "CLP", 80_000),
		Transactions: []extraction.UpstreamTransaction{
			tx("2026-01-10", -40_000, "CLP", "Store", "SHOPPING"),
			tx("2026-01-12", 150_000, "CLP", "Card payment", "CREDIT_CARD_PAYMENT"),
			tx("2026-01-20", 1_000, "CLP", "Cashback", ""),
			tx("2026-02-12", 150_000, "CLP", "Card payment", "CREDIT_CARD_PAYMENT"),
			tx("2026-02-14", -60_000, "CLP", "Store", "SHOPPING"),
			tx("2026-02-20", 1_000, "CLP", "Cashback", ""),
			tx("2026-03-12", 150_000, "CLP", "Card payment", "CREDIT_CARD_PAYMENT"),
			tx("2026-03-20", 1_000, "CLP", "Cashback", ""),
		},
	}
	checkingEUR := extraction.AccountData{
		Account: account("DEPOSITORY", "EUR", 400_000),
		Transactions: []extraction.UpstreamTransaction{
			tx("2026-01-02", 10_000, "EUR", "Prime", ""),
			tx("2026-01-16", 10_000, "EUR", "Prime", ""),
			tx("2026-01-31", 100_000, "EUR", "Virement salaire", "INCOME"),
			tx("2026-02-03", -20_000, "EUR", "Carrefour", "GROCERIES"),
			tx("2026-02-16", 10_000, "EUR", "Prime", ""),
			tx("2026-02-28", 100_000, "EUR", "Virement salaire", "INCOME"),
			tx("2026-03-31", 100_000, "EUR", "Virement salaire", "INCOME"),
		},
	}

	r := extraction.CashFlowReport([]extraction.AccountData{checkingCLP, cardCLP, checkingEUR})

	require.Equal(t, "2026-01-01", r.From)
	require.Equal(t, "2026-03-31", r.To, "pending transactions do not stretch the report's dates")
	require.Equal(t, []extraction.CashFlowMonth{
		// CLP: both accounts' flows; the closing balance is the checking account's only.
		{Month: "2026-01", Currency: "CLP", Inflow: 1_791_000, Outflow: 140_000, Net: 1_651_000, ClosingBalance: 1_090_000, Transactions: 11},
		{Month: "2026-01", Currency: "EUR", Inflow: 120_000, Outflow: 0, Net: 120_000, ClosingBalance: 210_000, Transactions: 3},
		{Month: "2026-02", Currency: "CLP", Inflow: 1_701_000, Outflow: 110_000, Net: 1_591_000, ClosingBalance: 2_590_000, Transactions: 9},
		{Month: "2026-02", Currency: "EUR", Inflow: 110_000, Outflow: 20_000, Net: 90_000, ClosingBalance: 300_000, Transactions: 3},
		{Month: "2026-03", Currency: "CLP", Inflow: 1_261_000, Outflow: 700_000, Net: 561_000, ClosingBalance: 3_000_000, Transactions: 8},
		{Month: "2026-03", Currency: "EUR", Inflow: 100_000, Outflow: 0, Net: 100_000, ClosingBalance: 400_000, Transactions: 1},
	}, r.Months)

	// Recurring income: the salary twice a month (its spellings are one source), a client's
	// monthly payment, the EUR salary. Not reported: gifts at irregular gaps, a bonus whose gaps
	// mix half months and months, transfers from savings and card refunds (monthly, but not
	// income), and the card's cashback (a CREDIT account's money in is not income).
	require.Equal(t, []extraction.RecurringIncome{
		{Description: "Salary", Currency: "CLP", Frequency: "SEMI_MONTHLY", Average: 500_000, Occurrences: 5, LastDate: "2026-03-01"},
		{Description: "Freelance Client", Currency: "CLP", Frequency: "MONTHLY", Average: 310_000, Occurrences: 3, LastDate: "2026-03-06"},
		{Description: "Virement salaire", Currency: "EUR", Frequency: "MONTHLY", Average: 100_000, Occurrences: 3, LastDate: "2026-03-31"},
	}, r.Recurring)
}

func TestCashFlowReportClosingBalances(t *testing.T) {
	t.Parallel()
	r := extraction.CashFlowReport([]extraction.AccountData{
		{Account: account("DEPOSITORY", "CLP", 1_000), Transactions: []extraction.UpstreamTransaction{
			tx("2026-01-10", 100, "CLP", "In", ""),
			tx("2026-02-10", 200, "CLP", "In", ""),
			pendingTx("2026-02-11", -999, "CLP", "Hold"),
		}},
		{Account: account("DEPOSITORY", "CLP", 500), Transactions: []extraction.UpstreamTransaction{
			tx("2026-02-05", -50, "CLP", "Out", ""),
		}},
		{Account: account("CREDIT", "CLP", 9_999), Transactions: []extraction.UpstreamTransaction{
			tx("2026-01-20", -300, "CLP", "Card", ""),
		}},
	})
	require.Equal(t, []extraction.CashFlowMonth{
		// January's end: 1000-200 and 500+50, the card's balance left out.
		{Month: "2026-01", Currency: "CLP", Inflow: 100, Outflow: 300, Net: -200, ClosingBalance: 1_350, Transactions: 2},
		{Month: "2026-02", Currency: "CLP", Inflow: 200, Outflow: 50, Net: 150, ClosingBalance: 1_500, Transactions: 2},
	}, r.Months)
	require.Empty(t, r.Recurring)
}

func TestCashFlowReportRecurringNeedsThreeRegularIncomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		dates []string
		want  string // "" when not recurring
	}{
		{"twice is not enough", []string{"2026-01-01", "2026-02-01"}, ""},
		{"monthly on the same day", []string{"2026-01-01", "2026-02-01", "2026-03-01"}, "MONTHLY"},
		{"monthly on the last day of the month", []string{"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"}, "MONTHLY"},
		{"on the 1st and 15th", []string{"2026-01-01", "2026-01-15", "2026-02-01", "2026-02-15"}, "SEMI_MONTHLY"},
		{"weekly is neither", []string{"2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22"}, ""},
		{"half months then a month is neither", []string{"2026-01-01", "2026-01-15", "2026-02-15"}, ""},
		{"two months apart is neither", []string{"2026-01-01", "2026-03-01", "2026-05-01"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ts []extraction.UpstreamTransaction
			for _, d := range tc.dates {
				ts = append(ts, tx(d, 1_000, "MXN", "Nómina", "INCOME"))
			}
			r := extraction.CashFlowReport([]extraction.AccountData{{Account: account("DEPOSITORY", "MXN", 0), Transactions: ts}})
			if tc.want == "" {
				require.Empty(t, r.Recurring)
				return
			}
			require.Len(t, r.Recurring, 1)
			require.Equal(t, tc.want, r.Recurring[0].Frequency)
			require.Equal(t, len(tc.dates), r.Recurring[0].Occurrences)
			require.Equal(t, tc.dates[len(tc.dates)-1], r.Recurring[0].LastDate)
		})
	}
}

func TestCashFlowReportOfNothing(t *testing.T) {
	t.Parallel()
	require.Equal(t, extraction.CashFlow{}, extraction.CashFlowReport(nil))
	r := extraction.CashFlowReport([]extraction.AccountData{{
		Account:      account("DEPOSITORY", "CLP", 100),
		Transactions: []extraction.UpstreamTransaction{pendingTx("2026-01-01", -5, "CLP", "Hold")},
	}})
	require.Equal(t, extraction.CashFlow{}, r, "only pending transactions: no months, no dates")
}
