package authn_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/authn"
)

// fakeJWKS is a fetch function whose result, error and blocking behaviour the
// test controls. It counts calls atomically.
type fakeJWKS struct {
	calls atomic.Int32

	mu        sync.Mutex
	set       authn.JWKS
	err       error
	panicWith any
	block     chan struct{} // if non-nil, fetch waits for it to be closed (ignoring ctx)
	ctxErr    error         // ctx.Err() seen by the last fetch when it returned
	ctxValue  any           // ctx.Value(ctxKey{}) seen by the last fetch
}

type ctxKey struct{}

func (f *fakeJWKS) fetch(ctx context.Context) (authn.JWKS, error) {
	f.calls.Add(1)
	f.mu.Lock()
	block, p := f.block, f.panicWith
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if p != nil {
		panic(p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctxErr = ctx.Err()
	f.ctxValue = ctx.Value(ctxKey{})
	return f.set, f.err
}

// seen returns what the last fetch observed of its context.
func (f *fakeJWKS) seen() (value any, ctxErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctxValue, f.ctxErr
}

func (f *fakeJWKS) serve(set authn.JWKS, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set, f.err = set, err
}

// blockFetches makes fetches wait until the returned func is called.
func (f *fakeJWKS) blockFetches() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.block = ch
	f.mu.Unlock()
	return sync.OnceFunc(func() { close(ch) })
}

type cacheEnv struct {
	cache      *authn.Cache
	clock      *manualClock
	fake       *fakeJWKS
	pub        map[string]ed25519.PublicKey // "k1".."k3"
	jwk        map[string]authn.JWK
	minRefetch time.Duration
	maxAge     time.Duration
}

func (e *cacheEnv) set(kids ...string) authn.JWKS {
	var s authn.JWKS
	for _, k := range kids {
		s.Keys = append(s.Keys, e.jwk[k])
	}
	return s
}

func newCacheEnv(opts ...authn.CacheOption) *cacheEnv {
	e := &cacheEnv{
		clock:      newManualClock(),
		fake:       &fakeJWKS{},
		pub:        map[string]ed25519.PublicKey{},
		jwk:        map[string]authn.JWK{},
		minRefetch: authn.DefaultMinRefetchInterval,
		maxAge:     authn.DefaultMaxAge,
	}
	for i, kid := range []string{"k1", "k2", "k3"} {
		pub, _ := newKey(byte(10 + i))
		e.pub[kid] = pub
		e.jwk[kid] = authn.PublicJWK(kid, pub)
	}
	e.fake.serve(e.set("k1"), nil)
	e.cache = authn.NewCache(e.fake.fetch, append([]authn.CacheOption{authn.WithClock(e.clock.Now)}, opts...)...)
	return e
}

func (e *cacheEnv) requireKey(t *testing.T, kid string) {
	t.Helper()
	got, err := e.cache.Key(context.Background(), kid)
	require.NoError(t, err)
	require.True(t, e.pub[kid].Equal(got), "key for %s", kid)
}

func (e *cacheEnv) requireCalls(t *testing.T, n int32) {
	t.Helper()
	require.Equal(t, n, e.fake.calls.Load(), "fetch calls")
}

func TestCache(t *testing.T) {
	tests := []struct {
		name string
		opts []authn.CacheOption
		run  func(t *testing.T, e *cacheEnv)
	}{
		{
			name: "the first Key call fetches and later calls are served from the cache",
			run: func(t *testing.T, e *cacheEnv) {
				e.requireCalls(t, 0)
				e.requireKey(t, "k1")
				e.clock.Advance(e.maxAge - time.Second)
				e.requireKey(t, "k1")
				e.requireCalls(t, 1)
			},
		},
		{
			name: "an unknown kid triggers exactly one fetch even with 50 concurrent callers",
			run: func(t *testing.T, e *cacheEnv) {
				e.requireKey(t, "k1")
				e.clock.Advance(e.minRefetch)
				e.fake.serve(e.set("k1", "k2"), nil)
				release := e.fake.blockFetches()

				var wg sync.WaitGroup
				results := make([]ed25519.PublicKey, 50)
				errs := make([]error, 50)
				for i := range 50 {
					wg.Go(func() { results[i], errs[i] = e.cache.Key(context.Background(), "k2") })
				}
				synctest.Wait() // all 50 are parked on the one in-flight fetch
				e.requireCalls(t, 2)
				release()
				wg.Wait()

				for i := range 50 {
					require.NoError(t, errs[i])
					require.True(t, e.pub["k2"].Equal(results[i]))
				}
				e.requireCalls(t, 2)
			},
		},
		{
			name: "the very first fetch is shared by 50 concurrent callers",
			run: func(t *testing.T, e *cacheEnv) {
				release := e.fake.blockFetches()
				var wg sync.WaitGroup
				var failures atomic.Int32
				for range 50 {
					wg.Go(func() {
						if _, err := e.cache.Key(context.Background(), "k1"); err != nil {
							failures.Add(1)
						}
					})
				}
				synctest.Wait()
				release()
				wg.Wait()
				require.Zero(t, failures.Load())
				e.requireCalls(t, 1)
			},
		},
		{
			name: "a second unknown kid within MinRefetchInterval does not fetch again but one after it does",
			run: func(t *testing.T, e *cacheEnv) {
				e.requireKey(t, "k1")
				e.clock.Advance(e.minRefetch)

				_, err := e.cache.Key(context.Background(), "unknown-1")
				require.ErrorIs(t, err, authn.ErrUnknownKey)
				e.requireCalls(t, 2)

				e.fake.serve(e.set("k1", "k2"), nil)
				_, err = e.cache.Key(context.Background(), "k2")
				require.ErrorIs(t, err, authn.ErrUnknownKey, "rate-limited: k2 is published but not fetched yet")
				e.clock.Advance(e.minRefetch - time.Millisecond)
				_, err = e.cache.Key(context.Background(), "k2")
				require.ErrorIs(t, err, authn.ErrUnknownKey)
				e.requireCalls(t, 2)

				e.clock.Advance(time.Millisecond)
				e.requireKey(t, "k2")
				e.requireCalls(t, 3)
			},
		},
		{
			name: "WithMinRefetchInterval changes the rate limit",
			opts: []authn.CacheOption{authn.WithMinRefetchInterval(time.Minute)},
			run: func(t *testing.T, e *cacheEnv) {
				e.requireKey(t, "k1")
				e.fake.serve(e.set("k1", "k2"), nil)
				e.clock.Advance(authn.DefaultMinRefetchInterval)
				_, err := e.cache.Key(context.Background(), "k2")
				require.ErrorIs(t, err, authn.ErrUnknownKey)
				e.clock.Advance(time.Minute - authn.DefaultMinRefetchInterval)
				e.requireKey(t, "k2")
				e.requireCalls(t, 2)
			},
		},
		{
			name: "a caller whose context is already cancelled does not cancel the shared fetch",
			run: func(t *testing.T, e *cacheEnv) {
				release := e.fake.blockFetches()
				ctx, cancel := context.WithCancel(context.Background())
				cancel()

				_, err := e.cache.Key(ctx, "k1")
				require.ErrorIs(t, err, context.Canceled)
				require.NotErrorIs(t, err, authn.ErrInvalidToken)

				var got ed25519.PublicKey
				var gotErr error
				done := make(chan struct{})
				go func() {
					defer close(done)
					got, gotErr = e.cache.Key(context.Background(), "k1")
				}()
				synctest.Wait() // the second caller joined the fetch the first one started
				e.requireCalls(t, 1)
				release()
				<-done

				require.NoError(t, gotErr)
				require.True(t, e.pub["k1"].Equal(got))
				_, ctxErr := e.fake.seen()
				require.NoError(t, ctxErr, "the fetch's context was not cancelled")
				e.requireCalls(t, 1)
			},
		},
		{
			name: "a caller with a 1ns deadline gives up alone and the fetch completes for the others",
			run: func(t *testing.T, e *cacheEnv) {
				release := e.fake.blockFetches()
				ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
				defer cancel()

				_, err := e.cache.Key(ctx, "k1")
				require.ErrorIs(t, err, context.DeadlineExceeded)

				release()
				synctest.Wait()
				_, ctxErr := e.fake.seen()
				require.NoError(t, ctxErr)
				e.requireKey(t, "k1")
				e.requireCalls(t, 1)
			},
		},
		{
			name: "the fetch keeps the values of the triggering caller's context",
			run: func(t *testing.T, e *cacheEnv) {
				ctx := context.WithValue(context.Background(), ctxKey{}, "trace-123")
				_, err := e.cache.Key(ctx, "k1")
				require.NoError(t, err)
				value, _ := e.fake.seen()
				require.Equal(t, "trace-123", value)
			},
		},
		{
			name: "fetch errors keep the old keys",
			run: func(t *testing.T, e *cacheEnv) {
				e.requireKey(t, "k1")
				boom := errors.New("authtoken unavailable")
				e.fake.serve(authn.JWKS{}, boom)

				e.clock.Advance(e.maxAge)
				e.requireKey(t, "k1") // stale: served at once, refresh started
				synctest.Wait()
				e.requireCalls(t, 2)
				e.requireKey(t, "k1")

				e.clock.Advance(e.minRefetch)
				_, err := e.cache.Key(context.Background(), "k2")
				require.ErrorIs(t, err, authn.ErrUnknownKey)
				require.ErrorContains(t, err, boom.Error())
				e.requireCalls(t, 3)
				e.requireKey(t, "k1")
			},
		},
		{
			name: "a key set without usable keys keeps the old keys",
			run: func(t *testing.T, e *cacheEnv) {
				e.requireKey(t, "k1")
				e.fake.serve(authn.JWKS{Keys: []authn.JWK{{Kty: "RSA", Kid: "k2"}}}, nil)
				e.clock.Advance(e.minRefetch)
				_, err := e.cache.Key(context.Background(), "k2")
				require.ErrorIs(t, err, authn.ErrUnknownKey)
				e.requireCalls(t, 2)
				e.requireKey(t, "k1")
			},
		},
		{
			name: "a stale key set is refreshed by the next Key call, which is not delayed",
			run: func(t *testing.T, e *cacheEnv) {
				e.fake.serve(e.set("k1", "k2"), nil)
				e.requireKey(t, "k1")
				e.fake.serve(e.set("k2", "k3"), nil)
				release := e.fake.blockFetches()

				e.clock.Advance(e.maxAge)
				e.requireKey(t, "k1") // returns while the refresh is blocked
				synctest.Wait()
				e.requireCalls(t, 2)
				release()
				synctest.Wait()

				_, err := e.cache.Key(context.Background(), "k1")
				require.ErrorIs(t, err, authn.ErrUnknownKey, "k1 was removed from the set")
				e.requireKey(t, "k3")
				e.requireKey(t, "k2")
				e.requireCalls(t, 2)
			},
		},
		{
			name: "WithMaxAge changes when the set goes stale",
			opts: []authn.CacheOption{authn.WithMaxAge(time.Minute)},
			run: func(t *testing.T, e *cacheEnv) {
				e.requireKey(t, "k1")
				e.clock.Advance(time.Minute - time.Nanosecond)
				e.requireKey(t, "k1")
				synctest.Wait()
				e.requireCalls(t, 1)
				e.clock.Advance(time.Nanosecond)
				e.requireKey(t, "k1")
				synctest.Wait()
				e.requireCalls(t, 2)
			},
		},
		{
			name: "before any successful fetch misses report ErrKeysUnavailable, which is not an invalid token",
			run: func(t *testing.T, e *cacheEnv) {
				boom := errors.New("authtoken unavailable")
				e.fake.serve(authn.JWKS{}, boom)
				for range 2 {
					_, err := e.cache.Key(context.Background(), "k1")
					require.ErrorIs(t, err, authn.ErrKeysUnavailable)
					require.ErrorIs(t, err, boom)
					require.NotErrorIs(t, err, authn.ErrInvalidToken)
				}
				e.requireCalls(t, 1)

				e.fake.serve(e.set("k1"), nil)
				e.clock.Advance(e.minRefetch)
				e.requireKey(t, "k1")
				e.requireCalls(t, 2)
			},
		},
		{
			name: "a fetch that ignores its context is abandoned after the fetch timeout",
			opts: []authn.CacheOption{authn.WithFetchTimeout(2 * time.Second)},
			run: func(t *testing.T, e *cacheEnv) {
				release := e.fake.blockFetches()
				defer release()
				start := time.Now() // the bubble's fake clock
				_, err := e.cache.Key(context.Background(), "k1")
				require.ErrorIs(t, err, authn.ErrKeysUnavailable)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Equal(t, 2*time.Second, time.Since(start))
			},
		},
		{
			name: "a panicking fetch is reported as a fetch error",
			run: func(t *testing.T, e *cacheEnv) {
				e.fake.mu.Lock()
				e.fake.panicWith = "kaboom"
				e.fake.mu.Unlock()
				_, err := e.cache.Key(context.Background(), "k1")
				require.ErrorIs(t, err, authn.ErrKeysUnavailable)
				require.ErrorContains(t, err, "kaboom")
			},
		},
		{
			name: "JWKs that are not Ed25519 signature keys are ignored",
			run: func(t *testing.T, e *cacheEnv) {
				good := e.jwk["k1"]
				bad := func(kid string, mod func(*authn.JWK)) authn.JWK {
					k := e.jwk["k2"]
					k.Kid = kid
					mod(&k)
					return k
				}
				noAlgNoUse := e.jwk["k3"]
				noAlgNoUse.Alg, noAlgNoUse.Use = "", ""
				e.fake.serve(authn.JWKS{Keys: []authn.JWK{
					good,
					noAlgNoUse,
					bad("rsa", func(k *authn.JWK) { k.Kty = "RSA" }),
					bad("ec", func(k *authn.JWK) { k.Kty = "EC" }),
					bad("x25519", func(k *authn.JWK) { k.Crv = "X25519" }),
					bad("ed448", func(k *authn.JWK) { k.Crv = "Ed448" }),
					bad("hs256", func(k *authn.JWK) { k.Alg = "HS256" }),
					bad("enc", func(k *authn.JWK) { k.Use = "enc" }),
					bad("short", func(k *authn.JWK) { k.X = k.X[:len(k.X)-2] }),
					bad("long", func(k *authn.JWK) { k.X += "AAAA" }),
					bad("padded", func(k *authn.JWK) { k.X += "=" }),
					bad("std-b64", func(k *authn.JWK) { k.X = "+/" + k.X[2:] }),
					bad("empty-x", func(k *authn.JWK) { k.X = "" }),
					bad("", func(*authn.JWK) {}),
				}}, nil)

				e.requireKey(t, "k1")
				e.requireKey(t, "k3")
				for _, kid := range []string{"rsa", "ec", "x25519", "ed448", "hs256", "enc", "short", "long", "padded", "std-b64", "empty-x", ""} {
					_, err := e.cache.Key(context.Background(), kid)
					require.ErrorIs(t, err, authn.ErrUnknownKey, kid)
				}
			},
		},
		{
			name: "a kid published with two different keys is ignored",
			run: func(t *testing.T, e *cacheEnv) {
				clash := e.jwk["k2"]
				clash.Kid = "k1"
				e.fake.serve(authn.JWKS{Keys: []authn.JWK{e.jwk["k1"], clash, e.jwk["k3"], e.jwk["k3"]}}, nil)
				_, err := e.cache.Key(context.Background(), "k1")
				require.ErrorIs(t, err, authn.ErrUnknownKey)
				e.requireKey(t, "k3")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newCacheEnv(tt.opts...)
				tt.run(t, e)
			})
		})
	}
}

