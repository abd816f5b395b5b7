package authn

import "errors"

// tokenError is the type of the sentinels that describe a bad token. Each
// sentinel is distinct, and every one of them also matches ErrInvalidToken.
type tokenError struct{ msg string }

func (e *tokenError) Error() string { return e.msg }

// Is reports whether target is ErrInvalidToken, so that
// errors.Is(ErrExpired, ErrInvalidToken) holds while
// errors.Is(ErrExpired, ErrSignature) does not.
func (e *tokenError) Is(target error) bool { return target == ErrInvalidToken }

// ErrInvalidToken matches every error that means "this token is not
// acceptable" (all the sentinels below except ErrKeysUnavailable). Middleware
// can map it to 401 Unauthenticated and everything else to 503/500.
var ErrInvalidToken = errors.New("authn: invalid token")

// Sentinel errors returned (wrapped) by Verifier.Verify. Use errors.Is.
var (
	// ErrTokenTooLarge: the token is longer than MaxTokenSize bytes.
	ErrTokenTooLarge error = &tokenError{"authn: token too large"}
	// ErrMalformed: not three unpadded base64url segments, invalid or
	// non-canonical base64url, header or claims that are not a JSON object,
	// duplicate JSON members, invalid UTF-8, or a claim of the wrong type.
	ErrMalformed error = &tokenError{"authn: malformed token"}
	// ErrAlgorithm: the header "alg" is missing or is anything other than
	// exactly "EdDSA". Checked before any key lookup.
	ErrAlgorithm error = &tokenError{"authn: unsupported algorithm"}
	// ErrUnsupportedHeader: the header carries a parameter other than alg,
	// kid and typ (notably "crit", but also jku, jwk, x5u, x5c, cty, b64, ...),
	// or a typ other than "JWT".
	ErrUnsupportedHeader error = &tokenError{"authn: unsupported header parameter"}
	// ErrMissingKeyID: the header has no (or an empty) "kid".
	ErrMissingKeyID error = &tokenError{"authn: missing key id"}
	// ErrUnknownKey: no public key is known for the token's kid, even after
	// the (rate-limited) refetch of the key set.
	ErrUnknownKey error = &tokenError{"authn: unknown key id"}
	// ErrSignature: the signature does not verify (wrong length, wrong key,
	// tampered header or payload).
	ErrSignature error = &tokenError{"authn: invalid signature"}
	// ErrMissingClaim: a required claim (exp, sub or jti) is absent or empty.
	ErrMissingClaim error = &tokenError{"authn: missing required claim"}
	// ErrExpired: now >= exp + leeway.
	ErrExpired error = &tokenError{"authn: token expired"}
	// ErrNotYetValid: now + leeway < nbf.
	ErrNotYetValid error = &tokenError{"authn: token not yet valid"}
	// ErrIssuedInFuture: now + leeway < iat.
	ErrIssuedInFuture error = &tokenError{"authn: token issued in the future"}
	// ErrIssuer: iss is not the verifier's issuer.
	ErrIssuer error = &tokenError{"authn: wrong issuer"}
	// ErrAudience: aud does not contain the verifier's audience.
	ErrAudience error = &tokenError{"authn: wrong audience"}
)

// ErrKeysUnavailable is returned by Cache.Key when no key set has ever been
// fetched successfully. It does NOT match ErrInvalidToken: the token may be
// fine, the verifier just cannot check it yet.
var ErrKeysUnavailable = errors.New("authn: key set unavailable")
