// Package signature signs webhook deliveries and verifies them. Every delivery carries two
// signatures over the same body, so that any receiver can check it with the tools it already has:
//
//   - Puente-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(key, "<t>.<body>")>
//   - the Standard Webhooks headers webhook-id, webhook-timestamp and
//     webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<t>.<body>")>
//
// While an endpoint's secret rotates, both the old and the new secret sign: Puente-Signature carries
// two v1= entries and webhook-signature two space-separated v1,… entries, and a receiver holding
// either secret accepts the delivery.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names. http.Header canonicalizes them (webhook-id travels as Webhook-Id); header names
// are case-insensitive on the wire, so receivers that look for the lowercase form still find them.
const (
	HeaderPuenteSignature  = "Puente-Signature"
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// DefaultTolerance is how far a delivery's timestamp may be from the receiver's clock, the value the
// Standard Webhooks specification recommends. It bounds how long a captured delivery can be replayed.
const DefaultTolerance = 5 * time.Minute

const (
	secretPrefix = "whsec_"
	secretBytes  = 32
)

// Errors returned by Verify, wrapped with the header they concern; check them with errors.Is.
var (
	// ErrMalformed is returned when a signature header is missing or cannot be parsed.
	ErrMalformed = errors.New("signature header missing or malformed")
	// ErrMismatch is returned when no signature in a header matches the key and body.
	ErrMismatch = errors.New("no signature matches")
	// ErrTimestamp is returned when the signed timestamp is further from now than the tolerance.
	ErrTimestamp = errors.New("timestamp outside tolerance")
)

// NewSecret returns a fresh endpoint secret: "whsec_" followed by the standard base64 of 32 random
// bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("signature: new secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret returns the HMAC key of a secret made by NewSecret. Its errors never include the
// secret, so they are safe to log.
func ParseSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("signature: secret does not start with %q", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// The decoder's error is dropped: it quotes nothing today, but this message must never be
		// able to carry part of a secret into a log.
		return nil, errors.New("signature: secret is not standard base64 after the prefix")
	}
	if len(key) != secretBytes {
		return nil, fmt.Errorf("signature: secret decodes to %d bytes, want %d", len(key), secretBytes)
	}
	return key, nil
}

// Sign sets the signature headers of one delivery attempt, replacing any already there. eventID is
// the event's id, the same on every attempt, so receivers can deduplicate; t is the time of the
// attempt. Pass one key, or two during a rotation; each is the output of ParseSecret.
//
// Sign panics without a key or with an empty one: sending a delivery unsigned, or signed with a key
// anyone can guess, is a bug to find at once, not an error to handle.
func Sign(h http.Header, eventID string, t time.Time, body []byte, keys ...[]byte) {
	if len(keys) == 0 {
		panic("signature: Sign called without a key")
	}
	ts := strconv.FormatInt(t.Unix(), 10)
	puente := make([]string, 0, 1+len(keys))
	puente = append(puente, "t="+ts)
	standard := make([]string, 0, len(keys))
	for _, key := range keys {
		if len(key) == 0 {
			panic("signature: Sign called with an empty key")
		}
		puente = append(puente, "v1="+hex.EncodeToString(macPuente(key, ts, body)))
		standard = append(standard, "v1,"+base64.StdEncoding.EncodeToString(macStandard(key, eventID, ts, body)))
	}
	h.Set(HeaderPuenteSignature, strings.Join(puente, ","))
	h.Set(HeaderWebhookID, eventID)
	h.Set(HeaderWebhookTimestamp, ts)
	h.Set(HeaderWebhookSignature, strings.Join(standard, " "))
}

// Verify checks both signature schemes of a delivery against one key: each must carry a timestamp
// within tolerance of now and a signature made with key over body. Requiring both catches a sender
// or a proxy that breaks one of them, which receivers using only that scheme would see as failures.
func Verify(h http.Header, body []byte, key []byte, now time.Time, tolerance time.Duration) error {
	if err := verifyPuente(h, body, key, now, tolerance); err != nil {
		return fmt.Errorf("signature: %s: %w", HeaderPuenteSignature, err)
	}
	if err := verifyStandard(h, body, key, now, tolerance); err != nil {
		return fmt.Errorf("signature: %s: %w", HeaderWebhookSignature, err)
	}
	return nil
}

func verifyPuente(h http.Header, body, key []byte, now time.Time, tolerance time.Duration) error {
	value := h.Get(HeaderPuenteSignature)
	if value == "" {
		return fmt.Errorf("%w: header missing", ErrMalformed)
	}
	var ts string
	var sigs [][]byte
	for item := range strings.SplitSeq(value, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("%w: entry without '='", ErrMalformed)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one t=", ErrMalformed)
			}
			ts = v
		case "v1":
			// An entry that is not hex of the right length cannot match; skip it rather than refuse
			// the whole header, so one garbled entry does not hide a good one.
			if sig, err := hex.DecodeString(v); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
		// Other keys (a future v2) are ignored, so schemes can be added without breaking receivers.
	}
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return err
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrMalformed)
	}
	return anyMatch(sigs, macPuente(key, ts, body))
}

func verifyStandard(h http.Header, body, key []byte, now time.Time, tolerance time.Duration) error {
	id := h.Get(HeaderWebhookID)
	if id == "" {
		return fmt.Errorf("%w: %s missing", ErrMalformed, HeaderWebhookID)
	}
	ts := h.Get(HeaderWebhookTimestamp)
	if err := checkTimestamp(ts, now, tolerance); err != nil {
		return fmt.Errorf("%s: %w", HeaderWebhookTimestamp, err)
	}
	value := h.Get(HeaderWebhookSignature)
	if value == "" {
		return fmt.Errorf("%w: header missing", ErrMalformed)
	}
	var sigs [][]byte
	for item := range strings.FieldsSeq(value) {
		version, enc, ok := strings.Cut(item, ",")
		if !ok || version != "v1" {
			continue // v1a (asymmetric) and future versions are not ours to check
		}
		if sig, err := base64.StdEncoding.DecodeString(enc); err == nil && len(sig) == sha256.Size {
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrMalformed)
	}
	return anyMatch(sigs, macStandard(key, id, ts, body))
}

// checkTimestamp accepts unix seconds as plain decimal digits only: a sign or spaces would let two
// different strings, and so two different signed messages, stand for the same time.
func checkTimestamp(ts string, now time.Time, tolerance time.Duration) error {
	if ts == "" || len(ts) > 18 || strings.Trim(ts, "0123456789") != "" {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrMalformed, ts)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q: %w", ErrMalformed, ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now", ErrTimestamp, time.Unix(sec, 0).UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return nil
}

// anyMatch compares in constant time, so the time a refusal takes says nothing about how many
// leading bytes of a forged signature were right.
func anyMatch(sigs [][]byte, want []byte) error {
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrMismatch
}

func macPuente(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

func macStandard(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}
