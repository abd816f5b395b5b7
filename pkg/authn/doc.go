// Package authn issues and verifies Puente access tokens.
//
// Access tokens are compact JWTs (RFC 7519) signed with Ed25519 ("alg":
// "EdDSA", RFC 8037). The authtoken service signs them with [Sign] and
// publishes its public keys as a JWKS; every other service verifies tokens
// locally with a [Verifier] backed by a [Cache] of that JWKS.
//
// The verifier is deliberately small and strict. It accepts exactly one
// algorithm, exactly the header parameters alg, kid and typ, canonical
// unpadded base64url, and JSON objects without duplicate members. Every
// rejection wraps one of the exported sentinel errors (ErrMalformed,
// ErrAlgorithm, ErrSignature, ErrExpired, ...) so callers can tell the
// cases apart with [errors.Is]; all of them also match [ErrInvalidToken].
// Errors that do not match ErrInvalidToken (for example [ErrKeysUnavailable]
// or a cancelled context) mean the token could not be checked, not that it
// is bad.
package authn
