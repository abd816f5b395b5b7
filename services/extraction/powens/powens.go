// Package powens reads what a Powens login shares: the accounts the user activated and their
// transactions, with the permanent user token the connection service kept. Powens keeps no
// identity of the account holder for AIS, so IDENTITY is not supported.
package powens

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	api "puente.dev/pkg/upstream/powens"

	"puente.dev/services/extraction"
)

// Name is the provider id.
const Name = "powens"

// Options tune a Provider.
type Options struct {
	// Window is how far back transactions are read (default 90 days).
	Window time.Duration
	Now    func() time.Time
}

// Provider is Powens' extraction.Provider.
type Provider struct {
	api *api.Client
	o   Options
}

// New returns the provider over client.
func New(client *api.Client, o Options) *Provider {
	if o.Window <= 0 {
		o.Window = 90 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Provider{api: client, o: o}
}

var _ extraction.Provider = (*Provider)(nil)

func (p *Provider) Name() string { return Name }

// paris is where Powens' naive dates are (Europe/Paris), with a fixed fallback where no zone
// database is installed.
var paris = func() *time.Location {
	if l, err := time.LoadLocation(api.TimeZone); err == nil {
		return l
	}
	return time.FixedZone("CET", 3600)
}()

// session is the login's permanent session.
func session(l extraction.Link) (api.Session, error) {
	s, err := api.ParseSession(l.State)
	if err != nil || s.Token == "" {
		return s, &extraction.ProviderError{Reason: extraction.ReasonLoginRequired, Err: errors.New("powens: the login holds no permanent token")}
	}
	return s, nil
}

// providerError maps a failed call.
func providerError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	v := api.ForError(err)
	reason := v.Extraction
	if reason == "" {
		reason = extraction.ReasonInternal
	}
	return &extraction.ProviderError{Reason: reason, Temporary: v.Temporary, Err: err}
}

func (p *Provider) accounts(ctx context.Context, l extraction.Link) (api.Session, []api.Account, error) {
	s, err := session(l)
	if err != nil {
		return s, nil, err
	}
	accs, err := p.api.Accounts(ctx, s.Token, false)
	if err != nil {
		return s, nil, providerError(err)
	}
	var out []api.Account
	for _, a := range accs {
		// Only this login's accounts that the user shared.
		if a.IDConnection == s.Connection && !a.IsDisabled() && !a.IsDeleted() {
			out = append(out, a)
		}
	}
	return s, out, nil
}

