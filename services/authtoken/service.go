package authtoken

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/authtoken/taxid"
)

// Service is the authtoken logic over a Store.
type Service struct {
	store   Store
	cfg     Config
	box     *secretbox.Box
	hashKey []byte
	log     *slog.Logger
	now     func() time.Time
	keys    *keyring
}

// NewService checks cfg and returns the service.
func NewService(store Store, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("authtoken config: %w", err)
	}
	box, err := secretbox.Parse(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("authtoken config: PUENTE_ENCRYPTION_KEYS: %w", err)
	}
	hashKey, _ := base64.StdEncoding.DecodeString(cfg.HashKey)
	return &Service{store: store, cfg: cfg, box: box, hashKey: hashKey, log: log, now: time.Now, keys: &keyring{}}, nil
}

// SetClock replaces the clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// withStore returns a copy of s over another store (a transaction).
func (s *Service) withStore(st Store) *Service {
	c := *s
	c.store = st
	return &c
}

// Idempotent runs fn once per (scope, requestID); repeats get fn's first result back. The result
// may hold a secret shown once, so it is stored sealed.
func (s *Service) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, fn func(*Service) ([]byte, error)) ([]byte, error) {
	if requestID == "" {
		return fn(s)
	}
	return idempotency.Sealed(ctx, s.box, s.store.Idempotent, scope, requestID, fingerprint, func(tx Store) ([]byte, error) {
		return fn(s.withStore(tx))
	})
}

// newSecret returns prefix + 256 random bits, URL-safe.
func newSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) hash(secret string) []byte {
	m := hmac.New(sha256.New, s.hashKey)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// ---- Clients and API keys

// NewClient is what CreateClient needs.
type NewClient struct {
	Name           string
	RedirectURIs   []string
	Environment    string // authn.EnvSandbox when empty
	AllowedOrigins []string
}

// CreateClient creates a client and its first API key (whose Secret is set).
func (s *Service) CreateClient(ctx context.Context, n NewClient) (Client, APIKey, error) {
	for i, u := range n.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return Client{}, APIKey{}, apierr.Invalid(fmt.Sprintf("redirect_uris[%d]", i), err.Error())
		}
	}
	origins := make([]string, len(n.AllowedOrigins))
	for i, o := range n.AllowedOrigins {
		var err error
		if origins[i], err = checkOrigin(o); err != nil {
			return Client{}, APIKey{}, apierr.Invalid(fmt.Sprintf("allowed_origins[%d]", i), err.Error())
		}
	}
	env := cmp.Or(n.Environment, authn.EnvSandbox)
	if env != authn.EnvSandbox && env != authn.EnvProduction {
		return Client{}, APIKey{}, apierr.Invalid("environment", "must be sandbox or production")
	}
	now := s.now().UTC()
	c := Client{
		ID: ids.New("cli"), Name: n.Name, RedirectURIs: append([]string{}, n.RedirectURIs...),
		Environment: env, AllowedOrigins: origins, CreatedAt: now,
	}
	k := s.newAPIKey(c.ID, "default", now)
	if err := s.store.CreateClient(ctx, c, k); err != nil {
		return Client{}, APIKey{}, fmt.Errorf("create client: %w", err)
	}
	return c, k, nil
}

func (s *Service) GetClient(ctx context.Context, id string) (Client, error) {
	return s.store.GetClient(ctx, id)
}

func (s *Service) ListClients(ctx context.Context, p Page) ([]Client, error) {
	return s.store.ListClients(ctx, p)
}

func (s *Service) newAPIKey(clientID, name string, now time.Time) APIKey {
	secret := newSecret("psk_")
	return APIKey{
		ID: ids.New("key"), ClientID: clientID, Name: name,
		SecretHash: s.hash(secret), SecretHint: secret[len(secret)-4:], CreatedAt: now, Secret: secret,
	}
}

// CreateAPIKey adds a key to a client; the returned key carries its secret.
func (s *Service) CreateAPIKey(ctx context.Context, clientID, name string) (APIKey, error) {
	k := s.newAPIKey(clientID, name, s.now().UTC())
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return k, nil
}

