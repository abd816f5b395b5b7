package egress_test

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/egress"
)

// Each way of spelling an internal destination that we know of, refused by the production policy
// with the reason a customer needs to see.
func TestCheckURLRefusesInternalDestinationsInEverySpelling(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		addr      string // the address the host means, "" for names
		reason    string
	}{
		// IPv4, dotted decimal.
		{"loopback", "https://127.0.0.1/hook", "127.0.0.1", "a loopback address"},
		{"loopback anywhere in 127/8", "https://127.255.0.9/", "127.255.0.9", "a loopback address"},
		{"private 10/8", "https://10.1.2.3/", "10.1.2.3", "a private address"},
		{"private 172.16/12", "https://172.31.255.255/", "172.31.255.255", "a private address"},
		{"private 192.168/16", "https://192.168.1.1/", "192.168.1.1", "a private address"},
		{"cloud metadata", "https://169.254.169.254/latest/meta-data/", "169.254.169.254", "a link-local address (cloud metadata)"},
		{"link-local", "https://169.254.1.1/", "169.254.1.1", "a link-local address"},
		{"unspecified", "https://0.0.0.0/", "0.0.0.0", "an unspecified address"},
		{"this network 0/8", "https://0.1.2.3/", "0.1.2.3", "an unspecified address"},
		{"CGNAT", "https://100.64.0.1/", "100.64.0.1", "a shared (CGNAT) address"},
		{"Alibaba metadata in CGNAT", "https://100.100.100.200/", "100.100.100.200", "a cloud metadata address"},
		{"multicast", "https://224.0.0.1/", "224.0.0.1", "a multicast address"},
		{"broadcast", "https://255.255.255.255/", "255.255.255.255", "the broadcast address"},
		{"reserved 240/4", "https://240.0.0.1/", "240.0.0.1", "a reserved address"},
		{"benchmarking", "https://198.19.0.1/", "198.19.0.1", "a benchmarking address"},
		{"documentation TEST-NET-1", "https://192.0.2.10/", "192.0.2.10", "a documentation address"},
		{"documentation TEST-NET-2", "https://198.51.100.7/", "198.51.100.7", "a documentation address"},
		{"documentation TEST-NET-3", "https://203.0.113.99/", "203.0.113.99", "a documentation address"},
		{"IETF protocol assignments", "https://192.0.0.8/", "192.0.0.8", "a reserved address"},
		{"with a port", "https://127.0.0.1:8443/", "127.0.0.1", "a loopback address"},
		{"with a trailing dot", "https://127.0.0.1./", "127.0.0.1", "a loopback address"},

		// IPv4 in the other notations of inet_aton and browsers.
		{"decimal", "https://2130706433/", "127.0.0.1", "a loopback address"},
		{"hex", "https://0x7f000001/", "127.0.0.1", "a loopback address"},
		{"hex in uppercase", "https://0X7F000001/", "127.0.0.1", "a loopback address"},
		{"hex per byte", "https://0x7f.0x0.0x0.0x1/", "127.0.0.1", "a loopback address"},
		{"octal", "https://0177.0.0.1/", "127.0.0.1", "a loopback address"},
		{"octal, whole", "https://017700000001/", "127.0.0.1", "a loopback address"},
		{"octal private", "https://0300.0250.0.1/", "192.168.0.1", "a private address"},
		{"short form a.b", "https://127.1/", "127.0.0.1", "a loopback address"},
		{"short form a.b.c", "https://10.1.1/", "10.1.0.1", "a private address"},
		{"short form, mixed notations", "https://0xa9.0376.43518/", "169.254.169.254", "a link-local address (cloud metadata)"},
		{"decimal metadata", "https://2852039166/", "169.254.169.254", "a link-local address (cloud metadata)"},
		{"zero", "https://0/", "0.0.0.0", "an unspecified address"},
		{"0x alone", "https://0x/", "0.0.0.0", "an unspecified address"},

		// IPv6 and the IPv6 forms that carry an IPv4 address.
		{"IPv6 loopback", "https://[::1]/", "::1", "a loopback address"},
		{"IPv6 loopback, long form", "https://[0:0:0:0:0:0:0:1]:443/", "::1", "a loopback address"},
		{"IPv6 unspecified", "https://[::]/", "::", "an unspecified address"},
		{"IPv4-mapped dotted", "https://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "a loopback address (IPv4-mapped 127.0.0.1)"},
		{"IPv4-mapped hex", "https://[::ffff:7f00:1]/", "::ffff:127.0.0.1", "a loopback address (IPv4-mapped 127.0.0.1)"},
		{"IPv4-mapped metadata", "https://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254", "(IPv4-mapped 169.254.169.254)"},
		{"IPv4-compatible", "https://[::127.0.0.1]/", "::7f00:1", "a loopback address (IPv4-compatible 127.0.0.1)"},
		{"IPv4-compatible private", "https://[::10.0.0.1]/", "::a00:1", "a private address (IPv4-compatible 10.0.0.1)"},
		{"NAT64 of a private address", "https://[64:ff9b::10.0.0.1]/", "64:ff9b::a00:1", "a private address (NAT64 10.0.0.1)"},
		{"NAT64 of metadata", "https://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", "(NAT64 169.254.169.254)"},
		{"local-use NAT64", "https://[64:ff9b:1::1]/", "64:ff9b:1::1", "a local-use NAT64 address"},
		{"6to4 of loopback", "https://[2002:7f00:1::]/", "2002:7f00:1::", "a loopback address (6to4 127.0.0.1)"},
		{"6to4 of a private address", "https://[2002:c0a8:101::1]/", "2002:c0a8:101::1", "a private address (6to4 192.168.1.1)"},
		{"unique local", "https://[fd00::1]/", "fd00::1", "a private (unique local) address"},
		{"AWS metadata over IPv6", "https://[fd00:ec2::254]/", "fd00:ec2::254", "a cloud metadata address"},
		{"IPv6 link-local", "https://[fe80::1]/", "fe80::1", "a link-local address"},
		{"IPv6 link-local with a zone", "https://[fe80::1%25eth0]/", "fe80::1%eth0", "a link-local address"},
		{"IPv6 loopback with a zone", "https://[::1%25lo]/", "::1%lo", "a loopback address"},
		{"IPv6 site-local", "https://[fec0::1]/", "fec0::1", "a private (site-local) address"},
		{"IPv6 multicast", "https://[ff02::1]/", "ff02::1", "a multicast address"},
		{"IPv6 documentation", "https://[2001:db8::1]/", "2001:db8::1", "a documentation address"},
		{"IPv6 documentation 3fff::/20", "https://[3fff::1]/", "3fff::1", "a documentation address"},
		{"IPv6 benchmarking", "https://[2001:2::1]/", "2001:2::1", "a benchmarking address"},
		{"Teredo", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "a reserved address"},
		{"IPv6 discard-only", "https://[100::1]/", "100::1", "a reserved address (discard-only)"},
		{"IPv6 outside global unicast", "https://[4000::1]/", "4000::1", "a reserved address"},

		// Names that are loopback by definition.
		{"localhost", "https://localhost/", "", "a loopback name"},
		{"localhost with a port", "https://localhost:8080/", "", "a loopback name"},
		{"localhost with a trailing dot", "https://localhost./", "", "a loopback name"},
		{"localhost in capitals", "https://LOCALHOST/", "", "a loopback name"},
		{"a name under localhost", "https://api.localhost/", "", "a loopback name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := egress.Policy{}.CheckURL(tc.url)
			require.ErrorIs(t, err, egress.ErrForbiddenAddress)
			require.NotErrorIs(t, err, egress.ErrInvalidURL)
			var ae *egress.AddressError
			require.ErrorAs(t, err, &ae)
			require.Contains(t, ae.Reason, tc.reason)
			require.True(t, strings.HasPrefix(err.Error(), "url: host "), err.Error())
			require.Contains(t, err.Error(), tc.reason)
			if tc.addr == "" {
				require.False(t, ae.Addr.IsValid())
			} else {
				require.Equal(t, netip.MustParseAddr(tc.addr), ae.Addr)
			}
		})
	}
}

