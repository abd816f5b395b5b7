// Package inbound verifies upstream providers' webhooks. Each provider signs in its own way; a
// Scheme is one provider's way, and the webhook service looks schemes up by provider name.
package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors a Scheme returns, wrapped with detail.
var (
	// ErrSignature: the signature is missing, malformed or does not match.
	ErrSignature = errors.New("inbound: invalid signature")
	// ErrStale: the signed timestamp is too far from now, so the request may be a replay.
	ErrStale = errors.New("inbound: stale or future timestamp")
)

// Headers are a request's headers by lower-case name.
type Headers map[string]string

// Verified is what a scheme learnt from a webhook it accepted.
type Verified struct {
	// ID is the provider's id for this webhook, or a digest of what it signed when it has none:
	// the key a replay is recognised by.
	ID string
	// Type is the provider's event type, when the scheme can read it.
	Type string
	// SignedAt is the signed timestamp.
	SignedAt time.Time
}

// Scheme verifies one provider's webhooks.
type Scheme interface {
	Verify(h Headers, body []byte, now time.Time) (Verified, error)
}

// DefaultTolerance is how far from now a signed timestamp may be.
const DefaultTolerance = 5 * time.Minute

// Sandbox is the Sandbox provider's scheme, the model the real ones follow:
// sandbox-timestamp: <unix seconds>, sandbox-webhook-id: <id>,
// sandbox-signature: <lowercase hex HMAC-SHA256(key, "<id>.<timestamp>.<body>")>; the event type
// is the body's "type", so that it is signed too.
type Sandbox struct {
	Key       []byte
	Tolerance time.Duration // zero: DefaultTolerance
}

func (s Sandbox) Verify(h Headers, body []byte, now time.Time) (Verified, error) {
	id, ts, sig := h["sandbox-webhook-id"], h["sandbox-timestamp"], h["sandbox-signature"]
	if id == "" || ts == "" || sig == "" {
		return Verified{}, fmt.Errorf("%w: sandbox-webhook-id, sandbox-timestamp and sandbox-signature are required", ErrSignature)
	}
	at, err := checkTimestamp(ts, now, s.Tolerance)
	if err != nil {
		return Verified{}, err
	}
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return Verified{}, fmt.Errorf("%w: sandbox-signature does not match", ErrSignature)
	}
	var typed struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &typed) // a body without a type has none
	return Verified{ID: id, Type: typed.Type, SignedAt: at}, nil
}

// checkTimestamp parses unix seconds and refuses them outside tolerance of now.
func checkTimestamp(ts string, now time.Time, tolerance time.Duration) (time.Time, error) {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: the timestamp is not unix seconds", ErrSignature)
	}
	at := time.Unix(n, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return time.Time{}, fmt.Errorf("%w: signed %s from now, more than %s", ErrStale, d.Round(time.Second), tolerance)
	}
	return at, nil
}
