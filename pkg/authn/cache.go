package authn

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"
)

// Default Cache settings.
const (
	DefaultMinRefetchInterval = 10 * time.Second
	DefaultMaxAge             = 5 * time.Minute
	DefaultFetchTimeout       = 5 * time.Second
)

// Cache is a KeySource over a function that fetches the JWKS (in production,
// the authtoken service's GetJwks).
//
// Behaviour:
//
//   - The last good key set is kept. A fetch error, a timeout, or a set with
//     no usable key never replaces it.
//   - A kid that is not in the set triggers a fetch, and the caller waits for
//     it. Fetch attempts are rate-limited to one per MinRefetchInterval
//     (counted from the start of the previous attempt, successful or not);
//     a miss inside that window fails at once with ErrUnknownKey. Concurrent
//     callers share the one in-flight fetch.
//   - When the set is older than MaxAge, the next Key call starts a refresh
//     (same rate limit). If the requested kid is in the old set, that key is
//     returned immediately without waiting for the refresh, so an outage of
//     the key service never adds latency to known keys.
//   - Fetches run on their own goroutine with context.WithoutCancel of the
//     triggering caller's context (values such as trace ids are kept) and
//     their own FetchTimeout. A caller that gives up, for instance because
//     its deadline is 1ns, stops waiting but never cancels the fetch for the
//     others. A fetch function that ignores its context is abandoned at the
//     timeout, and a panic in it is turned into a fetch error.
//   - Until the first successful fetch, misses fail with ErrKeysUnavailable.
//
// The zero value is not usable; create one with NewCache. A Cache is safe
// for concurrent use.
type Cache struct {
	fetch        func(context.Context) (JWKS, error)
	now          func() time.Time
	minRefetch   time.Duration
	maxAge       time.Duration
	fetchTimeout time.Duration

	mu          sync.Mutex
	keys        map[string]ed25519.PublicKey // nil until the first good fetch
	fetchedAt   time.Time                    // when keys was last replaced
	attempted   bool                         // whether any fetch was started
	lastAttempt time.Time                    // start of the last fetch attempt
	lastErr     error                        // error of the last fetch attempt, nil if it succeeded
	inflight    *fetchCall
}

type fetchCall struct {
	done chan struct{} // closed when the fetch has finished and the Cache is updated
}

var _ KeySource = (*Cache)(nil)

// NewCache returns a Cache over fetch. It panics if fetch is nil. No fetch
// happens until the first Key call.
func NewCache(fetch func(ctx context.Context) (JWKS, error), opts ...CacheOption) *Cache {
	if fetch == nil {
		panic("authn: NewCache: nil fetch function")
	}
	c := &Cache{
		fetch:        fetch,
		now:          time.Now,
		minRefetch:   DefaultMinRefetchInterval,
		maxAge:       DefaultMaxAge,
		fetchTimeout: DefaultFetchTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o.applyCache(c)
		}
	}
	return c
}

// Key implements KeySource. See Cache for the fetching rules. It returns an
// error wrapping ErrUnknownKey for a kid that is still unknown after the
// refetch (or whose refetch is rate-limited), ErrKeysUnavailable if no key set
// was ever fetched, or the context's error if ctx ends while waiting.
func (c *Cache) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	c.mu.Lock()
	now := c.now()
	key, known := c.keys[kid]
	if known && now.Sub(c.fetchedAt) < c.maxAge {
		c.mu.Unlock()
		return key, nil
	}
	call := c.inflight
	if call == nil && (!c.attempted || now.Sub(c.lastAttempt) >= c.minRefetch) {
		call = c.startFetchLocked(ctx, now)
	}
	if known {
		// Stale but known: serve it while the refresh (if any) runs.
		c.mu.Unlock()
		return key, nil
	}
	if call == nil {
		// Unknown, and a refetch is not allowed yet.
		err := c.missErrLocked(kid)
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		select {
		case <-call.done: // finished anyway; use the result
		default:
			return nil, fmt.Errorf("authn: waiting for key set: %w", context.Cause(ctx))
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if key, ok := c.keys[kid]; ok {
		return key, nil
	}
	return nil, c.missErrLocked(kid)
}

func (c *Cache) missErrLocked(kid string) error {
	switch {
	case c.keys == nil && c.lastErr != nil:
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, c.lastErr)
	case c.keys == nil:
		return ErrKeysUnavailable
	case c.lastErr != nil:
		return fmt.Errorf("%w: kid %q (last key set refresh failed: %v)", ErrUnknownKey, kid, c.lastErr)
	default:
		return fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
}

func (c *Cache) startFetchLocked(ctx context.Context, now time.Time) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	c.attempted = true
	c.lastAttempt = now
	go c.runFetch(context.WithoutCancel(ctx), call)
	return call
}

type fetchResult struct {
	set JWKS
	err error
}

func (c *Cache) runFetch(ctx context.Context, call *fetchCall) {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()

	// The fetch runs on its own goroutine so that the timeout holds even if
	// the fetch function ignores its context. The channel is buffered so an
	// abandoned fetch can still finish and exit.
	results := make(chan fetchResult, 1)
	go func() {
		var r fetchResult
		defer func() {
			if p := recover(); p != nil {
				r = fetchResult{err: fmt.Errorf("authn: JWKS fetch panicked: %v", p)}
			}
			results <- r
		}()
		r.set, r.err = c.fetch(ctx)
	}()

	var keys map[string]ed25519.PublicKey
	var err error
	select {
	case r := <-results:
		if r.err != nil {
			err = fmt.Errorf("authn: JWKS fetch: %w", r.err)
		} else {
			keys, err = usableKeys(r.set)
		}
	case <-ctx.Done():
		err = fmt.Errorf("authn: JWKS fetch: %w", context.Cause(ctx))
	}

	c.mu.Lock()
	if err == nil {
		c.keys = keys
		c.fetchedAt = c.now()
	}
	c.lastErr = err
	c.inflight = nil
	c.mu.Unlock()
	close(call.done)
}
