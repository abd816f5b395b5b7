// Package klavi is the extraction side of Klavi Link. Klavi has no data to pull: a report is
// asked for once the consent is authorised, and Klavi pushes it by webhook. The webhook service
// hands each verified webhook to Documents (EventSink), the extraction service keeps the report
// per consent and kind and refreshes the consent, and Accounts, Transactions and Identity read it
// from Link.Documents. When the report they need is not there yet, they ask Klavi for one and
// fail with REPORT_PENDING (temporary): the job retries, and the report's arrival refreshes.
package klavi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"puente.dev/pkg/upstream"
	wire "puente.dev/pkg/upstream/klavi"
	"puente.dev/services/extraction"
)

// Name is the provider id.
const Name = wire.Name

// ReasonReportPending is the temporary failure of a read whose report has not arrived yet.
const ReasonReportPending = "REPORT_PENDING"

// RequestCooldown is how long after asking for a consent's report no second request is made:
// each one starts a paid report, and the retries of the jobs waiting for it must not.
const RequestCooldown = 10 * time.Minute

// Provider implements extraction.Provider and extraction.EventSink.
type Provider struct {
	c   *wire.Client
	now func() time.Time

	mu        sync.Mutex
	requested map[string]time.Time // consent id + kind → when a report was asked for
}

// New returns the adapter over c.
func New(c *wire.Client) *Provider {
	return &Provider{c: c, now: time.Now, requested: map[string]time.Time{}}
}

func (p *Provider) Name() string { return Name }

// state is the connection adapter's login state (services/connection/klavi.State).
type state struct {
	LinkID    string `json:"linkId"`
	ConsentID string `json:"consentId"`
	Business  bool   `json:"business"`
	TaxID     string `json:"taxId"`
}

func loginRequired(msg string) error {
	return &extraction.ProviderError{Reason: extraction.ReasonLoginRequired, Err: errors.New("klavi: " + msg)}
}

// checking returns the link's checking-account report, asking Klavi for one when there is none.
func (p *Provider) checking(ctx context.Context, l extraction.Link) (wire.Report, error) {
	var s state
	if err := json.Unmarshal(l.State, &s); err != nil || s.ConsentID == "" || s.TaxID == "" {
		return wire.Report{}, loginRequired("the connection has no authorised consent")
	}
	products := wire.PersonalProducts
	if s.Business {
		products = wire.BusinessProducts
	}
	kind := products[0]
	if doc, ok := l.Documents[kind]; ok {
		var r wire.Report
		if err := json.Unmarshal(doc.Body, &r); err != nil {
			return wire.Report{}, &extraction.ProviderError{Reason: string(upstream.BadResponse), Err: fmt.Errorf("klavi: %s report: %w", kind, err)}
		}
		if !wire.ReportUsable(r.Code) {
			return wire.Report{}, &extraction.ProviderError{Reason: "INSTITUTION_UNAVAILABLE", Err: fmt.Errorf("klavi: the %s report failed with code %d", kind, r.Code)}
		}
		return r, nil
	}
	if err := p.request(ctx, l, s, kind, products); err != nil {
		return wire.Report{}, err
	}
	return wire.Report{}, &extraction.ProviderError{Reason: ReasonReportPending, Temporary: true, Err: fmt.Errorf("klavi: the %s report was asked for and has not arrived yet", kind)}
}

// request asks Klavi for the consent's reports, unless it was asked within RequestCooldown.
func (p *Provider) request(ctx context.Context, l extraction.Link, s state, kind string, products []string) error {
	key := s.ConsentID + "|" + kind
	now := p.now()
	p.mu.Lock()
	if at, ok := p.requested[key]; ok && now.Sub(at) < RequestCooldown {
		p.mu.Unlock()
		return nil
	}
	p.requested[key] = now
	for k, at := range p.requested {
		if now.Sub(at) >= RequestCooldown {
			delete(p.requested, k)
		}
	}
	p.mu.Unlock()
	_, err := p.c.RequestReport(ctx, s.Business, wire.ReportRequest{
		TaxID: s.TaxID, LinkID: s.LinkID, ConsentIDs: []string{s.ConsentID}, Products: products,
		ExternalInfo: map[string]string{"client_id": l.ClientID, "consent_id": l.ConsentID},
	})
	if err != nil {
		p.mu.Lock()
		delete(p.requested, key)
		p.mu.Unlock()
		return providerError(err)
	}
	return nil
}

// providerError maps a failed call to the reason Puente reports.
func providerError(err error) error {
	e, ok := upstream.AsError(err)
	if !ok {
		return err
	}
	if b, ok := wire.BusinessErrors[e.Code]; ok {
		return &extraction.ProviderError{Reason: b.Reason, Temporary: b.Temporary, Err: err}
	}
	return &extraction.ProviderError{Reason: string(e.Kind), Temporary: e.Temporary(), Err: err}
}

func accountID(a wire.CheckingAccount) string {
	return a.CompeCode + "-" + a.BranchCode + "-" + a.Number + "-" + a.CheckDigit
}

func mask(number string) string {
	if len(number) > 4 {
		return number[len(number)-4:]
	}
	return number
}

