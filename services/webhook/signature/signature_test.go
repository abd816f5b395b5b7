package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/signature"
)

// The test computes its expected values with its own HMAC code, so a bug shared by Sign and Verify
// (the wrong message layout, the secret string used as the key) cannot pass unnoticed.
func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// A fixed secret for known-answer tests: 32 bytes 0x00..0x1f.
func fixedSecret(tb testing.TB) (string, []byte) {
	tb.Helper()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	key, err := signature.ParseSecret(secret)
	require.NoError(tb, err)
	require.Equal(tb, raw, key, "the HMAC key is the decoded bytes, not the string")
	return secret, key
}

func newKey(tb testing.TB) []byte {
	tb.Helper()
	secret, err := signature.NewSecret()
	require.NoError(tb, err)
	key, err := signature.ParseSecret(secret)
	require.NoError(tb, err)
	return key
}

func TestNewSecretIsPrefixedBase64Of32RandomBytes(t *testing.T) {
	a, err := signature.NewSecret()
	require.NoError(t, err)
	b, err := signature.NewSecret()
	require.NoError(t, err)
	require.NotEqual(t, a, b)

	enc, ok := strings.CutPrefix(a, "whsec_")
	require.True(t, ok, "secret %q lacks the whsec_ prefix", a)
	raw, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(t, err)
	require.Len(t, raw, 32)

	key, err := signature.ParseSecret(a)
	require.NoError(t, err)
	require.Equal(t, raw, key)
}

func TestParseSecretRefusesMalformedSecretsWithoutQuotingThem(t *testing.T) {
	for _, tc := range []struct {
		name, secret, wantErr string
	}{
		{"an empty string", "", "does not start with"},
		{"a secret without the prefix", base64.StdEncoding.EncodeToString(make([]byte, 32)), "does not start with"},
		{"a secret with another prefix", "whsek_" + base64.StdEncoding.EncodeToString(make([]byte, 32)), "does not start with"},
		{"a secret in URL-safe base64", "whsec_" + strings.Repeat("-_", 21) + "A=", "not standard base64"},
		{"a secret without padding", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), "not standard base64"},
		{"a secret with a space inside", "whsec_AAAA AAAA", "not standard base64"},
		{"a secret of 24 bytes", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "decodes to 24 bytes, want 32"},
		{"a secret of 33 bytes", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 33)), "decodes to 33 bytes, want 32"},
		{"the prefix alone", "whsec_", "decodes to 0 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := signature.ParseSecret(tc.secret)
			require.Error(t, err)
			require.Nil(t, key)
			require.Contains(t, err.Error(), tc.wantErr)
			if enc := strings.TrimPrefix(tc.secret, "whsec_"); len(enc) >= 4 {
				require.NotContains(t, err.Error(), enc, "the error must not quote the secret")
			}
		})
	}
}

func TestSignProducesTheDocumentedHeaders(t *testing.T) {
	_, key := fixedSecret(t)
	body := []byte(`{"id":"evt_01J0000000000000000000000","type":"consent.authorised"}`)
	at := time.Unix(1700000000, 999_000_000) // sub-second part is dropped: timestamps are whole seconds

	h := http.Header{}
	signature.Sign(h, "evt_01J0000000000000000000000", at, body, key)

	wantHex := hex.EncodeToString(hmacSHA256(key, "1700000000."+string(body)))
	wantB64 := base64.StdEncoding.EncodeToString(hmacSHA256(key, "evt_01J0000000000000000000000.1700000000."+string(body)))
	require.Equal(t, "t=1700000000,v1="+wantHex, h.Get("puente-signature"))
	require.Equal(t, "evt_01J0000000000000000000000", h.Get("webhook-id"))
	require.Equal(t, "1700000000", h.Get("webhook-timestamp"))
	require.Equal(t, "v1,"+wantB64, h.Get("webhook-signature"))
	require.Equal(t, strings.ToLower(wantHex), wantHex, "hex is lowercase")
	require.Len(t, h, 4, "Sign sets exactly four headers")
}

