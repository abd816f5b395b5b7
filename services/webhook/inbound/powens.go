package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Powens is Powens' scheme: BI-Signature is the standard Base64 of
// HMAC-SHA256(secret, "POST." + <path of the receiving URL> + "." + <BI-Signature-Date> + "." +
// <body>). The date is signed as an opaque string; when it reads as an HTTP date (RFC 1123, our
// guess of its format) it must be within Tolerance of now. Powens gives a webhook no id: the
// replay key is a digest of what was signed. Powens sends one event type per registered URL, with
// no type in the body; a body with a "connection" object that has a "state" is CONNECTION_SYNCED.
type Powens struct {
	// Key is the secret_key of the domain's hmac_signature webhook auth provider.
	Key []byte
	// Path is the path of the URL registered with Powens (no scheme, host or query).
	Path      string
	Tolerance time.Duration // zero: DefaultTolerance
}

func (p Powens) Verify(h Headers, body []byte, now time.Time) (Verified, error) {
	date, sig := h["bi-signature-date"], h["bi-signature"]
	if date == "" || sig == "" {
		return Verified{}, fmt.Errorf("%w: bi-signature-date and bi-signature are required", ErrSignature)
	}
	if len(p.Key) == 0 || p.Path == "" {
		return Verified{}, fmt.Errorf("%w: no key or path configured", ErrSignature)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: bi-signature is not Base64", ErrSignature)
	}
	m := hmac.New(sha256.New, p.Key)
	m.Write([]byte("POST." + p.Path + "." + date + "."))
	m.Write(body)
	want := m.Sum(nil)
	if !hmac.Equal(got, want) {
		return Verified{}, fmt.Errorf("%w: bi-signature does not match", ErrSignature)
	}
	var at time.Time
	if t, err := http.ParseTime(date); err == nil {
		tolerance := p.Tolerance
		if tolerance <= 0 {
			tolerance = DefaultTolerance
		}
		if d := now.Sub(t); d > tolerance || d < -tolerance {
			return Verified{}, fmt.Errorf("%w: signed %s from now, more than %s", ErrStale, d.Round(time.Second), tolerance)
		}
		at = t
	}
	digest := sha256.Sum256(append([]byte(date+"."), body...))
	v := Verified{ID: "powens_" + hex.EncodeToString(digest[:16]), SignedAt: at}
	var shape struct {
		Connection map[string]json.RawMessage `json:"connection"`
	}
	if json.Unmarshal(body, &shape) == nil && shape.Connection != nil {
		if _, ok := shape.Connection["state"]; ok {
			v.Type = "CONNECTION_SYNCED"
		}
	}
	return v, nil
}
