package suite_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/authn"
)

func form(b *bundle, body url.Values, basicUser, basicPass string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.rest+"/v1/oauth/token", strings.NewReader(body.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	r := response{Status: resp.StatusCode, Header: resp.Header}
	require.NoError(b.t, json.NewDecoder(resp.Body).Decode(&r.JSON))
	return r
}

func TestClientCredentialsThenRefreshThenReuseRevokesTheFamily(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")

	// The form post with HTTP Basic that OAuth2 client libraries send.
	r := form(b, url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret)
	require.Equal(t, http.StatusOK, r.Status, r.JSON)
	require.Equal(t, "Bearer", r.JSON["token_type"])
	require.Equal(t, float64(600), r.JSON["expires_in"])
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	first := str(r.JSON, "refresh_token")
	require.True(t, strings.HasPrefix(first, "prt_"))

	// The access token works against the API.
	me := b.do(http.MethodGet, "/v1/users", str(r.JSON, "access_token"), nil)
	require.Equal(t, http.StatusOK, me.Status, me.Raw)

	// Rotate, as JSON this time.
	r2 := b.do(http.MethodPost, "/v1/oauth/token", "", map[string]string{
		"grant_type": "refresh_token", "refresh_token": first, "client_id": c.ID, "client_secret": c.Secret,
	})
	require.Equal(t, http.StatusOK, r2.Status, r2.Raw)
	second := str(r2.JSON, "refresh_token")
	require.NotEqual(t, first, second)

	// Someone replays the first refresh token: refused, and the whole family dies with it.
	replay := form(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}}, c.ID, c.Secret)
	require.Equal(t, http.StatusBadRequest, replay.Status)
	require.Equal(t, "invalid_grant", replay.JSON["error"])
	after := form(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}}, c.ID, c.Secret)
	require.Equal(t, "invalid_grant", after.JSON["error"], "the rotated-to token is revoked with its family")

	// Over gRPC the same holds.
	tokens := authtokenv1.NewTokenServiceClient(b.conn)
	g, err := tokens.CreateToken(context.Background(), &authtokenv1.CreateTokenRequest{GrantType: "client_credentials", ClientId: c.ID, ClientSecret: c.Secret})
	require.NoError(t, err)
	g2, err := tokens.CreateToken(context.Background(), &authtokenv1.CreateTokenRequest{GrantType: "refresh_token", ClientId: c.ID, ClientSecret: c.Secret, RefreshToken: g.GetRefreshToken()})
	require.NoError(t, err)
	_, err = tokens.CreateToken(context.Background(), &authtokenv1.CreateTokenRequest{GrantType: "refresh_token", ClientId: c.ID, ClientSecret: c.Secret, RefreshToken: g.GetRefreshToken()})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = tokens.CreateToken(context.Background(), &authtokenv1.CreateTokenRequest{GrantType: "refresh_token", ClientId: c.ID, ClientSecret: c.Secret, RefreshToken: g2.GetRefreshToken()})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

func TestTokenEndpointErrorsFollowRFC6749(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	other := b.newClient("other")
	for _, tc := range []struct {
		name       string
		values     url.Values
		user, pass string
		status     int
		oauthError string
	}{
		{"a wrong secret is invalid_client with 401", url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret + "x", 401, "invalid_client"},
		{"another client's secret is invalid_client", url.Values{"grant_type": {"client_credentials"}}, c.ID, other.Secret, 401, "invalid_client"},
		{"an unknown grant type is unsupported_grant_type", url.Values{"grant_type": {"password"}}, c.ID, c.Secret, 400, "unsupported_grant_type"},
		{"a missing secret is invalid_request", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}}, "", "", 400, "invalid_request"},
		{"credentials both in the body and by Basic are invalid_request", url.Values{"grant_type": {"client_credentials"}, "client_secret": {c.Secret}}, c.ID, c.Secret, 400, "invalid_request"},
		{"refresh without a refresh token is invalid_request", url.Values{"grant_type": {"refresh_token"}}, c.ID, c.Secret, 400, "invalid_request"},
		{"an unknown refresh token is invalid_grant", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"prt_nope"}}, c.ID, c.Secret, 400, "invalid_grant"},
		{"another client's refresh token is invalid_grant", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {other.Refresh}}, c.ID, c.Secret, 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := form(b, tc.values, tc.user, tc.pass)
			require.Equal(t, tc.status, r.Status, r.JSON)
			require.Equal(t, tc.oauthError, r.JSON["error"])
			require.NotEmpty(t, r.JSON["error_description"])
			if tc.status == 401 {
				require.NotEmpty(t, r.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestRevokedAPIKeyStopsAtOnce(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	created := b.do(http.MethodPost, "/v1/api-keys", c.Token, map[string]string{"name": "ci"})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	keyID, secret := str(created.JSON, "api_key", "id"), str(created.JSON, "api_key", "secret")
	require.True(t, strings.HasPrefix(secret, "psk_"))

	grant := form(b, url.Values{"grant_type": {"client_credentials"}}, c.ID, secret)
	require.Equal(t, http.StatusOK, grant.Status)

	revoked := b.do(http.MethodPost, "/v1/api-keys/"+keyID+":revoke", c.Token, map[string]string{})
	require.Equal(t, http.StatusOK, revoked.Status, revoked.Raw)
	require.NotEmpty(t, str(revoked.JSON, "api_key", "revoke_time"))

	again := form(b, url.Values{"grant_type": {"client_credentials"}}, c.ID, secret)
	require.Equal(t, "invalid_client", again.JSON["error"], "the token endpoint refuses a revoked key")
	refresh := form(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(grant.JSON, "refresh_token")}}, c.ID, c.Secret)
	require.Equal(t, "invalid_grant", refresh.JSON["error"], "refresh tokens issued through a revoked key die with it")

	// The client's other key is untouched.
	require.Equal(t, http.StatusOK, form(b, url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret).Status)
}

