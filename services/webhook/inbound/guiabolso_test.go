package inbound_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/inbound"
)

// The provider notes' test vectors: key gbc-test-secret, this body.
var (
	gbcKey  = []byte("gbc-test-secret")
	gbcBody = []byte(`{"name":"gbconnect:user:notFound","version":1}`)
)

func gbcHeader(t int64, sig string) inbound.Headers {
	return inbound.Headers{"x-gbc-signature-256": "t=" + strconv.FormatInt(t, 10) + ",v1=" + sig}
}

func TestGuiabolsoAcceptsTheDocumentedRenderingsOfItsSignature(t *testing.T) {
	for _, tc := range []struct {
		name   string
		t      int64
		header func(int64, string) inbound.Headers
		sig    string
	}{
		{"a negative Java rendering", 1700000000000, gbcHeader, "-379482e5d99da6478a22677c33b2aeeb3fd01962da85cd2ece901f18433c4f4a"},
		{"the canonical hex of a negative one", 1700000000000, gbcHeader, "c86b7d1a266259b875dd9883cc4d5114c02fe69d257a32d1316fe0e7bcc3b0b6"},
		{"a positive one, the same in both renderings", 1700000000001, gbcHeader, "6ed81a39e3fb5a760d2151a4758f54814a15f841e9834f0d5bf6fe40dcaacd9f"},
		{"a Java rendering without its leading zero", 1700000000006, gbcHeader, "a220d835cf7741b43aa6801b5992078976b8371e599999ecdcdb4cd7ab08389"},
		{"the canonical hex with its leading zero", 1700000000006, gbcHeader, "0a220d835cf7741b43aa6801b5992078976b8371e599999ecdcdb4cd7ab08389"},
		{"the documented CGI header name", 1700000000001, func(t int64, sig string) inbound.Headers {
			return inbound.Headers{"http_x_gbc_signature_256": "t=" + strconv.FormatInt(t, 10) + ",v1=" + sig}
		}, "6ed81a39e3fb5a760d2151a4758f54814a15f841e9834f0d5bf6fe40dcaacd9f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.UnixMilli(tc.t).Add(time.Minute)
			v, err := inbound.Guiabolso{Key: gbcKey}.Verify(tc.header(tc.t, tc.sig), gbcBody, now)
			require.NoError(t, err)
			require.Equal(t, "gbconnect:user:notFound", v.Type)
			require.True(t, v.SignedAt.Equal(time.UnixMilli(tc.t)), "t is milliseconds")
			require.NotEmpty(t, v.ID, "a body without an id is known by its digest")
		})
	}
}

