// Package syncfy is the wire client of Syncfy (ex Paybook Sync), Mexico: users and sessions with
// the API key, catalogues, credentials, jobs and their two-factor rounds, accounts and
// transactions with a session token per Syncfy user. Every answer is the envelope
// {rid, code, errors, status, message, response}.
package syncfy

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

// Name is the provider's id.
const Name = "syncfy"

// Client calls Syncfy. It is safe for concurrent use.
type Client struct {
	http   *upstream.Client
	base   *url.URL
	apiKey string
	// sessions caches a session token per Syncfy id_user.
	sessions *upstream.Tokens
	// users caches the Syncfy id_user of each external id (find-or-create, once at a time).
	users     *upstream.Tokens
	now       func() time.Time
	pollAfter time.Duration
}

// New returns a client for cfg.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("syncfy: PUENTE_SYNCFY_API_KEY must be set")
	}
	rps := cfg.RatePerSecond
	if rps <= 0 {
		rps = RatePerSecond
	}
	hc, err := upstream.NewClient(upstream.Options{
		Metrics:  cfg.Metrics,
		Provider: Name, BaseURL: cfg.URL, Timeout: cfg.Timeout, RatePerSecond: rps, Burst: RatePerSecond, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(hc.URL("/"))
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = PollAfter
	}
	c := &Client{http: hc, base: base, apiKey: cfg.APIKey, now: time.Now, pollAfter: poll}
	c.sessions = &upstream.Tokens{Fetch: c.newSession, Early: SessionRefreshEarly}
	c.users = &upstream.Tokens{Fetch: c.findOrCreateUser}
	return c, nil
}

// PollAfter is how long to wait between two reads of a job's status (Config.PollInterval).
func (c *Client) PollAfter() time.Duration { return c.pollAfter }

// ---- calls

type auth int

const (
	withKey auth = iota
	withSession
)

type call struct {
	method, path, op string
	query            url.Values
	body             any
	safe             bool
	auth             auth
	user             string // the Syncfy id_user whose session token authorises the call
}

// do sends c and decodes the envelope's response into out. A session token refused with 401 is
// dropped and the call made once more with a new one.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	for attempt := 0; ; attempt++ {
		h := http.Header{}
		var token string
		switch cl.auth {
		case withKey:
			h.Set("Authorization", "api_key api_key="+c.apiKey)
		case withSession:
			var err error
			if token, err = c.sessions.Get(ctx, cl.user); err != nil {
				return err
			}
			h.Set("Authorization", "TOKEN token="+token)
		}
		resp, err := c.http.Do(ctx, upstream.Request{
			Method: cl.method, Path: cl.path, Op: cl.op, Query: cl.query, Header: h, JSON: cl.body, Safe: cl.safe,
		}, nil)
		if err != nil {
			ue, ok := upstream.AsError(err)
			if ok {
				var env Envelope
				if json.Unmarshal(ue.Body, &env) == nil && env.Code != 0 {
					ue.Code = strconv.Itoa(env.Code)
				}
				ue.Body = nil // nothing above this package reads Syncfy's bodies
				if ue.Status == http.StatusUnauthorized && cl.auth == withSession && attempt == 0 {
					c.sessions.Invalidate(cl.user, token)
					continue
				}
			}
			return err
		}
		var env Envelope
		if err := resp.Decode(c.http, cl.op, &env); err != nil {
			return err
		}
		if !env.Status || env.Response == nil {
			return &upstream.Error{Provider: Name, Op: cl.op, Kind: upstream.BadResponse, Status: resp.Status,
				Code: strconv.Itoa(env.Code), Err: errors.New("envelope without a response")}
		}
		if out != nil {
			if err := json.Unmarshal(env.Response, out); err != nil {
				return &upstream.Error{Provider: Name, Op: cl.op, Kind: upstream.BadResponse, Status: resp.Status, Err: fmt.Errorf("decode response: %w", err)}
			}
		}
		return nil
	}
}

// follow is the path to call for a URL Syncfy returned: the URL itself when its host is the
// API's, else its path on the API's host (see assumptions.go).
func (c *Client) follow(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" {
		return "", errors.New("syncfy: the job's URL is not a URL")
	}
	if u.IsAbs() && u.Host == c.base.Host && u.Scheme == c.base.Scheme {
		return u.String(), nil
	}
	p := u.Path
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, nil
}

// ---- users and sessions

// UserID returns the Syncfy id_user whose id_external is external, creating the user when there
// is none.
func (c *Client) UserID(ctx context.Context, external string) (string, error) {
	if external == "" {
		return "", errors.New("syncfy: empty external user id")
	}
	return c.users.Get(ctx, external)
}

func (c *Client) findOrCreateUser(ctx context.Context, external string, _ upstream.Token) (upstream.Token, error) {
	var found []User
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/users", op: "GET /v1/users", query: url.Values{"id_external": {external}}, safe: true}, &found); err != nil {
		return upstream.Token{}, err
	}
	for _, u := range found {
		if u.IDExternal != nil && *u.IDExternal == external && u.IDUser != "" {
			return upstream.Token{Value: u.IDUser}, nil
		}
	}
	var u User
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/users", op: "POST /v1/users", body: map[string]string{"id_external": external, "name": external}}, &u); err != nil {
		return upstream.Token{}, err
	}
	if u.IDUser == "" {
		return upstream.Token{}, &upstream.Error{Provider: Name, Op: "POST /v1/users", Kind: upstream.BadResponse, Err: errors.New("no id_user")}
	}
	return upstream.Token{Value: u.IDUser}, nil
}

