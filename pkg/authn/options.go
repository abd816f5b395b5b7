package authn

import "time"

// CacheOption configures a Cache.
type CacheOption interface{ applyCache(*Cache) }

// VerifierOption configures a Verifier.
type VerifierOption interface{ applyVerifier(*Verifier) }

// Option is an option that applies to both a Cache and a Verifier.
type Option interface {
	CacheOption
	VerifierOption
}

type cacheOptionFunc func(*Cache)

func (f cacheOptionFunc) applyCache(c *Cache) { f(c) }

type verifierOptionFunc func(*Verifier)

func (f verifierOptionFunc) applyVerifier(v *Verifier) { f(v) }

type clockOption func() time.Time

func (o clockOption) applyCache(c *Cache)       { c.now = o }
func (o clockOption) applyVerifier(v *Verifier) { v.now = o }

// WithClock replaces time.Now, for tests. It works for both NewCache and
// NewVerifier. A nil func is ignored.
func WithClock(now func() time.Time) Option {
	if now == nil {
		now = time.Now
	}
	return clockOption(now)
}

// WithMinRefetchInterval sets the minimum time between two fetch attempts of
// the key set (default 10s). Non-positive values keep the default.
func WithMinRefetchInterval(d time.Duration) CacheOption {
	return cacheOptionFunc(func(c *Cache) {
		if d > 0 {
			c.minRefetch = d
		}
	})
}

// WithMaxAge sets how old the key set may get before a Key call triggers a
// refresh (default 5 min). Non-positive values keep the default.
func WithMaxAge(d time.Duration) CacheOption {
	return cacheOptionFunc(func(c *Cache) {
		if d > 0 {
			c.maxAge = d
		}
	})
}

// WithFetchTimeout bounds each fetch of the key set (default 5s). Non-positive
// values keep the default.
func WithFetchTimeout(d time.Duration) CacheOption {
	return cacheOptionFunc(func(c *Cache) {
		if d > 0 {
			c.fetchTimeout = d
		}
	})
}

// WithLeeway sets the clock skew tolerated when checking exp, nbf and iat
// (default 30s). Negative values are treated as zero.
func WithLeeway(d time.Duration) VerifierOption {
	return verifierOptionFunc(func(v *Verifier) { v.leeway = max(d, 0) })
}
