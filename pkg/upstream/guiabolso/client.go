// Package guiabolso is Puente's client of Guiabolso Connect (Brazil): an events-protocol API
// where every call is a POST of an event envelope to the partner route (API key only) or the
// user route (API key and the user's access token), and every answer is an event whose name
// says how it went. It exchanges Connect authorization codes for tokens, refreshes them (once
// per user however many reads want one), reads a user's accounts and transactions, and asks
// for wallet-monitoring synchronizations, whose results come back by webhook (ParseSyncEvent).
package guiabolso

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"puente.dev/pkg/upstream"
)

// Name is the provider's id in Puente.
const Name = "guiabolso"

// LinkState is a connection's provider state: whose Guiabolso user it is and their tokens.
type LinkState struct {
	UserTrackingID string    `json:"userTrackingId"`
	AccessToken    string    `json:"accessToken,omitempty"`
	AccessExpiry   time.Time `json:"accessExpiry,omitzero"`
	RefreshToken   string    `json:"refreshToken,omitempty"`
}

// UserTrackingID is a Puente connection's userTrackingId: the connection's id, unique and
// nothing personal, as Guiabolso asks. Connect is opened with it and wallet monitoring names
// users by it.
func UserTrackingID(connectionID string) string { return connectionID }

// AccountID is the id Puente keeps for a Guiabolso account: its accountId, in decimal.
func AccountID(id int64) string { return strconv.FormatInt(id, 10) }

// ErrNotLinked is a state without tokens: the user never finished Connect.
var ErrNotLinked = errors.New("guiabolso: the connection holds no Guiabolso tokens")

// Client calls Guiabolso Connect.
type Client struct {
	cfg    Config
	api    *upstream.Client
	tokens *upstream.Tokens
	now    func() time.Time

	mu      sync.Mutex
	states  map[string]LinkState // latest state seen per userTrackingId, for refreshes
	refused map[string]string    // per userTrackingId, the access token Guiabolso last refused
}

// Options are a Client's optional parts.
type Options struct {
	Logger    *slog.Logger
	Transport http.RoundTripper
	Now       func() time.Time
}

// New returns a client for cfg.
func New(cfg Config, o Options) (*Client, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("guiabolso: PUENTE_GUIABOLSO_CLIENT_ID and PUENTE_GUIABOLSO_CLIENT_SECRET are required")
	}
	rps := cfg.RatePerSecond
	if rps <= 0 {
		rps = DefaultRatePerSecond
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	api, err := upstream.NewClient(upstream.Options{
		Metrics:  cfg.Metrics,
		Provider: Name, BaseURL: cfg.URL, Timeout: timeout, RatePerSecond: float64(rps), Burst: rps,
		Transport: o.Transport, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Client{cfg: cfg, api: api, now: o.Now, states: map[string]LinkState{}, refused: map[string]string{}}
	c.tokens = &upstream.Tokens{Fetch: c.fetchToken, Early: RefreshEarly, Now: o.Now}
	return c, nil
}

// Config is the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// ExchangeCode trades a Connect authorization code for the user's tokens. A code is single use,
// so the call is never retried.
func (c *Client) ExchangeCode(ctx context.Context, userTrackingID, code string) (LinkState, error) {
	var out struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	}
	if err := c.do(ctx, call{route: PartnerRoute, name: EventTokensExchange, payload: map[string]string{"code": code}}, &out); err != nil {
		return LinkState{}, err
	}
	if out.AccessToken == "" || out.RefreshToken == "" {
		return LinkState{}, &upstream.Error{Provider: Name, Op: "POST " + PartnerRoute + " " + EventTokensExchange, Kind: upstream.BadResponse, Err: errors.New("no tokens in the response")}
	}
	st := LinkState{
		UserTrackingID: userTrackingID, AccessToken: out.AccessToken, RefreshToken: out.RefreshToken,
		AccessExpiry: tokenExpiry(out.AccessToken, c.now().Add(AccessTokenLifetime)),
	}
	c.remember(st)
	return st, nil
}

// Refresh gets a new access token with a refresh token. Refreshing again is harmless, so it is
// retried like a read.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (upstream.Token, error) {
	var out struct {
		AccessToken string `json:"accessToken"`
	}
	if err := c.do(ctx, call{route: PartnerRoute, name: EventRefreshExchange, payload: map[string]string{"refreshToken": refreshToken}, safe: true}, &out); err != nil {
		return upstream.Token{}, err
	}
	if out.AccessToken == "" {
		return upstream.Token{}, &upstream.Error{Provider: Name, Op: "POST " + PartnerRoute + " " + EventRefreshExchange, Kind: upstream.BadResponse, Err: errors.New("no access token in the response")}
	}
	return upstream.Token{Value: out.AccessToken, Expiry: tokenExpiry(out.AccessToken, c.now().Add(AccessTokenLifetime))}, nil
}

