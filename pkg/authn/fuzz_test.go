package authn_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/authn"
)

// FuzzVerify feeds arbitrary strings to Verify. Besides never panicking, every
// rejection must be a token error (the KeySource here never fails for other
// reasons), and since neither base64url, JSON nor Ed25519 verification may be
// malleable here, the only tokens ever accepted are the signed seeds
// themselves, byte for byte.
func FuzzVerify(f *testing.F) {
	pub, priv := newKey(1)
	v := newTestVerifier(authn.StaticKeys{testKID: pub, "other": pub})

	valid := map[string]bool{}
	addValid := func(tok string) {
		valid[tok] = true
		f.Add(tok)
	}
	addValid(mustSign(f, priv, testKID, validClaims()))
	addValid(rawToken(priv, goodHeader, payload("aud", `["x","`+testAudience+`"]`, "exp", "1.8000003e9")))
	addValid(rawToken(priv, `{"kid":"other","alg":"EdDSA"}`, payload("prd", `["a","b"]`, "usr", `"usr_1"`)))

	for _, seed := range []string{
		"",
		".",
		"..",
		"a.b.c",
		unsigned(`{"alg":"none","kid":"`+testKID+`"}`, payload(), nil),
		unsigned(`{"alg":"HS256","kid":"`+testKID+`"}`, payload(), pub),
		rawToken(priv, `{"alg":"EdDSA","kid":"`+testKID+`","crit":["b64"],"b64":false}`, payload()),
		rawToken(priv, `{"alg":"EdDSA","alg":"EdDSA","kid":"`+testKID+`"}`, payload()),
		rawToken(priv, goodHeader, payload("exp", "1e400")),
		rawToken(priv, goodHeader, payload("exp", "-0.5")),
		rawToken(priv, goodHeader, payload("iat", "253402300799.9999999999")),
		rawToken(priv, goodHeader, `{"aud":[[[[[[[[[[]]]]]]]]]]}`),
		strings.Repeat("A", 100) + "." + strings.Repeat("_", 100) + "." + strings.Repeat("-", 86),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err != nil {
			require.ErrorIs(t, err, authn.ErrInvalidToken)
			require.Zero(t, claims)
			return
		}
		require.True(t, valid[token], "accepted a token that was never signed: %q", token)
		require.Equal(t, testIssuer, claims.Issuer)
		require.Contains(t, claims.Audience, testAudience)
		require.NotEmpty(t, claims.Subject)
		require.NotEmpty(t, claims.ID)
	})
}
