// Package upstream is how Puente's provider adapters call upstream HTTP APIs: one client per
// provider that bounds the request rate, retries only requests that are safe to repeat, honours
// Retry-After, times out, classifies every failure into an *Error with a Kind Puente can report,
// and never logs a body, a header or a query string (they carry credentials and personal data).
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"puente.dev/pkg/metrics"
)

// Kind is what went wrong upstream, in the terms Puente reports.
type Kind string

const (
	// Unavailable: the upstream could not be reached, dropped the connection or answered 5xx.
	Unavailable Kind = "UPSTREAM_UNAVAILABLE"
	// Timeout: no answer within the client's timeout.
	Timeout Kind = "UPSTREAM_TIMEOUT"
	// RateLimited: 429, or a provider's own throttling code.
	RateLimited Kind = "UPSTREAM_RATE_LIMITED"
	// Unauthorized: the upstream refused Puente's own credentials or token (401/403).
	Unauthorized Kind = "UPSTREAM_UNAUTHORIZED"
	// BadResponse: the answer could not be understood (not JSON, wrong shape, missing fields).
	BadResponse Kind = "UPSTREAM_BAD_RESPONSE"
	// Rejected: the upstream understood and refused the request (another 4xx); Code says why.
	Rejected Kind = "UPSTREAM_REJECTED"
)

// Error is an upstream call that failed. Its message names the provider, the operation and the
// status, never the body: Body is kept for the adapter to read the provider's own error code.
type Error struct {
	Provider string
	Op       string // "GET /v1/jobs/{id}/status": a route, not a URL with ids or tokens
	Kind     Kind
	Status   int    // HTTP status, 0 when there was no answer
	Code     string // the provider's own error code, when the adapter read one
	Body     []byte
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Provider, e.Op, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " code %s", e.Code)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the same request may succeed later.
func (e *Error) Temporary() bool {
	return e.Kind == Unavailable || e.Kind == Timeout || e.Kind == RateLimited
}

// AsError returns err's *Error, if it has one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Options configure a Client.
type Options struct {
	Provider string
	BaseURL  string
	// Timeout bounds one attempt (default 30 s).
	Timeout time.Duration
	// RatePerSecond bounds requests from this process (0: unbounded); Burst defaults to 1.
	RatePerSecond float64
	Burst         int
	// MaxAttempts bounds attempts of a safe request (default 3).
	MaxAttempts int
	// Transport, when set, replaces the default transport (tests inject failures with it).
	Transport http.RoundTripper
	Logger    *slog.Logger
	// Metrics, when set, times every HTTP attempt by outcome
	// (puente_upstream_request_duration_seconds).
	Metrics *metrics.Metrics
}

// Client calls one provider's API.
type Client struct {
	provider    string
	base        *url.URL
	http        *http.Client
	limiter     *rate.Limiter
	maxAttempts int
	log         *slog.Logger
	metrics     *metrics.Metrics
	// backoff is the wait before retry n (1-based); tests shorten it.
	backoff func(n int) time.Duration
}

// NewClient returns a client for o.BaseURL.
func NewClient(o Options) (*Client, error) {
	base, err := url.Parse(strings.TrimSuffix(o.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("%s: base URL %q is not an absolute URL", o.Provider, o.BaseURL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		provider: o.Provider, base: base, maxAttempts: o.MaxAttempts,
		http: &http.Client{Timeout: o.Timeout, Transport: o.Transport,
			// An upstream redirect is not followed: a 3xx is an answer the adapter reads.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:     o.Logger.With("provider", o.Provider),
		metrics: o.Metrics,
		backoff: func(n int) time.Duration {
			d := 200 * time.Millisecond << (n - 1)
			return d/2 + rand.N(d/2+1)
		},
	}
	if o.RatePerSecond > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(o.RatePerSecond), max(o.Burst, 1))
	}
	return c, nil
}

// Provider is the provider's name.
func (c *Client) Provider() string { return c.provider }

// URL resolves a path (with its own query, if any) against the base URL; an absolute URL (one a
// provider returned) is kept.
func (c *Client) URL(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return c.base.String() + "/" + strings.TrimPrefix(path, "/")
}

// Request is one call.
type Request struct {
	Method string
	// Path is resolved against the base URL; an absolute URL is used as is.
	Path string
	// Op names the call in errors and logs: a route without ids, tokens or query.
	Op     string
	Query  url.Values
	Header http.Header
	// JSON is marshalled as the body (Content-Type: application/json); Body is sent as is.
	JSON any
	Body []byte
	// Safe requests are retried after a failure that may pass: GET, and calls the provider
	// documents as repeatable. Creating a login or a report is never retried blindly.
	Safe bool
	// Accept lists statuses besides 2xx that are answers, not errors (a 202 "still running" is 2xx
	// already; a 410 "gone" might be one).
	Accept []int
}

// Response is an answer with a status the caller accepted.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the body into out, as a BadResponse error when it does not fit.
func (r *Response) Decode(c *Client, op string, out any) error {
	if err := json.Unmarshal(r.Body, out); err != nil {
		return &Error{Provider: c.provider, Op: op, Kind: BadResponse, Status: r.Status, Err: fmt.Errorf("decode: %w", err)}
	}
	return nil
}

// maxBody bounds what is read of an answer.
const maxBody = 32 << 20

// Do sends req and returns the answer when its status is 2xx or accepted, and an *Error
// otherwise. When out is not nil, the body is decoded into it.
func (c *Client) Do(ctx context.Context, req Request, out any) (*Response, error) {
	if req.Op == "" {
		req.Op = req.Method + " " + strings.SplitN(req.Path, "?", 2)[0]
	}
	body := req.Body
	if req.JSON != nil {
		var err error
		if body, err = json.Marshal(req.JSON); err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", c.provider, req.Op, err)
		}
	}
	attempts := 1
	if req.Safe {
		attempts = c.maxAttempts
	}
	var last *Error
	for n := 1; ; n++ {
		resp, err, took := c.once(ctx, req, body)
		if err == nil && out != nil {
			if derr := resp.Decode(c, req.Op, out); derr != nil {
				err = derr.(*Error)
			}
		}
		c.observe(ctx, took, err)
		if err == nil {
			return resp, nil
		}
		last = err
		if !err.Temporary() || n >= attempts {
			return nil, last
		}
		wait := c.backoff(n)
		if ra := retryAfter(err); ra > wait {
			wait = ra
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, last
		case <-t.C:
		}
	}
}