// The Standard Webhooks specification publishes this vector; matching it means receivers can use
// any of that specification's libraries. Its secret is 24 bytes, shorter than ours, so the key is
// decoded here rather than by ParseSecret.
func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	key, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	signature.Sign(h, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body, key)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", h.Get("webhook-signature"))

	require.NoError(t, signature.Verify(h, body, key, time.Unix(1614265330, 0), time.Minute))
}

func TestSignReplacesHeadersOfAnEarlierAttempt(t *testing.T) {
	key := newKey(t)
	h := http.Header{}
	signature.Sign(h, "evt_1", time.Unix(1000, 0), []byte("a"), key)
	signature.Sign(h, "evt_1", time.Unix(2000, 0), []byte("a"), key)
	for _, name := range []string{"Puente-Signature", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
		require.Len(t, h.Values(name), 1, name)
	}
	require.Equal(t, "2000", h.Get("webhook-timestamp"))
	require.NoError(t, signature.Verify(h, []byte("a"), key, time.Unix(2000, 0), time.Minute))
}

func TestSignDuringRotationCarriesBothSignaturesAndEitherKeyVerifies(t *testing.T) {
	_, oldKey := fixedSecret(t)
	nextKey := newKey(t)
	body := []byte(`{"n":1}`)
	at := time.Unix(1700000000, 0)

	h := http.Header{}
	signature.Sign(h, "evt_2", at, body, nextKey, oldKey)

	require.Equal(t, "t=1700000000"+
		",v1="+hex.EncodeToString(hmacSHA256(nextKey, "1700000000."+string(body)))+
		",v1="+hex.EncodeToString(hmacSHA256(oldKey, "1700000000."+string(body))),
		h.Get("Puente-Signature"))
	require.Equal(t,
		"v1,"+base64.StdEncoding.EncodeToString(hmacSHA256(nextKey, "evt_2.1700000000."+string(body)))+
			" v1,"+base64.StdEncoding.EncodeToString(hmacSHA256(oldKey, "evt_2.1700000000."+string(body))),
		h.Get("Webhook-Signature"))

	require.NoError(t, signature.Verify(h, body, oldKey, at, time.Minute), "a receiver still on the old secret")
	require.NoError(t, signature.Verify(h, body, nextKey, at, time.Minute), "a receiver already on the new secret")
	require.ErrorIs(t, signature.Verify(h, body, newKey(t), at, time.Minute), signature.ErrMismatch, "a third key")
}

func TestSignPanicsWithoutAUsableKey(t *testing.T) {
	require.PanicsWithValue(t, "signature: Sign called without a key", func() {
		signature.Sign(http.Header{}, "evt_1", time.Unix(1, 0), nil)
	})
	require.PanicsWithValue(t, "signature: Sign called with an empty key", func() {
		signature.Sign(http.Header{}, "evt_1", time.Unix(1, 0), nil, newKey(t), nil)
	})
}

func TestVerifyAcceptsTimestampsWithinToleranceEitherWay(t *testing.T) {
	key := newKey(t)
	at := time.Unix(1700000000, 0)
	h := http.Header{}
	signature.Sign(h, "evt_3", at, []byte("x"), key)
	for _, now := range []time.Time{at, at.Add(5 * time.Minute), at.Add(-5 * time.Minute)} {
		require.NoError(t, signature.Verify(h, []byte("x"), key, now, 5*time.Minute), "now=%s", now)
	}
}

