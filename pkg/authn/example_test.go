package authn_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"puente.dev/pkg/authn"
)

func Example() {
	// The issuer side (authtoken service).
	seed := make([]byte, ed25519.SeedSize) // use crypto/rand in real code
	priv := ed25519.NewKeyFromSeed(seed)
	key := authn.SigningKey{ID: "2026-01", Private: priv}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	token, err := authn.Sign(key, authn.Claims{
		Issuer:    "https://auth.puente.dev",
		Subject:   "cli_123",
		Audience:  []string{"api.puente.dev"},
		IssuedAt:  now,
		ExpiresAt: now.Add(15 * time.Minute),
		ID:        "tok_1",
		Scope:     authn.ScopeClient,
	})
	if err != nil {
		panic(err)
	}

	// The verifying side. In production the KeySource is an authn.Cache
	// over the authtoken service's GetJwks.
	keys := authn.StaticKeys{key.ID: priv.Public().(ed25519.PublicKey)}
	v := authn.NewVerifier(keys, "https://auth.puente.dev", "api.puente.dev",
		authn.WithClock(func() time.Time { return now.Add(time.Minute) }))

	claims, err := v.Verify(context.Background(), token)
	fmt.Println(claims.Subject, claims.Scope, claims.ExpiresAt, err)

	// A service with another audience rejects the same token.
	other := authn.NewVerifier(keys, "https://auth.puente.dev", "admin.puente.dev",
		authn.WithClock(func() time.Time { return now.Add(time.Minute) }))
	_, err = other.Verify(context.Background(), token)
	fmt.Println(errors.Is(err, authn.ErrAudience), errors.Is(err, authn.ErrInvalidToken))
	// Output:
	// cli_123 client 2026-01-02 03:19:05 +0000 UTC <nil>
	// true true
}