// remember keeps st as the user's latest state, the one refreshes use.
func (c *Client) remember(st LinkState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.states[st.UserTrackingID]; ok && old.AccessExpiry.After(st.AccessExpiry) && old.RefreshToken == st.RefreshToken {
		return
	}
	c.states[st.UserTrackingID] = st
}

// fetchToken is the Tokens' fetch: the state's own access token while it is fresh, else a refresh.
func (c *Client) fetchToken(ctx context.Context, key string, old upstream.Token) (upstream.Token, error) {
	c.mu.Lock()
	st, ok := c.states[key]
	refused := c.refused[key]
	c.mu.Unlock()
	if !ok || st.RefreshToken == "" {
		return upstream.Token{}, ErrNotLinked
	}
	if st.AccessToken != "" && st.AccessToken != old.Value && st.AccessToken != refused && c.now().Add(RefreshEarly).Before(st.AccessExpiry) {
		return upstream.Token{Value: st.AccessToken, Expiry: st.AccessExpiry}, nil
	}
	return c.Refresh(ctx, st.RefreshToken)
}

// AccessToken returns a working access token for the link's user, refreshed when fewer than 30 s
// remain; concurrent calls for one user refresh once.
func (c *Client) AccessToken(ctx context.Context, st LinkState) (string, error) {
	if st.UserTrackingID == "" || st.RefreshToken == "" {
		return "", ErrNotLinked
	}
	c.remember(st)
	return c.tokens.Get(ctx, st.UserTrackingID)
}

// userCall sends a user-route event with the user's token; a token refused (invalid, or expired
// by Guiabolso's clock) is dropped and the call made once more with a fresh one.
func (c *Client) userCall(ctx context.Context, st LinkState, name string, payload any, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.AccessToken(ctx, st)
		if err != nil {
			return err
		}
		err = c.do(ctx, call{route: UserRoute, name: name, payload: payload, accessToken: tok, safe: true}, out)
		ee, isEvent := AsEventError(err)
		if attempt == 0 && isEvent && (ee.Type == TypeUnauthorized || ee.Type == TypeExpired) && !partnerRefused(ee) {
			c.mu.Lock()
			c.refused[st.UserTrackingID] = tok
			c.mu.Unlock()
			c.tokens.Invalidate(st.UserTrackingID, tok)
			continue
		}
		return err
	}
}

// Account is one of the user's accounts (assumption 4).
type Account struct {
	AccountID int64
	BacenCode string
	Name      string
	// BalanceMinor is the balance in centavos.
	BalanceMinor int64
}

// Accounts reads the user's accounts.
func (c *Client) Accounts(ctx context.Context, st LinkState) ([]Account, error) {
	var out struct {
		Accounts []struct {
			AccountID json.Number `json:"accountId"`
			BacenCode string      `json:"bacenCode"`
			Name      string      `json:"name"`
			Balance   json.Number `json:"balance"`
		} `json:"accounts"`
	}
	if err := c.userCall(ctx, st, EventUserAccounts, map[string]any{}, &out); err != nil {
		return nil, err
	}
	op := "POST " + UserRoute + " " + EventUserAccounts
	accs := make([]Account, 0, len(out.Accounts))
	for _, a := range out.Accounts {
		id, err := a.AccountID.Int64()
		if err != nil {
			return nil, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Err: errors.New("an account without a numeric accountId")}
		}
		bal, err := minorUnits(a.Balance)
		if err != nil {
			return nil, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Err: fmt.Errorf("account balance: %w", err)}
		}
		accs = append(accs, Account{AccountID: id, BacenCode: a.BacenCode, Name: a.Name, BalanceMinor: bal})
	}
	return accs, nil
}

