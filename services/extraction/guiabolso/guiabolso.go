// Package guiabolso is the extraction side of Guiabolso Connect: a linked user's accounts and
// transactions, read on the user route with their access token (refreshed as it nears expiry).
// Guiabolso shares no identity data with partners.
package guiabolso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	gb "puente.dev/pkg/upstream/guiabolso"
	"puente.dev/services/extraction"
)

// Provider implements extraction.Provider.
type Provider struct {
	client *gb.Client
	now    func() time.Time
}

// New returns the provider over client.
func New(client *gb.Client) *Provider { return &Provider{client: client, now: time.Now} }

func (p *Provider) Name() string { return gb.Name }

func (p *Provider) state(l extraction.Link) (gb.LinkState, error) {
	var st gb.LinkState
	if err := json.Unmarshal(l.State, &st); err != nil {
		return st, &extraction.ProviderError{Reason: extraction.ReasonInternal, Err: fmt.Errorf("guiabolso: decode link state: %w", err)}
	}
	if st.UserTrackingID == "" || st.RefreshToken == "" {
		return st, &extraction.ProviderError{Reason: extraction.ReasonLoginRequired, Err: gb.ErrNotLinked}
	}
	return st, nil
}

// providerError wraps an upstream failure with the reason Puente reports.
func providerError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	reason, temporary := gb.ExtractionFailure(err)
	return &extraction.ProviderError{Reason: reason, Temporary: temporary, Err: err}
}

func (p *Provider) Accounts(ctx context.Context, l extraction.Link) ([]extraction.UpstreamAccount, error) {
	st, err := p.state(l)
	if err != nil {
		return nil, err
	}
	accs, err := p.client.Accounts(ctx, st)
	if err != nil {
		return nil, providerError(err)
	}
	asOf := p.now().UTC().Truncate(time.Microsecond)
	out := make([]extraction.UpstreamAccount, 0, len(accs))
	for _, a := range accs {
		id := gb.AccountID(a.AccountID)
		mask := id
		if len(mask) > 4 {
			mask = mask[len(mask)-4:]
		}
		out = append(out, extraction.UpstreamAccount{
			ID: id, Type: "DEPOSITORY", Name: a.Name, Mask: mask, Currency: "BRL", BankCode: a.BacenCode,
			Balance: extraction.Balance{Current: a.BalanceMinor, AsOf: asOf},
		})
	}
	return out, nil
}

func (p *Provider) Transactions(ctx context.Context, l extraction.Link, accountID string) (extraction.UpstreamTransactions, error) {
	st, err := p.state(l)
	if err != nil {
		return extraction.UpstreamTransactions{}, err
	}
	id, err := strconv.ParseInt(accountID, 10, 64)
	if err != nil {
		return extraction.UpstreamTransactions{}, &extraction.ProviderError{Reason: "ACCOUNT_NOT_FOUND", Err: fmt.Errorf("guiabolso: account id %q is not a Guiabolso accountId", accountID)}
	}
	txs, err := p.client.Transactions(ctx, st, id)
	if err != nil {
		return extraction.UpstreamTransactions{}, providerError(err)
	}
	var out extraction.UpstreamTransactions
	for _, t := range txs {
		out.Items = append(out.Items, extraction.UpstreamTransaction{
			ID: t.ID, AmountMinor: t.AmountMinor, Currency: "BRL", BookingDate: t.Date, ValueDate: t.Date, Description: t.Description,
		})
		if out.From == "" || t.Date < out.From {
			out.From = t.Date
		}
		if t.Date > out.To {
			out.To = t.Date
		}
	}
	// Guiabolso says nothing of the window it lists: only the days between the oldest and the
	// newest transaction it returned are known to be complete.
	slices.SortFunc(out.Items, func(a, b extraction.UpstreamTransaction) int {
		if a.BookingDate != b.BookingDate {
			return -compare(a.BookingDate, b.BookingDate)
		}
		return compare(a.ID, b.ID)
	})
	return out, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Identity is not a product Guiabolso shares with partners.
func (p *Provider) Identity(ctx context.Context, l extraction.Link) (extraction.Identity, error) {
	return extraction.Identity{}, &extraction.ProviderError{Reason: gb.ReasonProductNotSupported, Err: errors.New("guiabolso: Guiabolso Connect shares no identity data")}
}
