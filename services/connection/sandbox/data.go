package sandbox

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"time"
)

// AnchorDate is the day the sandbox's data is "today": every transaction falls in the 90 days
// ending on it, whatever the clock says, so the data is the same in every run.
const AnchorDate = "2026-01-01"

// DataDays is how many days of transactions each account has, AnchorDate included.
const DataDays = 90

// Account types and subtypes.
const (
	TypeDepository    = "DEPOSITORY"
	TypeCredit        = "CREDIT"
	SubtypeChecking   = "CHECKING"
	SubtypeCreditCard = "CREDIT_CARD"
)

// Account is one of a sandbox user's accounts. Amounts are in minor units of Currency (ISO 4217
// exponent: cents for MXN, BRL and EUR; pesos for CLP, which has no minor unit). For a DEPOSITORY
// account BalanceCurrent is the booked balance and BalanceAvailable that minus pending debits; for
// a CREDIT account BalanceCurrent is the amount owed and BalanceAvailable the credit left.
type Account struct {
	ID               string
	Type             string
	Subtype          string
	Name             string
	Mask             string
	Currency         string
	BalanceCurrent   int64
	BalanceAvailable int64
}

// Transaction is one movement of an account. AmountMinor is negative for money going out
// (purchases, withdrawals, card charges) and positive for money coming in (salary, card payments),
// in minor units of Currency. BookingDate is a civil date, YYYY-MM-DD. Transactions of the last two
// days up to AnchorDate are Pending.
type Transaction struct {
	ID          string
	AccountID   string
	AmountMinor int64
	Currency    string
	BookingDate string
	Description string
	Pending     bool
}

// Accounts returns username's two accounts (a checking account and a credit card), the same on
// every call and in every process. The username is trimmed and compared case-insensitively, like
// at login; an empty username has no accounts.
func Accounts(username string) []Account {
	accs, _ := generate(username)
	return accs
}

