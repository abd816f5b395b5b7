// Package syncfy is the extraction side of Syncfy: a succeeded login's credential's accounts and
// transactions, read with a session token of the login's Syncfy user.
package syncfy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"puente.dev/pkg/upstream"
	"puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/extraction"
)

// Name is the provider id.
const Name = syncfy.Name

// Provider implements extraction.Provider over Syncfy.
type Provider struct {
	api *syncfy.Client
	now func() time.Time
}

var _ extraction.Provider = (*Provider)(nil)

// New returns the provider.
func New(api *syncfy.Client) *Provider { return &Provider{api: api, now: time.Now} }

func (p *Provider) Name() string { return Name }

// link is the part of the connection's Syncfy login state that names the credential (written by
// services/connection/syncfy).
type link struct {
	IDUser       string `json:"id_user"`
	IDCredential string `json:"id_credential"`
}

func credential(l extraction.Link) (link, error) {
	var s link
	if !l.Succeeded {
		return s, &extraction.ProviderError{Reason: extraction.ReasonLoginRequired, Err: errors.New("syncfy: the login did not succeed")}
	}
	if err := json.Unmarshal(l.State, &s); err != nil || s.IDUser == "" || s.IDCredential == "" {
		return s, &extraction.ProviderError{Reason: extraction.ReasonLoginRequired, Err: errors.New("syncfy: the login state names no credential")}
	}
	return s, nil
}

// providerError gives an upstream failure the reason Puente reports.
func providerError(err error) error {
	if ue, ok := upstream.AsError(err); ok {
		return &extraction.ProviderError{Reason: string(ue.Kind), Temporary: ue.Temporary(), Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &extraction.ProviderError{Reason: string(upstream.BadResponse), Err: err}
}

// accountType maps Syncfy's account type names to Puente's types.
func accountType(name string) (typ, subtype string) {
	switch strings.ToLower(name) {
	case "checking":
		return "DEPOSITORY", "CHECKING"
	case "savings":
		return "DEPOSITORY", "SAVINGS"
	case "credit card":
		return "CREDIT", "CREDIT_CARD"
	case "line of credit":
		return "CREDIT", "LINE_OF_CREDIT"
	case "investment":
		return "INVESTMENT", ""
	case "loan", "mortgage":
		return "LOAN", ""
	}
	return "OTHER", ""
}

func mask(number *string) string {
	if number == nil {
		return ""
	}
	n := strings.TrimLeft(*number, "*· ")
	if len(n) > 4 {
		n = n[len(n)-4:]
	}
	return n
}

// Accounts implements extraction.Provider.
func (p *Provider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	s, err := credential(l)
	if err != nil {
		return nil, err
	}
	accs, err := p.api.Accounts(ctx, s.IDUser, s.IDCredential)
	if err != nil {
		return nil, providerError(err)
	}
	out := make([]extraction.UpstreamAccount, 0, len(accs))
	for _, a := range accs {
		if a.IsDisable || a.IDAccount == "" {
			continue
		}
		typ, sub := accountType(a.AccountType)
		cur := strings.ToUpper(a.Currency)
		asOf := p.now().UTC().Truncate(time.Microsecond)
		if a.DtRefresh > 0 {
			asOf = time.Unix(a.DtRefresh, 0).UTC()
		}
		out = append(out, extraction.UpstreamAccount{
			ID: a.IDAccount, Type: typ, Subtype: sub, Name: a.Name, Mask: mask(a.Number), Currency: cur,
			Balance: extraction.Balance{Current: syncfy.MinorUnits(a.Balance, cur), AsOf: asOf},
		})
	}
	return out, nil
}

// Transactions implements extraction.Provider. Syncfy keeps about 60 days; the dates covered
// are those of the transactions returned.
func (p *Provider) Transactions(ctx context.Context, l extraction.Link, accountID string) (extraction.UpstreamTransactions, error) {
	s, err := credential(l)
	if err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	txs, err := p.api.Transactions(ctx, s.IDUser, s.IDCredential, accountID)
	if err != nil {
		return extraction.UpstreamTransactions{}, providerError(err)
	}
	var out extraction.UpstreamTransactions
	for _, t := range txs {
		if t.IsDeleted || t.IsDisable || t.IDTransaction == "" || (t.IDAccount != "" && t.IDAccount != accountID) {
			continue
		}
		day := time.Unix(t.DtTransaction, 0).UTC().Format(time.DateOnly)
		cur := strings.ToUpper(t.Currency)
		out.Items = append(out.Items, extraction.UpstreamTransaction{
			ID: t.IDTransaction, AmountMinor: syncfy.MinorUnits(t.Amount, cur), Currency: cur, Pending: bool(t.IsPending),
			BookingDate: day, Description: t.Description,
		})
		if out.From == "" || day < out.From {
			out.From = day
		}
		if day > out.To {
			out.To = day
		}
	}
	if len(out.Items) == 0 {
		// No transactions cover no dates: nothing stored is taken for gone but what today lists.
		out.From = p.now().UTC().Format(time.DateOnly)
		out.To = out.From
	}
	return out, nil
}

// Identity implements extraction.Provider: Syncfy does not share the account holder's identity.
func (p *Provider) Identity(context.Context, extraction.Link) (extraction.Identity, error) {
	return extraction.Identity{}, &extraction.ProviderError{Reason: "PRODUCT_NOT_SUPPORTED", Err: errors.New("syncfy: no identity product")}
}
