// Package sandboxdata is the Sandbox provider's bank: deterministic fake accounts, transactions
// and identity for a sandbox login, which can be moved forward by whole days so that a consumer
// can test incremental transaction sync (added, modified and removed transactions, pending ones
// that book) without a clock, a database or a network.
//
// Snapshot(l, day) is what the bank shows day days after AnchorDate. It is a pure function of its
// arguments: the same in every call and every process, whatever the wall clock says.
//
// # Accounts
//
// Every login with a non-empty Seed has two accounts: account 0, DEPOSITORY/CHECKING, paid a
// salary on the 1st and the 15th of each month, with a monthly transfer out and debit-card
// purchases; account 1, CREDIT/CREDIT_CARD, with card purchases and a monthly payment. Their ids,
// types, names, masks and currency never change with day; their balances follow the transactions
// in the snapshot. Login.Country picks the currency and the style of the data (CL: CLP, MX: MXN,
// BR: BRL, FR: EUR); any other country gets one of those picked from the seed. The seed
// "user_partial" has its credit account Unavailable: the bank fails to return its transactions,
// which are generated anyway so that the consumer decides how to fail. Account and transaction ids
// depend on the seed alone, not on Country or BankCode: one seed at two institutions has the same
// ids, in different currencies.
//
// # How a bank moves from one day to the next
//
// A snapshot has the transactions authorised on the DataDays calendar dates ending on Today
// (AnchorDate + day), so every BookingDate and ValueDate is in that window. Everything
// that happens on a date is drawn from a generator seeded by (seed, account index, that date)
// only, so a date's transactions are the same whatever day is asked for: moving day forward adds
// new dates at the front of the window and drops old ones off the back. A transaction authorised
// on date D then goes through these states:
//
//   - Today is D or D+1: pending. ID "pnd_…", BookingDate and ValueDate D. A card or debit-card
//     purchase shows the bank's raw description ("COMPRA POS 4821 OXXO", 4821 being the account's
//     mask), with no Merchant and no Category.
//   - Today is D+2 or D+3: booked. A new ID "txn_…" (banks give the booked transaction a different
//     id from the pending one), BookingDate D+1, ValueDate D, the same amount and the same
//     Description as when pending, so a consumer can match the two.
//   - From Today D+4 (three days after booking): a purchase is enriched. Same "txn_…" ID, but the
//     Description becomes the clean merchant name and Merchant and Category are set.
//
// Salaries, transfers and card payments never change description: their Category (INCOME,
// TRANSFER, CREDIT_CARD_PAYMENT) is set from the start and they have no Merchant.
//
// Some pending card debits are holds (pre-authorisations) that the merchant releases: they are
// pending on D and D+1 and gone from D+2, never booked.
//
// Dates follow a fixed five-day cycle (its start drawn from the seed): on three dates of every five
// there is one purchase, on the checking or the credit account; on the other two, consecutive,
// dates the credit card has a hold. Salaries, transfers and card payments come on top. So, for
// every seed, between Snapshot(l, d) and Snapshot(l, d+1):
//
//   - something is added: every date has a new pending transaction;
//   - something is modified: the date two days back had a purchase, which now books under a new
//     id, or a hold, and then the date four days back had a purchase, which is now enriched;
//   - within any five consecutive steps, something is removed: a hold is released.
//
// That makes about 33 transactions per account per window: on the checking account the salary
// twice a month, a rent-like transfer once a month and about 24 purchases; on the card about 30
// purchases and a payment once a month.
//
// Amounts are int64 minor units of the account's currency (ISO 4217 exponent: cents for MXN, BRL
// and EUR; CLP has no minor unit), never floats.
package sandboxdata

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// AnchorDate is day 0's "today": dates are relative to it, not to the clock, so that the data is
// the same in every run and a test can say which dates it expects.
const AnchorDate = "2026-01-01"

// DataDays is how many dates of history every snapshot has, Today included: about what a bank's
// open-finance API returns by default, and what the consumer's first sync reads.
const DataDays = 90

// Login is the part of a sandbox login that decides whose bank it is, so that one user at two
// institutions of different countries gets data in the right currency and style.
type Login struct {
	// Seed is the sandbox username or any other stable string; Snapshot trims and lower-cases it,
	// as the sandbox does at login.
	Seed string
	// Country is the institution's ISO 3166 alpha-2 code (any case). CL, MX, BR and FR pick the
	// currency and style; anything else gets one of those picked from the seed.
	Country string
	// BankCode is copied onto every account, for institutions that have one (a Brazilian COMPE
	// code, say); it may be empty.
	BankCode string
}

