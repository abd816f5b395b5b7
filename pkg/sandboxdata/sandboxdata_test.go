package sandboxdata_test

import (
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"puente.dev/pkg/sandboxdata"
)

// logins are seeds of every kind in every country, and in none.
var logins = []sandboxdata.Login{
	{Seed: "user_good", Country: "CL"},
	{Seed: "user_otp", Country: "MX"},
	{Seed: "user_partial", Country: "BR", BankCode: "341"},
	{Seed: "someone@example.com", Country: "FR"},
	{Seed: "con_01jd0000000000000000000000"},
	{Seed: "a", Country: "US"},
	{Seed: "zz_top", Country: "mx"},
	{Seed: "user_slow", Country: "CL"},
}

// days are days of all sorts, up to the ten years the sandbox lets a bank run.
var days = []int{0, 1, 2, 7, 31, 45, 365, 3650}

// addDays returns the date n days after date (YYYY-MM-DD).
func addDays(t *testing.T, date string, n int) string {
	t.Helper()
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		t.Fatalf("date %q: %v", date, err)
	}
	return d.AddDate(0, 0, n).Format(time.DateOnly)
}

func TestSnapshotIsTheSameOnEveryCall(t *testing.T) {
	for _, l := range logins {
		for _, day := range days {
			a, b := sandboxdata.Snapshot(l, day), sandboxdata.Snapshot(l, day)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%+v day %d: snapshots differ between calls", l, day)
			}
		}
	}
}

func TestCallersCannotChangeTheData(t *testing.T) {
	l := sandboxdata.Login{Seed: "user_good", Country: "CL"}
	a := sandboxdata.Snapshot(l, 3)
	a.Accounts[0].Name = "changed"
	a.Transactions[a.Accounts[0].ID][0].Description = "changed"
	a.Identity.Names[0] = "changed"
	b := sandboxdata.Snapshot(l, 3)
	if b.Accounts[0].Name == "changed" || b.Transactions[b.Accounts[0].ID][0].Description == "changed" || b.Identity.Names[0] == "changed" {
		t.Error("a caller changed the data")
	}
}

func TestSnapshotIsTheSameInEveryProcess(t *testing.T) {
	// Pinned values: if this fails, the generator changed, and every test that pins sandbox
	// data with it.
	b := sandboxdata.Snapshot(sandboxdata.Login{Seed: "user_good", Country: "CL"}, 0)
	if len(b.Accounts) != 2 {
		t.Fatalf("%d accounts", len(b.Accounts))
	}
	got := []string{b.Today, b.Accounts[0].ID, b.Accounts[0].Mask, b.Accounts[0].Currency, b.Accounts[1].ID, b.Accounts[1].Mask, b.Identity.TaxID}
	want := []string{"2026-01-01", "acc_2689b664fe815da8", "5856", "CLP", "acc_5ac57b736df3e8c6", "4774", "9.489.782-3"}
	if !slices.Equal(got, want) {
		t.Errorf("user_good is %q, want %q", got, want)
	}
	if b.Accounts[0].BalanceCurrent != 4_135_845 || b.Accounts[1].BalanceCurrent != 825_044 || b.Accounts[1].BalanceAvailable != 1_074_392 {
		t.Errorf("user_good's balances are %+v", b.Accounts)
	}
	card := b.Transactions[b.Accounts[1].ID]
	if len(card) != 35 || card[1] != (sandboxdata.Transaction{
		ID: "pnd_3aa7848419981ed6", AccountID: "acc_5ac57b736df3e8c6", AmountMinor: -77_710, Currency: "CLP",
		BookingDate: "2025-12-31", ValueDate: "2025-12-31", Description: "COMPRA POS 4774 METRO DE SANTIAGO", Pending: true,
	}) {
		t.Errorf("user_good's card has %d transactions, the second %+v", len(card), card[1])
	}
}

func TestDifferentSeedsGetDifferentBanks(t *testing.T) {
	for _, c := range []struct{ a, b string }{{"user_good", "user_otp"}, {"user_good", "user_good2"}, {"a", "b"}} {
		a := sandboxdata.Snapshot(sandboxdata.Login{Seed: c.a, Country: "CL"}, 0)
		b := sandboxdata.Snapshot(sandboxdata.Login{Seed: c.b, Country: "CL"}, 0)
		for i := range a.Accounts {
			if a.Accounts[i].ID == b.Accounts[i].ID || a.Accounts[i].Mask == b.Accounts[i].Mask && a.Accounts[i].BalanceCurrent == b.Accounts[i].BalanceCurrent {
				t.Errorf("%s and %s share account %d: %+v", c.a, c.b, i, a.Accounts[i])
			}
			if reflect.DeepEqual(a.Transactions[a.Accounts[i].ID], b.Transactions[b.Accounts[i].ID]) {
				t.Errorf("%s and %s share transactions", c.a, c.b)
			}
		}
		if reflect.DeepEqual(a.Identity, b.Identity) {
			t.Errorf("%s and %s share an identity", c.a, c.b)
		}
	}
}

