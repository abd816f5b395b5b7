package authn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/authn"
)

const goodHeader = `{"alg":"EdDSA","kid":"` + testKID + `","typ":"JWT"}`

// payload returns a claims JSON object built from the default (valid) claims
// with the given members replaced; an empty value removes the member. Extra
// members not among the defaults are appended in the order given.
func payload(overrides ...string) string {
	names := []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scp"}
	values := map[string]string{
		"iss": fmt.Sprintf("%q", testIssuer),
		"sub": `"cli_123"`,
		"aud": fmt.Sprintf("%q", testAudience),
		"exp": fmt.Sprint(testNow.Add(5 * time.Minute).Unix()),
		"nbf": fmt.Sprint(testNow.Add(-time.Minute).Unix()),
		"iat": fmt.Sprint(testNow.Add(-time.Minute).Unix()),
		"jti": `"jti_abc"`,
		"scp": `"client"`,
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		if _, ok := values[overrides[i]]; !ok {
			names = append(names, overrides[i])
		}
		values[overrides[i]] = overrides[i+1]
	}
	var parts []string
	for _, n := range names {
		if v := values[n]; v != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", n, v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func unix(t time.Time) string { return fmt.Sprint(t.Unix()) }

func TestSignThenVerifyRoundTripsEveryClaim(t *testing.T) {
	pub, priv := newKey(1)
	want := authn.Claims{
		Issuer:    testIssuer,
		Subject:   "cli_123",
		Audience:  []string{"other", testAudience},
		ExpiresAt: testNow.Add(10 * time.Minute),
		NotBefore: testNow.Add(-10 * time.Second),
		IssuedAt:  testNow.Add(-10 * time.Second),
		ID:        "jti_1",
		Scope:     authn.ScopeWidget,
		UserID:    "usr_9",
		ConsentID: "cns_8",
		LinkID:    "lnk_7",
		Products:  []string{"auth", "transactions"},
		Country:   "CL",

		Environment: authn.EnvSandbox,
		Origins:     []string{"https://app.example", "http://localhost:3000"},
	}
	tok := mustSign(t, priv, testKID, want)

	got, err := newTestVerifier(authn.StaticKeys{testKID: pub}).Verify(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestVerify(t *testing.T) {
	pub, priv := newKey(1)
	_, otherPriv := newKey(2)
	keys := authn.StaticKeys{testKID: pub}
	good := mustSign(t, priv, testKID, validClaims())
	goodParts := strings.Split(good, ".")

	evilClaims := validClaims()
	evilClaims.Subject = "cli_victim"
	evil := strings.Split(mustSign(t, otherPriv, testKID, evilClaims), ".")

	hs256 := func(secret []byte, header string) string {
		in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload()))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(in))
		return in + "." + enc.EncodeToString(mac.Sum(nil))
	}
	hdr := func(alg string) string {
		return `{"alg":` + alg + `,"kid":"` + testKID + `","typ":"JWT"}`
	}

	tests := []struct {
		name    string
		token   string
		wantErr error // nil: accepted
		wantSub string
	}{
		{name: "a token from Sign is accepted", token: good, wantSub: "cli_123"},
		{name: "an audience array containing ours is accepted", token: rawToken(priv, goodHeader, payload("aud", `["someone-else","`+testAudience+`"]`)), wantSub: "cli_123"},
		{name: "a header without typ is accepted", token: rawToken(priv, `{"alg":"EdDSA","kid":"`+testKID+`"}`, payload()), wantSub: "cli_123"},
		{name: "float NumericDates are accepted", token: rawToken(priv, goodHeader, payload("exp", "1.8000003e9", "iat", "1799999999.5", "nbf", "1.7e9")), wantSub: "cli_123"},
		{name: "a token expired by less than the leeway is accepted", token: rawToken(priv, goodHeader, payload("exp", unix(testNow.Add(-20*time.Second)))), wantSub: "cli_123"},
		{name: "a token valid from within the leeway is accepted", token: rawToken(priv, goodHeader, payload("nbf", unix(testNow.Add(20*time.Second)), "iat", unix(testNow.Add(20*time.Second)))), wantSub: "cli_123"},
		{name: "unknown claims are ignored", token: rawToken(priv, goodHeader, payload("xyz", `{"nested":[1,2,null]}`)), wantSub: "cli_123"},

		// Structure.
		{name: "an empty string is malformed", token: "", wantErr: authn.ErrMalformed},
		{name: "two segments are malformed", token: goodParts[0] + "." + goodParts[1], wantErr: authn.ErrMalformed},
		{name: "four segments are malformed", token: good + ".x", wantErr: authn.ErrMalformed},
		{name: "an empty header segment is malformed", token: "." + goodParts[1] + "." + goodParts[2], wantErr: authn.ErrMalformed},
		{name: "an empty payload segment is malformed", token: goodParts[0] + ".." + goodParts[2], wantErr: authn.ErrMalformed},
		{name: "a Bearer prefix is malformed", token: "Bearer " + good, wantErr: authn.ErrMalformed},
		{name: "base64 padding is malformed", token: goodParts[0] + "=." + goodParts[1] + "." + goodParts[2], wantErr: authn.ErrMalformed},
		{name: "the standard base64 alphabet is malformed", token: strings.NewReplacer("-", "+", "_", "/").Replace(goodParts[0]) + "+/." + goodParts[1] + "." + goodParts[2], wantErr: authn.ErrMalformed},
		{name: "a newline inside a segment is malformed", token: goodParts[0][:4] + "\n" + goodParts[0][4:] + "." + goodParts[1] + "." + goodParts[2], wantErr: authn.ErrMalformed},
		{name: "non-canonical base64 trailing bits are malformed", token: goodParts[0][:len(goodParts[0])-1] + nonCanonicalLast(goodParts[0]) + "." + goodParts[1] + "." + goodParts[2], wantErr: authn.ErrMalformed},
		{name: "a header that is not JSON is malformed", token: unsigned(`{"alg":"EdDSA",`, payload(), make([]byte, 64)), wantErr: authn.ErrMalformed},
		{name: "a header that is a JSON array is malformed", token: unsigned(`["EdDSA"]`, payload(), make([]byte, 64)), wantErr: authn.ErrMalformed},
		{name: "a header with trailing data is malformed", token: unsigned(goodHeader+`{}`, payload(), make([]byte, 64)), wantErr: authn.ErrMalformed},
		{name: "a header with a duplicate alg (EdDSA first) is malformed", token: unsigned(`{"alg":"EdDSA","alg":"none","kid":"`+testKID+`"}`, payload(), nil), wantErr: authn.ErrMalformed},
		{name: "a header with a duplicate alg (none first) is malformed", token: unsigned(`{"alg":"none","alg":"EdDSA","kid":"`+testKID+`"}`, payload(), nil), wantErr: authn.ErrMalformed},
		{name: "a header with an escaped duplicate alg is malformed", token: unsigned(`{"alg":"EdDSA","\u0061lg":"none","kid":"`+testKID+`"}`, payload(), nil), wantErr: authn.ErrMalformed},
		{name: "a header that is not UTF-8 is malformed", token: unsigned("{\"alg\":\"EdDSA\",\"kid\":\"\xff\"}", payload(), make([]byte, 64)), wantErr: authn.ErrMalformed},

		// Algorithm confusion, all rejected before any key lookup.
		{name: "alg none with an empty signature is rejected", token: unsigned(hdr(`"none"`), payload(), nil), wantErr: authn.ErrAlgorithm},
		{name: "alg None is rejected", token: unsigned(hdr(`"None"`), payload(), nil), wantErr: authn.ErrAlgorithm},
		{name: "alg NONE with a valid EdDSA signature is rejected", token: rawToken(priv, hdr(`"NONE"`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "alg HS256 with an HMAC keyed by the public key bytes is rejected", token: hs256(pub, hdr(`"HS256"`)), wantErr: authn.ErrAlgorithm},
		{name: "alg HS256 with an HMAC keyed by the base64url public key is rejected", token: hs256([]byte(enc.EncodeToString(pub)), hdr(`"HS256"`)), wantErr: authn.ErrAlgorithm},
		{name: "alg ES256 is rejected", token: rawToken(priv, hdr(`"ES256"`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "alg RS256 is rejected", token: rawToken(priv, hdr(`"RS256"`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "alg Ed25519 is rejected", token: rawToken(priv, hdr(`"Ed25519"`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "alg eddsa in lower case is rejected", token: rawToken(priv, hdr(`"eddsa"`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "an empty alg is rejected", token: rawToken(priv, hdr(`""`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "alg as an array is rejected", token: rawToken(priv, hdr(`["EdDSA"]`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "alg null is rejected", token: rawToken(priv, hdr(`null`), payload()), wantErr: authn.ErrAlgorithm},
		{name: "a missing alg is rejected", token: rawToken(priv, `{"kid":"`+testKID+`","typ":"JWT"}`, payload()), wantErr: authn.ErrAlgorithm},
		{name: "an upper-case ALG member does not count as alg", token: rawToken(priv, `{"ALG":"EdDSA","kid":"`+testKID+`"}`, payload()), wantErr: authn.ErrAlgorithm},

		// Other header parameters.
		{name: "a crit header is rejected", token: rawToken(priv, `{"alg":"EdDSA","kid":"`+testKID+`","crit":["exp"],"exp":1}`, payload()), wantErr: authn.ErrUnsupportedHeader},
		{name: "an embedded jwk header is rejected", token: rawToken(otherPriv, `{"alg":"EdDSA","kid":"`+testKID+`","jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"}}`, payload()), wantErr: authn.ErrUnsupportedHeader},
		{name: "a jku header is rejected", token: rawToken(priv, `{"alg":"EdDSA","kid":"`+testKID+`","jku":"https://evil.test/jwks"}`, payload()), wantErr: authn.ErrUnsupportedHeader},
		{name: "an unencoded-payload b64 header is rejected", token: rawToken(priv, `{"alg":"EdDSA","kid":"`+testKID+`","b64":false}`, payload()), wantErr: authn.ErrUnsupportedHeader},
		{name: "a typ other than JWT is rejected", token: rawToken(priv, `{"alg":"EdDSA","kid":"`+testKID+`","typ":"dpop+jwt"}`, payload()), wantErr: authn.ErrUnsupportedHeader},
		{name: "a missing kid is rejected", token: rawToken(priv, `{"alg":"EdDSA","typ":"JWT"}`, payload()), wantErr: authn.ErrMissingKeyID},
		{name: "an empty kid is rejected", token: rawToken(priv, `{"alg":"EdDSA","kid":"","typ":"JWT"}`, payload()), wantErr: authn.ErrMissingKeyID},
		{name: "a kid that is a number is malformed", token: rawToken(priv, `{"alg":"EdDSA","kid":1,"typ":"JWT"}`, payload()), wantErr: authn.ErrMalformed},
		{name: "an unknown kid is rejected", token: mustSign(t, priv, "key-unknown", validClaims()), wantErr: authn.ErrUnknownKey},

		// Signature.
		{name: "a token signed by a different key under the same kid is rejected", token: strings.Join(evil, "."), wantErr: authn.ErrSignature},
		{name: "a swapped payload keeping the old signature is rejected", token: goodParts[0] + "." + evil[1] + "." + goodParts[2], wantErr: authn.ErrSignature},
		{name: "a tampered payload keeping the signature is rejected", token: goodParts[0] + "." + enc.EncodeToString([]byte(payload("sub", `"cli_victim"`))) + "." + goodParts[2], wantErr: authn.ErrSignature},
		{name: "a re-encoded header keeping the signature is rejected", token: enc.EncodeToString([]byte(`{"alg":"EdDSA", "kid":"`+testKID+`","typ":"JWT"}`)) + "." + goodParts[1] + "." + goodParts[2], wantErr: authn.ErrSignature},
		{name: "an EdDSA token with an empty signature is rejected", token: goodParts[0] + "." + goodParts[1] + ".", wantErr: authn.ErrSignature},
		{name: "a truncated signature is rejected", token: good[:len(good)-3], wantErr: authn.ErrSignature},
		{name: "an all-zero signature is rejected", token: unsigned(goodHeader, payload(), make([]byte, 64)), wantErr: authn.ErrSignature},

		// Claims (all validly signed).
		{name: "claims that are not JSON are malformed", token: rawToken(priv, goodHeader, `not json`), wantErr: authn.ErrMalformed},
		{name: "claims with a duplicate sub are malformed", token: rawToken(priv, goodHeader, strings.TrimSuffix(payload(), "}")+`,"sub":"cli_victim"}`), wantErr: authn.ErrMalformed},
		{name: "an exp that is a string is malformed", token: rawToken(priv, goodHeader, payload("exp", `"1800000300"`)), wantErr: authn.ErrMalformed},
		{name: "an exp that is null is malformed", token: rawToken(priv, goodHeader, payload("exp", `null`)), wantErr: authn.ErrMalformed},
		{name: "a negative exp is malformed", token: rawToken(priv, goodHeader, payload("exp", `-1`)), wantErr: authn.ErrMalformed},
		{name: "an absurdly large exp is malformed", token: rawToken(priv, goodHeader, payload("exp", `1e300`)), wantErr: authn.ErrMalformed},
		{name: "an aud array with a non-string is malformed", token: rawToken(priv, goodHeader, payload("aud", `["`+testAudience+`",1]`)), wantErr: authn.ErrMalformed},
		{name: "a missing exp is rejected", token: rawToken(priv, goodHeader, payload("exp", "")), wantErr: authn.ErrMissingClaim},
		{name: "an expired token is rejected", token: rawToken(priv, goodHeader, payload("exp", unix(testNow.Add(-31*time.Second)))), wantErr: authn.ErrExpired},
		{name: "a token expiring exactly at now minus leeway is rejected", token: rawToken(priv, goodHeader, payload("exp", unix(testNow.Add(-30*time.Second)))), wantErr: authn.ErrExpired},
		{name: "a not-yet-valid token is rejected", token: rawToken(priv, goodHeader, payload("nbf", unix(testNow.Add(31*time.Second)))), wantErr: authn.ErrNotYetValid},
		{name: "a token issued far in the future is rejected", token: rawToken(priv, goodHeader, payload("iat", unix(testNow.Add(time.Hour)), "exp", unix(testNow.Add(2*time.Hour)))), wantErr: authn.ErrIssuedInFuture},
		{name: "a wrong issuer is rejected", token: rawToken(priv, goodHeader, payload("iss", `"https://evil.test"`)), wantErr: authn.ErrIssuer},
		{name: "a missing issuer is rejected", token: rawToken(priv, goodHeader, payload("iss", "")), wantErr: authn.ErrIssuer},
		{name: "a wrong audience is rejected", token: rawToken(priv, goodHeader, payload("aud", `"someone-else"`)), wantErr: authn.ErrAudience},
		{name: "an audience array without ours is rejected", token: rawToken(priv, goodHeader, payload("aud", `["a","b"]`)), wantErr: authn.ErrAudience},
		{name: "an empty audience array is rejected", token: rawToken(priv, goodHeader, payload("aud", `[]`)), wantErr: authn.ErrAudience},
		{name: "a missing audience is rejected", token: rawToken(priv, goodHeader, payload("aud", "")), wantErr: authn.ErrAudience},
		{name: "a missing sub is rejected", token: rawToken(priv, goodHeader, payload("sub", "")), wantErr: authn.ErrMissingClaim},
		{name: "an empty sub is rejected", token: rawToken(priv, goodHeader, payload("sub", `""`)), wantErr: authn.ErrMissingClaim},
		{name: "a missing jti is rejected", token: rawToken(priv, goodHeader, payload("jti", "")), wantErr: authn.ErrMissingClaim},

		// Size.
		{name: "a validly signed token longer than 8 KiB is rejected", token: rawToken(priv, goodHeader, payload("pad", fmt.Sprintf("%q", strings.Repeat("a", authn.MaxTokenSize)))), wantErr: authn.ErrTokenTooLarge},
		{name: "8 KiB of garbage is rejected by size first", token: strings.Repeat(".", authn.MaxTokenSize+1), wantErr: authn.ErrTokenTooLarge},
	}

	v := newTestVerifier(keys)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tt.wantSub, got.Subject)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorIs(t, err, authn.ErrInvalidToken)
			require.Zero(t, got)
		})
	}
}

// nonCanonicalLast returns the last character of s with its unused low bits
// set, so that it decodes to the same bytes under a lax decoder.
func nonCanonicalLast(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	switch len(s) % 4 {
	case 2:
		return string(alphabet[last|0x0f])
	case 3:
		return string(alphabet[last|0x03])
	}
	panic("segment length has no unused bits")
}

func TestVerifyChecksAlgorithmBeforeLookingUpKeys(t *testing.T) {
	pub, _ := newKey(1)
	v := newTestVerifier(noLookups{t})
	for _, alg := range []string{"none", "None", "HS256", "ES256", "RS256", "PS256", ""} {
		t.Run("alg "+alg+" never reaches the key source", func(t *testing.T) {
			tok := unsigned(`{"alg":"`+alg+`","kid":"`+testKID+`"}`, payload(), pub)
			_, err := v.Verify(context.Background(), tok)
			require.ErrorIs(t, err, authn.ErrAlgorithm)
		})
	}
}

type noLookups struct{ t *testing.T }

func (k noLookups) Key(context.Context, string) (ed25519.PublicKey, error) {
	k.t.Error("KeySource.Key called")
	return nil, errors.New("unexpected lookup")
}

func TestVerifyLetsKeySourceFailuresThroughWithoutCallingThemInvalid(t *testing.T) {
	_, priv := newKey(1)
	v := newTestVerifier(failingKeys{})
	_, err := v.Verify(context.Background(), mustSign(t, priv, testKID, validClaims()))
	require.ErrorIs(t, err, errBackend)
	require.NotErrorIs(t, err, authn.ErrInvalidToken)
}

var errBackend = errors.New("backend down")

type failingKeys struct{}

func (failingKeys) Key(context.Context, string) (ed25519.PublicKey, error) { return nil, errBackend }

func TestVerifyRejectsWrongSizedKeysFromTheKeySource(t *testing.T) {
	pub, priv := newKey(1)
	v := newTestVerifier(authn.StaticKeys{testKID: pub[:31]})
	_, err := v.Verify(context.Background(), mustSign(t, priv, testKID, validClaims()))
	require.Error(t, err)
}

func TestVerifyAcceptsTheLargestTokenThatFits(t *testing.T) {
	pub, priv := newKey(1)
	v := newTestVerifier(authn.StaticKeys{testKID: pub})
	var tok string
	for n := 5000; ; n++ {
		next := rawToken(priv, goodHeader, payload("pad", fmt.Sprintf("%q", strings.Repeat("a", n))))
		if len(next) > authn.MaxTokenSize {
			break
		}
		tok = next
	}
	require.LessOrEqual(t, len(tok), authn.MaxTokenSize)
	require.Greater(t, len(tok), authn.MaxTokenSize-3)
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
}

func TestVerifierOptions(t *testing.T) {
	pub, priv := newKey(1)
	keys := authn.StaticKeys{testKID: pub}
	expiredBy := func(d time.Duration) string {
		return rawToken(priv, goodHeader, payload("exp", unix(testNow.Add(-d))))
	}
	clock := authn.WithClock(func() time.Time { return testNow })

	tests := []struct {
		name    string
		opts    []authn.VerifierOption
		token   string
		wantErr error
	}{
		{name: "zero leeway rejects a token expired one second ago", opts: []authn.VerifierOption{clock, authn.WithLeeway(0)}, token: expiredBy(time.Second), wantErr: authn.ErrExpired},
		{name: "negative leeway counts as zero", opts: []authn.VerifierOption{clock, authn.WithLeeway(-time.Hour)}, token: expiredBy(time.Second), wantErr: authn.ErrExpired},
		{name: "a two-minute leeway accepts a token expired one minute ago", opts: []authn.VerifierOption{clock, authn.WithLeeway(2 * time.Minute)}, token: expiredBy(time.Minute)},
		{name: "without WithClock the real clock rejects a token that expired in 2001", opts: nil, token: rawToken(priv, goodHeader, payload("exp", "1000000000", "nbf", "", "iat", "")), wantErr: authn.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authn.NewVerifier(keys, testIssuer, testAudience, tt.opts...).Verify(context.Background(), tt.token)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

func TestNewVerifierPanicsOnMisconfiguration(t *testing.T) {
	pub, _ := newKey(1)
	keys := authn.StaticKeys{testKID: pub}
	tests := []struct {
		name     string
		keys     authn.KeySource
		iss, aud string
	}{
		{name: "a nil key source panics", keys: nil, iss: testIssuer, aud: testAudience},
		{name: "an empty issuer panics", keys: keys, iss: "", aud: testAudience},
		{name: "an empty audience panics", keys: keys, iss: testIssuer, aud: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Panics(t, func() { authn.NewVerifier(tt.keys, tt.iss, tt.aud) })
		})
	}
}

func TestSentinelErrorsAreDistinctAndAllInvalidToken(t *testing.T) {
	sentinels := []error{
		authn.ErrTokenTooLarge, authn.ErrMalformed, authn.ErrAlgorithm, authn.ErrUnsupportedHeader,
		authn.ErrMissingKeyID, authn.ErrUnknownKey, authn.ErrSignature, authn.ErrMissingClaim,
		authn.ErrExpired, authn.ErrNotYetValid, authn.ErrIssuedInFuture, authn.ErrIssuer, authn.ErrAudience,
	}
	for i, a := range sentinels {
		require.ErrorIs(t, a, authn.ErrInvalidToken, a.Error())
		for j, b := range sentinels {
			require.Equal(t, i == j, errors.Is(a, b), "%v vs %v", a, b)
		}
	}
	require.NotErrorIs(t, authn.ErrKeysUnavailable, authn.ErrInvalidToken)
}