// Bank is everything the sandbox bank shows on one day, so that a consumer can read it the way it
// reads a real upstream: accounts, their transactions and the account holder.
type Bank struct {
	// Today is AnchorDate + day, YYYY-MM-DD: the newest date any transaction can have.
	Today    string
	Accounts []Account
	// Transactions are by Account.ID, newest first (by BookingDate, then by when authorised),
	// including those of Unavailable accounts.
	Transactions map[string][]Transaction
	Identity     Identity
}

// Account is one of a login's accounts. Amounts are in minor units of Currency. For a DEPOSITORY
// account BalanceCurrent is the booked balance and BalanceAvailable that minus pending debits; for
// a CREDIT account BalanceCurrent is the amount owed and BalanceAvailable the credit left, pending
// debits taken off. Balances are computed from the snapshot's own window (a fixed opening amount
// plus what is booked in it; the card owes what is booked in it), so they move with the
// transactions, but a day's change is not exactly that day's new bookings: dates that leave the
// window take their amounts with them.
type Account struct {
	ID               string
	Type             string // DEPOSITORY or CREDIT
	Subtype          string // CHECKING or CREDIT_CARD
	Name             string
	Mask             string // last four digits of the account or card number
	Currency         string // ISO 4217
	BankCode         string
	BalanceCurrent   int64
	BalanceAvailable int64
	// BalanceLimit is the credit limit of a CREDIT account, 0 otherwise.
	BalanceLimit int64
	// Unavailable says the bank fails to return this account's transactions (user_partial's
	// credit card), so that a consumer can test a partial extraction.
	Unavailable bool
}

// Transaction is one movement of an account, in one of the states described in the package
// documentation.
type Transaction struct {
	// ID is the upstream's id: "pnd_…" while pending and a different "txn_…" once booked, as
	// real banks do, so that a consumer has to match the two by content.
	ID        string
	AccountID string
	// AmountMinor is negative for money going out and positive for money coming in, in minor
	// units of Currency.
	AmountMinor int64
	Currency    string
	// BookingDate is YYYY-MM-DD; for a pending transaction, the day it was authorised.
	BookingDate string
	// ValueDate is YYYY-MM-DD, the day it was authorised.
	ValueDate   string
	Description string
	// Merchant is "" until the bank knows it (an enriched purchase).
	Merchant string
	// Category is "" until the bank knows it; otherwise one of GROCERIES, TRANSPORT, RESTAURANTS,
	// UTILITIES, SHOPPING, ENTERTAINMENT, HEALTH, FUEL (purchases), INCOME, TRANSFER and
	// CREDIT_CARD_PAYMENT.
	Category string
	Pending  bool
}

// Identity is the account holder as the bank knows them, with a tax id that passes the country's
// check-digit validation so that a consumer's validators accept it.
type Identity struct {
	Names []string
	// TaxID is a Chilean RUT with its check digit (12.345.678-5), a Brazilian CPF with both
	// check digits (11 digits, no punctuation) or a Mexican RFC of a person (13 characters, with
	// the SAT check digit); empty in France.
	TaxID string
	// TaxIDType is "RUT", "CPF", "RFC" or "".
	TaxIDType string
	Emails    []string
	// Phones are E.164.
	Phones    []string
	Addresses []Address
}

// Address is a postal address. Region is the ISO 3166-2 subdivision code without the country
// prefix ("RM", "CMX", "SP", "IDF") and Country the ISO 3166 alpha-2 code.
type Address struct {
	Street     string
	City       string
	Region     string
	PostalCode string
	Country    string
}

const (
	typeDepository    = "DEPOSITORY"
	typeCredit        = "CREDIT"
	subtypeChecking   = "CHECKING"
	subtypeCreditCard = "CREDIT_CARD"

	// partialSeed is the sandbox user whose credit card cannot be read.
	partialSeed = "user_partial"

	// pendingDays is how long a transaction stays pending: it books on Today = D+pendingDays.
	pendingDays = 2
	// enrichDays is how long after booking a purchase gets its clean description.
	enrichDays = 3
	// cycleDays and purchaseDays make the cycle that guarantees daily changes: purchaseDays dates
	// of every cycleDays have a purchase and the rest a hold. The holds must be consecutive and
	// follow the purchases, so that a hold's date two days back is always a purchase's.
	cycleDays    = 5
	purchaseDays = 3
)

// anchorDay is AnchorDate in days since the Unix epoch.
var anchorDay = func() int {
	t, err := time.Parse(time.DateOnly, AnchorDate)
	if err != nil {
		panic("sandboxdata: bad AnchorDate: " + err.Error())
	}
	return int(t.Unix() / 86400)
}()