// observe records one attempt that took took (0: no request went out, as when the rate limiter
// gave up). An attempt the caller cancelled says nothing about the upstream and is not recorded.
func (c *Client) observe(ctx context.Context, took time.Duration, err *Error) {
	if took == 0 || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	outcome := metrics.UpstreamOK
	if err != nil {
		outcome = outcomeOf(err.Kind)
	}
	c.metrics.Upstream(c.provider, outcome, took)
}

// outcomeOf is a Kind as a metric label: UPSTREAM_RATE_LIMITED is rate_limited.
func outcomeOf(k Kind) string {
	return strings.ToLower(strings.TrimPrefix(string(k), "UPSTREAM_"))
}

func retryAfter(e *Error) time.Duration {
	if e.Kind != RateLimited {
		return 0
	}
	var ra retryAfterError
	if errors.As(e.Err, &ra) {
		return ra.after
	}
	return 0
}

// once makes one attempt, and says how long its HTTP exchange took (0 when none was made).
func (c *Client) once(ctx context.Context, req Request, body []byte) (*Response, *Error, time.Duration) {
	fail := func(kind Kind, status int, b []byte, err error) *Error {
		return &Error{Provider: c.provider, Op: req.Op, Kind: kind, Status: status, Body: b, Err: err}
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, fail(RateLimited, 0, nil, errors.New("rate limit: no slot before the deadline")), 0
		}
	}
	u := c.URL(req.Path)
	if len(req.Query) > 0 {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + req.Query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, rd)
	if err != nil {
		return nil, fail(BadResponse, 0, nil, errors.New("build request")), 0
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	if req.JSON != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := c.http.Do(hr)
	// took is never 0 once a request went out, so observe can tell one was made.
	took := max(time.Since(start), time.Nanosecond)
	if err != nil {
		c.log.DebugContext(ctx, "upstream call failed", "op", req.Op, "duration", took, "err", errorClass(err))
		if isTimeout(err) {
			return nil, fail(Timeout, 0, nil, errors.New("no answer in time")), took
		}
		// The transport's error quotes the URL, and a URL may carry a token: keep only its class.
		return nil, fail(Unavailable, 0, nil, errors.New(errorClass(err))), took
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	took = max(time.Since(start), time.Nanosecond)
	c.log.DebugContext(ctx, "upstream call", "op", req.Op, "status", resp.StatusCode, "duration", took)
	if err != nil {
		if isTimeout(err) {
			return nil, fail(Timeout, resp.StatusCode, nil, errors.New("answer cut short by the timeout")), took
		}
		return nil, fail(Unavailable, resp.StatusCode, nil, errors.New("connection dropped while reading the answer")), took
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if resp.StatusCode/100 == 2 || slices.Contains(req.Accept, resp.StatusCode) {
		return r, nil, took
	}
	e := fail(kindOf(resp.StatusCode), resp.StatusCode, b, nil)
	if e.Kind == RateLimited {
		e.Err = retryAfterError{after: parseRetryAfter(resp.Header.Get("Retry-After"))}
	}
	return nil, e, took
}

// retryAfterError carries a 429's Retry-After to the retry loop.
type retryAfterError struct{ after time.Duration }

func (r retryAfterError) Error() string {
	if r.after == 0 {
		return "rate limited"
	}
	return "rate limited, retry after " + r.after.String()
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, time.Minute)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), time.Minute)
	}
	return 0
}

func kindOf(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Unauthorized
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return Timeout
	case status >= 500:
		return Unavailable
	default:
		return Rejected
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// errorClass describes a transport error without its URL.
func errorClass(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the upstream"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "network: " + oe.Op
	}
	return "transport error"
}
