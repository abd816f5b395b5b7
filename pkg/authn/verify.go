package authn

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultLeeway is the clock skew tolerated by default when checking exp, nbf
// and iat.
const DefaultLeeway = 30 * time.Second

// Verifier checks Puente access tokens against a KeySource, an expected
// issuer and an expected audience. It is safe for concurrent use.
type Verifier struct {
	keys     KeySource
	issuer   string
	audience string
	now      func() time.Time
	leeway   time.Duration
}

// NewVerifier returns a Verifier that accepts tokens signed by a key from
// keys, issued by issuer, for audience. It panics if keys is nil or issuer or
// audience is empty: those are configuration bugs, and failing at start-up
// beats rejecting (or, worse, accepting) every token later.
func NewVerifier(keys KeySource, issuer string, audience string, opts ...VerifierOption) *Verifier {
	switch {
	case keys == nil:
		panic("authn: NewVerifier: nil KeySource")
	case issuer == "":
		panic("authn: NewVerifier: empty issuer")
	case audience == "":
		panic("authn: NewVerifier: empty audience")
	}
	v := &Verifier{keys: keys, issuer: issuer, audience: audience, now: time.Now, leeway: DefaultLeeway}
	for _, o := range opts {
		if o != nil {
			o.applyVerifier(v)
		}
	}
	return v
}

// Verify parses and checks token and returns its claims. Checks, in order:
//
//  1. at most MaxTokenSize bytes (ErrTokenTooLarge);
//  2. exactly three segments of unpadded, canonical base64url, the first two
//     non-empty (ErrMalformed);
//  3. the header is one JSON object without duplicate members (ErrMalformed);
//  4. alg is exactly "EdDSA" (ErrAlgorithm), before any key lookup;
//  5. no header parameter besides alg, kid, typ, in particular no crit, and
//     typ, if present, is "JWT" (ErrUnsupportedHeader);
//  6. kid is a non-empty string (ErrMissingKeyID);
//  7. the key for kid is found (ErrUnknownKey, or the KeySource's error);
//  8. the Ed25519 signature over the first two segments verifies
//     (ErrSignature);
//  9. the claims are one JSON object without duplicates and with well-typed
//     known claims (ErrMalformed);
//  10. iss equals the issuer (ErrIssuer); aud contains the audience
//     (ErrAudience);
//  11. exp is present (ErrMissingClaim) and now < exp+leeway (ErrExpired);
//     now+leeway >= nbf (ErrNotYetValid) and iat (ErrIssuedInFuture) when
//     present;
//  12. sub and jti are non-empty (ErrMissingClaim).
//
// All token errors match ErrInvalidToken. Errors that do not (a KeySource
// failure such as ErrKeysUnavailable or a cancelled ctx) mean the token could
// not be checked. Verify does not interpret scp; authorization is up to the
// caller.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenSize {
		return Claims{}, fmt.Errorf("%w: %d bytes (max %d)", ErrTokenTooLarge, len(token), MaxTokenSize)
	}
	hdrB64, payloadB64, sigB64, ok := splitToken(token)
	if !ok {
		return Claims{}, fmt.Errorf("%w: want 3 dot-separated segments", ErrMalformed)
	}
	if hdrB64 == "" || payloadB64 == "" {
		return Claims{}, fmt.Errorf("%w: empty header or payload segment", ErrMalformed)
	}
	if !isBase64URL(hdrB64) || !isBase64URL(payloadB64) || !isBase64URL(sigB64) {
		return Claims{}, fmt.Errorf("%w: segment is not unpadded base64url", ErrMalformed)
	}

	kid, err := parseHeader(hdrB64)
	if err != nil {
		return Claims{}, err
	}

	sig, err := b64.DecodeString(sigB64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w: signature is %d bytes, want %d", ErrSignature, len(sig), ed25519.SignatureSize)
	}
	key, err := v.keys.Key(ctx, kid)
	if err != nil {
		return Claims{}, fmt.Errorf("authn: key lookup: %w", err)
	}
	if len(key) != ed25519.PublicKeySize {
		return Claims{}, fmt.Errorf("authn: KeySource returned a %d-byte key for kid %q", len(key), kid)
	}
	if !ed25519.Verify(key, []byte(token[:len(hdrB64)+1+len(payloadB64)]), sig) {
		return Claims{}, ErrSignature
	}

	// Only authenticated bytes are parsed from here on.
	payload, err := b64.DecodeString(payloadB64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	var c Claims
	if err := c.UnmarshalJSON(payload); err != nil {
		return Claims{}, err
	}
	if err := v.validate(&c); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// parseHeader checks the JOSE header and returns its kid.
func parseHeader(hdrB64 string) (kid string, err error) {
	raw, err := b64.DecodeString(hdrB64)
	if err != nil {
		return "", fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	members, err := parseObject(raw)
	if err != nil {
		return "", fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	params := make(map[string][]byte, len(members))
	for _, m := range members {
		params[m.name] = m.value
	}

	alg, ok := params["alg"]
	if !ok {
		return "", fmt.Errorf("%w: no alg", ErrAlgorithm)
	}
	if s, err := jsonString(alg); err != nil || s != Algorithm {
		return "", fmt.Errorf("%w: alg %q", ErrAlgorithm, truncate(string(alg)))
	}

	for _, m := range members {
		switch m.name {
		case "alg", "kid":
		case "typ":
			if s, err := jsonString(m.value); err != nil || !strings.EqualFold(s, "JWT") {
				return "", fmt.Errorf("%w: typ %q", ErrUnsupportedHeader, truncate(string(m.value)))
			}
		default: // crit, jku, jwk, x5u, x5c, x5t, cty, b64, zip, ...
			return "", fmt.Errorf("%w: %q", ErrUnsupportedHeader, truncate(m.name))
		}
	}

	rawKid, ok := params["kid"]
	if !ok {
		return "", ErrMissingKeyID
	}
	kid, err = jsonString(rawKid)
	if err != nil {
		return "", fmt.Errorf("%w: kid: %v", ErrMalformed, err)
	}
	if kid == "" {
		return "", ErrMissingKeyID
	}
	return kid, nil
}

func (v *Verifier) validate(c *Claims) error {
	if c.Issuer != v.issuer {
		return fmt.Errorf("%w: %q", ErrIssuer, truncate(c.Issuer))
	}
	if !slices.Contains(c.Audience, v.audience) {
		return fmt.Errorf("%w: token is not for %q", ErrAudience, v.audience)
	}
	now := v.now()
	if c.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return fmt.Errorf("%w: at %v", ErrExpired, c.ExpiresAt)
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return fmt.Errorf("%w: until %v", ErrNotYetValid, c.NotBefore)
	}
	if !c.IssuedAt.IsZero() && now.Add(v.leeway).Before(c.IssuedAt) {
		return fmt.Errorf("%w: at %v", ErrIssuedInFuture, c.IssuedAt)
	}
	if c.Subject == "" {
		return fmt.Errorf("%w: sub", ErrMissingClaim)
	}
	if c.ID == "" {
		return fmt.Errorf("%w: jti", ErrMissingClaim)
	}
	return nil
}

// truncate keeps attacker-controlled text in error messages short.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