func TestNewCachePanicsWithoutAFetchFunction(t *testing.T) {
	require.Panics(t, func() { authn.NewCache(nil) })
}

func TestVerifierWithCachePicksUpARotatedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		oldPub, oldPriv := newKey(1)
		newPub, newPriv := newKey(2)
		clock := newManualClock()
		fake := &fakeJWKS{}
		fake.serve(authn.JWKS{Keys: []authn.JWK{authn.PublicJWK("old", oldPub)}}, nil)
		cache := authn.NewCache(fake.fetch, authn.WithClock(clock.Now))
		v := authn.NewVerifier(cache, testIssuer, testAudience, authn.WithClock(clock.Now))

		_, err := v.Verify(context.Background(), mustSign(t, oldPriv, "old", validClaims()))
		require.NoError(t, err)

		fake.serve(authn.JWKS{Keys: []authn.JWK{authn.PublicJWK("old", oldPub), authn.PublicJWK("new", newPub)}}, nil)
		clock.Advance(authn.DefaultMinRefetchInterval)
		claims := validClaims()
		claims.ExpiresAt = clock.Now().Add(time.Minute)
		_, err = v.Verify(context.Background(), mustSign(t, newPriv, "new", claims))
		require.NoError(t, err)

		_, err = v.Verify(context.Background(), mustSign(t, newPriv, "newer", claims))
		require.ErrorIs(t, err, authn.ErrUnknownKey)
		require.Equal(t, int32(2), fake.calls.Load())
	})
}
