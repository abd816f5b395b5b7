// Package powens is Powens' (ex Budget Insight) API as Puente calls it: users and their
// temporary and permanent tokens, connectors with sources and fields, connections and their
// states, bank accounts and transactions. Every call goes through upstream.Client; a Powens
// ServiceError's code is read into the *upstream.Error's Code.
package powens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"puente.dev/pkg/upstream"
)

// Client calls one Powens domain.
type Client struct {
	http         *upstream.Client
	clientID     string
	clientSecret string
}

// NewClient returns a client for cfg; transport may be nil.
func NewClient(cfg Config, log *slog.Logger, transport http.RoundTripper) (*Client, error) {
	hc, err := upstream.NewClient(upstream.Options{
		Metrics:  cfg.Metrics,
		Provider: "powens", BaseURL: cfg.URL, Timeout: cfg.Timeout,
		RatePerSecond: float64(cfg.RatePerSecond), Burst: max(cfg.RatePerSecond, 1),
		Transport: transport, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Client{http: hc, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret}, nil
}

// ClientID is the domain's client id, which the webauth URL carries.
func (c *Client) ClientID() string { return c.clientID }

// URL resolves a path against the API's base URL.
func (c *Client) URL(path string) string { return c.http.URL(path) }

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// do sends req and reads a ServiceError's code into the error.
func (c *Client) do(ctx context.Context, req upstream.Request, out any) error {
	_, err := c.http.Do(ctx, req, out)
	if e, ok := upstream.AsError(err); ok && len(e.Body) > 0 {
		var se ServiceError
		if json.Unmarshal(e.Body, &se) == nil && se.Code != "" {
			e.Code = se.Code
		}
	}
	return err
}

// badResponse is an answer that decoded but lacks what the call needs.
func (c *Client) badResponse(op, what string) error {
	return &upstream.Error{Provider: "powens", Op: op, Kind: upstream.BadResponse, Err: errors.New(what)}
}

// Init creates a user and returns its temporary token (no client credentials are sent).
func (c *Client) Init(ctx context.Context) (AuthInit, error) {
	const op = "POST /auth/init"
	var out AuthInit
	if err := c.do(ctx, upstream.Request{Method: http.MethodPost, Path: PathInit, Op: op, JSON: struct{}{}}, &out); err != nil {
		return out, err
	}
	if out.AuthToken == "" || out.IDUser == 0 {
		return out, c.badResponse(op, "no auth_token or id_user")
	}
	return out, nil
}

// Expiry is when an /auth/init token stops working (zero for a permanent one).
func (a AuthInit) Expiry(now time.Time) time.Time {
	if a.Type == "permanent" {
		return time.Time{}
	}
	if a.ExpiresIn > 0 {
		return now.Add(time.Duration(a.ExpiresIn) * time.Second)
	}
	return now.Add(TemporaryTokenLifetime)
}

// Code returns a temporary code for the user of token (requestAccess: valid 30 minutes).
func (c *Client) Code(ctx context.Context, token string) (string, error) {
	const op = "GET /auth/token/code"
	var out AuthCode
	if err := c.do(ctx, upstream.Request{Method: http.MethodGet, Path: PathCode, Op: op, Header: bearer(token),
		Query: url.Values{"type": {"requestAccess"}}, Safe: true}, &out); err != nil {
		return "", err
	}
	if out.Code == "" {
		return "", c.badResponse(op, "no code")
	}
	return out.Code, nil
}

// Access exchanges a temporary code for the user's permanent token, with the client credentials.
func (c *Client) Access(ctx context.Context, code string) (string, error) {
	const op = "POST /auth/token/access"
	var out AccessToken
	if err := c.do(ctx, upstream.Request{Method: http.MethodPost, Path: PathAccess, Op: op, JSON: map[string]string{
		"grant_type": "authorization_code", "client_id": c.clientID, "client_secret": c.clientSecret, "code": code,
	}}, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", c.badResponse(op, "no access_token")
	}
	return out.AccessToken, nil
}

// Permanent turns a temporary user token into a permanent one.
func (c *Client) Permanent(ctx context.Context, temporary string) (string, error) {
	code, err := c.Code(ctx, temporary)
	if err != nil {
		return "", err
	}
	return c.Access(ctx, code)
}

// Connectors lists the domain's connectors with their fields, sources and countries.
func (c *Client) Connectors(ctx context.Context) ([]Connector, error) {
	var out struct {
		Connectors []Connector `json:"connectors"`
	}
	err := c.do(ctx, upstream.Request{Method: http.MethodGet, Path: "/connectors", Op: "GET /connectors",
		Query: url.Values{"expand": {"fields,sources,countries"}}, Safe: true}, &out)
	return out.Connectors, err
}

// CreateConnection creates a connection to connector for source with the field values; a 400
// wrongpass means the bank refused them, and the connection is gone already.
func (c *Client) CreateConnection(ctx context.Context, token, connector, source string, fields map[string]string) (Connection, error) {
	const op = "POST /users/me/connections"
	body := map[string]string{}
	for k, v := range fields {
		body[k] = v
	}
	body["connector_uuid"] = connector
	q := url.Values{"expand": {"sources"}}
	if source != "" {
		q.Set("source", source)
	}
	var out Connection
	if err := c.do(ctx, upstream.Request{Method: http.MethodPost, Path: "/users/me/connections", Op: op,
		Header: bearer(token), Query: q, JSON: body}, &out); err != nil {
		return out, err
	}
	if out.ID == 0 {
		return out, c.badResponse(op, "no connection id")
	}
	return out, nil
}

// UpdateConnection posts to a connection: a source to add (source != ""), field values (an OTP,
// a new password), {"resume": "true"} for a decoupled validation, or nothing to sync it.
func (c *Client) UpdateConnection(ctx context.Context, token string, id int64, source string, body map[string]string) (Connection, error) {
	const op = "POST /users/me/connections/{id}"
	q := url.Values{"expand": {"sources"}}
	if source != "" {
		q.Set("source", source)
	}
	if body == nil {
		body = map[string]string{}
	}
	var out Connection
	if err := c.do(ctx, upstream.Request{Method: http.MethodPost, Path: "/users/me/connections/" + strconv.FormatInt(id, 10), Op: op,
		Header: bearer(token), Query: q, JSON: body}, &out); err != nil {
		return out, err
	}
	if out.ID == 0 {
		return out, c.badResponse(op, "no connection id")
	}
	return out, nil
}

// Connection reads a connection, with expand (e.g. "sources,all_accounts").
func (c *Client) Connection(ctx context.Context, token string, id int64, expand string) (Connection, error) {
	const op = "GET /users/me/connections/{id}"
	var q url.Values
	if expand != "" {
		q = url.Values{"expand": {expand}}
	}
	var out Connection
	if err := c.do(ctx, upstream.Request{Method: http.MethodGet, Path: "/users/me/connections/" + strconv.FormatInt(id, 10), Op: op,
		Header: bearer(token), Query: q, Safe: true}, &out); err != nil {
		return out, err
	}
	if out.ID == 0 {
		return out, c.badResponse(op, "no connection id")
	}
	return out, nil
}

// Connections lists the user's connections.
func (c *Client) Connections(ctx context.Context, token string) ([]Connection, error) {
	var out struct {
		Connections []Connection `json:"connections"`
	}
	if err := c.do(ctx, upstream.Request{Method: http.MethodGet, Path: "/users/me/connections", Op: "GET /users/me/connections",
		Header: bearer(token), Query: url.Values{"expand": {"sources"}}, Safe: true}, &out); err != nil {
		return nil, err
	}
	if out.Connections == nil {
		return nil, c.badResponse("GET /users/me/connections", "no connections list")
	}
	return out.Connections, nil
}

// DeleteConnection deletes a connection and its data; one already gone is no error.
func (c *Client) DeleteConnection(ctx context.Context, token string, id int64) error {
	return c.do(ctx, upstream.Request{Method: http.MethodDelete, Path: "/users/me/connections/" + strconv.FormatInt(id, 10),
		Op: "DELETE /users/me/connections/{id}", Header: bearer(token), Safe: true, Accept: []int{http.StatusNotFound}}, nil)
}

// Accounts lists the user's enabled accounts (all: the disabled ones too); none is an empty list
// (Powens answers 400 noAccount).
func (c *Client) Accounts(ctx context.Context, token string, all bool) ([]Account, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {""}}
	}
	var out Accounts
	err := c.do(ctx, upstream.Request{Method: http.MethodGet, Path: "/users/me/accounts", Op: "GET /users/me/accounts",
		Header: bearer(token), Query: q, Safe: true}, &out)
	if e, ok := upstream.AsError(err); ok && e.Code == "noAccount" {
		return nil, nil
	}
	return out.Accounts, err
}

