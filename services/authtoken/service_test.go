package authtoken_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/authtoken"
	authtokenpg "puente.dev/services/authtoken/postgres"
	"puente.dev/services/authtoken/taxid"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a controlled time source: it moves only when the test moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// bundle is one test's service over its own database, with a controlled clock.
type bundle struct {
	ctx   context.Context
	url   string // superuser URL of the test's database
	cfg   authtoken.Config
	svc   *authtoken.Service
	clock *clock
}

func testConfig(t testing.TB) authtoken.Config {
	t.Helper()
	hashKey := make([]byte, 32)
	_, err := rand.Read(hashKey)
	require.NoError(t, err)
	return authtoken.Config{
		Issuer:           "puente-test",
		Audience:         "puente-api",
		AccessTokenTTL:   10 * time.Minute,
		RefreshFamilyTTL: 720 * time.Hour,
		WidgetSessionTTL: 30 * time.Minute,
		KeyPublishLead:   15 * time.Minute,
		HashKey:          base64.StdEncoding.EncodeToString(hashKey),
		EncryptionKeys:   secretbox.NewKeySpec("t1"),
	}
}

func setup(t testing.TB) bundle {
	t.Helper()
	return setupWith(t, func(*authtoken.Config) {})
}

// setupWith is setup with the configuration changed by edit.
func setupWith(t testing.TB, edit func(*authtoken.Config)) bundle {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, authtokenpg.Migrate(ctx, url))
	pool, err := postgres.Open(ctx, url, authtokenpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	cfg := testConfig(t)
	edit(&cfg)
	svc, err := authtoken.NewService(authtokenpg.New(pool), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	svc.SetClock(clk.Now)
	require.NoError(t, svc.EnsureSigningKey(ctx))
	return bundle{ctx: ctx, url: url, cfg: cfg, svc: svc, clock: clk}
}

func newClient(t testing.TB, b bundle, redirectURIs ...string) (authtoken.Client, authtoken.APIKey) {
	t.Helper()
	c, k, err := b.svc.CreateClient(b.ctx, authtoken.NewClient{Name: "Acme", RedirectURIs: redirectURIs})
	require.NoError(t, err)
	return c, k
}

func newUser(t testing.TB, b bundle, clientID, externalRef string) authtoken.User {
	t.Helper()
	u, err := b.svc.CreateUser(b.ctx, clientID, authtoken.NewUser{ExternalRef: externalRef, Kind: authtoken.Natural})
	require.NoError(t, err)
	return u
}

// jwks returns the service's published keys, by kid, as a verifier would load them.
func jwks(t testing.TB, b bundle) authn.StaticKeys {
	t.Helper()
	set, err := b.svc.JWKS(b.ctx)
	require.NoError(t, err)
	keys := authn.StaticKeys{}
	for _, k := range set {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		require.NoError(t, err)
		require.Len(t, x, ed25519.PublicKeySize)
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys
}

// verify checks token as a verifier would, against the JWKS published now, at the test's clock.
func verify(t testing.TB, b bundle, token string) authn.Claims {
	t.Helper()
	v := authn.NewVerifier(jwks(t, b), b.cfg.Issuer, b.cfg.Audience, authn.WithClock(b.clock.Now))
	c, err := v.Verify(b.ctx, token)
	require.NoError(t, err)
	return c
}

// kidOf reads the key id from a JWT's header.
func kidOf(t testing.TB, token string) string {
	t.Helper()
	hdr, _, ok := strings.Cut(token, ".")
	require.True(t, ok, "not a JWT")
	raw, err := base64.RawURLEncoding.DecodeString(hdr)
	require.NoError(t, err)
	var h struct {
		Kid string `json:"kid"`
	}
	require.NoError(t, json.Unmarshal(raw, &h))
	require.NotEmpty(t, h.Kid)
	return h.Kid
}

// requireInvalid asserts err is an InvalidArgument naming field.
func requireInvalid(t testing.TB, err error, field string) *apierr.Error {
	t.Helper()
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, apierr.InvalidArgument, e.Kind, "kind of %v", err)
	require.NotEmpty(t, e.Fields, "field violations of %v", err)
	require.Equal(t, field, e.Fields[0].Field)
	return e
}

// ---- Clients and client credentials

func TestClientCredentials(t *testing.T) {
	t.Parallel()

	t.Run("an API key's secret buys an access token for its client", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		require.True(t, strings.HasPrefix(k.Secret, "psk_"), "secret %q", k.Secret)

		g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err)
		require.Equal(t, b.cfg.AccessTokenTTL, g.ExpiresIn)
		require.NotEmpty(t, g.RefreshToken)

		claims := verify(t, b, g.AccessToken)
		require.Equal(t, c.ID, claims.Subject)
		require.Equal(t, authn.ScopeClient, claims.Scope)
		require.Equal(t, b.cfg.Issuer, claims.Issuer)
		require.Equal(t, []string{b.cfg.Audience}, claims.Audience)
		require.Equal(t, b.cfg.AccessTokenTTL, claims.ExpiresAt.Sub(claims.IssuedAt))
		require.True(t, b.clock.Now().Equal(claims.IssuedAt))
		require.NotEmpty(t, claims.ID)
	})

	t.Run("a second API key of the client works too", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		k2, err := b.svc.CreateAPIKey(b.ctx, c.ID, "second")
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(k2.Secret, "psk_"))

		g, err := b.svc.ClientCredentials(b.ctx, c.ID, k2.Secret)
		require.NoError(t, err)
		require.Equal(t, c.ID, verify(t, b, g.AccessToken).Subject)
	})

	for _, tc := range []struct {
		name   string
		secret func(t *testing.T, b bundle, c authtoken.Client, k authtoken.APIKey) (clientID, secret string)
	}{
		{"a wrong secret is rejected", func(t *testing.T, b bundle, c authtoken.Client, k authtoken.APIKey) (string, string) {
			return c.ID, k.Secret[:len(k.Secret)-1] + flip(k.Secret[len(k.Secret)-1])
		}},
		{"an empty secret is rejected", func(t *testing.T, b bundle, c authtoken.Client, k authtoken.APIKey) (string, string) {
			return c.ID, ""
		}},
		{"another client's id with a valid secret is rejected", func(t *testing.T, b bundle, c authtoken.Client, k authtoken.APIKey) (string, string) {
			other, _ := newClient(t, b)
			return other.ID, k.Secret
		}},
		{"a revoked key is rejected", func(t *testing.T, b bundle, c authtoken.Client, k authtoken.APIKey) (string, string) {
			_, err := b.svc.RevokeAPIKey(b.ctx, c.ID, k.ID)
			require.NoError(t, err)
			return c.ID, k.Secret
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c, k := newClient(t, b)
			clientID, secret := tc.secret(t, b, c, k)
			_, err := b.svc.ClientCredentials(b.ctx, clientID, secret)
			require.ErrorIs(t, err, authtoken.ErrInvalidClient)
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestCreateClientRedirectURIs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name string
		uri  string
		ok   bool
	}{
		{"a javascript: URI is rejected", "javascript:alert(1)", false},
		{"http off a loopback host is rejected", "http://example.com/cb", false},
		{"a URI with a fragment is rejected", "https://a.example/cb#frag", false},
		{"a URI with user information is rejected", "https://user:pw@a.example/cb", false},
		{"an https URI is accepted", "https://a.example/cb", true},
		{"http on a loopback IP is accepted", "http://127.0.0.1:3000/cb", true},
		{"http on localhost is accepted", "http://localhost/cb", true},
		{"a reverse-DNS app scheme is accepted", "com.example.app:/oauth", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uris := []string{"https://ok.example/cb", tc.uri}
			c, k, err := b.svc.CreateClient(b.ctx, authtoken.NewClient{Name: "Acme", RedirectURIs: uris})
			if !tc.ok {
				requireInvalid(t, err, "redirect_uris[1]")
				return
			}
			require.NoError(t, err)
			require.NotEmpty(t, k.Secret)
			got, err := b.svc.GetClient(b.ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, uris, got.RedirectURIs)
		})
	}
}

