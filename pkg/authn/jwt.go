package authn

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTokenSize is the largest token, in bytes, that Verify accepts and Sign
// produces (8 KiB).
const MaxTokenSize = 8 << 10

// Algorithm is the only JWS "alg" value issued and accepted.
const Algorithm = "EdDSA"

// b64 is unpadded base64url that also rejects non-zero trailing bits, so each
// byte string has exactly one accepted encoding. It still skips CR/LF, which
// is why segments are checked with isBase64URL first.
var b64 = base64.RawURLEncoding.Strict()

// SigningKey is an Ed25519 private key and the key id published for it.
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// Sign returns the compact JWT for c, signed with k. The header is
// {"alg":"EdDSA","kid":k.ID,"typ":"JWT"}; all three segments are unpadded
// base64url. Sign does not check the claims for completeness; it fails on an
// empty or non-UTF-8 key id, a private key of the wrong size, claims that
// cannot be encoded (see Claims.MarshalJSON), or a result larger than
// MaxTokenSize.
func Sign(k SigningKey, c Claims) (string, error) {
	if k.ID == "" || !utf8.ValidString(k.ID) {
		return "", errors.New("authn: Sign: key ID must be non-empty valid UTF-8")
	}
	if len(k.Private) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("authn: Sign: Ed25519 private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(k.Private))
	}
	hdr, err := json.Marshal(header{Alg: Algorithm, Kid: k.ID, Typ: "JWT"})
	if err != nil {
		return "", fmt.Errorf("authn: Sign: %w", err)
	}
	payload, err := c.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("authn: Sign: %w", err)
	}
	signingInput := b64.EncodeToString(hdr) + "." + b64.EncodeToString(payload)
	token := signingInput + "." + b64.EncodeToString(ed25519.Sign(k.Private, []byte(signingInput)))
	if len(token) > MaxTokenSize {
		return "", fmt.Errorf("authn: Sign: %w: %d bytes (max %d)", ErrTokenTooLarge, len(token), MaxTokenSize)
	}
	return token, nil
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// splitToken splits a compact JWS into its three segments.
func splitToken(token string) (hdr, payload, sig string, ok bool) {
	if strings.Count(token, ".") != 2 {
		return "", "", "", false
	}
	hdr, rest, _ := strings.Cut(token, ".")
	payload, sig, _ = strings.Cut(rest, ".")
	return hdr, payload, sig, true
}