func (s *Service) ListAPIKeys(ctx context.Context, clientID string) ([]APIKey, error) {
	return s.store.ListAPIKeys(ctx, clientID)
}

func (s *Service) RevokeAPIKey(ctx context.Context, clientID, id string) (APIKey, error) {
	return s.store.RevokeAPIKey(ctx, clientID, id, s.now().UTC())
}

// ---- Tokens

// Grant is what the token endpoint returns.
type Grant struct {
	AccessToken  string
	ExpiresIn    time.Duration
	RefreshToken string
}

// authenticateClient checks a client id and API key secret.
func (s *Service) authenticateClient(ctx context.Context, clientID, secret string) (APIKey, error) {
	k, err := s.store.APIKeyByHash(ctx, s.hash(secret))
	if err != nil {
		return APIKey{}, err
	}
	if k.RevokedAt != nil || !subtleEqual(k.ClientID, clientID) {
		return APIKey{}, ErrInvalidClient
	}
	return k, nil
}

func subtleEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// ClientCredentials authenticates a client with an API key secret and grants tokens.
func (s *Service) ClientCredentials(ctx context.Context, clientID, secret string) (Grant, error) {
	k, err := s.authenticateClient(ctx, clientID, secret)
	if err != nil {
		return Grant{}, err
	}
	now := s.now().UTC()
	access, err := s.accessToken(ctx, k, now)
	if err != nil {
		return Grant{}, err
	}
	refresh := newSecret("prt_")
	if err := s.store.CreateRefreshToken(ctx, RefreshToken{
		Hash: s.hash(refresh), FamilyID: ids.New("rtf"), ClientID: k.ClientID, APIKeyID: k.ID,
		CreatedAt: now, FamilyExpiresAt: now.Add(s.cfg.RefreshFamilyTTL),
	}); err != nil {
		return Grant{}, err
	}
	return Grant{AccessToken: access, ExpiresIn: s.cfg.AccessTokenTTL, RefreshToken: refresh}, nil
}

// Refresh rotates a refresh token. The client authenticates too (RFC 6749 §6). The new access
// token is signed before the old refresh token is spent, so no failure after the spend can
// leave the client with neither.
func (s *Service) Refresh(ctx context.Context, clientID, secret, refreshToken string) (Grant, error) {
	if refreshToken == "" {
		return Grant{}, apierr.Invalid("refresh_token", "is required when grant_type is refresh_token")
	}
	k, err := s.authenticateClient(ctx, clientID, secret)
	if err != nil {
		return Grant{}, err
	}
	now := s.now().UTC()
	access, err := s.accessToken(ctx, k, now)
	if err != nil {
		return Grant{}, err
	}
	next := newSecret("prt_")
	if _, err := s.store.RotateRefreshToken(ctx, s.hash(refreshToken), clientID, RefreshToken{Hash: s.hash(next), CreatedAt: now}); err != nil {
		return Grant{}, err
	}
	return Grant{AccessToken: access, ExpiresIn: s.cfg.AccessTokenTTL, RefreshToken: next}, nil
}

func (s *Service) accessToken(ctx context.Context, k APIKey, now time.Time) (string, error) {
	return s.sign(ctx, authn.Claims{Subject: k.ClientID, Scope: authn.ScopeClient, Environment: k.ClientEnvironment}, now, s.cfg.AccessTokenTTL)
}

// CreateTaskToken signs a token for one user of the client (and optionally one consent).
func (s *Service) CreateTaskToken(ctx context.Context, clientID, userID, consentID string, ttl time.Duration) (string, time.Time, error) {
	if _, err := s.store.GetUser(ctx, clientID, userID); err != nil {
		return "", time.Time{}, err
	}
	c, err := s.store.GetClient(ctx, clientID)
	if err != nil {
		return "", time.Time{}, err
	}
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	ttl = min(ttl, MaxTokenTTL)
	now := s.now().UTC()
	token, err := s.sign(ctx, authn.Claims{Subject: clientID, Scope: authn.ScopeTask, UserID: userID, ConsentID: consentID, Environment: c.Environment}, now, ttl)
	return token, now.Add(ttl), err
}

