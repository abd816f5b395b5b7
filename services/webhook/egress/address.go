package egress

import (
	"net/netip"
)

// kind says which Policy field, if any, unlocks a range.
type kind int

const (
	never kind = iota
	loopback
	private
)

type block struct {
	prefix netip.Prefix
	reason string
	kind   kind
}

// The special-purpose ranges of the IANA registries that a webhook must not reach, most specific
// first: the first match gives the reason. The tables are never written after initialization.
var (
	blocks4 = []block{
		// Metadata services hand out cloud credentials; no policy opens them, even where their range
		// (CGNAT for Alibaba's) is otherwise allowed.
		{netip.MustParsePrefix("169.254.169.254/32"), "a link-local address (cloud metadata)", never},
		{netip.MustParsePrefix("100.100.100.200/32"), "a cloud metadata address", never},
		{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address", never},
		{netip.MustParsePrefix("10.0.0.0/8"), "a private address", private},
		{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address", private},
		{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address", loopback},
		{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address", never},
		{netip.MustParsePrefix("172.16.0.0/12"), "a private address", private},
		{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address (IETF protocol assignments)", never},
		{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address", never},
		{netip.MustParsePrefix("192.88.99.0/24"), "a reserved address (6to4 relay anycast)", never},
		{netip.MustParsePrefix("192.168.0.0/16"), "a private address", private},
		{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address", never},
		{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address", never},
		{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address", never},
		{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address", never},
		{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address", never},
		{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address", never},
	}
	blocks6 = []block{
		{netip.MustParsePrefix("::/128"), "an unspecified address", never},
		{netip.MustParsePrefix("::1/128"), "a loopback address", loopback},
		{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address", never},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address", private},
		{netip.MustParsePrefix("100::/64"), "a reserved address (discard-only)", never},
		{netip.MustParsePrefix("2001:2::/48"), "a benchmarking address", never},
		{netip.MustParsePrefix("2001::/23"), "a reserved address (IETF protocol assignments, Teredo)", never},
		{netip.MustParsePrefix("2001:db8::/32"), "a documentation address", never},
		{netip.MustParsePrefix("3fff::/20"), "a documentation address", never},
		{netip.MustParsePrefix("fc00::/7"), "a private (unique local) address", private},
		{netip.MustParsePrefix("fe80::/10"), "a link-local address", never},
		{netip.MustParsePrefix("fec0::/10"), "a private (site-local) address", private},
		{netip.MustParsePrefix("ff00::/8"), "a multicast address", never},
	}

	// IPv6 forms that carry an IPv4 address, so 127.0.0.1 cannot come back dressed as IPv6.
	// IPv4-mapped (::ffff:0:0/96) is handled apart: it is the same host, not a translation.
	compatible6 = netip.MustParsePrefix("::/96")        // IPv4-compatible, deprecated: ::a.b.c.d
	nat64       = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 prefix: 64:ff9b::a.b.c.d
	sixToFour   = netip.MustParsePrefix("2002::/16")    // 6to4: 2002:aabb:ccdd::/48

	// Everything outside global unicast is unassigned or special; refusing it by default keeps a
	// range IANA assigns later from opening a hole.
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
)

// checkAddr returns an *AddressError if p refuses addr, written as host.
func (p Policy) checkAddr(host string, addr netip.Addr) error {
	reason, k, special := classify(addr)
	if special && !(k == loopback && p.AllowLoopback) && !(k == private && p.AllowPrivate) {
		return &AddressError{Host: host, Addr: addr, Reason: reason}
	}
	if addr.Zone() != "" {
		// A zone names an interface of the sending machine; no public receiver needs one.
		return &AddressError{Host: host, Addr: addr, Reason: "a scoped address (it has an IPv6 zone)"}
	}
	return nil
}

// classify reports whether addr is in a special range, which one, and who may unlock it.
func classify(addr netip.Addr) (reason string, k kind, special bool) {
	addr = addr.WithZone("")
	if addr.Is4In6() {
		// A dual-stack socket dialing ::ffff:a.b.c.d reaches a.b.c.d itself, so it is whatever that
		// address is, unlockable the same way.
		v4 := addr.Unmap()
		if reason, k, special := classify(v4); special {
			return reason + " (IPv4-mapped " + v4.String() + ")", k, true
		}
		return "", never, false
	}
	if addr.Is4() {
		return lookup(blocks4, addr)
	}
	if addr == netip.IPv6Unspecified() || addr == netip.IPv6Loopback() {
		return lookup(blocks6, addr)
	}
	for _, form := range []struct {
		prefix netip.Prefix
		name   string
		at     int // byte offset of the embedded IPv4 address
	}{
		{compatible6, "IPv4-compatible", 12},
		{nat64, "NAT64", 12},
		{sixToFour, "6to4", 2},
	} {
		if !form.prefix.Contains(addr) {
			continue
		}
		b := addr.As16()
		v4 := netip.AddrFrom4([4]byte(b[form.at : form.at+4]))
		if reason, _, special := classify(v4); special {
			// Never unlocked: these go through a translator or tunnel, not to the local network a
			// development policy means to open.
			return reason + " (" + form.name + " " + v4.String() + ")", never, true
		}
	}
	if nat64.Contains(addr) {
		// A public IPv4 address reached from an IPv6-only network through DNS64 and a translator.
		return "", never, false
	}
	if reason, k, special := lookup(blocks6, addr); special {
		return reason, k, true
	}
	if !globalUnicast6.Contains(addr) {
		return "a reserved address", never, true
	}
	return "", never, false
}

func lookup(blocks []block, addr netip.Addr) (string, kind, bool) {
	for _, b := range blocks {
		if b.prefix.Contains(addr) {
			return b.reason, b.kind, true
		}
	}
	return "", never, false
}