// Snapshot is what the bank of l shows day days after AnchorDate (day is normally >= 0; a
// negative day goes back before AnchorDate by the same rules). The result is the same for the
// same arguments in every call and every process, and the caller owns it. An empty Seed (after
// trimming) has no accounts, no transactions and an empty Identity.
func Snapshot(l Login, day int) Bank {
	today := anchorDay + day
	bank := Bank{Today: civil(today).Format(time.DateOnly)}
	seed := strings.ToLower(strings.TrimSpace(l.Seed))
	if seed == "" {
		return bank
	}

	r := newRNG("sandbox/user", seed)
	picked := r.intn(len(profiles))
	p := plan{seed: seed, prof: &profiles[picked], phase: r.intn(cycleDays)}
	country := strings.ToUpper(strings.TrimSpace(l.Country))
	for i := range profiles {
		if profiles[i].country == country {
			p.prof = &profiles[i]
		}
	}
	prof := p.prof

	// The account generators draw the same things for both accounts (id, mask, opening balance, a
	// day of the month), used or not, so that what one account uses cannot shift another's draws.
	var opening int64
	accs := make([]Account, 2)
	for i, k := range []struct{ typ, subtype, name string }{
		{typeDepository, subtypeChecking, prof.checking},
		{typeCredit, subtypeCreditCard, prof.card},
	} {
		ar := newRNG("sandbox/account", seed, strconv.Itoa(i))
		accs[i] = Account{
			ID:          fmt.Sprintf("acc_%016x", ar.src.Uint64()),
			Type:        k.typ,
			Subtype:     k.subtype,
			Name:        k.name,
			Mask:        fmt.Sprintf("%04d", ar.intn(10_000)),
			Currency:    prof.currency,
			BankCode:    l.BankCode,
			Unavailable: seed == partialSeed && k.typ == typeCredit,
		}
		balance, monthDay := ar.between(prof.balance[0], prof.balance[1]), int(ar.between(5, 25))
		switch k.typ {
		case typeDepository:
			opening, p.transferDay = balance, monthDay
		case typeCredit:
			p.payDay = monthDay
		}
	}

	// dates[i] is the date today-i: formatting once per snapshot, not per transaction, halves the
	// time a snapshot takes.
	dates := make([]string, DataDays)
	for i := range dates {
		dates[i] = civil(today - i).Format(time.DateOnly)
	}
	lists := [2][]Transaction{make([]Transaction, 0, 40), make([]Transaction, 0, 40)}
	for i := range DataDays {
		x := today - i
		drafts := p.drafts(x, dates[i])
		for a := range drafts {
			// A date's drafts are in the order they happened: the last is the newest.
			for j := len(drafts[a]) - 1; j >= 0; j-- {
				if t, ok := p.transaction(&accs[a], drafts[a][j], x, today, dates); ok {
					lists[a] = append(lists[a], t)
				}
			}
		}
	}

	bank.Accounts = accs
	bank.Transactions = make(map[string][]Transaction, len(accs))
	for a := range accs {
		var booked, pendingOut int64
		for _, t := range lists[a] {
			switch {
			case !t.Pending:
				booked += t.AmountMinor
			case t.AmountMinor < 0:
				pendingOut += t.AmountMinor
			}
		}
		acc := &accs[a]
		switch acc.Type {
		case typeDepository:
			acc.BalanceCurrent = opening + booked
			acc.BalanceAvailable = acc.BalanceCurrent + pendingOut
		case typeCredit:
			owed := min(max(0, -booked), prof.limit)
			acc.BalanceCurrent = owed
			acc.BalanceAvailable = max(0, prof.limit-owed+pendingOut)
			acc.BalanceLimit = prof.limit
		}
		bank.Transactions[acc.ID] = lists[a]
	}
	bank.Identity = identity(seed, prof)
	return bank
}

// civil returns the date epochDay days after 1970-01-01, at midnight UTC.
func civil(epochDay int) time.Time { return time.Unix(int64(epochDay)*86400, 0).UTC() }

// plan is what a login's dates are drawn with.
type plan struct {
	seed        string
	prof        *profile
	transferDay int // day of the month of the checking account's rent-like transfer
	payDay      int // day of the month of the card payment
	phase       int // shifts the purchase/hold cycle, so that users differ
}

type kind int

const (
	kindPurchase kind = iota
	kindHold
	kindSalary
	kindTransfer
	kindPayment
)

// draft is one transaction as drawn for its date, before Today decides its state.
type draft struct {
	kind      kind
	amount    int64
	merchant  merchant
	pendingID uint64
	bookedID  uint64
}

