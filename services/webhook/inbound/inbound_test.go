package inbound_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/inbound"
)

func sign(key []byte, id, ts, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSandboxScheme(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"type":"login.done","connection":"x"}`
	good := inbound.Headers{"sandbox-webhook-id": "wh_1", "sandbox-timestamp": ts, "sandbox-signature": sign(key, "wh_1", ts, body)}
	s := inbound.Sandbox{Key: key}

	v, err := s.Verify(good, []byte(body), now)
	require.NoError(t, err)
	require.Equal(t, inbound.Verified{ID: "wh_1", Type: "login.done", SignedAt: now}, v)

	with := func(k, val string) inbound.Headers {
		h := inbound.Headers{}
		for a, b := range good {
			h[a] = b
		}
		h[k] = val
		return h
	}
	for name, tc := range map[string]struct {
		h    inbound.Headers
		body string
		now  time.Time
		want error
	}{
		"a changed body":                   {good, `{"type":"login.failed","connection":"x"}`, now, inbound.ErrSignature},
		"another id under the signature":   {with("sandbox-webhook-id", "wh_2"), body, now, inbound.ErrSignature},
		"another key":                      {with("sandbox-signature", sign([]byte("other"), "wh_1", ts, body)), body, now, inbound.ErrSignature},
		"no signature":                     {with("sandbox-signature", ""), body, now, inbound.ErrSignature},
		"a timestamp that is not a number": {with("sandbox-timestamp", "yesterday"), body, now, inbound.ErrSignature},
		"signed six minutes ago":           {good, body, now.Add(6 * time.Minute), inbound.ErrStale},
		"signed six minutes ahead":         {good, body, now.Add(-6 * time.Minute), inbound.ErrStale},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Verify(tc.h, []byte(tc.body), tc.now)
			require.ErrorIs(t, err, tc.want)
		})
	}
}
