package authn

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
)

// JWK is an Ed25519 public key in JSON Web Key form (RFC 8037).
type JWK struct {
	Kty string `json:"kty"`           // "OKP"
	Crv string `json:"crv"`           // "Ed25519"
	X   string `json:"x"`             // base64url (no padding) of the 32-byte public key
	Kid string `json:"kid"`           // key id, matched against the token header's kid
	Use string `json:"use,omitempty"` // "sig"
	Alg string `json:"alg,omitempty"` // "EdDSA"
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK returns the JWK publishing pub under kid.
func PublicJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(pub), Kid: kid, Use: "sig", Alg: Algorithm}
}

// KeySource returns the public key for a kid. Implementations return an error
// wrapping ErrUnknownKey when the kid is not known.
type KeySource interface {
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// StaticKeys is a fixed KeySource, mainly for tests.
type StaticKeys map[string]ed25519.PublicKey

// Key implements KeySource.
func (s StaticKeys) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

// usableKeys extracts the Ed25519 verification keys from set. It skips JWKs
// that are not kty OKP / crv Ed25519, whose alg is neither empty nor EdDSA,
// whose use is neither empty nor sig, that have no kid, or whose x is not the
// canonical unpadded base64url of exactly 32 bytes. A kid that appears with
// two different keys is ambiguous and dropped entirely. A set with no usable
// key is an error (the caller keeps its previous set).
func usableKeys(set JWKS) (map[string]ed25519.PublicKey, error) {
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	conflicting := make(map[string]bool)
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Alg != "" && k.Alg != Algorithm) || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		if !isBase64URL(k.X) {
			continue
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		pub := ed25519.PublicKey(x)
		if prev, ok := keys[k.Kid]; ok && !prev.Equal(pub) {
			conflicting[k.Kid] = true
		}
		keys[k.Kid] = pub
	}
	for kid := range conflicting {
		delete(keys, kid)
	}
	if len(keys) == 0 {
		return nil, errors.New("authn: JWKS contains no usable Ed25519 keys")
	}
	return keys, nil
}