func TestVerifyRefusesForgedTamperedAndStaleDeliveries(t *testing.T) {
	key := newKey(t)
	body := []byte(`{"amount":"10.00"}`)
	at := time.Unix(1700000000, 0)
	const tolerance = 5 * time.Minute

	signed := func() http.Header {
		h := http.Header{}
		signature.Sign(h, "evt_4", at, body, key)
		return h
	}
	// puenteFor returns the header a signer with this key would have produced for other inputs.
	puenteFor := func(ts, b string) string {
		return "t=" + ts + ",v1=" + hex.EncodeToString(hmacSHA256(key, ts+"."+b))
	}

	for _, tc := range []struct {
		name    string
		edit    func(h http.Header)
		body    []byte
		key     []byte
		now     time.Time
		wantErr error
		wantMsg string
	}{
		{name: "a tampered body", body: []byte(`{"amount":"99.00"}`), wantErr: signature.ErrMismatch},
		{name: "a body with a trailing newline", body: append(append([]byte{}, body...), '\n'), wantErr: signature.ErrMismatch},
		{name: "the wrong key", key: newKey(t), wantErr: signature.ErrMismatch},
		{
			name: "a tampered Puente-Signature timestamp",
			edit: func(h http.Header) {
				h.Set("Puente-Signature", strings.Replace(h.Get("Puente-Signature"), "t=1700000000", "t=1700000001", 1))
			},
			wantErr: signature.ErrMismatch, wantMsg: "Puente-Signature",
		},
		{
			name:    "a tampered webhook-timestamp",
			edit:    func(h http.Header) { h.Set("webhook-timestamp", "1700000001") },
			wantErr: signature.ErrMismatch, wantMsg: "Webhook-Signature",
		},
		{
			name:    "a tampered webhook-id",
			edit:    func(h http.Header) { h.Set("webhook-id", "evt_5") },
			wantErr: signature.ErrMismatch, wantMsg: "Webhook-Signature",
		},
		{
			name:    "a replay signed long ago",
			now:     at.Add(tolerance + time.Second),
			wantErr: signature.ErrTimestamp, wantMsg: "Puente-Signature",
		},
		{
			name:    "a timestamp from the future",
			now:     at.Add(-tolerance - time.Second),
			wantErr: signature.ErrTimestamp,
		},
		{
			name: "a stale webhook-timestamp beside a fresh Puente-Signature",
			edit: func(h http.Header) {
				h.Set("Puente-Signature", puenteFor("1800000000", string(body)))
			},
			now:     time.Unix(1800000000, 0),
			wantErr: signature.ErrTimestamp, wantMsg: "Webhook-Timestamp",
		},
		{
			name:    "a missing Puente-Signature, even with a valid webhook-signature",
			edit:    func(h http.Header) { h.Del("Puente-Signature") },
			wantErr: signature.ErrMalformed, wantMsg: "Puente-Signature: signature header missing or malformed: header missing",
		},
		{
			name:    "a missing webhook-signature, even with a valid Puente-Signature",
			edit:    func(h http.Header) { h.Del("webhook-signature") },
			wantErr: signature.ErrMalformed, wantMsg: "Webhook-Signature",
		},
		{name: "a missing webhook-id", edit: func(h http.Header) { h.Del("webhook-id") }, wantErr: signature.ErrMalformed},
		{name: "a missing webhook-timestamp", edit: func(h http.Header) { h.Del("webhook-timestamp") }, wantErr: signature.ErrMalformed},
		{name: "a signed timestamp with a plus sign", edit: func(h http.Header) { h.Set("webhook-timestamp", "+1700000000") }, wantErr: signature.ErrMalformed},
		{name: "a signed timestamp in milliseconds", edit: func(h http.Header) { h.Set("webhook-timestamp", "1700000000000") }, wantErr: signature.ErrTimestamp},
		{name: "a Puente-Signature without t=", edit: func(h http.Header) { h.Set("Puente-Signature", "v1=00") }, wantErr: signature.ErrMalformed},
		{
			name:    "a Puente-Signature with two t= entries",
			edit:    func(h http.Header) { h.Set("Puente-Signature", "t=1700000000,"+h.Get("Puente-Signature")) },
			wantErr: signature.ErrMalformed, wantMsg: "more than one t=",
		},
		{name: "a Puente-Signature without v1=", edit: func(h http.Header) { h.Set("Puente-Signature", "t=1700000000") }, wantErr: signature.ErrMalformed},
		{
			name: "a Puente-Signature with an uppercase T=",
			edit: func(h http.Header) {
				h.Set("Puente-Signature", strings.Replace(h.Get("Puente-Signature"), "t=", "T=", 1))
			},
			wantErr: signature.ErrMalformed,
		},
		{
			name:    "a Puente-Signature of another body",
			edit:    func(h http.Header) { h.Set("Puente-Signature", puenteFor("1700000000", "other")) },
			wantErr: signature.ErrMismatch,
		},
		{
			name: "a webhook-signature of another version only",
			edit: func(h http.Header) {
				h.Set("webhook-signature", strings.Replace(h.Get("webhook-signature"), "v1,", "v2,", 1))
			},
			wantErr: signature.ErrMalformed,
		},
		{
			name:    "a webhook-signature truncated",
			edit:    func(h http.Header) { h.Set("webhook-signature", h.Get("webhook-signature")[:20]) },
			wantErr: signature.ErrMalformed,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := signed()
			if tc.edit != nil {
				tc.edit(h)
			}
			b, k, now := body, key, at
			if tc.body != nil {
				b = tc.body
			}
			if tc.key != nil {
				k = tc.key
			}
			if !tc.now.IsZero() {
				now = tc.now
			}
			err := signature.Verify(h, b, k, now, tolerance)
			require.ErrorIs(t, err, tc.wantErr)
			require.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}

func TestVerifyFindsTheGoodEntryAmongOthers(t *testing.T) {
	key := newKey(t)
	body := []byte("payload")
	h := http.Header{}
	signature.Sign(h, "evt_6", time.Unix(1700000000, 0), body, newKey(t), key)
	// A garbled entry, an unknown scheme and extra spaces do not hide the good signature.
	h.Set("Puente-Signature", "v0=zz, v1=nothex, "+h.Get("Puente-Signature")+", v2=abc")
	h.Set("Webhook-Signature", "v1a,AAAA  v1,@@@ "+h.Get("Webhook-Signature")+" ")
	require.NoError(t, signature.Verify(h, body, key, time.Unix(1700000000, 0), time.Minute))
}

func TestVerifyNeedsTheExactBytes(t *testing.T) {
	key := newKey(t)
	body := []byte("{\"a\":1}")
	at := time.Unix(1700000000, 0)
	h := http.Header{}
	signature.Sign(h, "evt_7", at, body, key)
	ts := strconv.FormatInt(at.Unix(), 10)
	require.Equal(t, "t="+ts+",v1="+hex.EncodeToString(hmacSHA256(key, ts+"."+string(body))), h.Get("Puente-Signature"))
	require.ErrorIs(t, signature.Verify(h, []byte("{\"a\": 1}"), key, at, time.Minute), signature.ErrMismatch,
		"re-encoded JSON is a different message")
}

func FuzzVerify(f *testing.F) {
	key := make([]byte, 32)
	h := http.Header{}
	signature.Sign(h, "evt_1", time.Unix(1700000000, 0), []byte("body"), key)
	f.Add(h.Get("Puente-Signature"), h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature"), []byte("body"))
	f.Add("t=,v1=", "", "", "v1,", []byte(""))
	f.Add("t=99999999999999999999,v1=00", "x", "-1", "v1,==== v1", []byte("x"))
	f.Fuzz(func(t *testing.T, puente, id, ts, standard string, body []byte) {
		h := http.Header{}
		h.Set("Puente-Signature", puente)
		h.Set("Webhook-Id", id)
		h.Set("Webhook-Timestamp", ts)
		h.Set("Webhook-Signature", standard)
		err := signature.Verify(h, body, key, time.Unix(1700000000, 0), time.Hour)
		if err == nil {
			// Whatever verifies must carry the signature the key makes for exactly these inputs.
			want := base64.StdEncoding.EncodeToString(hmacSHA256(key, id+"."+ts+"."+string(body)))
			require.Contains(t, standard, "v1,"+want)
		}
	})
}