func TestCheckURLNamesTheHostAndReason(t *testing.T) {
	for raw, want := range map[string]string{
		"https://127.0.0.1/":          "url: host 127.0.0.1 is a loopback address",
		"https://0x7f000001/":         "url: host 0x7f000001 (127.0.0.1) is a loopback address",
		"https://[::ffff:7f00:1]/":    "url: host ::ffff:7f00:1 (::ffff:127.0.0.1) is a loopback address (IPv4-mapped 127.0.0.1)",
		"https://localhost./":         "url: host localhost. is a loopback name",
		"https://169.254.169.254/x":   "url: host 169.254.169.254 is a link-local address (cloud metadata)",
		"https://[fe80::1%25eth0]:1/": "url: host fe80::1%eth0 is a link-local address",
	} {
		require.EqualError(t, egress.Policy{}.CheckURL(raw), want)
	}
}

func TestCheckURLRefusesMalformedURLs(t *testing.T) {
	for _, tc := range []struct {
		name, url, want string
	}{
		{"an empty string", "", "not absolute"},
		{"a relative URL", "/hook", "not absolute"},
		{"a URL without a scheme", "example.com/hook", "not absolute"},
		{"a scheme-relative URL", "//example.com/hook", "not absolute"},
		{"plain http", "http://example.com/hook", "scheme http is not allowed, use https"},
		{"another scheme", "ftp://example.com/", `scheme "ftp" is not allowed`},
		{"a file URL", "file:///etc/passwd", `scheme "file" is not allowed`},
		{"gopher", "gopher://127.0.0.1:6379/_INFO", `scheme "gopher" is not allowed`},
		{"an opaque URL", "https:example.com", "no // after the scheme"},
		{"userinfo", "https://user:pass@example.com/", "credentials (userinfo) are not allowed"},
		{"a user without a password", "https://user@example.com/", "credentials (userinfo) are not allowed"},
		{"a userinfo trick", "https://example.com@127.0.0.1/", "credentials (userinfo) are not allowed"},
		{"a fragment", "https://example.com/hook#x", "fragment is not allowed"},
		{"an empty fragment", "https://example.com/hook#", "fragment is not allowed"},
		{"no host", "https:///hook", "host missing"},
		{"port only", "https://:443/hook", "host missing"},
		{"port zero", "https://example.com:0/", "port 0 out of range"},
		{"port too large", "https://example.com:65536/", "port 65536 out of range"},
		{"too long", "https://example.com/" + strings.Repeat("a", egress.MaxURLLength), "longer than 2048 bytes"},
		{"a bad escape in the host", "https://a%2fb/", "invalid URL escape"},
		{"a space in the host", "https://a b/", "invalid character"},
		{"a star in the host", "https://a*b.example/", `contains '*'`},
		{"unbracketed IPv6", "https://::1/", "invalid port"},
		{"bracketed IPv4", "https://[127.0.0.1]/", "invalid IP-literal"},
		{"a Unicode host", "https://１２７．０．０．１/", "not ASCII; use its punycode"},
		{"an empty label", "https://a..example/", "empty or over-long label"},
		{"two trailing dots", "https://localhost../", "empty or over-long label"},
		{"a dot alone", "https://./", "not a valid name"},
		{"an over-long label", "https://" + strings.Repeat("a", 64) + ".example/", "empty or over-long label"},
		{"five numeric parts", "https://1.2.3.4.5/", "not a valid IPv4 address"},
		{"a byte over 255", "https://256.0.0.1/", "not a valid IPv4 address"},
		{"a last part too large", "https://127.16777216/", "not a valid IPv4 address"},
		{"a decimal over 32 bits", "https://4294967296/", "not a valid IPv4 address"},
		{"a bad octal digit", "https://08.0.0.1/", "not a valid IPv4 address"},
		{"a name ending in a number", "https://internal.0x7f/", "not a valid IPv4 address"},
		{"an empty part", "https://127..1/", "empty or over-long label"},
		{"a huge number", "https://99999999999999999999999/", "not a valid IPv4 address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := egress.Policy{}.CheckURL(tc.url)
			require.ErrorIs(t, err, egress.ErrInvalidURL)
			require.NotErrorIs(t, err, egress.ErrForbiddenAddress)
			require.True(t, strings.HasPrefix(err.Error(), "url: "), err.Error())
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "pass", "the error must not echo credentials")
		})
	}
}