func TestCreateClientEnvironmentAndOrigins(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("origins are checked and kept as browsers send them", func(t *testing.T) {
		for _, tc := range []struct {
			origin string
			want   string // empty: refused
		}{
			{"https://App.Example", "https://app.example"},
			{"https://app.example:8443/", "https://app.example:8443"},
			{"https://app.example:443", "https://app.example"},
			{"http://localhost:3000", "http://localhost:3000"},
			{"http://app.example", ""},
			{"https://app.example/path", ""},
			{"https://app.example?x=1", ""},
			{"https://user@app.example", ""},
			{"ftp://app.example", ""},
			{"app.example", ""},
		} {
			c, _, err := b.svc.CreateClient(b.ctx, authtoken.NewClient{Name: "Acme", AllowedOrigins: []string{"https://ok.example", tc.origin}})
			if tc.want == "" {
				requireInvalid(t, err, "allowed_origins[1]")
				continue
			}
			require.NoError(t, err, tc.origin)
			got, err := b.svc.GetClient(b.ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"https://ok.example", tc.want}, got.AllowedOrigins)
		}
	})

	t.Run("an unknown environment is refused", func(t *testing.T) {
		_, _, err := b.svc.CreateClient(b.ctx, authtoken.NewClient{Name: "Acme", Environment: "staging"})
		requireInvalid(t, err, "environment")
	})

	t.Run("every token of a client carries its environment, and widget sessions its origins", func(t *testing.T) {
		for _, env := range []string{authn.EnvSandbox, authn.EnvProduction} {
			c, k, err := b.svc.CreateClient(b.ctx, authtoken.NewClient{Name: "Acme", Environment: env, AllowedOrigins: []string{"https://app.example"}})
			require.NoError(t, err)
			require.Equal(t, env, c.Environment)

			g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
			require.NoError(t, err)
			claims := verify(t, b, g.AccessToken)
			require.Equal(t, env, claims.Environment)
			require.Empty(t, claims.Origins, "a backend's token is not for browsers")

			g, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g.RefreshToken)
			require.NoError(t, err)
			require.Equal(t, env, verify(t, b, g.AccessToken).Environment)

			u := newUser(t, b, c.ID, "ref-"+env)
			task, _, err := b.svc.CreateTaskToken(b.ctx, c.ID, u.ID, "", 0)
			require.NoError(t, err)
			require.Equal(t, env, verify(t, b, task).Environment)

			l, err := b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{UserID: u.ID, Products: []string{"ACCOUNTS"}, Country: "CL"})
			require.NoError(t, err)
			ws, err := b.svc.ExchangeLinkToken(b.ctx, l.Token)
			require.NoError(t, err)
			claims = verify(t, b, ws.Token)
			require.Equal(t, env, claims.Environment)
			require.Equal(t, []string{"https://app.example"}, claims.Origins)
			require.Equal(t, []string{"https://app.example"}, ws.Origins, "the widget posts its messages only there")
			require.Equal(t, "Acme", ws.ClientName, "the consent screen names the client")
		}
	})
}