func (s *Service) sign(ctx context.Context, c authn.Claims, now time.Time, ttl time.Duration) (string, error) {
	key, err := s.signingKey(ctx, now)
	if err != nil {
		return "", err
	}
	return s.signWith(key, c, now, ttl)
}

func (s *Service) signWith(key authn.SigningKey, c authn.Claims, now time.Time, ttl time.Duration) (string, error) {
	c.Issuer, c.Audience, c.ID = s.cfg.Issuer, []string{s.cfg.Audience}, ids.New("jti")
	c.IssuedAt, c.NotBefore, c.ExpiresAt = now, now, now.Add(min(ttl, MaxTokenTTL))
	return authn.Sign(key, c)
}

// ---- Users

// NewUser is what CreateUser takes.
type NewUser struct {
	ExternalRef string
	Kind        UserKind
	TaxIDType   taxid.Type
	TaxID       string
}

var taxTypeNames = map[taxid.Type]string{taxid.RUT: "RUT", taxid.CPF: "CPF", taxid.CNPJ: "CNPJ", taxid.RFC: "RFC", taxid.Other: "OTHER"}

// TaxTypeName is the stored and displayed name of a tax id type.
func TaxTypeName(t taxid.Type) string { return taxTypeNames[t] }

// CreateUser creates an end user, checking the tax id where its format is known.
func (s *Service) CreateUser(ctx context.Context, clientID string, n NewUser) (User, error) {
	u := User{ID: ids.New("usr"), ClientID: clientID, ExternalRef: n.ExternalRef, Kind: n.Kind, CreatedAt: s.now().UTC()}
	if n.TaxIDType != taxid.Unspecified {
		norm, err := taxid.Normalize(n.TaxIDType, n.TaxID)
		if err != nil {
			return User{}, apierr.Invalid("tax_id.value", err.Error())
		}
		switch taxid.KindOf(n.TaxIDType, norm) {
		case taxid.Natural:
			if n.Kind != Natural {
				return User{}, apierr.Invalid("kind", "this tax id belongs to a natural person")
			}
		case taxid.Juridical:
			if n.Kind != Juridical {
				return User{}, apierr.Invalid("kind", "this tax id belongs to a juridical person")
			}
		}
		u.TaxIDType, u.TaxID = TaxTypeName(n.TaxIDType), norm
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *Service) GetUser(ctx context.Context, clientID, id string) (User, error) {
	return s.store.GetUser(ctx, clientID, id)
}

func (s *Service) ListUsers(ctx context.Context, clientID, externalRef string, p Page) ([]User, error) {
	return s.store.ListUsers(ctx, clientID, externalRef, p)
}

// ResolveUsers finds a client's users by id and external_ref, for another service (the access
// rule admits the service token only).
func (s *Service) ResolveUsers(ctx context.Context, clientID string, ids, externalRefs []string) ([]User, error) {
	if clientID == "" {
		return nil, apierr.Invalid("client_id", "is required")
	}
	return s.store.ResolveUsers(ctx, clientID, ids, externalRefs)
}

// ---- Link tokens

// NewLinkToken is what CreateLinkToken takes.
type NewLinkToken struct {
	UserID      string
	Products    []string
	Country     string
	Language    string
	RedirectURI string
	ConsentID   string
	TTL         time.Duration
}

// CreateLinkToken issues a one-time token for the widget; the returned token carries Token.
func (s *Service) CreateLinkToken(ctx context.Context, clientID string, n NewLinkToken) (LinkToken, error) {
	if _, err := s.store.GetUser(ctx, clientID, n.UserID); err != nil {
		return LinkToken{}, err
	}
	if n.RedirectURI != "" {
		c, err := s.store.GetClient(ctx, clientID)
		if err != nil {
			return LinkToken{}, err
		}
		if !slices.Contains(c.RedirectURIs, n.RedirectURI) {
			return LinkToken{}, apierr.Invalid("redirect_uri", "is not one of the client's registered redirect URIs")
		}
	}
	if n.TTL == 0 {
		n.TTL = 30 * time.Minute
	}
	if n.Language == "" {
		n.Language = "en"
	}
	now := s.now().UTC()
	token := newSecret("plt_")
	t := LinkToken{
		ID: ids.New("lnk"), ClientID: clientID, UserID: n.UserID, Hash: s.hash(token),
		Products: n.Products, Country: n.Country, Language: n.Language, RedirectURI: n.RedirectURI, ConsentID: n.ConsentID,
		CreatedAt: now, ExpiresAt: now.Add(n.TTL), Token: token,
	}
	if err := s.store.CreateLinkToken(ctx, t); err != nil {
		return LinkToken{}, err
	}
	return t, nil
}

// WidgetSession is what an exchanged link token yields.
type WidgetSession struct {
	Token     string
	ExpiresAt time.Time
	Link      LinkToken
	// ClientName and Origins are the client's: the widget names it to the user and posts its
	// messages only to a page of these origins.
	ClientName string
	Origins    []string
}

// ExchangeLinkToken spends a link token, exactly once, for a widget session. The signing key is
// loaded before the token is spent, so nothing that can fail stands between the spend and the
// session.
func (s *Service) ExchangeLinkToken(ctx context.Context, token string) (WidgetSession, error) {
	now := s.now().UTC()
	key, err := s.signingKey(ctx, now)
	if err != nil {
		return WidgetSession{}, err
	}
	t, err := s.store.ExchangeLinkToken(ctx, s.hash(token), now)
	if err != nil {
		return WidgetSession{}, err
	}
	// The link is spent; a client that vanished since (it cannot today) leaves the error.
	c, err := s.store.GetClient(ctx, t.ClientID)
	if err != nil {
		return WidgetSession{}, fmt.Errorf("exchange link token: client: %w", err)
	}
	session, err := s.signWith(key, authn.Claims{
		Subject: t.ClientID, Scope: authn.ScopeWidget, UserID: t.UserID, LinkID: t.ID, Products: t.Products, Country: t.Country,
		ConsentID: t.ConsentID, Environment: c.Environment, Origins: c.AllowedOrigins,
	}, now, s.cfg.WidgetSessionTTL)
	if err != nil {
		return WidgetSession{}, err
	}
	return WidgetSession{Token: session, ExpiresAt: now.Add(s.cfg.WidgetSessionTTL), Link: t, ClientName: c.Name, Origins: c.AllowedOrigins}, nil
}

// checkRedirectURI accepts https URLs, http on a loopback host (development), and reverse-DNS
// custom schemes of mobile apps (com.example.app:/callback, RFC 8252 §7.1).
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "":
		return fmt.Errorf("must be an absolute URI")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("must not contain a fragment")
	case u.User != nil:
		return fmt.Errorf("must not contain user information")
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https":
		if u.Host == "" {
			return fmt.Errorf("must have a host")
		}
	case scheme == "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("http is allowed only on a loopback host; use https")
		}
	case appScheme.MatchString(scheme):
	default:
		return fmt.Errorf("scheme must be https, http on loopback, or a reverse-DNS app scheme")
	}
	return nil
}

