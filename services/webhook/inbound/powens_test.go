package inbound_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/inbound"
)

// The provider file's test vector.
const (
	powensKey  = "powens-test-secret"
	powensPath = "/webhooks/powens/connection-synced"
	powensDate = "Mon, 06 Jan 2025 10:00:00 GMT"
	powensBody = `{"user":{"id":1},"connection":{"id":7,"state":null}}`
	powensSig  = "JnDl5z+Svj0Sa83zKjEHhKIOiiW2V1moPYry9atanxY="
)

func powensSign(key, path, date, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("POST." + path + "." + date + "." + body))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestPowensSchemeMatchesTheTestVector(t *testing.T) {
	require.Equal(t, powensSig, powensSign(powensKey, powensPath, powensDate, powensBody))
	at, err := http.ParseTime(powensDate)
	require.NoError(t, err)
	s := inbound.Powens{Key: []byte(powensKey), Path: powensPath}
	v, err := s.Verify(inbound.Headers{"bi-signature-date": powensDate, "bi-signature": powensSig}, []byte(powensBody), at.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, "CONNECTION_SYNCED", v.Type, "a body with a connection state is CONNECTION_SYNCED")
	require.True(t, at.Equal(v.SignedAt))
	require.NotEmpty(t, v.ID)

	again, err := s.Verify(inbound.Headers{"bi-signature-date": powensDate, "bi-signature": powensSig}, []byte(powensBody), at)
	require.NoError(t, err)
	require.Equal(t, v.ID, again.ID, "a replay has the same id, so it is recognised")
}

func TestPowensSchemeRefusesWhatItDidNotSign(t *testing.T) {
	at, _ := http.ParseTime(powensDate)
	now := at.Add(time.Minute)
	s := inbound.Powens{Key: []byte(powensKey), Path: powensPath}
	good := func() inbound.Headers {
		return inbound.Headers{"bi-signature-date": powensDate, "bi-signature": powensSig}
	}
	for _, tc := range []struct {
		name    string
		scheme  inbound.Powens
		headers inbound.Headers
		body    string
		now     time.Time
		want    error
	}{
		{"a changed body", s, good(), `{"user":{"id":2},"connection":{"id":7,"state":null}}`, now, inbound.ErrSignature},
		{"another receiving path", inbound.Powens{Key: []byte(powensKey), Path: "/v1/inbound/powens"}, good(), powensBody, now, inbound.ErrSignature},
		{"another key", inbound.Powens{Key: []byte("other"), Path: powensPath}, good(), powensBody, now, inbound.ErrSignature},
		{"no key configured", inbound.Powens{Path: powensPath}, good(), powensBody, now, inbound.ErrSignature},
		{"a changed date", s, inbound.Headers{"bi-signature-date": "Mon, 06 Jan 2025 10:00:01 GMT", "bi-signature": powensSig}, powensBody, now, inbound.ErrSignature},
		{"no signature", s, inbound.Headers{"bi-signature-date": powensDate}, powensBody, now, inbound.ErrSignature},
		{"no date", s, inbound.Headers{"bi-signature": powensSig}, powensBody, now, inbound.ErrSignature},
		{"a signature that is not Base64", s, inbound.Headers{"bi-signature-date": powensDate, "bi-signature": "%%%"}, powensBody, now, inbound.ErrSignature},
		{"a hex signature", s, inbound.Headers{"bi-signature-date": powensDate, "bi-signature": "266de5e7"}, powensBody, now, inbound.ErrSignature},
		{"a signature an hour old", s, good(), powensBody, at.Add(time.Hour), inbound.ErrStale},
		{"a signature from the future", s, good(), powensBody, at.Add(-time.Hour), inbound.ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.scheme.Verify(tc.headers, []byte(tc.body), tc.now)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestPowensSchemeTakesADateItCannotParseAsSigned(t *testing.T) {
	// Unknown 1: the date's format is a guess, so a date in another format is signed text only.
	date := "2025-01-06T10:00:00Z"
	body := `{"id":7}`
	s := inbound.Powens{Key: []byte(powensKey), Path: powensPath}
	v, err := s.Verify(inbound.Headers{"bi-signature-date": date, "bi-signature": powensSign(powensKey, powensPath, date, body)}, []byte(body), time.Now())
	require.NoError(t, err)
	require.True(t, v.SignedAt.IsZero())
	require.Empty(t, v.Type, "a body without a connection state has no known type")
}

func FuzzPowensVerify(f *testing.F) {
	f.Add(powensDate, powensSig, []byte(powensBody))
	f.Add(powensDate, "", []byte(powensBody))
	f.Add("", powensSig, []byte{})
	f.Add("2025-01-06T10:00:00Z", "AAAA", []byte(`{"connection":{"state":"wrongpass"}}`))
	s := inbound.Powens{Key: []byte(powensKey), Path: powensPath}
	at, _ := http.ParseTime(powensDate)
	f.Fuzz(func(t *testing.T, date, sig string, body []byte) {
		v, err := s.Verify(inbound.Headers{"bi-signature-date": date, "bi-signature": sig}, body, at)
		if err != nil {
			if !errors.Is(err, inbound.ErrSignature) && !errors.Is(err, inbound.ErrStale) {
				t.Fatalf("an error of no known kind: %v", err)
			}
			return
		}
		// Accepted: it must be what the key signed.
		if sig != powensSign(powensKey, powensPath, date, string(body)) {
			got, _ := base64.StdEncoding.DecodeString(sig)
			want, _ := base64.StdEncoding.DecodeString(powensSign(powensKey, powensPath, date, string(body)))
			if !hmac.Equal(got, want) {
				t.Fatalf("accepted a body it did not sign")
			}
		}
		if v.ID == "" {
			t.Fatalf("accepted without a replay id")
		}
	})
}