func (p *Provider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	r, err := p.checking(ctx, l)
	if err != nil {
		return nil, err
	}
	asOf := reportTime(r)
	out := make([]extraction.UpstreamAccount, 0, len(r.CheckingAccounts))
	for _, a := range r.CheckingAccounts {
		avail, err := wire.MinorUnits(a.Balances.AvailableAmount.Amount)
		if err != nil {
			return nil, badReport(err)
		}
		blocked, _ := wire.MinorUnits(orZero(a.Balances.BlockedAmount.Amount))
		invested, _ := wire.MinorUnits(orZero(a.Balances.AutomaticallyInvestedAmount.Amount))
		cur := a.Balances.AvailableAmount.Currency
		if cur == "" {
			cur = "BRL"
		}
		name := a.BrandName + " " + strings.ToLower(strings.ReplaceAll(a.Subtype, "_", " "))
		out = append(out, extraction.UpstreamAccount{
			ID: accountID(a), Type: "DEPOSITORY", Subtype: "CHECKING", Name: strings.TrimSpace(name), Mask: mask(a.Number), Currency: cur, BankCode: a.CompeCode,
			Balance: extraction.Balance{Current: avail + blocked + invested, Available: &avail, AsOf: asOf},
		})
	}
	return out, nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func badReport(err error) error {
	return &extraction.ProviderError{Reason: string(upstream.BadResponse), Err: err}
}

func reportTime(r wire.Report) time.Time {
	if t, err := time.Parse("2006-01-02T15:04:05", r.ProductTime); err == nil {
		return t.UTC()
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (p *Provider) Transactions(ctx context.Context, l extraction.Link, id string) (extraction.UpstreamTransactions, error) {
	r, err := p.checking(ctx, l)
	if err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	for _, a := range r.CheckingAccounts {
		if accountID(a) != id {
			continue
		}
		var out extraction.UpstreamTransactions
		for _, t := range a.TransactionDetails {
			amt, err := wire.MinorUnits(t.TransactionAmount.Amount)
			if err != nil {
				return extraction.UpstreamTransactions{}, badReport(err)
			}
			if amt < 0 {
				amt = -amt
			}
			if strings.EqualFold(t.CreditDebitType, "DEBITO") {
				amt = -amt
			}
			date := t.TransactionDate
			if len(date) > 10 {
				date = date[:10]
			}
			if _, err := time.Parse(time.DateOnly, date); err != nil || t.TransactionID == "" {
				return extraction.UpstreamTransactions{}, badReport(fmt.Errorf("klavi: a transaction without id or date"))
			}
			cur := t.TransactionAmount.Currency
			if cur == "" {
				cur = "BRL"
			}
			out.Items = append(out.Items, extraction.UpstreamTransaction{
				ID: t.TransactionID, AmountMinor: amt, Currency: cur, BookingDate: date, ValueDate: date,
				Description: t.TransactionName, Category: t.Type,
			})
			if out.From == "" || date < out.From {
				out.From = date
			}
			if date > out.To {
				out.To = date
			}
		}
		return out, nil
	}
	return extraction.UpstreamTransactions{}, &extraction.ProviderError{Reason: "ACCOUNT_NOT_FOUND", Err: errors.New("klavi: the report has no such account")}
}

func (p *Provider) Identity(ctx context.Context, l extraction.Link) (extraction.Identity, error) {
	r, err := p.checking(ctx, l)
	if err != nil {
		return extraction.Identity{}, err
	}
	id := extraction.Identity{TaxIDType: "CPF", TaxID: r.EnquiryCPF}
	if r.EnquiryCNPJ != "" {
		id.TaxIDType, id.TaxID = "CNPJ", r.EnquiryCNPJ
	}
	for _, a := range r.CheckingAccounts {
		if a.CivilName != "" && !contains(id.Names, a.CivilName) {
			id.Names = append(id.Names, a.CivilName)
		}
	}
	return id, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Documents reads a verified webhook: a report becomes a document of its consent (named by the
// externalInfo Puente sent with the request), of kind productName. Events carry no data, except
// product_generated_failed: it becomes a report-shaped document with the failure's code, so that
// reads waiting on the report end with a clear failure instead of waiting for a report that will
// not come (a later successful report of the same kind replaces it).
func (p *Provider) Documents(_ context.Context, _ string, body []byte) ([]extraction.PushedDocument, error) {
	if wire.IsReport(body) {
		var r struct {
			ProductName  string             `json:"productName"`
			ExternalInfo *wire.ExternalInfo `json:"externalInfo"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("klavi: report webhook body: %w", err)
		}
		if r.ExternalInfo == nil || r.ExternalInfo.ClientID == "" || r.ExternalInfo.ConsentID == "" || r.ProductName == "" {
			return nil, nil // not a report Puente asked for
		}
		return []extraction.PushedDocument{{ClientID: r.ExternalInfo.ClientID, ConsentID: r.ExternalInfo.ConsentID, Kind: r.ProductName, Body: body}}, nil
	}
	events, err := wire.ParseEvents(body)
	if err != nil {
		return nil, fmt.Errorf("klavi: event webhook body: %w", err)
	}
	var out []extraction.PushedDocument
	for _, e := range events {
		if e.EventName != wire.EventProductFailed || e.Payload.ProductName == "" {
			continue
		}
		var info wire.ExternalInfo
		if json.Unmarshal(e.ExternalInfo, &info) != nil || info.ClientID == "" || info.ConsentID == "" {
			continue
		}
		var code int64
		if json.Unmarshal(bytes.Trim(e.Payload.Code, `"`), &code) != nil || code == 200 {
			code = 5000
		}
		doc, _ := json.Marshal(map[string]any{"code": code, "message": e.Payload.Message, "productName": e.Payload.ProductName, "externalInfo": info})
		out = append(out, extraction.PushedDocument{ClientID: info.ClientID, ConsentID: info.ConsentID, Kind: e.Payload.ProductName, Body: doc})
	}
	return out, nil
}

var (
	_ extraction.Provider  = (*Provider)(nil)
	_ extraction.EventSink = (*Provider)(nil)
)
