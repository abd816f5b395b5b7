// Package boufin is Puente's client of Boufin Connect (Chile): the server side of the Token OTP
// (which also opens a consent), the Task Token per end user, consent management and product
// pulls. Wire details Boufin does not publish are guesses, all in assumptions.go.
package boufin

import (
	"context"
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
const Name = "boufin"

// Client calls Boufin Connect with the partner's API key. It is safe for concurrent use.
type Client struct {
	cfg   Config
	http  *upstream.Client
	tasks *upstream.Tokens
}

// New returns a client for cfg (transport may be nil).
func New(cfg Config, transport http.RoundTripper, log *slog.Logger) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.APIKey == "" {
		return nil, errors.New("boufin: no API key configured")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("boufin: no clientId configured")
	}
	hc, err := upstream.NewClient(upstream.Options{
		Metrics:  cfg.Metrics,
		Provider: Name, BaseURL: cfg.URL, Timeout: cfg.Timeout, RatePerSecond: float64(cfg.RatePerSecond),
		Transport: transport, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if _, err := url.Parse(cfg.AppURL); err != nil {
		return nil, fmt.Errorf("boufin: app URL: %w", err)
	}
	c := &Client{cfg: cfg, http: hc}
	c.tasks = &upstream.Tokens{Fetch: c.fetchTaskToken}
	return c, nil
}

// Config is the client's configuration, defaults filled in.
func (c *Client) Config() Config { return c.cfg }

func (c *Client) apiKey() http.Header {
	h := http.Header{}
	h.Set(HeaderAPIKey, c.cfg.APIKey)
	return h
}

// envelope is Boufin's { "data": … }.
type envelope[T any] struct {
	Data *T `json:"data"`
}

func unwrap[T any](c *Client, op string, resp *upstream.Response) (T, error) {
	var env envelope[T]
	var zero T
	if err := resp.Decode(c.http, op, &env); err != nil {
		return zero, err
	}
	if env.Data == nil {
		return zero, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: errors.New("no data")}
	}
	return *env.Data, nil
}

// Entities returns the entities this integration may reach.
func (c *Client) Entities(ctx context.Context) ([]Entity, error) {
	const op = "GET /connect/entities"
	resp, err := c.http.Do(ctx, upstream.Request{Method: http.MethodGet, Path: PathEntities, Op: op, Header: c.apiKey(), Safe: true}, nil)
	if err != nil {
		return nil, err
	}
	list, err := unwrap[[]Entity](c, op, resp)
	if err != nil {
		return nil, err
	}
	for _, e := range list {
		if e.EntityID == "" || e.Name == "" {
			return nil, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: errors.New("an entity without id or name")}
		}
	}
	return list, nil
}

// TokenOTP asks for a one-time token for the Connect app, and the consent it opens. It is not
// retried: each call opens a consent.
func (c *Client) TokenOTP(ctx context.Context, personType, rut, companyRut string) (OTP, error) {
	const op = "POST /connect/token-otp"
	req := OTPRequest{PersonType: personType, RUT: NormalizeRUT(rut), ClientID: c.cfg.ClientID}
	if personType == PersonLegal {
		req.CompanyRUT = NormalizeRUT(companyRut)
	}
	var out OTP
	resp, err := c.http.Do(ctx, upstream.Request{Method: http.MethodPost, Path: PathTokenOTP, Op: op, Header: c.apiKey(), JSON: req}, nil)
	if err != nil {
		return OTP{}, withCode(err)
	}
	if err := resp.Decode(c.http, op, &out); err != nil {
		return OTP{}, err
	}
	if out.Token == "" || out.ConsentID == "" {
		return OTP{}, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: errors.New("no token or consentId")}
	}
	return out, nil
}

// AppURL is where the user's browser goes to authorise the consent with the OTP.
func (c *Client) AppURL(otp, redirectURI, state string) string {
	u, _ := url.Parse(c.cfg.AppURL) // checked in New
	q := u.Query()
	q.Set(AppParamToken, otp)
	q.Set(AppParamRedirectURI, redirectURI)
	q.Set(AppParamState, state)
	u.RawQuery = q.Encode()
	return u.String()
}

