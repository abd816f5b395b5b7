// Package klavi is Puente's wire client of Klavi Link (Brazilian Open Finance): the partner's
// access token (refreshed before it expires, once however many calls want it), links and their
// linkTokens, the participant catalog, consents, and report requests whose reports come back by
// webhook. It never logs or returns a body, a token or a key.
package klavi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"puente.dev/pkg/upstream"
)

// Name is the provider id.
const Name = "klavi"

// Client calls Klavi's Link API. It is safe for concurrent use.
type Client struct {
	http      *upstream.Client
	accessKey string
	secretKey string
	// Tokens holds the partner's access token under the key "".
	Tokens *upstream.Tokens
	now    func() time.Time
}

// Options tune a Client beyond its Config (tests).
type Options struct {
	Logger    *slog.Logger
	Transport http.RoundTripper
	// Now is the clock token lifetimes are measured with.
	Now func() time.Time
}

// New returns a client for cfg.
func New(cfg Config, o Options) (*Client, error) {
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("klavi: PUENTE_KLAVI_ACCESS_KEY and PUENTE_KLAVI_SECRET_KEY are required")
	}
	hc, err := upstream.NewClient(upstream.Options{
		Metrics:  cfg.Metrics,
		Provider: Name, BaseURL: cfg.URL, Timeout: cfg.Timeout, RatePerSecond: float64(cfg.RatePerSecond),
		Burst: max(cfg.RatePerSecond, 1), Transport: o.Transport, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Client{http: hc, accessKey: cfg.AccessKey, secretKey: cfg.SecretKey, now: o.Now}
	c.Tokens = &upstream.Tokens{Fetch: c.fetchToken, Now: o.Now}
	return c, nil
}

type tokenAnswer struct {
	AccessToken string          `json:"accessToken"`
	ExpireIn    json.RawMessage `json:"expireIn"`
}

// fetchToken refreshes old with GET /refresh when there is one, and falls back to POST /auth
// when there is none or Klavi refuses to refresh it.
func (c *Client) fetchToken(ctx context.Context, _ string, old upstream.Token) (upstream.Token, error) {
	if old.Value != "" && (old.Expiry.IsZero() || c.now().Before(old.Expiry)) {
		var a tokenAnswer
		_, err := c.http.Do(ctx, upstream.Request{
			Method: http.MethodGet, Path: pathRefresh, Op: "GET /data/v1/refresh", Safe: true,
			Header: http.Header{"Authorization": {"Bearer " + old.Value}},
		}, &a)
		if err == nil {
			return c.token(a, "GET /data/v1/refresh")
		}
		if e, ok := upstream.AsError(err); !ok || e.Kind != upstream.Unauthorized {
			return upstream.Token{}, err
		}
	}
	var a tokenAnswer
	// Asking for a token creates nothing: safe to repeat.
	if _, err := c.http.Do(ctx, upstream.Request{
		Method: http.MethodPost, Path: pathAuth, Op: "POST /data/v1/auth", Safe: true,
		JSON: map[string]string{"accessKey": c.accessKey, "secretKey": c.secretKey},
	}, &a); err != nil {
		return upstream.Token{}, err
	}
	return c.token(a, "POST /data/v1/auth")
}

func (c *Client) token(a tokenAnswer, op string) (upstream.Token, error) {
	if a.AccessToken == "" {
		return upstream.Token{}, &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: 200, Err: errors.New("no accessToken")}
	}
	life := parseSeconds(a.ExpireIn)
	if life <= 0 {
		life = DefaultTokenLifetime
	}
	return upstream.Token{Value: a.AccessToken, Expiry: c.now().Add(life)}, nil
}

// parseSeconds reads expireIn as a number or a numeric string (the doc table says String, the
// examples show a number).
func parseSeconds(raw json.RawMessage) time.Duration {
	var n float64
	if json.Unmarshal(raw, &n) == nil {
		return time.Duration(n * float64(time.Second))
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second))
		}
	}
	return 0
}