// ---- Secrets at rest

func TestSecretsAreNotStoredInPlaintext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, first := newClient(t, b, "https://a.example/cb")
	u := newUser(t, b, c.ID, "ref-1")

	// Through Idempotent, as the API does, so that idempotency_keys holds responses with secrets.
	raw, err := b.svc.Idempotent(b.ctx, c.ID+":CreateApiKey", "req-1", []byte("fp-1"), func(s *authtoken.Service) ([]byte, error) {
		k, err := s.CreateAPIKey(b.ctx, c.ID, "second")
		return []byte(k.Secret), err
	})
	require.NoError(t, err)
	second := string(raw)
	require.True(t, strings.HasPrefix(second, "psk_"))

	raw, err = b.svc.Idempotent(b.ctx, c.ID+":CreateLinkToken", "req-2", []byte("fp-2"), func(s *authtoken.Service) ([]byte, error) {
		l, err := s.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{UserID: u.ID, Products: []string{"ACCOUNTS"}, Country: "CL"})
		return []byte(l.Token), err
	})
	require.NoError(t, err)
	link := string(raw)
	require.NotEmpty(t, link)

	g1, err := b.svc.ClientCredentials(b.ctx, c.ID, first.Secret)
	require.NoError(t, err)
	g2, err := b.svc.Refresh(b.ctx, c.ID, second, g1.RefreshToken)
	require.NoError(t, err)

	conn, err := pgx.Connect(b.ctx, b.url)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(b.ctx))

	// The signing key's private seed, opened the way the service opens it.
	box, err := secretbox.Parse(b.cfg.EncryptionKeys)
	require.NoError(t, err)
	var seeds [][]byte
	rows, err := conn.Query(b.ctx, `SELECT id, private_sealed FROM authtoken.signing_keys`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var sealed []byte
		require.NoError(t, rows.Scan(&id, &sealed))
		seed, err := box.Open(sealed, []byte(id))
		require.NoError(t, err)
		require.Len(t, seed, ed25519.SeedSize)
		require.NotContains(t, string(sealed), string(seed))
		seeds = append(seeds, seed)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, seeds)

	secrets := map[string]string{
		"first API key secret":  first.Secret,
		"second API key secret": second,
		"link token":            link,
		"first refresh token":   g1.RefreshToken,
		"second refresh token":  g2.RefreshToken,
	}
	// Each secret in the forms a row's text could show it: as text, and as the hex of a bytea.
	needles := map[string]string{}
	for name, s := range secrets {
		require.NotEmpty(t, s, name)
		needles[name] = s
		needles[name+" (hex)"] = hex.EncodeToString([]byte(s))
	}
	for i, seed := range seeds {
		needles["private key seed "+strconv.Itoa(i)+" (hex)"] = hex.EncodeToString(seed)
		needles["private key seed "+strconv.Itoa(i)+" (base64)"] = base64.StdEncoding.EncodeToString(seed)
		needles["private key seed "+strconv.Itoa(i)+" (base64url)"] = base64.RawURLEncoding.EncodeToString(seed)
	}

	for _, table := range []string{"api_keys", "refresh_tokens", "link_tokens", "signing_keys", "idempotency_keys"} {
		t.Run("no row of "+table+" holds a secret", func(t *testing.T) {
			rows, err := conn.Query(b.ctx, `SELECT t::text FROM authtoken.`+table+` t`)
			require.NoError(t, err)
			texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.NotEmpty(t, texts, "the test must have written to %s", table)
			for _, row := range texts {
				lower := strings.ToLower(row)
				for name, needle := range needles {
					require.NotContains(t, lower, strings.ToLower(needle), "%s in %s", name, table)
				}
			}
		})
	}
}