// Transactions returns the transactions of username's account accountID, newest first, about 30
// per account over the DataDays days ending on AnchorDate. An account that is not username's has
// none.
func Transactions(username, accountID string) []Transaction {
	_, txns := generate(username)
	return slices.Clone(txns[accountID])
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

// currencyProfile is how amounts look in one currency, in minor units.
type currencyProfile struct {
	code                string
	salary              [2]int64 // twice a month
	purchase            [2]int64
	balance             [2]int64
	limit               int64
	merchants           []string
	checking, card      string
	salaryDescription   string
	transferDescription string
	cardPayment         string
}

var profiles = []currencyProfile{
	{
		code: "CLP", salary: [2]int64{750_000, 1_100_000}, purchase: [2]int64{1_500, 85_000},
		balance: [2]int64{150_000, 2_500_000}, limit: 2_000_000,
		merchants:         []string{"Supermercado Lider", "Copec", "Farmacias Ahumada", "Uber Eats", "Metro de Santiago", "Falabella", "Netflix", "Enel Distribución"},
		checking:          "Cuenta Corriente",
		card:              "Tarjeta de Crédito Visa",
		salaryDescription: "Remuneraciones", transferDescription: "Transferencia a terceros", cardPayment: "Pago tarjeta de crédito",
	},
	{
		code: "MXN", salary: [2]int64{1_400_000, 2_600_000}, purchase: [2]int64{3_500, 250_000},
		balance: [2]int64{300_000, 6_000_000}, limit: 5_000_000,
		merchants:         []string{"OXXO", "Walmart", "Pemex", "Liverpool", "Rappi", "CFE", "Telmex", "Spotify"},
		checking:          "Cuenta de Cheques",
		card:              "Tarjeta de Crédito Oro",
		salaryDescription: "Nómina", transferDescription: "SPEI enviado", cardPayment: "Pago a tarjeta",
	},
	{
		code: "BRL", salary: [2]int64{250_000, 600_000}, purchase: [2]int64{900, 60_000},
		balance: [2]int64{50_000, 1_500_000}, limit: 1_200_000,
		merchants:         []string{"Pão de Açúcar", "iFood", "Posto Ipiranga", "Drogasil", "Magazine Luiza", "99 Táxi", "Vivo", "Netflix"},
		checking:          "Conta Corrente",
		card:              "Cartão de Crédito Platinum",
		salaryDescription: "Salário", transferDescription: "Pix enviado", cardPayment: "Pagamento de fatura",
	},
	{
		code: "EUR", salary: [2]int64{120_000, 260_000}, purchase: [2]int64{250, 18_000},
		balance: [2]int64{30_000, 900_000}, limit: 400_000,
		merchants:         []string{"Carrefour", "SNCF", "Monoprix", "Fnac", "Boulangerie Paul", "TotalEnergies", "Free Mobile", "Deezer"},
		checking:          "Compte Courant",
		card:              "Carte Visa Premier",
		salaryDescription: "Virement salaire", transferDescription: "Virement émis", cardPayment: "Prélèvement carte",
	},
}

// generate returns username's accounts and their transactions by account id.
func generate(username string) ([]Account, map[string][]Transaction) {
	user := normalize(username)
	if user == "" {
		return nil, nil
	}
	r := newRNG("sandbox/user", user)
	prof := profiles[r.intn(len(profiles))]
	anchor, err := time.Parse(time.DateOnly, AnchorDate)
	if err != nil {
		panic("sandbox: bad AnchorDate: " + err.Error())
	}

	type kind struct{ typ, subtype, name string }
	kinds := []kind{
		{TypeDepository, SubtypeChecking, prof.checking},
		{TypeCredit, SubtypeCreditCard, prof.card},
	}
	accs := make([]Account, 0, len(kinds))
	txns := make(map[string][]Transaction, len(kinds))
	for i, k := range kinds {
		ar := newRNG("sandbox/account", user, fmt.Sprint(i))
		acc := Account{
			ID:       fmt.Sprintf("acc_%016x", ar.src.Uint64()),
			Type:     k.typ,
			Subtype:  k.subtype,
			Name:     k.name,
			Mask:     fmt.Sprintf("%04d", ar.intn(10_000)),
			Currency: prof.code,
		}
		list := transactions(ar, prof, acc, anchor)
		var pendingOut, booked int64
		for _, t := range list {
			if t.Pending && t.AmountMinor < 0 {
				pendingOut += t.AmountMinor
			}
			if !t.Pending {
				booked += t.AmountMinor
			}
		}
		switch k.typ {
		case TypeDepository:
			acc.BalanceCurrent = ar.between(prof.balance[0], prof.balance[1])
			acc.BalanceAvailable = acc.BalanceCurrent + pendingOut
		case TypeCredit:
			owed := min(max(0, -booked), prof.limit)
			acc.BalanceCurrent = owed
			acc.BalanceAvailable = max(0, prof.limit-owed+pendingOut)
		}
		accs = append(accs, acc)
		txns[acc.ID] = list
	}
	return accs, txns
}

// transactions draws about 30 transactions for acc, newest first.
func transactions(r rng, prof currencyProfile, acc Account, anchor time.Time) []Transaction {
	type draft struct {
		day    int // days before the anchor
		amount int64
		desc   string
	}
	var drafts []draft
	switch acc.Type {
	case TypeDepository:
		// Salary on the 1st and 15th, rent-like transfers, and purchases.
		for day := range DataDays {
			d := anchor.AddDate(0, 0, -day)
			if d.Day() == 1 || d.Day() == 15 {
				drafts = append(drafts, draft{day, r.between(prof.salary[0], prof.salary[1]), prof.salaryDescription})
			}
		}
		for range 3 {
			drafts = append(drafts, draft{r.intn(DataDays), -r.between(prof.salary[0]/4, prof.salary[0]/2), prof.transferDescription})
		}
	case TypeCredit:
		// One payment a month of the previous charges.
		for _, day := range []int64{r.between(5, 12), r.between(35, 42), r.between(65, 72)} {
			drafts = append(drafts, draft{int(day), r.between(prof.purchase[1], prof.purchase[1]*2), prof.cardPayment})
		}
	}
	for n := 25 + r.intn(11); len(drafts) < n; {
		drafts = append(drafts, draft{r.intn(DataDays), -r.between(prof.purchase[0], prof.purchase[1]), prof.merchants[r.intn(len(prof.merchants))]})
	}
	slices.SortStableFunc(drafts, func(a, b draft) int { return a.day - b.day })

	out := make([]Transaction, len(drafts))
	for i, d := range drafts {
		out[i] = Transaction{
			ID:          fmt.Sprintf("txn_%s_%03d", acc.ID[len("acc_"):], len(drafts)-i),
			AccountID:   acc.ID,
			AmountMinor: d.amount,
			Currency:    prof.code,
			BookingDate: anchor.AddDate(0, 0, -d.day).Format(time.DateOnly),
			Description: d.desc,
			Pending:     d.day < 2,
		}
	}
	return out
}
