// Package authtoken owns Puente's tenants and their credentials: clients, API keys, end users,
// access and refresh tokens, link tokens, task tokens, and the signing keys behind the JWKS.
package authtoken

import (
	"context"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/page"
)

// Client is a tenant.
type Client struct {
	ID             string
	Name           string
	RedirectURIs   []string
	Environment    string // authn.EnvSandbox or authn.EnvProduction
	AllowedOrigins []string
	CreatedAt      time.Time
}

// APIKey is a client's long-lived credential. Only a keyed hash of the secret is stored.
type APIKey struct {
	ID         string
	ClientID   string
	Name       string
	SecretHash []byte
	SecretHint string
	CreatedAt  time.Time
	RevokedAt  *time.Time
	Secret     string // only right after creation
	// ClientEnvironment is the environment of the key's client, read with the key.
	ClientEnvironment string
}

// RefreshToken is one link of a rotation family.
type RefreshToken struct {
	Hash            []byte
	FamilyID        string
	ClientID        string
	APIKeyID        string
	CreatedAt       time.Time
	FamilyExpiresAt time.Time
}

// UserKind is a person or a company.
type UserKind string

const (
	Natural   UserKind = "NATURAL"
	Juridical UserKind = "JURIDICAL"
)

// User is an end user of a client.
type User struct {
	ID          string
	ClientID    string
	ExternalRef string
	Kind        UserKind
	TaxIDType   string // RUT, CPF, CNPJ, RFC, OTHER, or empty
	TaxID       string // normalised
	CreatedAt   time.Time
}

// LinkToken opens the Connect widget once.
type LinkToken struct {
	ID          string
	ClientID    string
	UserID      string
	Hash        []byte
	Products    []string
	Country     string
	Language    string
	RedirectURI string
	ConsentID   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Token       string // only right after creation
}

// SigningKey is an Ed25519 key pair; the private half is sealed at rest.
type SigningKey struct {
	ID            string
	Public        []byte
	PrivateSealed []byte
	CreatedAt     time.Time
	ActivateAt    time.Time
	PublishUntil  *time.Time
}

// Page is where a list resumes (keyset pagination by id).
type Page = page.Page

var (
	ErrClientNotFound    = apierr.New(apierr.NotFound, "NOT_FOUND", "client not found")
	ErrAPIKeyNotFound    = apierr.New(apierr.NotFound, "NOT_FOUND", "API key not found")
	ErrUserNotFound      = apierr.New(apierr.NotFound, "NOT_FOUND", "user not found")
	ErrExternalRefTaken  = &apierr.Error{Kind: apierr.AlreadyExists, Reason: "ALREADY_EXISTS", Message: "external_ref: a user with this external_ref exists", Fields: []apierr.FieldViolation{{Field: "external_ref", Reason: "a user with this external_ref exists"}}}
	ErrInvalidClient     = apierr.New(apierr.Unauthenticated, "INVALID_CLIENT", "client authentication failed")
	ErrInvalidGrant      = apierr.New(apierr.Unauthenticated, "INVALID_GRANT", "the refresh token is invalid, expired, revoked or was already used")
	ErrLinkTokenInvalid  = apierr.New(apierr.FailedPrecondition, "LINK_TOKEN_INVALID", "link token is invalid, expired or already used")
	ErrRequestIDReused   = idempotency.ErrRequestIDReused
	ErrRequestInProgress = idempotency.ErrRequestInProgress
)

// Store keeps the service's state. Methods scoped to a client take its id and never see another
// client's rows: a foreign id reads as not found.
type Store interface {
	CreateClient(ctx context.Context, c Client, first APIKey) error
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context, p Page) ([]Client, error)

	CreateAPIKey(ctx context.Context, k APIKey) error
	ListAPIKeys(ctx context.Context, clientID string) ([]APIKey, error)
	// RevokeAPIKey revokes the key and every refresh token issued through it.
	RevokeAPIKey(ctx context.Context, clientID, id string, at time.Time) (APIKey, error)
	APIKeyByHash(ctx context.Context, hash []byte) (APIKey, error)

	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken spends the token with hash old and stores next in its family, atomically.
	// A token already spent revokes its family (committed) and yields ErrInvalidGrant.
	RotateRefreshToken(ctx context.Context, old []byte, clientID string, next RefreshToken) (RefreshToken, error)

	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, clientID, id string) (User, error)
	ListUsers(ctx context.Context, clientID, externalRef string, p Page) ([]User, error)
	// ResolveUsers returns the client's users among ids and externalRefs, in no particular order.
	ResolveUsers(ctx context.Context, clientID string, ids, externalRefs []string) ([]User, error)

	CreateLinkToken(ctx context.Context, t LinkToken) error
	// ExchangeLinkToken marks the token spent and returns it, exactly once.
	ExchangeLinkToken(ctx context.Context, hash []byte, at time.Time) (LinkToken, error)

	// SigningKeys returns the keys published at time at, newest first.
	SigningKeys(ctx context.Context, at time.Time) ([]SigningKey, error)
	// AddSigningKey adds k unless a key is pending (not yet active at k.CreatedAt), which it returns
	// instead; when adding, every older key gets publishUntil. first is true when no key existed.
	AddSigningKey(ctx context.Context, k SigningKey, publishUntil time.Time, onlyIfNone bool) (SigningKey, error)

	// DeleteExpired removes what can no longer be used: refresh-token families past their end,
	// link tokens a day after expiry, request ids a day after first use. It returns the count.
	DeleteExpired(ctx context.Context, at time.Time) (int64, error)

	// Idempotent runs create at most once per (scope, requestID): a repeat with the same
	// fingerprint returns the first response; another fingerprint is ErrRequestIDReused. create
	// runs in the transaction that records the response, with a Store bound to it (see
	// idempotency.Do).
	Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(Store) ([]byte, error)) ([]byte, error)
}