// ---- Refresh

func TestRefresh(t *testing.T) {
	t.Parallel()

	t.Run("a refresh token rotates; replaying a spent one revokes its family", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		g1, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err)

		b.clock.Advance(5 * time.Minute)
		g2, err := b.svc.Refresh(b.ctx, c.ID, k.Secret, g1.RefreshToken)
		require.NoError(t, err)
		require.NotEmpty(t, g2.RefreshToken)
		require.NotEqual(t, g1.RefreshToken, g2.RefreshToken)
		require.Equal(t, c.ID, verify(t, b, g2.AccessToken).Subject)

		b.clock.Advance(time.Minute)
		_, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g1.RefreshToken)
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
		_, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g2.RefreshToken)
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant, "the newest token of a revoked family must fail too")

		g3, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err, "the client can still authenticate afresh")
		_, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g3.RefreshToken)
		require.NoError(t, err)
	})

	t.Run("a refresh token fails once its family's lifetime is over", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err)

		b.clock.Advance(b.cfg.RefreshFamilyTTL - time.Hour)
		g, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g.RefreshToken)
		require.NoError(t, err)
		b.clock.Advance(time.Hour)
		_, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g.RefreshToken)
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant, "rotation must not extend the family")
	})

	t.Run("another client cannot spend a client's refresh token", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		other, otherKey := newClient(t, b)
		g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err)

		_, err = b.svc.Refresh(b.ctx, other.ID, otherKey.Secret, g.RefreshToken)
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
		_, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g.RefreshToken)
		require.NoError(t, err, "the owner's token stays valid")
	})

	t.Run("a refresh token fails once its API key is revoked", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, k := newClient(t, b)
		k2, err := b.svc.CreateAPIKey(b.ctx, c.ID, "second")
		require.NoError(t, err)
		g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err)
		_, err = b.svc.RevokeAPIKey(b.ctx, c.ID, k.ID)
		require.NoError(t, err)

		_, err = b.svc.Refresh(b.ctx, c.ID, k2.Secret, g.RefreshToken)
		require.ErrorIs(t, err, authtoken.ErrInvalidGrant)
	})
}