// drafts draws what happens on date x (date is its YYYY-MM-DD) to the checking account and to the
// card, each in the order it happened. It draws from one generator per account and date, and the
// same draws whatever Today is, so that the date's transactions never depend on day.
func (p plan) drafts(x int, date string) [2][]draft {
	r := [2]rng{newRNG("sandbox/day", p.seed, "0", date), newRNG("sandbox/day", p.seed, "1", date)}
	var out [2][]draft
	add := func(a int, k kind, amount int64, m merchant) {
		out[a] = append(out[a], draft{k, amount, m, r[a].src.Uint64(), r[a].src.Uint64()})
	}
	purchase := func(a int, k kind) {
		m := p.prof.merchants[r[a].intn(len(p.prof.merchants))]
		add(a, k, -r[a].between(p.prof.purchase[0], p.prof.purchase[1]), m)
	}

	prof := p.prof
	dom := civil(x).Day()
	if dom == 1 || dom == 15 {
		add(0, kindSalary, r[0].between(prof.salary[0], prof.salary[1]), merchant{})
	}
	if dom == p.payDay {
		add(1, kindPayment, r[1].between(prof.purchase[1], prof.purchase[1]*2), merchant{})
	}
	if dom == p.transferDay {
		add(0, kindTransfer, -r[0].between(prof.salary[0]/4, prof.salary[0]/2), merchant{})
	}
	// The cycle's first purchase is on the checking account, the second on the card and the third
	// on either, more often the card, which has no salary or transfers: about 24 and 30 purchases
	// per window, with little spread, so that every window has about as many of each.
	coin := r[0].intn(3)
	switch k := ((x+p.phase)%cycleDays + cycleDays) % cycleDays; {
	case k == 0 || k == 2 && coin == 0:
		purchase(0, kindPurchase)
	case k < purchaseDays:
		purchase(1, kindPurchase)
	default:
		purchase(1, kindHold)
	}
	return out
}

// transaction is how d, authorised on date x, looks on today, and false if it is not there any
// more (a released hold). dates[i] is the date today-i.
func (p plan) transaction(acc *Account, d draft, x, today int, dates []string) (Transaction, bool) {
	t := Transaction{AccountID: acc.ID, AmountMinor: d.amount, Currency: acc.Currency}
	switch {
	case today < x+pendingDays:
		t.ID = fmt.Sprintf("pnd_%016x", d.pendingID)
		t.BookingDate, t.ValueDate, t.Pending = dates[today-x], dates[today-x], true
	case d.kind == kindHold:
		return Transaction{}, false
	default:
		t.ID = fmt.Sprintf("txn_%016x", d.bookedID)
		t.BookingDate, t.ValueDate = dates[today-x-1], dates[today-x]
	}
	switch d.kind {
	case kindPurchase, kindHold:
		if t.Pending || today < x+1+enrichDays {
			t.Description = p.prof.rawPurchase + " " + acc.Mask + " " + strings.ToUpper(fold(d.merchant.name))
		} else {
			t.Description, t.Merchant, t.Category = d.merchant.name, d.merchant.name, d.merchant.category
		}
	case kindSalary:
		t.Description, t.Category = p.prof.salaryDescription, "INCOME"
	case kindTransfer:
		t.Description, t.Category = p.prof.transferDescription, "TRANSFER"
	case kindPayment:
		t.Description, t.Category = p.prof.cardPayment, "CREDIT_CARD_PAYMENT"
	}
	return t, true
}

// rng draws numbers from a PCG source only through Uint64, whose sequence is fixed by the PCG
// algorithm, so the data does not change when math/rand's helper methods do.
type rng struct{ src *rand.PCG }

func newRNG(parts ...string) rng {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return rng{rand.NewPCG(binary.BigEndian.Uint64(sum[0:8]), binary.BigEndian.Uint64(sum[8:16]))}
}

// intn returns a number in [0, n), n > 0.
func (r rng) intn(n int) int {
	hi, _ := bits.Mul64(r.src.Uint64(), uint64(n))
	return int(hi)
}

// between returns a number in [lo, hi].
func (r rng) between(lo, hi int64) int64 { return lo + int64(r.intn(int(hi-lo+1))) }

// folder takes the accents off, as bank feeds and e-mail addresses do.
var folder = strings.NewReplacer(
	"á", "a", "à", "a", "â", "a", "ã", "a", "ä", "a", "Á", "A", "À", "A", "Â", "A", "Ã", "A",
	"é", "e", "è", "e", "ê", "e", "ë", "e", "É", "E", "È", "E", "Ê", "E",
	"í", "i", "î", "i", "ï", "i", "Í", "I",
	"ó", "o", "ô", "o", "õ", "o", "ö", "o", "Ó", "O", "Ô", "O",
	"ú", "u", "ù", "u", "û", "u", "ü", "u", "Ú", "U",
	"ç", "c", "Ç", "C", "ñ", "n", "Ñ", "N",
)

func fold(s string) string { return folder.Replace(s) }
