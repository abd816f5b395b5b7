// Package boufin is the extraction side of Boufin Connect: it pulls a consent's products
// (accounts, movements, identity) with the end user's Task Token, waiting briefly on a product
// still running upstream. The consent is the one the connection side's login state names.
package boufin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"puente.dev/pkg/upstream"
	bf "puente.dev/pkg/upstream/boufin"
	"puente.dev/services/extraction"
)

// Name is the provider's id.
const Name = bf.Name

// Reasons this adapter reports besides the upstream.Kind ones.
const (
	reasonAccountNotFound = "ACCOUNT_NOT_FOUND"
	reasonInstitution     = "INSTITUTION_UNAVAILABLE"
)

// Provider implements extraction.Provider.
type Provider struct {
	c   *bf.Client
	cfg bf.Config
	now func() time.Time
}

var _ extraction.Provider = (*Provider)(nil)

// New returns the provider over a Boufin client.
func New(c *bf.Client) *Provider { return &Provider{c: c, cfg: c.Config(), now: time.Now} }

func (p *Provider) Name() string { return Name }

// state is the part of the connection side's login state (services/connection/boufin.State)
// that names the consent.
type state struct {
	ConsentID string `json:"consentId"`
	Target    string `json:"target"`
}

func perr(reason string, temporary bool, err error) *extraction.ProviderError {
	return &extraction.ProviderError{Reason: reason, Temporary: temporary, Err: err}
}

func (p *Provider) consent(l extraction.Link) (state, error) {
	if !l.Succeeded {
		return state{}, perr(extraction.ReasonLoginRequired, false, errors.New("boufin: the connection is not linked"))
	}
	var s state
	if err := json.Unmarshal(l.State, &s); err != nil || s.ConsentID == "" || s.Target == "" {
		return state{}, perr(extraction.ReasonInternal, false, errors.New("boufin: the login state names no consent"))
	}
	return s, nil
}