// ---- Signing keys

func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, k := newClient(t, b)
	token := func() string {
		t.Helper()
		g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
		require.NoError(t, err)
		return g.AccessToken
	}

	before := token()
	oldKid := kidOf(t, before)
	require.Contains(t, jwks(t, b), oldKid)

	b.clock.Advance(time.Minute)
	next, err := b.svc.RotateSigningKey(b.ctx)
	require.NoError(t, err)
	require.NotEqual(t, oldKid, next.ID)
	require.True(t, b.clock.Now().Add(b.cfg.KeyPublishLead).Equal(next.ActivateAt), "activates after the publish lead")

	again, err := b.svc.RotateSigningKey(b.ctx)
	require.NoError(t, err)
	require.Equal(t, next.ID, again.ID, "a second rotation while one is pending returns the pending key")

	keys := jwks(t, b)
	require.Contains(t, keys, next.ID, "the new key is published at once")
	require.Contains(t, keys, oldKid)
	verify(t, b, before) // signed before the rotation, still verifies after it

	require.Equal(t, oldKid, kidOf(t, token()), "the new key does not sign before it activates")
	b.clock.Set(next.ActivateAt.Add(-time.Second))
	lastOld := token()
	require.Equal(t, oldKid, kidOf(t, lastOld), "the new key does not sign before it activates")

	b.clock.Set(next.ActivateAt.Add(30 * time.Second)) // the service re-reads its keys at least every 30s
	first := token()
	require.Equal(t, next.ID, kidOf(t, first), "the new key signs once active")
	verify(t, b, first)
	verify(t, b, lastOld) // the old key is still published for the tokens it signed

	b.clock.Set(next.ActivateAt.Add(authtoken.MaxTokenTTL + time.Minute - time.Second))
	require.Contains(t, jwks(t, b), oldKid, "the old key stays published until its last token has expired")

	b.clock.Set(next.ActivateAt.Add(authtoken.MaxTokenTTL + time.Minute))
	keys = jwks(t, b)
	require.NotContains(t, keys, oldKid, "the old key is withdrawn after the longest token it may have signed")
	require.Contains(t, keys, next.ID)
	require.Equal(t, next.ID, kidOf(t, token()))
}

// ---- Users

func TestCreateUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _ := newClient(t, b)
	for i, tc := range []struct {
		name      string
		user      authtoken.NewUser
		wantType  string
		wantTaxID string
		wantField string // for a rejection
	}{
		{
			name:     "a RUT is stored normalised",
			user:     authtoken.NewUser{Kind: authtoken.Natural, TaxIDType: taxid.RUT, TaxID: "12.345.678-5"},
			wantType: "RUT", wantTaxID: "12345678-5",
		},
		{
			name:     "a CPF of a natural person is stored as its digits",
			user:     authtoken.NewUser{Kind: authtoken.Natural, TaxIDType: taxid.CPF, TaxID: "529.982.247-25"},
			wantType: "CPF", wantTaxID: "52998224725",
		},
		{
			name:     "a CNPJ of a juridical person is accepted",
			user:     authtoken.NewUser{Kind: authtoken.Juridical, TaxIDType: taxid.CNPJ, TaxID: "11.222.333/0001-81"},
			wantType: "CNPJ", wantTaxID: "11222333000181",
		},
		{
			name: "a user without a tax id is accepted",
			user: authtoken.NewUser{Kind: authtoken.Natural},
		},
		{
			name:      "a CNPJ for a natural person is rejected, naming kind",
			user:      authtoken.NewUser{Kind: authtoken.Natural, TaxIDType: taxid.CNPJ, TaxID: "11.222.333/0001-81"},
			wantField: "kind",
		},
		{
			name:      "a CPF for a juridical person is rejected, naming kind",
			user:      authtoken.NewUser{Kind: authtoken.Juridical, TaxIDType: taxid.CPF, TaxID: "529.982.247-25"},
			wantField: "kind",
		},
		{
			name:      "a bad CPF is rejected, naming tax_id.value",
			user:      authtoken.NewUser{Kind: authtoken.Natural, TaxIDType: taxid.CPF, TaxID: "529.982.247-26"},
			wantField: "tax_id.value",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.user.ExternalRef = "ref-" + strconv.Itoa(i)
			u, err := b.svc.CreateUser(b.ctx, c.ID, tc.user)
			if tc.wantField != "" {
				e := requireInvalid(t, err, tc.wantField)
				if tc.user.TaxID != "" {
					require.NotContains(t, e.Message, tc.user.TaxID, "the message must not echo the input")
					require.NotContains(t, e.Fields[0].Reason, tc.user.TaxID)
				}
				us, err := b.svc.ListUsers(b.ctx, c.ID, tc.user.ExternalRef, authtoken.Page{Limit: 10})
				require.NoError(t, err)
				require.Empty(t, us, "a rejected user is not stored")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantType, u.TaxIDType)
			require.Equal(t, tc.wantTaxID, u.TaxID)
			got, err := b.svc.GetUser(b.ctx, c.ID, u.ID)
			require.NoError(t, err)
			require.Equal(t, tc.wantType, got.TaxIDType)
			require.Equal(t, tc.wantTaxID, got.TaxID)
			require.Equal(t, tc.user.Kind, got.Kind)
		})
	}
}