// call sends req with the partner's access token; a token Klavi refuses is dropped and the call
// made once more with a fresh one (a 401 did nothing upstream).
func (c *Client) call(ctx context.Context, req upstream.Request, out any) (*upstream.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.Tokens.Get(ctx, "")
		if err != nil {
			return nil, err
		}
		req.Header = http.Header{"Authorization": {"Bearer " + tok}}
		resp, err := c.http.Do(ctx, req, out)
		if e, ok := upstream.AsError(err); ok && e.Status == http.StatusUnauthorized && attempt == 0 {
			c.Tokens.Invalidate("", tok)
			continue
		}
		return resp, classify(err)
	}
}

// classify reads Klavi's business statusCode (HTTP 416) into the error's Code.
func classify(err error) error {
	e, ok := upstream.AsError(err)
	if !ok || len(e.Body) == 0 {
		return err
	}
	var b struct {
		StatusCode json.Number `json:"statusCode"`
	}
	if json.Unmarshal(e.Body, &b) == nil && b.StatusCode != "" {
		e.Code = b.StatusCode.String()
	}
	e.Body = nil // personal data may be echoed: it goes no further
	return e
}

// LinkRequest creates a link. The tax ids are optional: a link without one only lists the
// participants.
type LinkRequest struct {
	PersonalTaxID string         `json:"personalTaxId,omitempty"`
	BusinessTaxID string         `json:"businessTaxId,omitempty"`
	Email         string         `json:"email,omitempty"`
	Phone         string         `json:"phone,omitempty"`
	RedirectURL   string         `json:"redirectURL,omitempty"`
	ExternalInfo  map[string]any `json:"externalInfo,omitempty"`
}

// Link is a created link.
type Link struct {
	LinkID    string          `json:"linkId"`
	LinkURL   string          `json:"linkURL"`
	LinkToken string          `json:"linkToken"`
	ExpireIn  json.RawMessage `json:"expireIn"`
}

// CreateLink creates a link (never retried: each call creates one).
func (c *Client) CreateLink(ctx context.Context, r LinkRequest) (Link, error) {
	var l Link
	if _, err := c.call(ctx, upstream.Request{Method: http.MethodPost, Path: pathLinks, Op: "POST /data/v1/links", JSON: r}, &l); err != nil {
		return Link{}, err
	}
	if l.LinkID == "" || l.LinkToken == "" {
		return Link{}, bad("POST /data/v1/links", "no linkId or linkToken")
	}
	return l, nil
}

// Institution is a participant as Klavi lists it.
type Institution struct {
	InstitutionCode        string   `json:"institutionCode"`
	Name                   string   `json:"name"`
	Avatar                 string   `json:"avatar"`
	IsBeta                 bool     `json:"isBeta"`
	IsOutage               bool     `json:"isOutage"`
	InstitutionType        int      `json:"institutionType"`
	BusinessType           string   `json:"businessType"`
	AvailableResources     []string `json:"availableResources"`
	ParentOrganizationName string   `json:"parentOrganizationName"`
	ParentOrganizationID   string   `json:"parentOrganizationId"`
	OrganizationName       string   `json:"organizationName"`
	OrganizationID         string   `json:"organizationId"`
}

// Institutions lists the participants, with a link's linkToken.
func (c *Client) Institutions(ctx context.Context, linkToken string) ([]Institution, error) {
	const op = "GET /data/v1/links/institutions"
	var out []Institution
	if _, err := c.http.Do(ctx, upstream.Request{
		Method: http.MethodGet, Path: pathInstitutions, Op: op, Safe: true,
		Header: http.Header{"Authorization": {"Bearer " + linkToken}},
	}, &out); err != nil {
		return nil, classify(err)
	}
	for _, in := range out {
		if in.InstitutionCode == "" {
			return nil, bad(op, "an institution without institutionCode")
		}
	}
	return out, nil
}

// ConsentRequest creates a consent at an institution.
type ConsentRequest struct {
	ExternalTrackID string `json:"externalTrackId"`
	PersonalTaxID   string `json:"personalTaxId,omitempty"`
	BusinessTaxID   string `json:"businessTaxId,omitempty"`
	InstitutionCode string `json:"institutionCode"`
	RedirectURL     string `json:"redirectURL"`
	ValidityPeriod  int    `json:"validityPeriod"`
}

// ConsentCreated is where to send the user to authorise a consent.
type ConsentCreated struct {
	ConsentID          string `json:"consentId"`
	ConsentRedirectURL string `json:"consentRedirectURL"`
	ExpireAt           string `json:"expireAt"`
}