var appScheme = regexp.MustCompile(`^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$`)

// checkOrigin accepts a web origin as browsers send it (scheme://host[:port], https, or http on
// a loopback host) and returns it in that serialisation, lower-cased, so it compares equal to
// the Origin header.
func checkOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("must be an origin: scheme://host[:port]")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, "?#") || (u.Path != "" && u.Path != "/"):
		return "", fmt.Errorf("must be an origin without path, query or user information: scheme://host[:port]")
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	// Browsers leave the scheme's default port out of Origin.
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	switch scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("http is allowed only on a loopback host; use https")
		}
	default:
		return "", fmt.Errorf("scheme must be https (or http on a loopback host)")
	}
	return scheme + "://" + host, nil
}

// ---- Signing keys

type keyring struct {
	mu      sync.Mutex
	current authn.SigningKey
	checkAt time.Time
}

// keyCheckInterval bounds how late a replica notices a newly active key.
const keyCheckInterval = 30 * time.Second

// EnsureSigningKey creates the first signing key when there is none, active at once.
func (s *Service) EnsureSigningKey(ctx context.Context) error {
	k, err := s.newSigningKey(s.now().UTC(), 0)
	if err != nil {
		return err
	}
	_, err = s.store.AddSigningKey(ctx, k, time.Time{}, true)
	return err
}

