package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLLength is the longest URL CheckURL accepts, in bytes.
const MaxURLLength = 2048

// CheckURL reports whether raw may be used as a webhook URL under p: an absolute https URL (http too
// with AllowHTTP) with a host, no credentials and no fragment, whose host is not a forbidden address
// in any spelling. It does not resolve names: what a name points to can change after this check, so
// the Client checks every address it dials.
//
// Refusals for where the URL points match ErrForbiddenAddress (and are an *AddressError inside);
// refusals for its form match ErrInvalidURL.
func (p Policy) CheckURL(raw string) error {
	if len(raw) > MaxURLLength {
		return invalidf("longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole input, credentials included; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return invalidf("%v", err)
	}
	if !u.IsAbs() {
		return invalidf("not absolute (want https://host/path)")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return invalidf("scheme http is not allowed, use https")
		}
	default:
		return invalidf("scheme %q is not allowed, use https", u.Scheme)
	}
	if u.Opaque != "" {
		return invalidf("no // after the scheme")
	}
	if u.User != nil {
		// They would be sent as Basic credentials and written wherever the URL is logged.
		return invalidf("credentials (userinfo) are not allowed in the URL")
	}
	if strings.Contains(raw, "#") {
		return invalidf("fragment is not allowed")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return invalidf("port %s out of range", port)
		}
	}
	return p.checkHost(u.Host, u.Hostname())
}

// checkHost checks the host part of a URL. hostport is it as written (brackets, port); name is
// without them.
func (p Policy) checkHost(hostport, name string) error {
	if name == "" {
		return invalidf("host missing")
	}
	if strings.HasPrefix(hostport, "[") {
		addr, err := netip.ParseAddr(name)
		if err != nil || !addr.Is6() {
			return invalidf("host [%s] is not an IPv6 address", name)
		}
		if err := p.checkAddr(name, addr); err != nil {
			return fmt.Errorf("url: %w", err)
		}
		return nil
	}

	for _, r := range name {
		if r > 0x7f {
			// An HTTP client may map Unicode hosts (IDNA) before dialing; fullwidth "１２７．０．０．１"
			// becomes 127.0.0.1. Asking for the ASCII form leaves nothing to map.
			return invalidf("host %q is not ASCII; use its punycode (xn--) form", name)
		}
	}
	host := strings.ToLower(name)
	// One trailing dot is the fully qualified spelling of the same name ("localhost.").
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return invalidf("host %q is not a valid name", name)
	}
	if i := strings.IndexFunc(host, func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_')
	}); i >= 0 {
		return invalidf("host %q contains %q", name, host[i])
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return invalidf("host %q has an empty or over-long label", name)
		}
	}

	// Browsers (the WHATWG URL standard) and inet_aton, which resolvers fall back on, read a host
	// whose last label is a number as an IPv4 address in any of several notations: 2130706433,
	// 0x7f000001, 0177.0.0.1, 127.1. Read it the same way, so the address checked is the one
	// dialed; and refuse one they would not read, rather than guess what a resolver makes of it.
	if endsInNumber(labels[len(labels)-1]) {
		addr, ok := parseIPv4(labels)
		if !ok {
			return invalidf("host %q is not a valid IPv4 address", name)
		}
		if err := p.checkAddr(name, addr); err != nil {
			return fmt.Errorf("url: %w", err)
		}
		return nil
	}

	// RFC 6761: localhost and every name under it are loopback, whatever DNS says.
	if (host == "localhost" || strings.HasSuffix(host, ".localhost")) && !p.AllowLoopback {
		return fmt.Errorf("url: %w", &AddressError{Host: name, Reason: "a loopback name"})
	}
	return nil
}

// endsInNumber reports whether a label is an IPv4 number in the WHATWG sense: decimal digits, or
// 0x followed by hex digits (none is zero). Labels such as "08" count, and then fail to parse.
func endsInNumber(label string) bool {
	if label != "" && strings.Trim(label, "0123456789") == "" {
		return true
	}
	hex, ok := strings.CutPrefix(label, "0x")
	return ok && strings.Trim(hex, "0123456789abcdef") == ""
}

// parseIPv4 reads one to four numbers as inet_aton does: each decimal, octal (leading 0) or hex
// (0x); all but the last are one byte, the last fills the bytes that remain (127.1 is 127.0.0.1).
// labels are lowercase.
func parseIPv4(labels []string) (netip.Addr, bool) {
	if len(labels) == 0 || len(labels) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, label := range labels {
		n, ok := parseIPv4Number(label)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(labels)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(5-len(labels))) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Number(s string) (uint64, bool) {
	base := 10
	switch {
	case s == "":
		return 0, false
	case strings.HasPrefix(s, "0x"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true // "0x" alone is zero to both inet_aton and WHATWG
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	// With an explicit base ParseUint takes no sign, prefix or underscore, only digits of that base.
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n > 0xffffffff {
		return 0, false
	}
	return n, true
}
