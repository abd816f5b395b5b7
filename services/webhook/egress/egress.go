// Package egress makes outbound HTTP requests to URLs that customers chose, without letting those
// URLs reach Puente's own network (server-side request forgery). A webhook URL is checked twice:
// CheckURL when it is registered, for a clear error to the customer, and again at every connection,
// on the address actually dialed, because a name that resolved to a public address yesterday can
// resolve to 10.0.0.5 today (DNS rebinding).
package egress

import (
	"errors"
	"fmt"
	"net/netip"
)

// Policy says which otherwise forbidden destinations are allowed. The zero Policy is the one for
// production: public addresses, over HTTPS only. Tests and local development allow loopback and
// plain HTTP; a self-hosted deployment whose receivers live on its own network allows private.
//
// Some destinations no Policy allows: link-local addresses (cloud metadata services live there),
// unspecified, multicast, broadcast, reserved, benchmarking and documentation addresses.
type Policy struct {
	AllowLoopback bool // 127.0.0.0/8, ::1 and the name localhost
	AllowPrivate  bool // 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7, fec0::/10
	AllowHTTP     bool // plain http:// as well as https://
}

var (
	// ErrForbiddenAddress is matched (errors.Is) by every refusal of a destination by policy, from
	// CheckURL or from a Client's dialer, so callers can record the attempt as refused rather than
	// failed.
	ErrForbiddenAddress = errors.New("egress: forbidden address")
	// ErrInvalidURL is matched by every CheckURL error that is about the URL's form rather than
	// where it points.
	ErrInvalidURL = errors.New("egress: invalid URL")
)

// AddressError is a destination refused by policy. It matches ErrForbiddenAddress.
type AddressError struct {
	// Host is the host as written in the URL ("0x7f000001", "localhost") or the address dialed.
	Host string
	// Addr is the address Host denotes; it is the zero Addr for a name such as localhost.
	Addr netip.Addr
	// Reason says what the destination is, e.g. "a loopback address".
	Reason string
}

func (e *AddressError) Error() string {
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		return fmt.Sprintf("host %s (%s) is %s", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("host %s is %s", e.Host, e.Reason)
}

// Is makes errors.Is(err, ErrForbiddenAddress) true.
func (e *AddressError) Is(target error) bool { return target == ErrForbiddenAddress }

// urlError is a URL refused for its form. It matches ErrInvalidURL.
type urlError struct{ msg string }

func (e *urlError) Error() string        { return "url: " + e.msg }
func (e *urlError) Is(target error) bool { return target == ErrInvalidURL }

func invalidf(format string, args ...any) error {
	return &urlError{msg: fmt.Sprintf(format, args...)}
}