// Transaction is one transaction of an account (assumption 4).
type Transaction struct {
	ID          string
	AccountID   int64
	Date        string // YYYY-MM-DD
	Description string
	AmountMinor int64 // centavos, negative for debits
}

// Transactions reads one account's transactions.
func (c *Client) Transactions(ctx context.Context, st LinkState, accountID int64) ([]Transaction, error) {
	var out struct {
		Transactions []struct {
			ID          json.RawMessage `json:"id"`
			AccountID   json.Number     `json:"accountId"`
			Date        string          `json:"date"`
			Description string          `json:"description"`
			Amount      json.Number     `json:"amount"`
		} `json:"transactions"`
	}
	if err := c.userCall(ctx, st, EventUserTransactions, map[string]any{"accountId": accountID}, &out); err != nil {
		return nil, err
	}
	op := "POST " + UserRoute + " " + EventUserTransactions
	bad := func(what string) error {
		return &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Err: errors.New(what)}
	}
	txs := make([]Transaction, 0, len(out.Transactions))
	for _, t := range out.Transactions {
		id := strings.Trim(string(t.ID), `"`)
		if id == "" || id == "null" {
			return nil, bad("a transaction without an id")
		}
		acc, err := t.AccountID.Int64()
		if err != nil {
			acc = accountID
		}
		if acc != accountID {
			continue
		}
		d, err := time.Parse(time.DateOnly, t.Date[:min(len(t.Date), 10)])
		if err != nil {
			return nil, bad("a transaction date is not a date")
		}
		amt, err := minorUnits(t.Amount)
		if err != nil {
			return nil, bad("a transaction amount is not a number")
		}
		txs = append(txs, Transaction{ID: id, AccountID: acc, Date: d.Format(time.DateOnly), Description: t.Description, AmountMinor: amt})
	}
	return txs, nil
}

// SyncAccounts asks Guiabolso to synchronize the accounts of up to MaxSyncBatch users and
// returns the synchronization's id; each user's result comes back by webhook. The caller splits
// longer lists. A sync request is not repeatable blindly, so it is never retried.
func (c *Client) SyncAccounts(ctx context.Context, userTrackingIDs []string, producerTag string) (string, error) {
	if len(userTrackingIDs) == 0 {
		return "", errors.New("guiabolso: no userTrackingIds to synchronize")
	}
	if len(userTrackingIDs) > MaxSyncBatch {
		return "", fmt.Errorf("guiabolso: %d userTrackingIds in one sync request, at most %d", len(userTrackingIDs), MaxSyncBatch)
	}
	if producerTag == "" {
		producerTag = c.cfg.ProducerTag
	}
	if producerTag == "" {
		producerTag = DefaultProducerTag
	}
	var out struct {
		SynchronizationID string `json:"synchronizationId"`
	}
	payload := map[string]any{"userTrackingIds": userTrackingIDs, "producerTag": producerTag}
	if err := c.do(ctx, call{route: PartnerRoute, name: EventSyncAccounts, payload: payload}, &out); err != nil {
		return "", err
	}
	if out.SynchronizationID == "" {
		return "", &upstream.Error{Provider: Name, Op: "POST " + PartnerRoute + " " + EventSyncAccounts, Kind: upstream.BadResponse, Err: errors.New("no synchronizationId in the response")}
	}
	return out.SynchronizationID, nil
}

// tokenExpiry reads a JWT's exp claim without verifying it (the connector does the same);
// fallback when the token is not a JWT or has none.
func tokenExpiry(tok string, fallback time.Time) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fallback
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fallback
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		return fallback
	}
	exp, err := claims.Exp.Int64()
	if err != nil || exp <= 0 {
		return fallback
	}
	return time.Unix(exp, 0)
}

// minorUnits converts a decimal amount of reais to centavos, rounding half away from zero.
func minorUnits(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return 0, fmt.Errorf("%q is not a number", string(n))
	}
	r.Mul(r, big.NewRat(100, 1))
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%q is out of range", string(n))
	}
	return q.Int64(), nil
}