func TestCheckURLAllowsPublicDestinations(t *testing.T) {
	for _, raw := range []string{
		"https://example.com/hook",
		"https://EXAMPLE.com./hook?x=1&y=2",
		"https://hooks.example.com:8443/puente/v1",
		"https://93.184.216.34/",
		"https://8.8.8.8:443/hook",
		"https://1.1.1.1/",
		"https://172.32.0.1/",             // just past 172.16/12
		"https://100.128.0.1/",            // just past 100.64/10
		"https://192.169.0.1/",            // just past 192.168/16
		"https://1572395042/",             // 93.184.216.34 spelled as a number is still public
		"https://0x5db8d822/",             // the same in hex
		"https://0000000000000127.0.0.1/", // octal 127 is 87: 87.0.0.1, public
		"https://[2606:2800:220:1:248:1893:25c8:1946]/",
		"https://[::ffff:93.184.216.34]/", // IPv4-mapped public
		"https://[64:ff9b::5db8:d822]/",   // NAT64 of a public address
		"https://[2002:5db8:d822::1]/",    // 6to4 of a public address
		"https://xn--bcher-kva.example/",  // an IDN in punycode
		"https://under_score.example.com/",
		"https://localhost.example.com/", // only names *under* localhost are loopback
		"https://1x.example/",            // a label starting with digits is a name
		"https://example.com/" + strings.Repeat("a", egress.MaxURLLength-len("https://example.com/")),
	} {
		t.Run(raw[:min(len(raw), 60)], func(t *testing.T) {
			require.NoError(t, egress.Policy{}.CheckURL(raw))
		})
	}
}