func TestCreateUserDuplicateExternalRef(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _ := newClient(t, b)
	newUser(t, b, c.ID, "ref-1")
	_, err := b.svc.CreateUser(b.ctx, c.ID, authtoken.NewUser{ExternalRef: "ref-1", Kind: authtoken.Natural})
	require.ErrorIs(t, err, authtoken.ErrExternalRefTaken)
	require.Equal(t, apierr.AlreadyExists, apierr.KindOf(err))
}

// ---- Link tokens

func TestLinkTokens(t *testing.T) {
	t.Parallel()
	products := []string{"ACCOUNTS", "TRANSACTIONS"}

	t.Run("a link token for another client's user is not found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		other, _ := newClient(t, b)
		u := newUser(t, b, other.ID, "ref-1")
		_, err := b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{UserID: u.ID, Products: products, Country: "CL"})
		require.ErrorIs(t, err, authtoken.ErrUserNotFound)
	})

	t.Run("a redirect URI the client did not register is rejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b, "https://a.example/cb")
		u := newUser(t, b, c.ID, "ref-1")
		_, err := b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{
			UserID: u.ID, Products: products, Country: "CL", RedirectURI: "https://evil.example/cb",
		})
		requireInvalid(t, err, "redirect_uri")

		l, err := b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{
			UserID: u.ID, Products: products, Country: "CL", RedirectURI: "https://a.example/cb",
		})
		require.NoError(t, err, "a registered redirect URI is accepted")
		require.Equal(t, "https://a.example/cb", l.RedirectURI)
	})

	t.Run("a link token is exchanged once for a widget session", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b, "https://a.example/cb")
		u := newUser(t, b, c.ID, "ref-1")
		l, err := b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{
			UserID: u.ID, Products: products, Country: "CL", Language: "es", RedirectURI: "https://a.example/cb",
		})
		require.NoError(t, err)
		require.NotEmpty(t, l.Token)

		b.clock.Advance(time.Minute)
		ws, err := b.svc.ExchangeLinkToken(b.ctx, l.Token)
		require.NoError(t, err)
		require.Equal(t, l.ID, ws.Link.ID)
		require.Equal(t, "https://a.example/cb", ws.Link.RedirectURI)
		require.True(t, b.clock.Now().Add(b.cfg.WidgetSessionTTL).Equal(ws.ExpiresAt))

		claims := verify(t, b, ws.Token)
		require.Equal(t, authn.ScopeWidget, claims.Scope)
		require.Equal(t, authn.EnvSandbox, claims.Environment, "a client is in the sandbox unless created for production")
		require.Equal(t, c.ID, claims.Subject)
		require.Equal(t, u.ID, claims.UserID)
		require.Equal(t, l.ID, claims.LinkID)
		require.Equal(t, products, claims.Products)
		require.True(t, ws.ExpiresAt.Equal(claims.ExpiresAt))

		_, err = b.svc.ExchangeLinkToken(b.ctx, l.Token)
		require.ErrorIs(t, err, authtoken.ErrLinkTokenInvalid)
	})

	t.Run("a link token cannot be exchanged after it expires", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		u := newUser(t, b, c.ID, "ref-1")
		l, err := b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{UserID: u.ID, Products: products, Country: "CL", TTL: 10 * time.Minute})
		require.NoError(t, err)
		require.True(t, b.clock.Now().Add(10*time.Minute).Equal(l.ExpiresAt))

		b.clock.Set(l.ExpiresAt.Add(time.Second))
		_, err = b.svc.ExchangeLinkToken(b.ctx, l.Token)
		require.ErrorIs(t, err, authtoken.ErrLinkTokenInvalid)
	})

	t.Run("an unknown link token is invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.ExchangeLinkToken(b.ctx, "plt_not-a-token")
		require.ErrorIs(t, err, authtoken.ErrLinkTokenInvalid)
	})
}