func TestJWTAttacksAreRefusedByGatewayAndServices(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	key := b.signingKey()
	pub := key.Private.Public().(ed25519.PublicKey)
	enc := base64.RawURLEncoding

	sign := func(mut func(*authn.Claims)) string {
		claims := b.validClaims(c.ID)
		mut(&claims)
		tok, err := authn.Sign(key, claims)
		require.NoError(t, err)
		return tok
	}
	payload, err := json.Marshal(b.validClaims(c.ID))
	require.NoError(t, err)
	hs256 := func(secret []byte) string {
		input := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"`+key.ID+`","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return input + "." + enc.EncodeToString(m.Sum(nil))
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	forgedByOtherKey, err := authn.Sign(authn.SigningKey{ID: key.ID, Private: otherPriv}, b.validClaims(c.ID))
	require.NoError(t, err)

	// A token that differs in nothing that matters works, so each row below fails for its reason.
	control := sign(func(*authn.Claims) {})
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/users", control, nil).Status)

	for _, tc := range []struct{ name, token string }{
		{"alg none", enc.EncodeToString([]byte(`{"alg":"none","kid":"`+key.ID+`"}`)) + "." + enc.EncodeToString(payload) + "."},
		{"HS256 keyed with the raw public key", hs256(pub)},
		{"HS256 keyed with the JWK x value", hs256([]byte(enc.EncodeToString(pub)))},
		{"signed by another key under the real kid", forgedByOtherKey},
		{"wrong audience", sign(func(c *authn.Claims) { c.Audience = []string{"someone-else"} })},
		{"wrong issuer", sign(func(c *authn.Claims) { c.Issuer = "https://evil.example" })},
		{"expired", sign(func(c *authn.Claims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = time.Now().Add(-time.Hour), time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
		})},
		{"not yet valid", sign(func(c *authn.Claims) { c.NotBefore = time.Now().Add(10 * time.Minute) })},
		{"payload swapped under a real signature", strings.Split(control, ".")[0] + "." + enc.EncodeToString([]byte(strings.Replace(string(payload), c.ID, "cli_01JD0000000000000000000000", 1))) + "." + strings.Split(control, ".")[2]},
		{"a scope that is not Puente's", sign(func(c *authn.Claims) { c.Scope = "admin" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(http.MethodGet, "/v1/users", tc.token, nil)
			require.Equal(t, http.StatusUnauthorized, r.Status, r.Raw)
			require.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
			_, err := authtokenv1.NewUserServiceClient(b.conn).ListUsers(bearerCtx(tc.token), &authtokenv1.ListUsersRequest{})
			require.Equal(t, codes.Unauthenticated, status.Code(err), "gRPC verifies on its own, gateway or not")
		})
	}
}

func TestJWKSPublishesTheKeyThatSigns(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	r := b.do(http.MethodGet, "/.well-known/jwks.json", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Header.Get("Cache-Control"), "max-age")
	var set authn.JWKS
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &set))
	require.Len(t, set.Keys, 1)
	k := set.Keys[0]
	require.Equal(t, []string{"OKP", "Ed25519", "EdDSA", "sig"}, []string{k.Kty, k.Crv, k.Alg, k.Use})
	require.NotContains(t, r.Raw, `"d"`, "no private part")

	x, err := base64.RawURLEncoding.DecodeString(k.X)
	require.NoError(t, err)
	v := authn.NewVerifier(authn.StaticKeys{k.Kid: ed25519.PublicKey(x)}, b.cfg.Authtoken.Issuer, b.cfg.Authtoken.Audience)
	claims, err := v.Verify(context.Background(), c.Token)
	require.NoError(t, err, "a relying party verifies Puente's tokens with the published JWKS alone")
	require.Equal(t, c.ID, claims.Subject)
	require.Equal(t, authn.ScopeClient, claims.Scope)
	require.WithinDuration(t, claims.IssuedAt.Add(10*time.Minute), claims.ExpiresAt, time.Second)

	// A rotation publishes the next key at once and keeps the current one.
	rot := b.do(http.MethodPost, "/v1/admin/signing-keys:rotate", b.adminToken, map[string]string{})
	require.Equal(t, http.StatusOK, rot.Status, rot.Raw)
	var after authn.JWKS
	require.NoError(t, json.Unmarshal([]byte(b.do(http.MethodGet, "/.well-known/jwks.json", "", nil).Raw), &after))
	require.Len(t, after.Keys, 2)
	_, err = v.Verify(context.Background(), c.Token)
	require.NoError(t, err)
}