func TestPolicyUnlocksOnlyWhatItNames(t *testing.T) {
	dev := egress.Policy{AllowLoopback: true, AllowHTTP: true}
	onPrem := egress.Policy{AllowPrivate: true}
	all := egress.Policy{AllowLoopback: true, AllowPrivate: true, AllowHTTP: true}

	for _, tc := range []struct {
		policy egress.Policy
		url    string
		ok     bool
	}{
		{dev, "http://127.0.0.1:8080/hook", true},
		{dev, "http://localhost:8080/hook", true},
		{dev, "http://api.localhost/", true},
		{dev, "http://[::1]:8080/", true},
		{dev, "http://0x7f000001/", true},
		{dev, "http://[::ffff:127.0.0.1]/", true},
		{egress.Policy{AllowHTTP: true}, "http://2130706433/", false},
		{egress.Policy{AllowHTTP: true}, "http://example.com/hook", true},
		{dev, "http://10.0.0.1/", false},
		{dev, "http://[2002:7f00:1::]/", false}, // tunnelled forms stay refused
		{dev, "http://[::1%25lo]/", false},      // a zone is refused even where loopback is allowed
		{onPrem, "https://10.0.0.1/", true},
		{onPrem, "https://100.64.1.1/", true},
		{onPrem, "https://[fd12:3456::1]/", true},
		{onPrem, "http://10.0.0.1/", false},
		{onPrem, "https://127.0.0.1/", false},
		{onPrem, "https://localhost/", false},
		// No policy opens these.
		{all, "http://169.254.169.254/", false},
		{all, "http://[fd00:ec2::254]/", false},
		{all, "http://100.100.100.200/", false},
		{all, "http://[fe80::1]/", false},
		{all, "http://0.0.0.0/", false},
		{all, "http://224.0.0.1/", false},
		{all, "http://192.0.2.1/", false},
		{all, "http://198.18.0.1/", false},
		{all, "http://[64:ff9b::10.0.0.1]/", false},
	} {
		err := tc.policy.CheckURL(tc.url)
		if tc.ok {
			require.NoError(t, err, "%+v %s", tc.policy, tc.url)
		} else {
			require.Error(t, err, "%+v %s", tc.policy, tc.url)
		}
	}
}

// FuzzCheckURL holds CheckURL to what the standard library says about any address it lets through.
func FuzzCheckURL(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/hook", "https://0x7f000001/", "https://127.1/", "https://[::ffff:7f00:1]/",
		"https://[64:ff9b::a00:1]/", "https://0177.0.0.1./", "https://[fe80::1%25eth0]/", "https://93.184.216.34/",
		"https://a@b/", "https://08/", "https://0x/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := egress.Policy{}.CheckURL(raw)
		if err == nil {
			u, perr := url.Parse(raw)
			require.NoError(t, perr)
			require.Equal(t, "https", u.Scheme)
			require.Nil(t, u.User)
			if addr, perr := netip.ParseAddr(u.Hostname()); perr == nil {
				addr = addr.Unmap()
				require.True(t, addr.IsGlobalUnicast() && !addr.IsPrivate() && !addr.IsLoopback() &&
					!addr.IsLinkLocalUnicast(), "%s let through %s", raw, addr)
			}
			return
		}
		require.True(t, errors.Is(err, egress.ErrInvalidURL) != errors.Is(err, egress.ErrForbiddenAddress),
			"every refusal is one kind: %v", err)
	})
}