// RotateSigningKey adds a key that signs after the publish lead; the current one stays published
// until every token it may still sign has expired. A key already pending is returned instead.
func (s *Service) RotateSigningKey(ctx context.Context) (SigningKey, error) {
	now := s.now().UTC()
	k, err := s.newSigningKey(now, s.cfg.KeyPublishLead)
	if err != nil {
		return SigningKey{}, err
	}
	out, err := s.store.AddSigningKey(ctx, k, k.ActivateAt.Add(MaxTokenTTL+time.Minute), false)
	if err != nil {
		return SigningKey{}, fmt.Errorf("rotate signing key: %w", err)
	}
	s.log.InfoContext(ctx, "signing key rotation", "kid", out.ID, "activate_at", out.ActivateAt)
	return out, nil
}

// Housekeep is the service's periodic work: rotate the signing key when due, and delete rows
// that can no longer be used.
func (s *Service) Housekeep(ctx context.Context) error {
	if err := s.RotateIfDue(ctx); err != nil {
		return err
	}
	n, err := s.store.DeleteExpired(ctx, s.now().UTC())
	if n > 0 {
		s.log.InfoContext(ctx, "deleted expired rows", "rows", n)
	}
	return err
}

// RotateIfDue rotates the signing key when the newest one is older than the configured rotation
// age. Replicas may all call it: a key already pending stands for the rotation.
func (s *Service) RotateIfDue(ctx context.Context) error {
	if s.cfg.KeyRotation == 0 {
		return nil
	}
	now := s.now().UTC()
	keys, err := s.store.SigningKeys(ctx, now)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if len(keys) > 0 && now.Sub(keys[0].CreatedAt) < s.cfg.KeyRotation {
		return nil
	}
	_, err = s.RotateSigningKey(ctx)
	return err
}

func (s *Service) newSigningKey(now time.Time, lead time.Duration) (SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, err
	}
	id := ids.New("sgk")
	return SigningKey{
		ID: id, Public: pub, PrivateSealed: s.box.Seal(priv.Seed(), []byte(id)),
		CreatedAt: now, ActivateAt: now.Add(lead),
	}, nil
}

// signingKey returns the key that signs at now: the newest active one.
func (s *Service) signingKey(ctx context.Context, now time.Time) (authn.SigningKey, error) {
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	if now.Before(s.keys.checkAt) {
		return s.keys.current, nil
	}
	keys, err := s.store.SigningKeys(ctx, now)
	if err != nil {
		return authn.SigningKey{}, fmt.Errorf("load signing keys: %w", err)
	}
	next := now.Add(keyCheckInterval)
	for _, k := range keys {
		if k.ActivateAt.After(now) {
			next = minTime(next, k.ActivateAt)
			continue
		}
		seed, err := s.box.Open(k.PrivateSealed, []byte(k.ID))
		if err != nil {
			return authn.SigningKey{}, fmt.Errorf("open signing key %s: %w", k.ID, err)
		}
		s.keys.current = authn.SigningKey{ID: k.ID, Private: ed25519.NewKeyFromSeed(seed)}
		s.keys.checkAt = next
		return s.keys.current, nil
	}
	return authn.SigningKey{}, fmt.Errorf("no active signing key")
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// JWKS returns the published public keys.
func (s *Service) JWKS(ctx context.Context) ([]authn.JWK, error) {
	keys, err := s.store.SigningKeys(ctx, s.now().UTC())
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	out := make([]authn.JWK, 0, len(keys))
	for _, k := range keys {
		out = append(out, authn.PublicJWK(k.ID, ed25519.PublicKey(k.Public)))
	}
	return out, nil
}
