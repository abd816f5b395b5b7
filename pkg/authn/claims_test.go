package authn_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/authn"
)

func TestClaimsMarshalJSON(t *testing.T) {
	exp := time.Unix(1_800_000_300, 0)
	tests := []struct {
		name   string
		claims authn.Claims
		want   string
	}{
		{name: "a single audience is a string", claims: authn.Claims{Subject: "cli_1", Audience: []string{"api"}}, want: `{"sub":"cli_1","aud":"api"}`},
		{name: "several audiences are an array", claims: authn.Claims{Audience: []string{"a", "b"}}, want: `{"aud":["a","b"]}`},
		{name: "empty fields are omitted", claims: authn.Claims{}, want: `{}`},
		{name: "times are whole seconds", claims: authn.Claims{ExpiresAt: exp.Add(999 * time.Millisecond)}, want: `{"exp":1800000300}`},
		{name: "the epoch itself is kept", claims: authn.Claims{NotBefore: time.Unix(0, 0)}, want: `{"nbf":0}`},
		{
			name: "every claim uses its short name",
			claims: authn.Claims{
				Issuer: "i", Subject: "s", Audience: []string{"a"}, ExpiresAt: exp, NotBefore: exp, IssuedAt: exp,
				ID: "j", Scope: "task", UserID: "u", ConsentID: "c", LinkID: "l", Products: []string{"p"},
			},
			want: `{"iss":"i","sub":"s","aud":"a","exp":1800000300,"nbf":1800000300,"iat":1800000300,"jti":"j","scp":"task","usr":"u","cns":"c","lnk":"l","prd":["p"]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.claims)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))
			require.Equal(t, tt.want, string(got), "member order is stable")
		})
	}
}

func TestClaimsMarshalJSONRejectsUnencodableClaims(t *testing.T) {
	tests := []struct {
		name   string
		claims authn.Claims
	}{
		{name: "a time before 1970 is rejected", claims: authn.Claims{ExpiresAt: time.Unix(-1, 0)}},
		{name: "a time after 9999 is rejected", claims: authn.Claims{IssuedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "a subject that is not UTF-8 is rejected", claims: authn.Claims{Subject: "cli_\xff"}},
		{name: "an audience that is not UTF-8 is rejected", claims: authn.Claims{Audience: []string{"\xfe"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.claims.MarshalJSON()
			require.Error(t, err)
		})
	}
}

func TestClaimsUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    authn.Claims
		wantErr bool
	}{
		{name: "an audience string becomes a one-element slice", json: `{"aud":"api"}`, want: authn.Claims{Audience: []string{"api"}}},
		{name: "an audience array is kept", json: `{"aud":["a","b"]}`, want: authn.Claims{Audience: []string{"a", "b"}}},
		{name: "an exponent NumericDate parses", json: `{"exp":1.7e9}`, want: authn.Claims{ExpiresAt: time.Unix(1_700_000_000, 0).UTC()}},
		{name: "a fractional NumericDate keeps its fraction", json: `{"iat":1700000000.25}`, want: authn.Claims{IssuedAt: time.Unix(1_700_000_000, 250_000_000).UTC()}},
		{name: "unknown claims are ignored", json: `{"foo":{"bar":[1]},"jti":"x"}`, want: authn.Claims{ID: "x"}},
		{name: "escaped strings are decoded", json: `{"sub":"cli_\u00e9"}`, want: authn.Claims{Subject: "cli_é"}},
		{name: "a duplicate claim is rejected", json: `{"sub":"a","sub":"b"}`, wantErr: true},
		{name: "a null claim is rejected", json: `{"sub":null}`, wantErr: true},
		{name: "a numeric subject is rejected", json: `{"sub":1}`, wantErr: true},
		{name: "a null product is rejected", json: `{"prd":["a",null]}`, wantErr: true},
		{name: "an object audience is rejected", json: `{"aud":{}}`, wantErr: true},
		{name: "a boolean exp is rejected", json: `{"exp":true}`, wantErr: true},
		{name: "an infinite exp is rejected", json: `{"exp":1e999}`, wantErr: true},
		{name: "a JSON array is rejected", json: `[]`, wantErr: true},
		{name: "two objects are rejected", json: `{}{}`, wantErr: true},
		{name: "invalid UTF-8 is rejected", json: "{\"sub\":\"\xff\"}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got authn.Claims
			err := got.UnmarshalJSON([]byte(tt.json))
			if tt.wantErr {
				require.ErrorIs(t, err, authn.ErrMalformed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSignProducesTheDocumentedHeader(t *testing.T) {
	_, priv := newKey(1)
	tok := mustSign(t, priv, testKID, validClaims())
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	hdr, err := enc.DecodeString(parts[0])
	require.NoError(t, err)
	require.Equal(t, `{"alg":"EdDSA","kid":"`+testKID+`","typ":"JWT"}`, string(hdr))
	require.NotContains(t, tok, "=")
}

func TestSignRejectsBadInput(t *testing.T) {
	_, priv := newKey(1)
	tests := []struct {
		name   string
		key    authn.SigningKey
		claims authn.Claims
	}{
		{name: "an empty key id is rejected", key: authn.SigningKey{Private: priv}, claims: validClaims()},
		{name: "a key id that is not UTF-8 is rejected", key: authn.SigningKey{ID: "\xff", Private: priv}, claims: validClaims()},
		{name: "a nil private key is rejected", key: authn.SigningKey{ID: testKID}, claims: validClaims()},
		{name: "a seed instead of a private key is rejected", key: authn.SigningKey{ID: testKID, Private: priv.Seed()}, claims: validClaims()},
		{name: "claims that cannot be encoded are rejected", key: authn.SigningKey{ID: testKID, Private: priv}, claims: authn.Claims{ExpiresAt: time.Unix(-5, 0)}},
		{name: "a token over 8 KiB is rejected", key: authn.SigningKey{ID: testKID, Private: priv}, claims: authn.Claims{Products: []string{strings.Repeat("p", authn.MaxTokenSize)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := authn.Sign(tt.key, tt.claims)
			require.Error(t, err)
			require.Empty(t, tok)
		})
	}
}

func TestPublicJWK(t *testing.T) {
	pub, _ := newKey(1)
	jwk := authn.PublicJWK(testKID, pub)
	got, err := json.Marshal(authn.JWKS{Keys: []authn.JWK{jwk}})
	require.NoError(t, err)
	require.JSONEq(t, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"`+enc.EncodeToString(pub)+`","kid":"`+testKID+`","use":"sig","alg":"EdDSA"}]}`, string(got))

	x, err := enc.DecodeString(jwk.X)
	require.NoError(t, err)
	require.True(t, pub.Equal(ed25519.PublicKey(x)))
}
