// Package secretbox encrypts secrets at rest with AES-256-GCM. Every sealed value names the key that
// sealed it, so keys can rotate: new values use the primary key, old ones still open with theirs.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Box seals and opens values with a set of keys.
type Box struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// ErrOpen is returned for a value that does not open: unknown key, tampered, or the wrong context.
var ErrOpen = errors.New("secretbox: cannot open sealed value")

// Parse reads keys as "id:base64key[,id:base64key...]" (32-byte keys, standard base64). The first is
// the primary key.
func Parse(spec string) (*Box, error) {
	b := &Box{aeads: map[string]cipher.AEAD{}}
	for i, item := range strings.Split(spec, ",") {
		id, enc, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || id == "" || len(id) > 32 {
			return nil, fmt.Errorf("secretbox: key %d: want id:base64key", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("secretbox: key %q: want 32 bytes, base64", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %q: %w", id, err)
		}
		if _, dup := b.aeads[id]; dup {
			return nil, fmt.Errorf("secretbox: key %q given twice", id)
		}
		b.aeads[id] = aead
		if i == 0 {
			b.primary = id
		}
	}
	return b, nil
}

// NewKeySpec returns a fresh key spec with one random key, for development and tests.
func NewKeySpec(id string) string {
	return id + ":" + base64.StdEncoding.EncodeToString(randomKey())
}

// Seal encrypts plaintext. context is authenticated but not stored: pass what the value belongs to
// (a row id, a column), so a sealed value copied to another row does not open there.
func (b *Box) Seal(plaintext, context []byte) []byte {
	aead := b.aeads[b.primary]
	out := make([]byte, 0, 1+len(b.primary)+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, byte(len(b.primary)))
	out = append(out, b.primary...)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, context)
}

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed, context []byte) ([]byte, error) {
	if len(sealed) < 1 || len(sealed) < 1+int(sealed[0]) {
		return nil, ErrOpen
	}
	aead, ok := b.aeads[string(sealed[1:1+sealed[0]])]
	rest := sealed[1+sealed[0]:]
	if !ok || len(rest) < aead.NonceSize() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], context)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

func randomKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}