func TestSeedIsNormalisedAsAtLogin(t *testing.T) {
	want := sandboxdata.Snapshot(sandboxdata.Login{Seed: "user_good", Country: "CL"}, 4)
	for _, l := range []sandboxdata.Login{{Seed: "User_Good ", Country: "CL"}, {Seed: "\tUSER_GOOD", Country: "cl"}} {
		if got := sandboxdata.Snapshot(l, 4); !reflect.DeepEqual(got, want) {
			t.Errorf("%+v is not user_good in Chile", l)
		}
	}
}

func TestEmptySeedHasAnEmptyBank(t *testing.T) {
	for _, seed := range []string{"", "  ", "\t\n"} {
		b := sandboxdata.Snapshot(sandboxdata.Login{Seed: seed, Country: "BR", BankCode: "341"}, 3)
		if len(b.Accounts) != 0 || len(b.Transactions) != 0 || !reflect.DeepEqual(b.Identity, sandboxdata.Identity{}) {
			t.Errorf("seed %q has %+v", seed, b)
		}
		if b.Today != "2026-01-04" {
			t.Errorf("seed %q: today is %q", seed, b.Today)
		}
	}
}

var categories = []string{
	"GROCERIES", "TRANSPORT", "RESTAURANTS", "UTILITIES", "SHOPPING", "ENTERTAINMENT", "HEALTH", "FUEL",
	"INCOME", "TRANSFER", "CREDIT_CARD_PAYMENT",
}

