package authn_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/authn"
)

const (
	testIssuer   = "https://auth.puente.test"
	testAudience = "puente-api"
	testKID      = "key-2026-01"
)

// testNow is the verifier's clock in the token tests.
var testNow = time.Unix(1_800_000_000, 0).UTC()

var enc = base64.RawURLEncoding

// newKey derives a deterministic Ed25519 key from a one-byte seed.
func newKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	priv := ed25519.NewKeyFromSeed(s)
	return priv.Public().(ed25519.PublicKey), priv
}

// validClaims are accepted by newTestVerifier.
func validClaims() authn.Claims {
	return authn.Claims{
		Issuer:    testIssuer,
		Subject:   "cli_123",
		Audience:  []string{testAudience},
		ExpiresAt: testNow.Add(5 * time.Minute),
		NotBefore: testNow.Add(-time.Minute),
		IssuedAt:  testNow.Add(-time.Minute),
		ID:        "jti_abc",
		Scope:     authn.ScopeClient,
	}
}

func newTestVerifier(keys authn.KeySource) *authn.Verifier {
	return authn.NewVerifier(keys, testIssuer, testAudience, authn.WithClock(func() time.Time { return testNow }))
}

// rawToken builds a compact JWS by hand from literal header and payload JSON,
// signed with priv over exactly those bytes.
func rawToken(priv ed25519.PrivateKey, header, payload string) string {
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return in + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

// unsigned builds header.payload.sig with the given raw signature bytes.
func unsigned(header, payload string, sig []byte) string {
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sig)
}

func mustSign(t testing.TB, priv ed25519.PrivateKey, kid string, c authn.Claims) string {
	t.Helper()
	tok, err := authn.Sign(authn.SigningKey{ID: kid, Private: priv}, c)
	require.NoError(t, err)
	return tok
}

// manualClock is a clock that only moves when told to.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock { return &manualClock{t: testNow} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