// ActivateAccount enables the synchronisation of a disabled account (the user's GDPR consent).
func (c *Client) ActivateAccount(ctx context.Context, token string, id int64) error {
	return c.do(ctx, upstream.Request{Method: http.MethodPost, Path: "/users/me/accounts/" + strconv.FormatInt(id, 10),
		Op: "POST /users/me/accounts/{id}", Header: bearer(token), Query: url.Values{"all": {""}},
		JSON: map[string]bool{"disabled": false}, Safe: true}, nil)
}

// Transactions lists an account's transactions since minDate (YYYY-MM-DD, "" for all), every
// page of them.
func (c *Client) Transactions(ctx context.Context, token string, account int64, minDate string) ([]Transaction, error) {
	const op = "GET /users/me/accounts/{id}/transactions"
	path := fmt.Sprintf(PathAccountTransactions, account)
	var all []Transaction
	for offset, pages := 0, 0; ; pages++ {
		if pages > 10000 {
			return nil, c.badResponse(op, "pagination does not end")
		}
		q := url.Values{"limit": {strconv.Itoa(PageSize)}, "offset": {strconv.Itoa(offset)}}
		if minDate != "" {
			q.Set("min_date", minDate)
		}
		var page TransactionsList
		if err := c.do(ctx, upstream.Request{Method: http.MethodGet, Path: path, Op: op, Header: bearer(token), Query: q, Safe: true}, &page); err != nil {
			return nil, err
		}
		if page.Transactions == nil {
			return nil, c.badResponse(op, "no transactions list")
		}
		all = append(all, page.Transactions...)
		if len(page.Transactions) == 0 {
			return all, nil
		}
		if page.Links != nil {
			if page.Links.Next == nil || page.Links.Next.Href == "" {
				return all, nil
			}
			next, err := url.Parse(page.Links.Next.Href)
			if err != nil {
				return nil, c.badResponse(op, "a next link that is not a URL")
			}
			n, err := strconv.Atoi(next.Query().Get("offset"))
			if err != nil || n <= offset {
				return nil, c.badResponse(op, "a next link that does not move on")
			}
			offset = n
			continue
		}
		if len(page.Transactions) < PageSize {
			return all, nil
		}
		offset += len(page.Transactions)
	}
}

// WebauthURL is where a browser goes to authorise connector (source) at the bank; the user is
// the one code was made for, and Powens sends the browser back to redirectURI with
// id_connection (or error and error_description) and state.
func (c *Client) WebauthURL(code, redirectURI, connector, source, state string, fields map[string]string) string {
	q := url.Values{}
	for k, v := range fields {
		q.Set(k, v)
	}
	q.Set("client_id", c.clientID)
	q.Set("token", code)
	q.Set("redirect_uri", redirectURI)
	q.Set("connector_uuid", connector)
	if source != "" {
		q.Set("source", source)
	}
	q.Set("state", state)
	return c.http.URL("/webauth") + "?" + q.Encode()
}

// DeleteUser deletes the user of token and all its data; one already gone is no error.
func (c *Client) DeleteUser(ctx context.Context, token string) error {
	err := c.do(ctx, upstream.Request{Method: http.MethodDelete, Path: "/users/me", Op: "DELETE /users/me",
		Header: bearer(token), Safe: true, Accept: []int{http.StatusNotFound}}, nil)
	if e, ok := upstream.AsError(err); ok && e.Status == http.StatusUnauthorized {
		return nil // the token is gone with its user, or expired (a temporary user Powens purges)
	}
	return err
}