func TestSnapshotsLookReal(t *testing.T) {
	for _, l := range logins {
		first := sandboxdata.Snapshot(l, 0)
		for _, day := range days {
			b := sandboxdata.Snapshot(l, day)
			if want := addDays(t, sandboxdata.AnchorDate, day); b.Today != want {
				t.Errorf("%s day %d: today is %s, want %s", l.Seed, day, b.Today, want)
			}
			oldest := addDays(t, b.Today, -(sandboxdata.DataDays - 1))
			if len(b.Accounts) != 2 || len(b.Transactions) != 2 {
				t.Fatalf("%s day %d: %d accounts, %d transaction lists", l.Seed, day, len(b.Accounts), len(b.Transactions))
			}
			ids := map[string]bool{}
			for i, acc := range b.Accounts {
				if f := first.Accounts[i]; acc.ID != f.ID || acc.Type != f.Type || acc.Subtype != f.Subtype || acc.Name != f.Name ||
					acc.Mask != f.Mask || acc.Currency != f.Currency || acc.BankCode != l.BankCode {
					t.Errorf("%s day %d: account %+v changed from %+v", l.Seed, day, acc, f)
				}
				if acc.ID == "" || acc.Name == "" || len(acc.Mask) != 4 || ids[acc.ID] {
					t.Errorf("%s: account %+v", l.Seed, acc)
				}
				ids[acc.ID] = true
				if !slices.Contains([]string{"CLP", "MXN", "BRL", "EUR"}, acc.Currency) || acc.Currency != b.Accounts[0].Currency {
					t.Errorf("%s: currency %q", l.Seed, acc.Currency)
				}
				txns := b.Transactions[acc.ID]
				if len(txns) < 25 || len(txns) > 42 {
					t.Errorf("%s day %d %s: %d transactions", l.Seed, day, acc.Subtype, len(txns))
				}
				var booked, pendingOut int64
				for j, tx := range txns {
					if ids[tx.ID] {
						t.Errorf("%s day %d: id %s repeats", l.Seed, day, tx.ID)
					}
					ids[tx.ID] = true
					if j > 0 && tx.BookingDate > txns[j-1].BookingDate {
						t.Errorf("%s day %d: transactions are not newest first: %s after %s", l.Seed, day, tx.BookingDate, txns[j-1].BookingDate)
					}
					for _, d := range []string{tx.BookingDate, tx.ValueDate} {
						if _, err := time.Parse(time.DateOnly, d); err != nil || d < oldest || d > b.Today {
							t.Errorf("%s day %d: date %q outside %s..%s", l.Seed, day, d, oldest, b.Today)
						}
					}
					if tx.Pending {
						if !strings.HasPrefix(tx.ID, "pnd_") || tx.BookingDate != tx.ValueDate || tx.ValueDate < addDays(t, b.Today, -1) {
							t.Errorf("%s day %d: pending %+v", l.Seed, day, tx)
						}
						if tx.AmountMinor < 0 {
							pendingOut += tx.AmountMinor
						}
					} else {
						if !strings.HasPrefix(tx.ID, "txn_") || tx.BookingDate != addDays(t, tx.ValueDate, 1) || tx.ValueDate > addDays(t, b.Today, -2) {
							t.Errorf("%s day %d: booked %+v", l.Seed, day, tx)
						}
						booked += tx.AmountMinor
					}
					if tx.AccountID != acc.ID || tx.Currency != acc.Currency || tx.AmountMinor == 0 || tx.Description == "" {
						t.Errorf("%s day %d: transaction %+v", l.Seed, day, tx)
					}
					if tx.Category != "" && !slices.Contains(categories, tx.Category) {
						t.Errorf("%s: category %q", l.Seed, tx.Category)
					}
					if tx.Merchant != "" && (tx.Description != tx.Merchant || tx.Category == "" || tx.Pending) {
						t.Errorf("%s day %d: merchant of %+v", l.Seed, day, tx)
					}
					// A booked purchase is raw for its first three days on the books, then enriched.
					if enrichedBy := addDays(t, b.Today, -3); !tx.Pending && (tx.Category == "" && tx.BookingDate <= enrichedBy ||
						tx.Merchant != "" && tx.BookingDate > enrichedBy) {
						t.Errorf("%s day %d: %+v on %s", l.Seed, day, tx, b.Today)
					}
				}
				switch acc.Type {
				case "DEPOSITORY":
					if acc.Subtype != "CHECKING" || acc.BalanceCurrent < 0 || acc.BalanceAvailable != acc.BalanceCurrent+pendingOut || acc.BalanceLimit != 0 {
						t.Errorf("%s day %d: checking account %+v", l.Seed, day, acc)
					}
				case "CREDIT":
					owed := min(max(0, -booked), acc.BalanceLimit)
					if acc.Subtype != "CREDIT_CARD" || acc.BalanceLimit <= 0 || acc.BalanceCurrent != owed ||
						acc.BalanceAvailable != max(0, acc.BalanceLimit-owed+pendingOut) {
						t.Errorf("%s day %d: credit account %+v", l.Seed, day, acc)
					}
				default:
					t.Errorf("%s: account type %q", l.Seed, acc.Type)
				}
			}
			if b.Accounts[0].Type != "DEPOSITORY" || b.Accounts[1].Type != "CREDIT" {
				t.Errorf("%s: accounts %+v", l.Seed, b.Accounts)
			}
		}
	}
}

func TestADatesTransactionsDoNotDependOnTheDay(t *testing.T) {
	// A booked and enriched transaction is the same in every snapshot whose window has its date.
	for _, l := range logins {
		for _, d := range []int{0, 3, 30, 400} {
			early, late := sandboxdata.Snapshot(l, d), sandboxdata.Snapshot(l, d+5)
			from := addDays(t, late.Today, -(sandboxdata.DataDays - 1))
			to := addDays(t, early.Today, -4) // authorised by then, booked 3 days before early.Today
			keep := func(txns []sandboxdata.Transaction) []sandboxdata.Transaction {
				return slices.DeleteFunc(slices.Clone(txns), func(tx sandboxdata.Transaction) bool {
					return tx.ValueDate < from || tx.ValueDate > to
				})
			}
			for _, acc := range early.Accounts {
				a, b := keep(early.Transactions[acc.ID]), keep(late.Transactions[acc.ID])
				if len(a) < 20 || !reflect.DeepEqual(a, b) {
					t.Errorf("%s: the %d transactions of %s..%s on day %d are not the %d of day %d", l.Seed, len(a), from, to, d, len(b), d+5)
				}
			}
		}
	}
}