func TestGuiabolsoRefusesWhatItDidNotSign(t *testing.T) {
	const ts = 1700000000000
	good := "-379482e5d99da6478a22677c33b2aeeb3fd01962da85cd2ece901f18433c4f4a"
	now := time.UnixMilli(ts).Add(time.Minute)
	for _, tc := range []struct {
		name string
		h    inbound.Headers
		body []byte
		key  []byte
		want error
	}{
		{"no header", inbound.Headers{}, gbcBody, gbcKey, inbound.ErrSignature},
		{"no v1", inbound.Headers{"x-gbc-signature-256": "t=1700000000000"}, gbcBody, gbcKey, inbound.ErrSignature},
		{"no t", inbound.Headers{"x-gbc-signature-256": "v1=" + good}, gbcBody, gbcKey, inbound.ErrSignature},
		{"t in seconds", gbcHeader(ts/1000, good), gbcBody, gbcKey, inbound.ErrSignature},
		{"the absolute value without its sign", gbcHeader(ts, good[1:]), gbcBody, gbcKey, inbound.ErrSignature},
		{"upper-case hex", gbcHeader(ts, "C86B7D1A266259B875DD9883CC4D5114C02FE69D257A32D1316FE0E7BCC3B0B6"), gbcBody, gbcKey, inbound.ErrSignature},
		{"another body", gbcHeader(ts, good), []byte(`{"name":"gbconnect:user:notFound","version":2}`), gbcKey, inbound.ErrSignature},
		{"another key", gbcHeader(ts, good), gbcBody, []byte("other"), inbound.ErrSignature},
		{"another timestamp", gbcHeader(ts+1, good), gbcBody, gbcKey, inbound.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inbound.Guiabolso{Key: tc.key}.Verify(tc.h, tc.body, now)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestGuiabolsoRefusesTimestampsOutsideItsWindow(t *testing.T) {
	const ts = 1700000000000
	h := gbcHeader(ts, "-379482e5d99da6478a22677c33b2aeeb3fd01962da85cd2ece901f18433c4f4a")
	s := inbound.Guiabolso{Key: gbcKey, Tolerance: 2 * time.Minute}
	_, err := s.Verify(h, gbcBody, time.UnixMilli(ts).Add(2*time.Minute+time.Millisecond))
	require.ErrorIs(t, err, inbound.ErrStale, "too old")
	_, err = s.Verify(h, gbcBody, time.UnixMilli(ts).Add(-3*time.Minute))
	require.ErrorIs(t, err, inbound.ErrStale, "too far ahead")
	_, err = s.Verify(h, gbcBody, time.UnixMilli(ts).Add(2*time.Minute))
	require.NoError(t, err, "on the edge")
	_, err = inbound.Guiabolso{Key: gbcKey}.Verify(h, gbcBody, time.UnixMilli(ts).Add(inbound.DefaultTolerance+time.Second))
	require.ErrorIs(t, err, inbound.ErrStale, "the default tolerance")
}

func TestGuiabolsoNamesTheEventByItsEnvelope(t *testing.T) {
	body := []byte(`{"name":"gbconnect:user:sync:accounts:finished","version":1,"id":"0b7e1f3c-6a55-4c8e-9d0e-8c7f6b5a4e3d","flowId":"f","payload":{}}`)
	const ts = 1700000000000
	m := hmac.New(sha256.New, gbcKey)
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	v, err := inbound.Guiabolso{Key: gbcKey}.Verify(gbcHeader(ts, hex.EncodeToString(m.Sum(nil))), body, time.UnixMilli(ts))
	require.NoError(t, err)
	require.Equal(t, "0b7e1f3c-6a55-4c8e-9d0e-8c7f6b5a4e3d", v.ID)
	require.Equal(t, "gbconnect:user:sync:accounts:finished", v.Type)
}

func FuzzGuiabolsoVerify(f *testing.F) {
	const ts = 1700000000000
	f.Add("t=1700000000000,v1=-379482e5d99da6478a22677c33b2aeeb3fd01962da85cd2ece901f18433c4f4a", gbcBody)
	f.Add("t=1700000000001,v1=6ed81a39e3fb5a760d2151a4758f54814a15f841e9834f0d5bf6fe40dcaacd9f", gbcBody)
	f.Add("v1=abc,t=1", []byte(`{}`))
	f.Add("t=,v1=", []byte(nil))
	f.Add("t=99999999999999999999,v1=-0", []byte(`{"id":"x"}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		s := inbound.Guiabolso{Key: gbcKey, Tolerance: 100 * 365 * 24 * time.Hour}
		v, err := s.Verify(inbound.Headers{"x-gbc-signature-256": header}, body, time.UnixMilli(ts))
		if err != nil {
			if !errors.Is(err, inbound.ErrSignature) && !errors.Is(err, inbound.ErrStale) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Accepted: it must carry one of the two renderings of the real MAC over its own t.
		m := hmac.New(sha256.New, gbcKey)
		m.Write([]byte(strconv.FormatInt(v.SignedAt.UnixMilli(), 10) + "."))
		m.Write(body)
		mac := m.Sum(nil)
		canonical := hex.EncodeToString(mac)
		if !containsSig(header, canonical) && !containsSig(header, javaRendering(mac)) {
			t.Fatalf("accepted a body it did not sign: %q", header)
		}
	})
}

func containsSig(header, sig string) bool {
	for _, part := range strings.Split(header, ",") {
		if strings.TrimSpace(part) == "v1="+sig {
			return true
		}
	}
	return false
}

// javaRendering is Java's BigInteger(mac).toString(16), written independently of the scheme's.
func javaRendering(mac []byte) string {
	if mac[0]&0x80 == 0 {
		return strings.TrimLeft(hex.EncodeToString(mac), "0")
	}
	neg := make([]byte, len(mac)) // two's complement: invert and add one
	carry := 1
	for i := len(mac) - 1; i >= 0; i-- {
		v := int(^mac[i]) + carry
		neg[i], carry = byte(v), v>>8
	}
	return "-" + strings.TrimLeft(hex.EncodeToString(neg), "0")
}
