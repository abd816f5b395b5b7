// Package sandbox is the extraction side of the Sandbox provider: it reads the bank a sandbox
// login linked from pkg/sandboxdata, as of the bank's day in the login's state (which the
// sandbox control AdvanceDays moves on). It has no network and no database.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"puente.dev/pkg/sandboxdata"
	"puente.dev/services/extraction"
)

// Name is the provider id of the sandbox.
const Name = "sandbox"

// bankCodes are the COMPE codes of the sandbox's Brazilian institutions (made up, in the range
// real banks use).
var bankCodes = map[string]string{
	"sandbox-br-banco-aurora":      "341",
	"sandbox-br-cooperativa-serra": "756",
}

// Provider implements extraction.Provider.
type Provider struct {
	now func() time.Time
}

// New returns the sandbox provider.
func New() *Provider { return &Provider{now: time.Now} }

func (p *Provider) Name() string { return Name }

// link is the part of the connection service's sandbox login state that names the bank: written
// by services/connection/sandbox when a login succeeds.
type link struct {
	V     int    `json:"v"`
	Inst  string `json:"inst"`
	User  string `json:"user"`
	Phase string `json:"phase"`
	Day   int    `json:"day"`
	// Skipped accounts were not shared by the user (user_accounts).
	Skipped []string `json:"skipped"`
}

func (p *Provider) bank(l extraction.Link) (sandboxdata.Bank, error) {
	var s link
	if err := json.Unmarshal(l.State, &s); err != nil {
		return sandboxdata.Bank{}, &extraction.ProviderError{Reason: extraction.ReasonInternal, Err: fmt.Errorf("sandbox: decode login state: %w", err)}
	}
	if s.Phase != "linked" || s.User == "" {
		return sandboxdata.Bank{}, &extraction.ProviderError{Reason: extraction.ReasonLoginRequired, Err: errors.New("sandbox: the login is not linked")}
	}
	b := sandboxdata.Snapshot(sandboxdata.Login{Seed: s.User, Country: l.Country, BankCode: bankCodes[l.InstitutionExternalID]}, s.Day)
	b.Accounts = slices.DeleteFunc(b.Accounts, func(a sandboxdata.Account) bool { return slices.Contains(s.Skipped, a.ID) })
	return b, nil
}

func (p *Provider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.bank(l)
	if err != nil {
		return nil, err
	}
	asOf := p.now().UTC().Truncate(time.Microsecond)
	out := make([]extraction.UpstreamAccount, 0, len(b.Accounts))
	for _, a := range b.Accounts {
		bal := extraction.Balance{Current: a.BalanceCurrent, Available: &a.BalanceAvailable, AsOf: asOf}
		if a.Type == "CREDIT" {
			bal.Limit = &a.BalanceLimit
		}
		out = append(out, extraction.UpstreamAccount{
			ID: a.ID, Type: a.Type, Subtype: a.Subtype, Name: a.Name, Mask: a.Mask, Currency: a.Currency, BankCode: a.BankCode, Balance: bal,
		})
	}
	return out, nil
}

func (p *Provider) Transactions(ctx context.Context, l extraction.Link, accountID string) (extraction.UpstreamTransactions, error) {
	if err := ctx.Err(); err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	b, err := p.bank(l)
	if err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	for _, a := range b.Accounts {
		if a.ID != accountID {
			continue
		}
		if a.Unavailable {
			return extraction.UpstreamTransactions{}, &extraction.ProviderError{Reason: "INSTITUTION_UNAVAILABLE", Err: errors.New("sandbox: this account's transactions cannot be read")}
		}
		today, err := time.Parse(time.DateOnly, b.Today)
		if err != nil {
			return extraction.UpstreamTransactions{}, err
		}
		// The bank lists what was authorised in its window; a transaction booked on the
		// window's first day may have been authorised the day before and be gone from the list,
		// so only the days after the first are covered in full.
		out := extraction.UpstreamTransactions{
			From: today.AddDate(0, 0, 2-sandboxdata.DataDays).Format(time.DateOnly), To: b.Today,
		}
		for _, t := range b.Transactions[a.ID] {
			u := extraction.UpstreamTransaction{
				ID: t.ID, AmountMinor: t.AmountMinor, Currency: t.Currency, Pending: t.Pending, BookingDate: t.BookingDate,
				ValueDate: t.ValueDate, Description: t.Description, Category: t.Category,
			}
			if t.Merchant != "" {
				u.CounterpartyName, u.CounterpartyType = t.Merchant, "MERCHANT"
			}
			out.Items = append(out.Items, u)
		}
		return out, nil
	}
	return extraction.UpstreamTransactions{}, &extraction.ProviderError{Reason: "ACCOUNT_NOT_FOUND", Err: fmt.Errorf("sandbox: no account %q", accountID)}
}

func (p *Provider) Identity(ctx context.Context, l extraction.Link) (extraction.Identity, error) {
	if err := ctx.Err(); err != nil {
		return extraction.Identity{}, err
	}
	b, err := p.bank(l)
	if err != nil {
		return extraction.Identity{}, err
	}
	id := b.Identity
	out := extraction.Identity{Names: id.Names, TaxIDType: id.TaxIDType, TaxID: id.TaxID, Emails: id.Emails, Phones: id.Phones}
	for _, a := range id.Addresses {
		out.Addresses = append(out.Addresses, extraction.Address{Street: a.Street, City: a.City, Region: a.Region, PostalCode: a.PostalCode, Country: a.Country})
	}
	return out, nil
}