// CreateConsent creates a consent with a link's linkToken (never retried).
func (c *Client) CreateConsent(ctx context.Context, linkToken string, r ConsentRequest) (ConsentCreated, error) {
	const op = "POST /data/v1/consents"
	var out ConsentCreated
	if _, err := c.http.Do(ctx, upstream.Request{
		Method: http.MethodPost, Path: pathConsents, Op: op, JSON: r,
		Header: http.Header{"Authorization": {"Bearer " + linkToken}},
	}, &out); err != nil {
		return ConsentCreated{}, classify(err)
	}
	if out.ConsentID == "" || out.ConsentRedirectURL == "" {
		return ConsentCreated{}, bad(op, "no consentId or consentRedirectURL")
	}
	if u, err := url.Parse(out.ConsentRedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ConsentCreated{}, bad(op, "consentRedirectURL is not a URL")
	}
	return out, nil
}

// Consent is a consent as Klavi reports it.
type Consent struct {
	ConsentID          string   `json:"consentId"`
	LinkID             string   `json:"linkId"`
	ExternalTrackID    string   `json:"externalTrackId"`
	PersonalTaxID      string   `json:"personalTaxId"`
	BusinessTaxID      string   `json:"businessTaxId"`
	InstitutionCode    string   `json:"institutionCode"`
	Status             string   `json:"status"`
	PermissionsApply   []string `json:"permissionsApply"`
	PermissionsGranted []string `json:"permissionsGranted"`
	ExpireAt           string   `json:"expireAt"`
	CreatedAt          string   `json:"createdAt"`
	UpdatedAt          string   `json:"updatedAt"`
}

// Consent reads a consent.
func (c *Client) Consent(ctx context.Context, id string) (Consent, error) {
	const op = "GET /data/v1/consents/{id}"
	var out Consent
	if _, err := c.call(ctx, upstream.Request{Method: http.MethodGet, Path: pathConsents + "/" + url.PathEscape(id), Op: op, Safe: true}, &out); err != nil {
		return Consent{}, err
	}
	if out.Status == "" {
		return Consent{}, bad(op, "no status")
	}
	return out, nil
}

// RevokeConsent revokes a consent; one already gone (404) counts as revoked. Revoking twice
// ends in the same place, so it is retried.
func (c *Client) RevokeConsent(ctx context.Context, id string) error {
	_, err := c.call(ctx, upstream.Request{
		Method: http.MethodDelete, Path: pathConsents + "/" + url.PathEscape(id) + "/revoke", Op: "DELETE /data/v1/consents/{id}/revoke",
		Safe: true, Accept: []int{http.StatusNotFound},
	}, nil)
	return err
}

// ReportRequest asks for reports on a user's data.
type ReportRequest struct {
	TaxID               string            `json:"taxId"`
	LinkID              string            `json:"linkId,omitempty"`
	ConsentIDs          []string          `json:"consentIds,omitempty"`
	Products            []string          `json:"products"`
	ProductsCallbackURL map[string]string `json:"productsCallbackURL,omitempty"`
	ExternalInfo        map[string]string `json:"externalInfo,omitempty"`
}

// ReportAck is Klavi's acknowledgement of a report request.
type ReportAck struct {
	RequestID string `json:"requestId"`
	Message   string `json:"message"`
}

// RequestReport asks for reports on a personal (CPF) or business (CNPJ) user; they come back by
// the product webhook. Never retried: each call starts a paid report.
func (c *Client) RequestReport(ctx context.Context, business bool, r ReportRequest) (ReportAck, error) {
	path, op := pathPersonalReport, "POST /data/v1/personal/user-data"
	if business {
		path, op = pathBusinessReport, "POST /data/v1/business/user-data"
	}
	var out ReportAck
	if _, err := c.call(ctx, upstream.Request{Method: http.MethodPost, Path: path, Op: op, JSON: r}, &out); err != nil {
		return ReportAck{}, err
	}
	if out.RequestID == "" {
		return ReportAck{}, bad(op, "no requestId")
	}
	return out, nil
}

func bad(op, what string) error {
	return &upstream.Error{Provider: Name, Op: op, Kind: upstream.BadResponse, Status: 200, Err: errors.New(what)}
}
