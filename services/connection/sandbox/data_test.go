package sandbox_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"puente.dev/services/connection/sandbox"
)

func TestAccountsAndTransactionsAreTheSameOnEveryCall(t *testing.T) {
	for _, user := range []string{"user_good", "user_otp", "someone@example.com"} {
		a, b := sandbox.Accounts(user), sandbox.Accounts(user)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: accounts differ between calls", user)
		}
		for _, acc := range a {
			if !reflect.DeepEqual(sandbox.Transactions(user, acc.ID), sandbox.Transactions(user, acc.ID)) {
				t.Errorf("%s: transactions of %s differ between calls", user, acc.ID)
			}
		}
	}
}

func TestAccountsAreTheSameInEveryProcess(t *testing.T) {
	// Pinned values: if this fails, the generator changed and every stored sandbox fixture with it.
	accs := sandbox.Accounts("user_good")
	if len(accs) != 2 {
		t.Fatalf("%d accounts", len(accs))
	}
	got := []string{accs[0].ID, accs[0].Mask, accs[0].Currency, accs[1].ID, accs[1].Subtype}
	want := []string{"acc_2689b664fe815da8", "5856", "CLP", "acc_5ac57b736df3e8c6", "CREDIT_CARD"}
	if !slices.Equal(got, want) {
		t.Errorf("user_good's accounts are %q, want %q", got, want)
	}
	if accs[0].BalanceCurrent != 914_080 || accs[1].BalanceCurrent != 512_222 || accs[1].BalanceAvailable != 1_435_066 {
		t.Errorf("user_good's balances are %+v", accs)
	}
	txns := sandbox.Transactions("user_good", accs[0].ID)
	if len(txns) != 33 || txns[1] != (sandbox.Transaction{
		ID: "txn_2689b664fe815da8_032", AccountID: "acc_2689b664fe815da8", AmountMinor: -57_165, Currency: "CLP",
		BookingDate: "2025-12-30", Description: "Netflix",
	}) {
		t.Errorf("user_good's checking transactions are %d, the second %+v", len(txns), txns[1])
	}
}

func TestDifferentUsersGetDifferentData(t *testing.T) {
	a, b := sandbox.Accounts("user_good"), sandbox.Accounts("user_otp")
	if a[0].ID == b[0].ID || a[1].ID == b[1].ID || reflect.DeepEqual(a, b) {
		t.Errorf("user_good and user_otp share accounts: %+v %+v", a, b)
	}
	if reflect.DeepEqual(sandbox.Transactions("user_good", a[0].ID), sandbox.Transactions("user_otp", b[0].ID)) {
		t.Error("user_good and user_otp share transactions")
	}
	if !reflect.DeepEqual(sandbox.Accounts("User_Good "), a) {
		t.Error("usernames are not normalized as at login")
	}
}

func TestAccountsAndTransactionsLookReal(t *testing.T) {
	anchor, _ := time.Parse(time.DateOnly, "2026-01-01")
	oldest := anchor.AddDate(0, 0, -89)
	for _, user := range []string{"user_good", "user_otp", "user_image", "user_slow", "a", "zz_top"} {
		accs := sandbox.Accounts(user)
		if len(accs) != 2 {
			t.Fatalf("%s: %d accounts, want 2", user, len(accs))
		}
		total := 0
		txnIDs := map[string]bool{}
		for _, acc := range accs {
			if acc.ID == "" || acc.Name == "" || len(acc.Mask) != 4 || acc.Type == "" || acc.Subtype == "" {
				t.Errorf("%s: account %+v", user, acc)
			}
			if !slices.Contains([]string{"CLP", "MXN", "BRL", "EUR"}, acc.Currency) || acc.Currency != accs[0].Currency {
				t.Errorf("%s: currency %q", user, acc.Currency)
			}
			if acc.BalanceCurrent < 0 || acc.BalanceAvailable < 0 || acc.BalanceAvailable > acc.BalanceCurrent && acc.Type == sandbox.TypeDepository {
				t.Errorf("%s: balances %+v", user, acc)
			}
			txns := sandbox.Transactions(user, acc.ID)
			total += len(txns)
			if len(txns) < 20 || len(txns) > 45 {
				t.Errorf("%s %s: %d transactions", user, acc.ID, len(txns))
			}
			for i, tx := range txns {
				day, err := time.Parse(time.DateOnly, tx.BookingDate)
				if err != nil || day.Before(oldest) || day.After(anchor) {
					t.Errorf("%s: booking date %q outside the 90 days up to 2026-01-01", user, tx.BookingDate)
				}
				if i > 0 && tx.BookingDate > txns[i-1].BookingDate {
					t.Errorf("%s: transactions are not newest first", user)
				}
				if tx.Pending != (anchor.Sub(day) < 48*time.Hour) {
					t.Errorf("%s: %s on %s pending=%v", user, tx.ID, tx.BookingDate, tx.Pending)
				}
				if tx.AccountID != acc.ID || tx.Currency != acc.Currency || tx.AmountMinor == 0 || tx.Description == "" {
					t.Errorf("%s: transaction %+v", user, tx)
				}
				if txnIDs[tx.ID] {
					t.Errorf("%s: transaction id %s repeats", user, tx.ID)
				}
				txnIDs[tx.ID] = true
			}
		}
		if total < 50 || total > 70 {
			t.Errorf("%s: %d transactions in all, want about 60", user, total)
		}
	}
}

func TestUnknownAccountsAndUsersHaveNoData(t *testing.T) {
	if got := sandbox.Transactions("user_good", "acc_nope"); len(got) != 0 {
		t.Errorf("an unknown account has %d transactions", len(got))
	}
	other := sandbox.Accounts("user_otp")[0].ID
	if got := sandbox.Transactions("user_good", other); len(got) != 0 {
		t.Errorf("another user's account has %d transactions", len(got))
	}
	if got := sandbox.Accounts("  "); len(got) != 0 {
		t.Errorf("an empty username has %d accounts", len(got))
	}
}

func TestCallersCannotChangeTheData(t *testing.T) {
	acc := sandbox.Accounts("user_good")[0]
	txns := sandbox.Transactions("user_good", acc.ID)
	txns[0].Description = "changed"
	if sandbox.Transactions("user_good", acc.ID)[0].Description == "changed" {
		t.Error("a caller changed the data")
	}
}