// Accounts lists the activated accounts of the login's connection.
func (p *Provider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	_, accs, err := p.accounts(ctx, l)
	if err != nil {
		return nil, err
	}
	out := make([]extraction.UpstreamAccount, 0, len(accs))
	for _, a := range accs {
		u, err := p.account(a)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func (p *Provider) account(a api.Account) (extraction.UpstreamAccount, error) {
	if a.ID <= 0 || a.Currency.ID == "" {
		return extraction.UpstreamAccount{}, badResponse("an account without an id or a currency")
	}
	typ, sub := AccountType(a.Type)
	u := extraction.UpstreamAccount{
		ID: strconv.FormatInt(a.ID, 10), Type: typ, Subtype: sub, Name: a.Name, Currency: strings.ToUpper(a.Currency.ID),
	}
	if u.Name == "" {
		u.Name = a.OriginalName
	}
	for _, n := range []*string{a.Number, a.IBAN} {
		if n != nil && len(*n) >= 4 {
			u.Mask = (*n)[len(*n)-4:]
			break
		}
	}
	if a.Balance != nil {
		minor, err := Minor(*a.Balance, precision(a.Currency))
		if err != nil {
			return u, badResponse("a balance out of range")
		}
		u.Balance.Current = minor
	}
	u.Balance.AsOf = p.o.Now().UTC().Truncate(time.Microsecond)
	if a.LastUpdate != nil {
		if t, err := ParseDateTime(*a.LastUpdate); err == nil {
			u.Balance.AsOf = t
		}
	}
	return u, nil
}

// Transactions reads an activated account's transactions of the last Window, every page.
func (p *Provider) Transactions(ctx context.Context, l extraction.Link, accountID string) (extraction.UpstreamTransactions, error) {
	s, accs, err := p.accounts(ctx, l)
	if err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	var acc *api.Account
	for i := range accs {
		if strconv.FormatInt(accs[i].ID, 10) == accountID {
			acc = &accs[i]
		}
	}
	if acc == nil {
		return extraction.UpstreamTransactions{}, &extraction.ProviderError{Reason: "ACCOUNT_NOT_FOUND", Err: fmt.Errorf("powens: no shared account %q", accountID)}
	}
	from := p.o.Now().In(paris).Add(-p.o.Window).Format(time.DateOnly)
	txns, err := p.api.Transactions(ctx, s.Token, acc.ID, from)
	if err != nil {
		return extraction.UpstreamTransactions{}, providerError(err)
	}
	out := extraction.UpstreamTransactions{From: from}
	currency, prec := strings.ToUpper(acc.Currency.ID), precision(acc.Currency)
	for _, t := range txns {
		if t.Deleted != nil || (t.Active != nil && !*t.Active) {
			continue // removed upstream: reconciliation drops what is not listed
		}
		u, err := transaction(t, currency, prec)
		if err != nil {
			return extraction.UpstreamTransactions{}, err
		}
		out.Items = append(out.Items, u)
	}
	return out, nil
}

func transaction(t api.Transaction, currency string, prec int) (extraction.UpstreamTransaction, error) {
	if t.ID <= 0 || t.Value == nil {
		return extraction.UpstreamTransaction{}, badResponse("a transaction without an id or a value")
	}
	booking, err := ParseDate(t.Date)
	if err != nil {
		return extraction.UpstreamTransaction{}, badResponse("a transaction date that is not YYYY-MM-DD")
	}
	minor, err := Minor(*t.Value, prec)
	if err != nil {
		return extraction.UpstreamTransaction{}, badResponse("a transaction value out of range")
	}
	u := extraction.UpstreamTransaction{
		ID: strconv.FormatInt(t.ID, 10), AmountMinor: minor, Currency: currency, Pending: t.Coming,
		BookingDate: booking, Description: t.Wording,
	}
	if u.Description == "" {
		u.Description = t.OriginalWording
	}
	for _, d := range []*string{t.VDate, &t.RDate} {
		if d != nil && *d != "" {
			if v, err := ParseDate(*d); err == nil {
				u.ValueDate = v
				break
			}
		}
	}
	if c := t.Counterparty; c != nil && c.Label != "" {
		u.CounterpartyName, u.CounterpartyType = c.Label, strings.ToUpper(c.Type)
	}
	if t.Type != "" {
		u.Category = strings.ToUpper(t.Type)
	}
	return u, nil
}

// Identity is not something Powens' AIS gives.
func (p *Provider) Identity(ctx context.Context, l extraction.Link) (extraction.Identity, error) {
	return extraction.Identity{}, &extraction.ProviderError{Reason: "PRODUCT_NOT_SUPPORTED", Err: errors.New("powens: no identity product")}
}

func badResponse(what string) error {
	return &extraction.ProviderError{Reason: "UPSTREAM_BAD_RESPONSE", Err: errors.New("powens: " + what)}
}

func precision(c api.Currency) int {
	if c.Precision != nil && *c.Precision >= 0 && *c.Precision <= 4 {
		return *c.Precision
	}
	return 2
}

// Minor turns an amount in major units (a JSON number) into minor units of a currency with
// prec decimals, rounding half away from zero.
func Minor(v float64, prec int) (int64, error) {
	m := math.Round(v * math.Pow10(prec))
	if math.IsNaN(m) || math.IsInf(m, 0) || math.Abs(m) > 1<<53 {
		return 0, errors.New("amount out of range")
	}
	return int64(m), nil
}

// ParseDate checks a naive Powens date (YYYY-MM-DD, or the date of a YYYY-MM-DD HH:MM:SS);
// it is the bank's day in Paris, kept as is.
func ParseDate(s string) (string, error) {
	if len(s) >= 10 {
		if _, err := time.Parse(time.DateOnly, s[:10]); err == nil {
			return s[:10], nil
		}
	}
	return "", fmt.Errorf("not a date")
}

// ParseDateTime reads a naive "YYYY-MM-DD HH:MM:SS" in Europe/Paris, as UTC.
func ParseDateTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation(time.DateTime, s, paris)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// AccountType maps Powens' account types to Puente's type and subtype.
func AccountType(t string) (typ, subtype string) {
	switch t {
	case "checking", "joint":
		return "DEPOSITORY", "CHECKING"
	case "savings", "deposit":
		return "DEPOSITORY", "SAVINGS"
	case "card":
		return "CREDIT", "CREDIT_CARD"
	case "loan", "mortgage", "consumercredit", "revolvingcredit":
		return "LOAN", strings.ToUpper(t)
	case "market", "pea", "pee", "perco", "perp", "lifeinsurance", "madelin", "capitalisation", "article83", "rsp", "crowdlending", "real_estate", "per":
		return "INVESTMENT", strings.ToUpper(t)
	}
	return "OTHER", strings.ToUpper(t)
}
