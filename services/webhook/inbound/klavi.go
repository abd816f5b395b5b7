package inbound

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Klavi is Klavi's scheme: X-Klavi-Signature is the lower-case hex HMAC-SHA256 of the body with
// the partner's secretKey; X-Klavi-Timestamp (unix seconds) is not signed, and is only checked when
// Tolerance is set. Klavi's own example signs JSON.stringify of the parsed body, so a body whose
// raw bytes do not verify is tried once more as compact JSON (same key order, no spaces).
//
// The body is a JSON array of API events, or one report (an object). The replay key is the
// events' eventId (joined when there are several), or the report's productReportId; the type is
// the first event's eventName, or "report".
type Klavi struct {
	Key       []byte
	Tolerance time.Duration // zero: the timestamp is not checked
}

// KlaviReport is the Type of a report webhook.
const KlaviReport = "report"

func (k Klavi) Verify(h Headers, body []byte, now time.Time) (Verified, error) {
	sig := strings.TrimSpace(h["x-klavi-signature"])
	if len(sig) != sha256.Size*2 {
		return Verified{}, fmt.Errorf("%w: x-klavi-signature is missing or not 64 hex digits", ErrSignature)
	}
	got, err := hex.DecodeString(sig)
	if err != nil || strings.ToLower(sig) != sig {
		return Verified{}, fmt.Errorf("%w: x-klavi-signature is not lower-case hex", ErrSignature)
	}
	if len(k.Key) == 0 {
		return Verified{}, fmt.Errorf("%w: no key configured", ErrSignature)
	}
	var v Verified
	if ts := h["x-klavi-timestamp"]; k.Tolerance > 0 {
		if ts == "" {
			return Verified{}, fmt.Errorf("%w: x-klavi-timestamp is required", ErrSignature)
		}
		if v.SignedAt, err = checkTimestamp(ts, now, k.Tolerance); err != nil {
			return Verified{}, err
		}
	}
	if !hmac.Equal(got, k.mac(body)) {
		var compact bytes.Buffer
		if json.Compact(&compact, body) != nil || bytes.Equal(compact.Bytes(), body) || !hmac.Equal(got, k.mac(compact.Bytes())) {
			return Verified{}, fmt.Errorf("%w: x-klavi-signature does not match", ErrSignature)
		}
	}
	id, typ := klaviID(body)
	if id == "" {
		// Nothing names it: the signed bytes do, so an identical replay is still recognised.
		d := sha256.Sum256(body)
		id = "sha256:" + hex.EncodeToString(d[:])
	}
	v.ID, v.Type = id, typ
	return v, nil
}

func (k Klavi) mac(b []byte) []byte {
	m := hmac.New(sha256.New, k.Key)
	m.Write(b)
	return m.Sum(nil)
}

// klaviID reads the replay key and the type of a verified body.
func klaviID(body []byte) (id, typ string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var r struct {
			ProductReportID string `json:"productReportId"`
			EventID         string `json:"eventId"`
			EventName       string `json:"eventName"`
		}
		_ = json.Unmarshal(trimmed, &r)
		if r.EventID != "" { // a single event outside its array
			return r.EventID, r.EventName
		}
		return r.ProductReportID, KlaviReport
	}
	var events []struct {
		EventID   string `json:"eventId"`
		EventName string `json:"eventName"`
	}
	if json.Unmarshal(trimmed, &events) != nil || len(events) == 0 {
		return "", ""
	}
	ids := make([]string, 0, len(events))
	for _, e := range events {
		if e.EventID == "" {
			return "", events[0].EventName
		}
		ids = append(ids, e.EventID)
	}
	return strings.Join(ids, ","), events[0].EventName
}