func (c *Client) fetchTaskToken(ctx context.Context, target string, _ upstream.Token) (upstream.Token, error) {
	const op = "POST /connect/task-token"
	var out taskToken
	// Asking for a token is repeatable: each answer is a fresh token for the same target.
	resp, err := c.http.Do(ctx, upstream.Request{Method: http.MethodPost, Path: PathTaskToken, Op: op, Header: c.apiKey(),
		JSON: taskTokenRequest{Target: target, ClientID: c.cfg.ClientID}, Safe: true}, nil)
	if err != nil {
		return upstream.Token{}, withCode(err)
	}
	if err := resp.Decode(c.http, op, &out); err != nil {
		return upstream.Token{}, err
	}
	if out.Token == "" {
		return upstream.Token{}, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: errors.New("no token")}
	}
	life := TaskTokenLifetime
	if out.ExpiresIn > 0 {
		life = time.Duration(out.ExpiresIn) * time.Second
	}
	return upstream.Token{Value: out.Token, Expiry: time.Now().Add(life)}, nil
}

// withTask runs a Task Token call for target, once more with a new token when Boufin refuses
// the cached one.
func (c *Client) withTask(ctx context.Context, target string, req upstream.Request) (*upstream.Response, error) {
	if target == "" {
		return nil, errors.New("boufin: no target")
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.tasks.Get(ctx, target)
		if err != nil {
			return nil, err
		}
		h := c.apiKey()
		h.Set("Authorization", "Bearer "+tok)
		req.Header = h
		resp, err := c.http.Do(ctx, req, nil)
		if ue, ok := upstream.AsError(err); ok && ue.Status == http.StatusUnauthorized && attempt == 0 {
			c.tasks.Invalidate(target, tok)
			continue
		}
		if err != nil {
			return nil, withCode(err)
		}
		return resp, nil
	}
}

// Consents lists target's consents, a page at a time (page from 1).
func (c *Client) Consents(ctx context.Context, target string, page, limit int) (ConsentPage, error) {
	const op = "GET /connect/consents"
	resp, err := c.withTask(ctx, target, upstream.Request{Method: http.MethodGet, Path: PathConsents, Op: op, Safe: true,
		Query: url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(limit)}}})
	if err != nil {
		return ConsentPage{}, err
	}
	return unwrap[ConsentPage](c, op, resp)
}

// Consent returns one of target's consents.
func (c *Client) Consent(ctx context.Context, target, consentID string) (Consent, error) {
	const op = "GET /connect/consents/{consentId}"
	resp, err := c.withTask(ctx, target, upstream.Request{Method: http.MethodGet, Path: PathConsents + "/" + url.PathEscape(consentID), Op: op, Safe: true})
	if err != nil {
		return Consent{}, err
	}
	cn, err := unwrap[Consent](c, op, resp)
	if err != nil {
		return Consent{}, err
	}
	if cn.ConsentID != consentID || cn.Status == "" {
		return Consent{}, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: errors.New("not the consent asked for")}
	}
	return cn, nil
}

// RevokeConsent ends a consent. Revoking is repeatable, and a consent already gone is revoked.
func (c *Client) RevokeConsent(ctx context.Context, target, consentID string) error {
	const op = "DELETE /connect/consents/{consentId}"
	_, err := c.withTask(ctx, target, upstream.Request{Method: http.MethodDelete, Path: PathConsents + "/" + url.PathEscape(consentID), Op: op,
		Safe: true, Accept: []int{http.StatusNotFound, http.StatusGone}})
	return err
}

// Product asks for one product of a consent: Status is done (with Data) or still running.
func (c *Client) Product(ctx context.Context, target, consentID, product string, query url.Values) (ProductResult, error) {
	const op = "GET /connect/consents/{consentId}/products/{product}"
	resp, err := c.withTask(ctx, target, upstream.Request{Method: http.MethodGet, Op: op, Safe: true, Query: query,
		Path: fmt.Sprintf(PathProductFmt, url.PathEscape(consentID), url.PathEscape(product))})
	if err != nil {
		return ProductResult{}, err
	}
	var out ProductResult
	if err := resp.Decode(c.http, op, &out); err != nil {
		return ProductResult{}, err
	}
	switch out.Status {
	case ProductDone:
		if len(out.Data) == 0 || string(out.Data) == "null" {
			return ProductResult{}, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: errors.New("done without data")}
		}
	case ProductRunning, ProductPending, ProductWrongLogin, ProductError:
	default:
		return ProductResult{}, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: resp.Status, Err: fmt.Errorf("unknown status %q", out.Status)}
	}
	return out, nil
}

// withCode reads Boufin's error code (or, without one, its statusCode) into an *upstream.Error.
func withCode(err error) error {
	ue, ok := upstream.AsError(err)
	if !ok || len(ue.Body) == 0 || ue.Code != "" {
		return err
	}
	var b errorBody
	if jsonErr := jsonUnmarshal(ue.Body, &b); jsonErr == nil {
		switch {
		case b.Code != "":
			ue.Code = b.Code
		case b.StatusCode != 0:
			ue.Code = strconv.Itoa(b.StatusCode)
		}
	}
	return ue
}