func TestPendingTransactionsBookOrAreReleased(t *testing.T) {
	for _, l := range logins {
		released := 0
		for d := range 11 {
			before, after := sandboxdata.Snapshot(l, d), sandboxdata.Snapshot(l, d+2)
			next := sandboxdata.Snapshot(l, d+1)
			for _, acc := range before.Accounts {
				booked := after.Transactions[acc.ID]
				matched := map[string]bool{}
				for _, p := range before.Transactions[acc.ID] {
					if !p.Pending {
						continue
					}
					if p.ValueDate == before.Today && !slices.Contains(next.Transactions[acc.ID], p) {
						t.Errorf("%s day %d: %s, authorised today, is not pending the same tomorrow", l.Seed, d, p.ID)
					}
					i := slices.IndexFunc(booked, func(b sandboxdata.Transaction) bool {
						return !matched[b.ID] && !b.Pending && b.AmountMinor == p.AmountMinor && b.Description == p.Description && b.ValueDate == p.ValueDate
					})
					if i < 0 {
						// A released hold: a card debit that is gone.
						if acc.Type != "CREDIT" || p.AmountMinor >= 0 || slices.ContainsFunc(booked, func(b sandboxdata.Transaction) bool { return b.ID == p.ID }) {
							t.Errorf("%s day %d: pending %+v neither booked nor released", l.Seed, d, p)
						}
						released++
						continue
					}
					b := booked[i]
					matched[b.ID] = true
					if !strings.HasPrefix(b.ID, "txn_") || b.ID[4:] == p.ID[4:] || b.BookingDate != addDays(t, p.BookingDate, 1) ||
						b.AccountID != p.AccountID || b.Currency != p.Currency || b.Merchant != p.Merchant || b.Category != p.Category {
						t.Errorf("%s day %d: pending %+v booked as %+v", l.Seed, d, p, b)
					}
				}
				// Every transaction booked since is one of those pending.
				for _, b := range booked {
					if !b.Pending && b.ValueDate >= addDays(t, before.Today, -1) && !matched[b.ID] {
						t.Errorf("%s day %d: %+v booked without being pending", l.Seed, d, b)
					}
				}
			}
		}
		if released == 0 {
			t.Errorf("%s: no hold released in days 0 to 12", l.Seed)
		}
	}
}

func TestPurchasesAreEnriched(t *testing.T) {
	for _, l := range logins {
		enriched := 0
		for _, d := range []int{0, 1, 2, 9, 100} {
			now, later := sandboxdata.Snapshot(l, d), sandboxdata.Snapshot(l, d+3)
			for _, acc := range now.Accounts {
				for _, tx := range now.Transactions[acc.ID] {
					if tx.Pending || tx.Merchant != "" || tx.Category != "" {
						continue
					}
					i := slices.IndexFunc(later.Transactions[acc.ID], func(u sandboxdata.Transaction) bool { return u.ID == tx.ID })
					if i < 0 {
						t.Errorf("%s day %d: %s is gone 3 days later", l.Seed, d, tx.ID)
						continue
					}
					u := later.Transactions[acc.ID][i]
					if u.Merchant == "" || u.Category == "" || u.Description != u.Merchant || u.AmountMinor != tx.AmountMinor ||
						u.BookingDate != tx.BookingDate || u.ValueDate != tx.ValueDate || !strings.Contains(tx.Description, acc.Mask) {
						t.Errorf("%s day %d: %+v became %+v", l.Seed, d, tx, u)
					}
					enriched++
				}
			}
		}
		if enriched == 0 {
			t.Errorf("%s: nothing enriched", l.Seed)
		}
	}
}

// step is what a consumer sees change between two consecutive days.
type step struct{ added, booked, enriched, released, dropped int }