// ---- Task tokens

func TestTaskTokens(t *testing.T) {
	t.Parallel()

	t.Run("a task token for another client's user is not found", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		other, _ := newClient(t, b)
		u := newUser(t, b, other.ID, "ref-1")
		_, _, err := b.svc.CreateTaskToken(b.ctx, c.ID, u.ID, "", 0)
		require.ErrorIs(t, err, authtoken.ErrUserNotFound)
	})

	t.Run("a task token names its client, user and consent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		u := newUser(t, b, c.ID, "ref-1")
		token, exp, err := b.svc.CreateTaskToken(b.ctx, c.ID, u.ID, "cns_01JD0000000000000000000000", 20*time.Minute)
		require.NoError(t, err)
		require.True(t, b.clock.Now().Add(20*time.Minute).Equal(exp))

		claims := verify(t, b, token)
		require.Equal(t, authn.ScopeTask, claims.Scope)
		require.Equal(t, c.ID, claims.Subject)
		require.Equal(t, u.ID, claims.UserID)
		require.Equal(t, "cns_01JD0000000000000000000000", claims.ConsentID)
		require.True(t, exp.Equal(claims.ExpiresAt))
	})

	t.Run("a task token without a ttl lives 15 minutes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		u := newUser(t, b, c.ID, "ref-1")
		token, exp, err := b.svc.CreateTaskToken(b.ctx, c.ID, u.ID, "", 0)
		require.NoError(t, err)
		claims := verify(t, b, token)
		require.Equal(t, 15*time.Minute, claims.ExpiresAt.Sub(claims.IssuedAt))
		require.True(t, exp.Equal(claims.ExpiresAt))
		require.Empty(t, claims.ConsentID)
	})
}

// ---- Idempotency through the service

func TestServiceIdempotent(t *testing.T) {
	t.Parallel()

	t.Run("a repeated request returns the first response, secret included", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		call := func() ([]byte, error) {
			return b.svc.Idempotent(b.ctx, c.ID+":CreateApiKey", "req-1", []byte("fp"), func(s *authtoken.Service) ([]byte, error) {
				k, err := s.CreateAPIKey(b.ctx, c.ID, "k")
				return []byte(k.Secret), err
			})
		}
		first, err := call()
		require.NoError(t, err)
		again, err := call()
		require.NoError(t, err)
		require.Equal(t, first, again)

		keys, err := b.svc.ListAPIKeys(b.ctx, c.ID)
		require.NoError(t, err)
		require.Len(t, keys, 2, "the first key and one created through the request")
		_, err = b.svc.ClientCredentials(b.ctx, c.ID, string(first))
		require.NoError(t, err, "the replayed secret is the real one")
	})

	t.Run("a failed request stores nothing it wrote", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c, _ := newClient(t, b)
		boom := errors.New("boom")
		var created authtoken.User
		_, err := b.svc.Idempotent(b.ctx, c.ID+":CreateUser", "req-1", []byte("fp"), func(s *authtoken.Service) ([]byte, error) {
			u, err := s.CreateUser(b.ctx, c.ID, authtoken.NewUser{ExternalRef: "ref-1", Kind: authtoken.Natural})
			if err != nil {
				return nil, err
			}
			created = u
			return nil, boom
		})
		require.ErrorIs(t, err, boom)
		_, err = b.svc.GetUser(b.ctx, c.ID, created.ID)
		require.ErrorIs(t, err, authtoken.ErrUserNotFound)
	})
}