func (c *Client) newSession(ctx context.Context, idUser string, _ upstream.Token) (upstream.Token, error) {
	var s Session
	// A session is a new token each time, harmless to repeat.
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/sessions", op: "POST /v1/sessions", body: map[string]string{"id_user": idUser}, safe: true}, &s); err != nil {
		return upstream.Token{}, err
	}
	if s.Token == "" {
		return upstream.Token{}, &upstream.Error{Provider: Name, Op: "POST /v1/sessions", Kind: upstream.BadResponse, Err: errors.New("no token")}
	}
	return upstream.Token{Value: s.Token, Expiry: c.now().Add(SessionIdleLifetime)}, nil
}

// ---- catalogues

func catalogue[T any](ctx context.Context, c *Client, name string) ([]T, error) {
	var all []T
	for skip := 0; ; skip += CataloguePage {
		var page []T
		err := c.do(ctx, call{method: http.MethodGet, path: "/v1/catalogues/" + name, op: "GET /v1/catalogues/" + name,
			query: url.Values{"skip": {strconv.Itoa(skip)}, "limit": {strconv.Itoa(CataloguePage)}}, safe: true}, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < CataloguePage {
			return all, nil
		}
	}
}

// Countries lists the countries catalogue.
func (c *Client) Countries(ctx context.Context) ([]Country, error) {
	return catalogue[Country](ctx, c, "countries")
}

// OrganizationTypes lists the organization types.
func (c *Client) OrganizationTypes(ctx context.Context) ([]OrganizationType, error) {
	return catalogue[OrganizationType](ctx, c, "site_organization_types")
}

// Organizations lists the organizations.
func (c *Client) Organizations(ctx context.Context) ([]Organization, error) {
	return catalogue[Organization](ctx, c, "site_organizations")
}

// Sites lists the sites with their credentials forms.
func (c *Client) Sites(ctx context.Context) ([]Site, error) {
	return catalogue[Site](ctx, c, "sites")
}

// ---- credentials and jobs

// CreateCredential posts a site's form for idUser and starts a job. It is not retried: a second
// POST would log in twice.
func (c *Client) CreateCredential(ctx context.Context, idUser, idSite string, values map[string]string) (CredentialJob, error) {
	var j CredentialJob
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/credentials", op: "POST /v1/credentials", auth: withSession, user: idUser,
		body: map[string]any{"id_site": idSite, "credentials": values}}, &j)
	if err == nil && (j.IDCredential == "" || j.Status == "") {
		err = &upstream.Error{Provider: Name, Op: "POST /v1/credentials", Kind: upstream.BadResponse, Err: errors.New("no id_credential or status URL")}
	}
	return j, err
}

// JobStatus reads a job's whole status history, oldest first, from its status URL.
func (c *Client) JobStatus(ctx context.Context, idUser, statusURL string) ([]JobStatus, error) {
	p, err := c.follow(statusURL)
	if err != nil {
		return nil, err
	}
	var hist []JobStatus
	if err := c.do(ctx, call{method: http.MethodGet, path: p, op: "GET /v1/jobs/{id}/status", auth: withSession, user: idUser, safe: true}, &hist); err != nil {
		return nil, err
	}
	if len(hist) == 0 {
		return nil, &upstream.Error{Provider: Name, Op: "GET /v1/jobs/{id}/status", Kind: upstream.BadResponse, Err: errors.New("empty status history")}
	}
	return hist, nil
}

// Twofa answers a 410 at its twofa URL.
func (c *Client) Twofa(ctx context.Context, idUser, twofaURL string, answers map[string]string) error {
	p, err := c.follow(twofaURL)
	if err != nil {
		return err
	}
	return c.do(ctx, call{method: http.MethodPost, path: p, op: "POST /v1/jobs/{id}/twofa", auth: withSession, user: idUser,
		body: map[string]any{"twofa": answers}}, nil)
}

// ---- data

// Accounts lists a credential's accounts.
func (c *Client) Accounts(ctx context.Context, idUser, idCredential string) ([]Account, error) {
	var all []Account
	for skip := 0; ; skip += DataPage {
		var page []Account
		err := c.do(ctx, call{method: http.MethodGet, path: "/v1/accounts", op: "GET /v1/accounts", auth: withSession, user: idUser, safe: true,
			query: url.Values{"id_credential": {idCredential}, "skip": {strconv.Itoa(skip)}, "limit": {strconv.Itoa(DataPage)}}}, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < DataPage {
			return all, nil
		}
	}
}

// Transactions lists an account's transactions, every page.
func (c *Client) Transactions(ctx context.Context, idUser, idCredential, idAccount string) ([]Transaction, error) {
	var all []Transaction
	for skip := 0; ; skip += DataPage {
		var page []Transaction
		err := c.do(ctx, call{method: http.MethodGet, path: "/v1/transactions", op: "GET /v1/transactions", auth: withSession, user: idUser, safe: true,
			query: url.Values{"id_credential": {idCredential}, "id_account": {idAccount}, "skip": {strconv.Itoa(skip)}, "limit": {strconv.Itoa(DataPage)}}}, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < DataPage {
			return all, nil
		}
	}
}

// IsTemporary reports whether err may pass if the same call is made later.
func IsTemporary(err error) bool {
	if ue, ok := upstream.AsError(err); ok {
		return ue.Temporary()
	}
	return false
}

// KindOf is err's upstream kind, BadResponse when it has none.
func KindOf(err error) upstream.Kind {
	if ue, ok := upstream.AsError(err); ok {
		return ue.Kind
	}
	return upstream.BadResponse
}
