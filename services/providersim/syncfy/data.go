package syncfy

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// The data of a credential whose job succeeded: a checking account and a credit card in MXN,
// with TransactionsPerAccount transactions each, one a day back from the credential's creation,
// the newest two pending. A job that ended 206 NoAccounts has no accounts; 202 NoTransactions,
// no transactions.

type account struct {
	ID          string  `json:"id_account"`
	IDType      string  `json:"id_account_type"`
	IDCurrency  string  `json:"id_currency"`
	IDUser      string  `json:"id_user"`
	IDExternal  *string `json:"id_external"`
	IDCred      string  `json:"id_credential"`
	IDSite      string  `json:"id_site"`
	IDOrg       string  `json:"id_site_organization"`
	IDOrgType   string  `json:"id_site_organization_type"`
	IsDisable   int     `json:"is_disable"`
	Name        string  `json:"name"`
	Number      *string `json:"number"`
	Balance     float64 `json:"balance"`
	Currency    string  `json:"currency"`
	AccountType string  `json:"account_type"`
	DtRefresh   int64   `json:"dt_refresh"`
}

type transaction struct {
	ID            string  `json:"id_transaction"`
	IDAccount     string  `json:"id_account"`
	IDAccountType string  `json:"id_account_type"`
	IDCred        string  `json:"id_credential"`
	IDUser        string  `json:"id_user"`
	IDSite        string  `json:"id_site"`
	IsAccDisable  int     `json:"is_account_disable"`
	IsDeleted     int     `json:"is_deleted"`
	IsDisable     int     `json:"is_disable"`
	IsPending     int     `json:"is_pending"`
	Description   string  `json:"description"`
	Amount        float64 `json:"amount"`
	Currency      string  `json:"currency"`
	Attachments   []any   `json:"attachments"`
	Extra         any     `json:"extra"`
	Reference     *string `json:"reference"`
	DtTransaction int64   `json:"dt_transaction"`
	DtRefresh     int64   `json:"dt_refresh"`
}

const (
	accountTypeChecking   = "520d3aa93b8e778e0d000000"
	accountTypeCreditCard = "520d3aa93b8e778e0d000002"
)

// AccountIDs are the ids of a credential's accounts (checking, then credit card).
func AccountIDs(idCredential string) [2]string {
	return [2]string{idCredential[:16] + "acc00001", idCredential[:16] + "acc00002"}
}

var descriptions = []string{"OXXO", "Walmart Express", "SPEI recibido", "CFE", "Uber", "Farmacias Guadalajara", "Telmex", "Liverpool"}

func (s *Server) credentialData(idCred, idUser string) (*credential, bool) {
	c, ok := s.creds[idCred]
	if !ok || c.User != idUser || c.Code < 200 || c.Code >= 300 {
		return nil, false
	}
	return c, true
}

func (s *Server) accountsOf(c *credential) []account {
	if c.Code == 206 {
		return []account{}
	}
	ids := AccountIDs(c.ID)
	num1, num2 := "****1234", "****9876"
	refresh := c.Created.Unix()
	return []account{
		{ID: ids[0], IDType: accountTypeChecking, IDCurrency: "MXN", IDUser: c.User, IDCred: c.ID, IDSite: c.Site, IDOrg: OrgSandbox, IDOrgType: TypeBank,
			Name: "Cuenta de cheques", Number: &num1, Balance: 15234.57, Currency: "MXN", AccountType: "Checking", DtRefresh: refresh},
		{ID: ids[1], IDType: accountTypeCreditCard, IDCurrency: "MXN", IDUser: c.User, IDCred: c.ID, IDSite: c.Site, IDOrg: OrgSandbox, IDOrgType: TypeBank,
			Name: "Tarjeta de crédito", Number: &num2, Balance: -3210.29, Currency: "MXN", AccountType: "Credit Card", DtRefresh: refresh},
	}
}

// Amount is the amount of transaction i (0 = newest) of an account, in MXN: cents chosen so that
// naive float conversion to minor units would go wrong (0.29, 0.57, ...).
func Amount(i int) float64 {
	cents := []int{29, 57, 1, 99, 10, 35}[i%6]
	units := 10 + (i*37)%900
	v := float64(units) + float64(cents)/100
	if i%5 == 2 {
		return v
	}
	return -v
}

func (s *Server) transactionsOf(c *credential, idAccount string) []transaction {
	if c.Code == 206 || c.Code == 202 {
		return []transaction{}
	}
	ids := AccountIDs(c.ID)
	accType := accountTypeChecking
	if idAccount == ids[1] {
		accType = accountTypeCreditCard
	} else if idAccount != ids[0] {
		return []transaction{}
	}
	day := time.Date(c.Created.Year(), c.Created.Month(), c.Created.Day(), 12, 0, 0, 0, time.UTC)
	out := make([]transaction, 0, s.opts.TransactionsPerAccount)
	for i := range s.opts.TransactionsPerAccount {
		pending := 0
		if i < 2 {
			pending = 1
		}
		out = append(out, transaction{
			ID: fmt.Sprintf("%s%08x", idAccount[:16], i+1), IDAccount: idAccount, IDAccountType: accType, IDCred: c.ID, IDUser: c.User, IDSite: c.Site,
			IsPending: pending, Description: descriptions[i%len(descriptions)], Amount: math.Round(Amount(i)*100) / 100, Currency: "MXN",
			Attachments: []any{}, DtTransaction: day.AddDate(0, 0, -i).Unix(), DtRefresh: c.Created.Unix(),
		})
	}
	return out
}

func (s *Server) accounts(w http.ResponseWriter, r *http.Request, idUser string) {
	id := r.URL.Query().Get("id_credential")
	if id == "" {
		fail(w, http.StatusBadRequest, "id_credential is required")
		return
	}
	s.mu.Lock()
	c, ok := s.credentialData(id, idUser)
	var out []account
	if ok {
		out = s.accountsOf(c)
	}
	s.mu.Unlock()
	if out == nil {
		out = []account{}
	}
	reply(w, http.StatusOK, page(r, out))
}

func (s *Server) transactions(w http.ResponseWriter, r *http.Request, idUser string) {
	q := r.URL.Query()
	s.mu.Lock()
	c, ok := s.credentialData(q.Get("id_credential"), idUser)
	var out []transaction
	if ok {
		out = s.transactionsOf(c, q.Get("id_account"))
	}
	s.mu.Unlock()
	if out == nil {
		out = []transaction{}
	}
	reply(w, http.StatusOK, page(r, out))
}
