package egress

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// DefaultTimeout bounds an attempt when Client is given none: an attempt without a bound would hold
// a delivery worker for as long as a slow receiver likes.
const DefaultTimeout = 30 * time.Second

// Client returns an HTTP client for requests to URLs that passed CheckURL. It enforces p where the
// URL check cannot:
//
//   - every address dialed is checked at connect time, after DNS resolution, so a name that
//     resolves (or re-resolves, DNS rebinding) to a forbidden address is refused with an error
//     matching ErrForbiddenAddress, before any byte is sent;
//   - redirects are not followed: a receiver's 3xx comes back as the response, to be recorded as a
//     failed attempt, never a hop to wherever its Location points;
//   - no proxy from the environment, which would do the dialing and so escape the check;
//   - plain http only with AllowHTTP, TLS 1.2 at least.
//
// timeout bounds the whole request, connection to body; values ≤ 0 mean DefaultTimeout. Callers
// should still limit how much of a response body they read.
func (p Policy) Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	connect := min(timeout, 10*time.Second)
	dialer := &net.Dialer{
		Timeout:   connect,
		KeepAlive: 30 * time.Second,
		Control:   p.control,
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true, // a custom dialer and TLS config turn HTTP/2 off unless asked
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    connect,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16, // several deliveries to one receiver at once reuse their connections
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Transport: &schemeGuard{allowHTTP: p.AllowHTTP, next: transport},
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// control runs after the socket is made and before it connects, with the address about to be
// dialed: the one place that sees what DNS actually returned.
func (p Policy) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("egress: %w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: dialed address %q: %w", address, err)
	}
	if err := p.checkAddr(ap.Addr().String(), ap.Addr()); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	return nil
}

// schemeGuard refuses plain http unless the policy allows it: a URL registered under a laxer policy
// must not be delivered in clear text under a strict one.
type schemeGuard struct {
	allowHTTP bool
	next      *http.Transport
}

func (g *schemeGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "https" || r.URL.Scheme == "http" && g.allowHTTP {
		return g.next.RoundTrip(r)
	}
	if r.Body != nil {
		r.Body.Close() // a RoundTripper closes the body, even when it refuses the request
	}
	return nil, invalidf("scheme %s is not allowed, use https", r.URL.Scheme)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (g *schemeGuard) CloseIdleConnections() { g.next.CloseIdleConnections() }
