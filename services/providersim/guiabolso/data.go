package guiabolso

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// User is a Guiabolso user, by userTrackingId, with the banks they connected.
type User struct {
	Accounts     []Account
	Transactions []Transaction
}

// Account is one of a user's bank accounts.
type Account struct {
	AccountID int64
	BacenCode string
	Name      string
	Balance   string // decimal reais, as the API sends it
	// SyncError makes this account's wallet-monitoring sync end in ERROR.
	SyncError bool
}

// Transaction is one of an account's transactions.
type Transaction struct {
	ID          string
	AccountID   int64
	Date        string // YYYY-MM-DD
	Description string
	Amount      string // decimal reais, negative for debits
}

// Profiles a user can pick on the Connect page (its "profile" parameter).
const (
	ProfileDefault   = ""          // two accounts with transactions
	ProfileSyncError = "syncError" // the same, the second account's sync ends in ERROR
	ProfileEmpty     = "empty"     // no accounts
)

// generate builds a user's data from their userTrackingId, the same every time.
func generate(userTrackingID, profile string, today time.Time) User {
	if profile == ProfileEmpty {
		return User{}
	}
	seed := sha256.Sum256([]byte(userTrackingID))
	base := int64(binary.BigEndian.Uint32(seed[:4])%9_000_000) + 1_000_000
	banks := []struct{ code, name string }{{"001", "Banco do Brasil - Conta Corrente"}, {"341", "Itaú - Conta Corrente"}}
	var u User
	descs := []string{"PIX RECEBIDO", "SUPERMERCADO", "PADARIA", "UBER", "FARMACIA", "SALARIO", "CONTA DE LUZ"}
	for i, b := range banks {
		id := base + int64(i)
		u.Accounts = append(u.Accounts, Account{
			AccountID: id, BacenCode: b.code, Name: b.name,
			Balance:   fmt.Sprintf("%d.%02d", int(seed[4+i])*37+100, int(seed[6+i])%100),
			SyncError: profile == ProfileSyncError && i == 1,
		})
		for j := range 12 {
			v := int(seed[(8+i*12+j)%32])
			amount := fmt.Sprintf("-%d.%02d", v%180+3, (v*7)%100)
			if j%5 == 0 {
				amount = fmt.Sprintf("%d.%02d", v*10+500, (v*3)%100)
			}
			u.Transactions = append(u.Transactions, Transaction{
				ID: fmt.Sprintf("%d-%03d", id, j), AccountID: id,
				Date:        today.AddDate(0, 0, -3*j).Format(time.DateOnly),
				Description: descs[(v+j)%len(descs)], Amount: amount,
			})
		}
	}
	return u
}