// pull reads a product, asking again (a few times, backing off, within ctx) while Boufin is
// still extracting it.
func (p *Provider) pull(ctx context.Context, s state, product string, q url.Values, out any) error {
	wait := p.cfg.PollInterval
	for attempt := 1; ; attempt++ {
		res, err := p.c.Product(ctx, s.Target, s.ConsentID, product, q)
		if err != nil {
			return p.fail(ctx, s, err)
		}
		switch res.Status {
		case bf.ProductDone:
			if err := bf.Decode(res.Data, out); err != nil {
				return perr(string(upstream.BadResponse), false, fmt.Errorf("boufin: product %s: decode data: %w", product, err))
			}
			return nil
		case bf.ProductWrongLogin:
			return perr(extraction.ReasonLoginRequired, false, fmt.Errorf("boufin: product %s: the bank refused the credentials", product))
		case bf.ProductError:
			return perr(reasonInstitution, true, fmt.Errorf("boufin: product %s: the extraction failed upstream", product))
		}
		if attempt >= p.cfg.PollAttempts {
			return perr(string(upstream.Timeout), true, fmt.Errorf("boufin: product %s still running after %d asks", product, attempt))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return perr(string(upstream.Timeout), true, fmt.Errorf("boufin: product %s still running: %w", product, ctx.Err()))
		case <-t.C:
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// fail turns an upstream failure into a ProviderError; a consent that is no longer ACTIVE
// needs the user to log in again.
func (p *Provider) fail(ctx context.Context, s state, err error) error {
	ue, ok := upstream.AsError(err)
	if !ok {
		if ctx.Err() != nil {
			return perr(string(upstream.Timeout), true, err)
		}
		return perr(extraction.ReasonInternal, true, err)
	}
	switch {
	case ue.Kind == upstream.Rejected && ue.Status == http.StatusNotFound && strings.HasPrefix(ue.Code, "CONSENT"):
		return perr(extraction.ReasonLoginRequired, false, err)
	case ue.Kind == upstream.Rejected && ue.Status == bf.StatusConsentNotActive:
		c, cerr := p.c.Consent(ctx, s.Target, s.ConsentID)
		if cerr == nil && bf.Usable(c.Status) {
			return perr(string(upstream.Unavailable), true, err) // ACTIVE again: try later
		}
		return perr(extraction.ReasonLoginRequired, false, err)
	}
	return perr(string(ue.Kind), ue.Temporary(), err)
}

// Accounts implements extraction.Provider.
func (p *Provider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	s, err := p.consent(l)
	if err != nil {
		return nil, err
	}
	var d bf.Accounts
	if err := p.pull(ctx, s, p.cfg.ProductAccounts, nil, &d); err != nil {
		return nil, err
	}
	asOf := p.now().UTC().Truncate(time.Microsecond)
	out := make([]extraction.UpstreamAccount, 0, len(d.Accounts))
	for _, a := range d.Accounts {
		acc, err := account(a, asOf)
		if err != nil {
			return nil, perr(string(upstream.BadResponse), false, fmt.Errorf("boufin: account: %w", err))
		}
		out = append(out, acc)
	}
	return out, nil
}

func account(a bf.Account, asOf time.Time) (extraction.UpstreamAccount, error) {
	if a.AccountID == "" || a.Currency == "" {
		return extraction.UpstreamAccount{}, errors.New("no id or currency")
	}
	cur, err := bf.MinorUnits(a.CurrentBalance, a.Currency)
	if err != nil {
		return extraction.UpstreamAccount{}, err
	}
	typ, sub := bf.AccountType(a.Type)
	out := extraction.UpstreamAccount{ID: a.AccountID, Type: typ, Subtype: sub, Name: a.Name, Mask: mask(a.Number),
		Currency: strings.ToUpper(a.Currency), Balance: extraction.Balance{Current: cur, AsOf: asOf}}
	if a.AvailableBalance != nil {
		v, err := bf.MinorUnits(*a.AvailableBalance, a.Currency)
		if err != nil {
			return extraction.UpstreamAccount{}, err
		}
		out.Balance.Available = &v
	}
	if a.CreditLimit != nil {
		v, err := bf.MinorUnits(*a.CreditLimit, a.Currency)
		if err != nil {
			return extraction.UpstreamAccount{}, err
		}
		out.Balance.Limit = &v
	}
	return out, nil
}

// mask is the last four digits of an account number.
func mask(number string) string {
	var digits []rune
	for _, r := range number {
		if r >= '0' && r <= '9' {
			digits = append(digits, r)
		}
	}
	if len(digits) > 4 {
		digits = digits[len(digits)-4:]
	}
	return string(digits)
}

// Transactions implements extraction.Provider.
func (p *Provider) Transactions(ctx context.Context, l extraction.Link, accountID string) (extraction.UpstreamTransactions, error) {
	s, err := p.consent(l)
	if err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	var d bf.Movements
	if err := p.pull(ctx, s, p.cfg.ProductTransactions, url.Values{bf.ProductAccountQuery: {accountID}}, &d); err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	for _, am := range d.Accounts {
		if am.AccountID != accountID {
			continue
		}
		if !isDate(am.From) || !isDate(am.To) {
			return extraction.UpstreamTransactions{}, perr(string(upstream.BadResponse), false, errors.New("boufin: movements without the dates they cover"))
		}
		out := extraction.UpstreamTransactions{From: am.From, To: am.To, Items: make([]extraction.UpstreamTransaction, 0, len(am.Movements))}
		for _, m := range am.Movements {
			cur := m.Currency
			if cur == "" {
				cur = "CLP"
			}
			amt, err := bf.MinorUnits(m.Amount, cur)
			if err != nil || m.ID == "" || !isDate(m.Date) {
				return extraction.UpstreamTransactions{}, perr(string(upstream.BadResponse), false, fmt.Errorf("boufin: a movement that does not fit: %v", err))
			}
			t := extraction.UpstreamTransaction{ID: m.ID, AmountMinor: amt, Currency: strings.ToUpper(cur), Pending: m.Pending,
				BookingDate: m.Date, ValueDate: m.ValueDate, Description: m.Description, Category: m.Category}
			if m.Counterparty != "" {
				t.CounterpartyName = m.Counterparty
			}
			out.Items = append(out.Items, t)
		}
		return out, nil
	}
	return extraction.UpstreamTransactions{}, perr(reasonAccountNotFound, false, errors.New("boufin: the account is not in the consent's movements"))
}

func isDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// Identity implements extraction.Provider.
func (p *Provider) Identity(ctx context.Context, l extraction.Link) (extraction.Identity, error) {
	s, err := p.consent(l)
	if err != nil {
		return extraction.Identity{}, err
	}
	var d bf.Identity
	if err := p.pull(ctx, s, p.cfg.ProductIdentity, nil, &d); err != nil {
		return extraction.Identity{}, err
	}
	if d.RUT == "" && d.FullName == "" {
		return extraction.Identity{}, perr(string(upstream.BadResponse), false, errors.New("boufin: identity without rut or name"))
	}
	out := extraction.Identity{TaxIDType: "RUT", TaxID: bf.NormalizeRUT(d.RUT), Emails: d.Emails, Phones: d.Phones}
	if d.FullName != "" {
		out.Names = []string{d.FullName}
	}
	if a := d.Address; a != nil {
		city := a.City
		if a.Commune != "" && a.Commune != a.City {
			city = strings.TrimPrefix(a.Commune+", "+a.City, ", ")
		}
		out.Addresses = []extraction.Address{{Street: a.Street, City: strings.TrimSuffix(city, ", "), Region: a.Region, Country: "CL"}}
	}
	return out, nil
}