// diff classifies every change from before to after (the next day) as a consumer of the feed
// would, and fails on any change the package documentation does not allow.
func diff(t *testing.T, before, after sandboxdata.Bank) step {
	t.Helper()
	var s step
	for _, acc := range before.Accounts {
		was, is := map[string]sandboxdata.Transaction{}, map[string]sandboxdata.Transaction{}
		for _, tx := range before.Transactions[acc.ID] {
			was[tx.ID] = tx
		}
		for _, tx := range after.Transactions[acc.ID] {
			is[tx.ID] = tx
		}
		gone := map[string]bool{} // pending ids that booked
		for id, tx := range is {
			old, ok := was[id]
			switch {
			case ok && old == tx:
			case ok:
				old.Description, old.Merchant, old.Category = tx.Merchant, tx.Merchant, tx.Category
				if was[id].Merchant != "" || tx.Merchant == "" || old != tx {
					t.Errorf("%s on %s: %+v became %+v", acc.ID, after.Today, was[id], tx)
				}
				s.enriched++
			case strings.HasPrefix(id, "pnd_"):
				if tx.ValueDate != after.Today {
					t.Errorf("%s on %s: new pending %+v", acc.ID, after.Today, tx)
				}
				s.added++
			default:
				found := false
				for pid, p := range was {
					if p.Pending && !gone[pid] && is[pid] == (sandboxdata.Transaction{}) && p.AmountMinor == tx.AmountMinor &&
						p.Description == tx.Description && p.ValueDate == tx.ValueDate {
						gone[pid], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("%s on %s: %+v booked from nothing", acc.ID, after.Today, tx)
				}
				s.booked++
			}
		}
		for id, tx := range was {
			if _, ok := is[id]; ok || gone[id] {
				continue
			}
			if tx.Pending {
				if acc.Type != "CREDIT" || tx.AmountMinor >= 0 || tx.ValueDate != addDays(t, after.Today, -2) {
					t.Errorf("%s on %s: %+v removed", acc.ID, after.Today, tx)
				}
				s.released++
				continue
			}
			if tx.ValueDate != addDays(t, before.Today, -(sandboxdata.DataDays-1)) {
				t.Errorf("%s on %s: %+v dropped before leaving the window", acc.ID, after.Today, tx)
			}
			s.dropped++
		}
	}
	return s
}

func TestEveryDayAddsAndModifiesAndHoldsAreReleasedEveryFewDays(t *testing.T) {
	for _, l := range logins {
		for _, start := range []int{0, 500} {
			const steps = 40
			var released []int
			prev := sandboxdata.Snapshot(l, start)
			for d := start; d < start+steps; d++ {
				next := sandboxdata.Snapshot(l, d+1)
				s := diff(t, prev, next)
				if s.added == 0 || s.booked+s.enriched == 0 {
					t.Errorf("%s: from day %d to %d, %+v", l.Seed, d, d+1, s)
				}
				released = append(released, s.released)
				prev = next
			}
			for i := 0; i+5 <= len(released); i++ {
				if slices.Max(released[i:i+5]) == 0 {
					t.Errorf("%s: no hold released from day %d to %d", l.Seed, start+i, start+i+5)
				}
			}
		}
	}
}

var (
	rutPattern   = regexp.MustCompile(`^[1-9]\d{0,2}(\.\d{3}){2}-[0-9K]$`)
	cpfPattern   = regexp.MustCompile(`^\d{11}$`)
	rfcPattern   = regexp.MustCompile(`^[A-Z&Ñ]{4}\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])[A-Z0-9]{2}[0-9A]$`)
	e164Pattern  = regexp.MustCompile(`^\+[1-9]\d{7,14}$`)
	emailPattern = regexp.MustCompile(`^[a-z0-9.]+@[a-z0-9.-]+\.[a-z]+$`)
)

func validRUT(s string) bool {
	if !rutPattern.MatchString(s) {
		return false
	}
	body := strings.ReplaceAll(s[:len(s)-2], ".", "")
	sum, w := 0, 2
	for i := len(body) - 1; i >= 0; i-- {
		sum += int(body[i]-'0') * w
		if w++; w == 8 {
			w = 2
		}
	}
	want := map[int]string{11: "0", 10: "K"}[11-sum%11]
	if want == "" {
		want = strconv.Itoa(11 - sum%11)
	}
	return s[len(s)-1:] == want
}

func validCPF(s string) bool {
	if !cpfPattern.MatchString(s) || strings.Count(s, s[:1]) == 11 {
		return false
	}
	for n := 9; n <= 10; n++ {
		sum := 0
		for i := range n {
			sum += int(s[i]-'0') * (n + 1 - i)
		}
		check := sum * 10 % 11 % 10
		if int(s[n]-'0') != check {
			return false
		}
	}
	return true
}

func validRFC(s string) bool {
	if !rfcPattern.MatchString(s) {
		return false
	}
	const values = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ"
	sum := 0
	for i := range 12 {
		sum += strings.IndexByte(values, s[i]) * (13 - i)
	}
	check := (11 - sum%11) % 11
	return s[12:] == map[int]string{10: "A"}[check] || s[12:] == strconv.Itoa(check) && check < 10
}

func TestTaxIDValidators(t *testing.T) {
	// Known-good and known-bad ids, so that the validators below are not vacuous.
	for s, want := range map[string]bool{"12.345.678-5": true, "12.345.678-4": false, "6.123.456-K": true, "6.123.456-0": false} {
		if validRUT(s) != want {
			t.Errorf("validRUT(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"52998224725": true, "52998224724": false, "11111111111": false} {
		if validCPF(s) != want {
			t.Errorf("validCPF(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"GODE561231GR8": true, "GODE561231GR9": false, "GODE561331GR8": false} {
		if validRFC(s) != want {
			t.Errorf("validRFC(%q) = %v", s, !want)
		}
	}
}

func TestCountriesHaveTheirProfile(t *testing.T) {
	for _, c := range []struct {
		country, currency, taxIDType, phone string
		valid                               func(string) bool
	}{
		{"CL", "CLP", "RUT", "+569", validRUT},
		{"MX", "MXN", "RFC", "+52", validRFC},
		{"BR", "BRL", "CPF", "+55", validCPF},
		{"FR", "EUR", "", "+33", func(s string) bool { return s == "" }},
	} {
		t.Run(c.country, func(t *testing.T) {
			for _, seed := range []string{"user_good", "user_otp", "user_partial", "x", "someone@example.com", "con_01jd0000000000000000000000"} {
				b := sandboxdata.Snapshot(sandboxdata.Login{Seed: seed, Country: c.country, BankCode: "237"}, 1)
				for _, acc := range b.Accounts {
					if acc.Currency != c.currency || acc.BankCode != "237" {
						t.Errorf("%s: account %+v", seed, acc)
					}
				}
				id := b.Identity
				if id.TaxIDType != c.taxIDType || !c.valid(id.TaxID) {
					t.Errorf("%s: tax id %s %q", seed, id.TaxIDType, id.TaxID)
				}
				if len(id.Names) != 1 || len(strings.Fields(id.Names[0])) < 2 {
					t.Errorf("%s: names %q", seed, id.Names)
				}
				if len(id.Emails) != 1 || !emailPattern.MatchString(id.Emails[0]) {
					t.Errorf("%s: emails %q", seed, id.Emails)
				}
				if len(id.Phones) != 1 || !e164Pattern.MatchString(id.Phones[0]) || !strings.HasPrefix(id.Phones[0], c.phone) {
					t.Errorf("%s: phones %q", seed, id.Phones)
				}
				if len(id.Addresses) != 1 || id.Addresses[0].Country != c.country || id.Addresses[0].Street == "" ||
					id.Addresses[0].City == "" || id.Addresses[0].Region == "" || id.Addresses[0].PostalCode == "" {
					t.Errorf("%s: addresses %+v", seed, id.Addresses)
				}
			}
		})
	}
}

func TestOtherCountriesGetAProfileFromTheSeed(t *testing.T) {
	taxIDTypes := map[string]string{"CLP": "RUT", "MXN": "RFC", "BRL": "CPF", "EUR": ""}
	currencies := map[string]bool{}
	for i := range 40 {
		seed := "user_" + strconv.Itoa(i)
		b := sandboxdata.Snapshot(sandboxdata.Login{Seed: seed, Country: "US"}, 0)
		cur := b.Accounts[0].Currency
		if tt, ok := taxIDTypes[cur]; !ok || b.Identity.TaxIDType != tt {
			t.Errorf("%s in the US: currency %s with a %q tax id", seed, cur, b.Identity.TaxIDType)
		}
		if !reflect.DeepEqual(sandboxdata.Snapshot(sandboxdata.Login{Seed: seed}, 0), b) {
			t.Errorf("%s: the US and no country differ", seed)
		}
		currencies[cur] = true
	}
	if len(currencies) != 4 {
		t.Errorf("40 users outside the four countries got only %v", currencies)
	}
}

func TestUserPartialCannotReadItsCard(t *testing.T) {
	for _, c := range []struct {
		seed        string
		unavailable []bool
	}{
		{"user_partial", []bool{false, true}},
		{" User_Partial", []bool{false, true}},
		{"user_good", []bool{false, false}},
	} {
		b := sandboxdata.Snapshot(sandboxdata.Login{Seed: c.seed, Country: "CL"}, 2)
		var got []bool
		for _, acc := range b.Accounts {
			got = append(got, acc.Unavailable)
			if len(b.Transactions[acc.ID]) == 0 {
				t.Errorf("%s: %s has no transactions", c.seed, acc.Subtype)
			}
		}
		if !slices.Equal(got, c.unavailable) {
			t.Errorf("%s: unavailable %v, want %v", c.seed, got, c.unavailable)
		}
	}
}

func BenchmarkSnapshot(b *testing.B) {
	l := sandboxdata.Login{Seed: "user_good", Country: "BR", BankCode: "341"}
	day := 0
	for b.Loop() {
		sandboxdata.Snapshot(l, day%365)
		day++
	}
}
