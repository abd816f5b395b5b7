package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Guiabolso is Guiabolso Connect's scheme (wallet-monitoring webhooks): the header
// X-GBC-Signature-256 (documented by its CGI name HTTP_X_GBC_SIGNATURE_256, taken too) holds
// "t=<unix milliseconds>,v1=<signature>", the signature being HMAC-SHA256(key, t + "." + body)
// rendered as Guiabolso's Kotlin sample does, Java's BigInteger(mac).toString(16) (signed, no
// leading zeros, "-" for a first bit set); the canonical 64-character hex is accepted too. The
// event's id and name are the envelope's "id" and "name".
type Guiabolso struct {
	Key       []byte
	Tolerance time.Duration // zero: DefaultTolerance
}

// guiabolsoHeaders are where the signature may be, by lower-case name.
var guiabolsoHeaders = []string{"x-gbc-signature-256", "http_x_gbc_signature_256"}

func (g Guiabolso) Verify(h Headers, body []byte, now time.Time) (Verified, error) {
	var value string
	for _, name := range guiabolsoHeaders {
		if value = strings.TrimSpace(h[name]); value != "" {
			break
		}
	}
	if value == "" {
		return Verified{}, fmt.Errorf("%w: x-gbc-signature-256 is required", ErrSignature)
	}
	ts, sigs, err := parseGuiabolsoHeader(value)
	if err != nil {
		return Verified{}, err
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ms < 0 || strconv.FormatInt(ms, 10) != ts {
		return Verified{}, fmt.Errorf("%w: t is not unix milliseconds", ErrSignature)
	}
	m := hmac.New(sha256.New, g.Key)
	m.Write([]byte(ts + "."))
	m.Write(body)
	mac := m.Sum(nil)
	java, canonical := []byte(javaHex(mac)), []byte(hex.EncodeToString(mac))
	match := false
	for _, sig := range sigs {
		// Both comparisons run, so the time taken says nothing of which form came close.
		a := hmac.Equal([]byte(sig), java)
		b := hmac.Equal([]byte(sig), canonical)
		match = match || a || b
	}
	if !match {
		return Verified{}, fmt.Errorf("%w: x-gbc-signature-256 does not match", ErrSignature)
	}
	tolerance := g.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	at := time.UnixMilli(ms)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return Verified{}, fmt.Errorf("%w: signed %s from now, more than %s", ErrStale, d.Round(time.Millisecond), tolerance)
	}
	var ev struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &ev) // a body that is not an envelope has no id: the digest stands in
	id := ev.ID
	if id == "" {
		id = "sha256:" + hex.EncodeToString(mac)
	}
	return Verified{ID: id, Type: ev.Name, SignedAt: at}, nil
}

// parseGuiabolsoHeader reads "t=<ms>,v1=<sig>[,v1=<sig>...]" in any order; other versions are
// ignored.
func parseGuiabolsoHeader(v string) (ts string, sigs []string, err error) {
	for part := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if ts != "" {
				return "", nil, fmt.Errorf("%w: t appears twice", ErrSignature)
			}
			ts = val
		case "v1":
			if len(sigs) < 4 {
				sigs = append(sigs, val)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: the header has no t or no v1", ErrSignature)
	}
	return ts, sigs, nil
}

// javaHex is Java's new BigInteger(mac).toString(16).
func javaHex(mac []byte) string {
	n := new(big.Int).SetBytes(mac)
	if len(mac) > 0 && mac[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(mac))))
	}
	return n.Text(16)
}
