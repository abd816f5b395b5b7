package inbound_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/inbound"
)

// The provider notes' test vector.
const (
	klaviVectorKey  = "klavi-test-secret"
	klaviVectorBody = `{"partnerAppId":"12345678","eventId":"e1","eventType":"api","eventName":"consent_authorised","eventTime":"2024-01-01T00:00:00.000Z","payload":{}}`
	klaviVectorSig  = "1cf41a62a942dd34b7fe372a97f774b76fd600da9f5772aeaf7c86bee3141182"
)

func klaviSign(key, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestKlaviVerifiesItsTestVectorAndRefusesTheRest(t *testing.T) {
	now := time.Unix(1740716924, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	events := `[{"partnerAppId":"12345678","eventId":"e1","eventType":"api","eventName":"consent_authorised","eventTime":"2024-01-01T00:00:00.000Z","payload":{}}]`
	pretty := "[\n  {\"eventId\": \"e2\", \"eventName\": \"consent_rejected\"}\n]"
	report := `{"code":200,"productName":"pf_checking_account","productReportId":"r-1"}`
	k := inbound.Klavi{Key: []byte(klaviVectorKey)}
	for _, tc := range []struct {
		name    string
		scheme  inbound.Klavi
		body    string
		sig     string
		err     error
		id, typ string
	}{
		{name: "the provider file's vector verifies", scheme: k, body: klaviVectorBody, sig: klaviVectorSig, id: "e1", typ: "consent_authorised"},
		{name: "an event array is keyed by its eventId", scheme: k, body: events, sig: klaviSign(klaviVectorKey, events), id: "e1", typ: "consent_authorised"},
		{name: "a body re-indented after signing verifies as compact JSON", scheme: k, body: pretty,
			sig: klaviSign(klaviVectorKey, `[{"eventId":"e2","eventName":"consent_rejected"}]`), id: "e2", typ: "consent_rejected"},
		{name: "a report is keyed by its productReportId", scheme: k, body: report, sig: klaviSign(klaviVectorKey, report), id: "r-1", typ: inbound.KlaviReport},
		{name: "a changed body is refused", scheme: k, body: strings.Replace(klaviVectorBody, "e1", "e2", 1), sig: klaviVectorSig, err: inbound.ErrSignature},
		{name: "another key's signature is refused", scheme: k, body: klaviVectorBody, sig: klaviSign("old-secret", klaviVectorBody), err: inbound.ErrSignature},
		{name: "upper-case hex is refused", scheme: k, body: klaviVectorBody, sig: "1CF41A62A942DD34B7FE372A97F774B76FD600DA9F5772AEAF7C86BEE3141182", err: inbound.ErrSignature},
		{name: "a missing signature is refused", scheme: k, body: klaviVectorBody, err: inbound.ErrSignature},
		{name: "a short signature is refused", scheme: k, body: klaviVectorBody, sig: klaviVectorSig[:40], err: inbound.ErrSignature},
		{name: "no key accepts nothing", scheme: inbound.Klavi{}, body: klaviVectorBody, sig: klaviSign("", klaviVectorBody), err: inbound.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.scheme.Verify(inbound.Headers{"x-klavi-signature": tc.sig, "x-klavi-timestamp": ts}, []byte(tc.body), now)
			if tc.err != nil {
				require.True(t, errors.Is(err, tc.err), "got %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.id, v.ID)
			require.Equal(t, tc.typ, v.Type)
		})
	}
}

func TestKlaviChecksTheTimestampOnlyWhenAskedTo(t *testing.T) {
	now := time.Unix(1740716924, 0)
	old := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	h := inbound.Headers{"x-klavi-signature": klaviVectorSig, "x-klavi-timestamp": old}
	_, err := inbound.Klavi{Key: []byte(klaviVectorKey)}.Verify(h, []byte(klaviVectorBody), now)
	require.NoError(t, err, "the timestamp is not signed: by default it is not checked")
	_, err = inbound.Klavi{Key: []byte(klaviVectorKey), Tolerance: 5 * time.Minute}.Verify(h, []byte(klaviVectorBody), now)
	require.ErrorIs(t, err, inbound.ErrStale)
}

func TestKlaviKeysABodyWithoutIdsByItsDigest(t *testing.T) {
	body := `[{"eventName":"link_created"}]`
	k := inbound.Klavi{Key: []byte(klaviVectorKey)}
	a, err := k.Verify(inbound.Headers{"x-klavi-signature": klaviSign(klaviVectorKey, body)}, []byte(body), time.Now())
	require.NoError(t, err)
	b, err := k.Verify(inbound.Headers{"x-klavi-signature": klaviSign(klaviVectorKey, body)}, []byte(body), time.Now())
	require.NoError(t, err)
	require.Equal(t, a.ID, b.ID, "an identical replay has the same key")
	require.NotEmpty(t, a.ID)
}

// FuzzKlaviVerify: no input panics, and nothing verifies that the key did not sign (as raw bytes
// or as their compact form).
func FuzzKlaviVerify(f *testing.F) {
	f.Add([]byte(klaviVectorBody), klaviVectorSig, "1740716924")
	f.Add([]byte(`[{"eventId":"e1"}]`), "", "")
	f.Add([]byte(`{"productReportId":"r"}`), klaviVectorSig, "x")
	f.Add([]byte("[\n {\"a\": 1}\n]"), "00", "-1")
	key := []byte(klaviVectorKey)
	k := inbound.Klavi{Key: key, Tolerance: time.Hour}
	now := time.Unix(1740716924, 0)
	f.Fuzz(func(t *testing.T, body []byte, sig, ts string) {
		v, err := k.Verify(inbound.Headers{"x-klavi-signature": sig, "x-klavi-timestamp": ts}, body, now)
		if err != nil {
			return
		}
		signed := klaviSign(string(key), string(body)) == sig || compactSigned(key, body, sig)
		if !signed {
			t.Fatalf("accepted a body the key did not sign: %q %q", body, sig)
		}
		if v.ID == "" {
			t.Fatal("a verified webhook has no replay key")
		}
	})
}

func compactSigned(key, body []byte, sig string) bool {
	var b bytes.Buffer
	if json.Compact(&b, body) != nil {
		return false
	}
	return klaviSign(string(key), b.String()) == sig
}
