// Package postgres is the authtoken service's store on PostgreSQL (pgx/v5).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/postgres"
	"puente.dev/services/authtoken"
)

// Schema is the service's schema (and, prefixed, its role).
const Schema = "authtoken"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the embedded migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Migrate applies the service's migrations.
func Migrate(ctx context.Context, url string) error {
	return postgres.Migrate(ctx, url, Schema, Migrations())
}

// Store implements authtoken.Store.
type Store struct{ db postgres.DB }

var _ authtoken.Store = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, fn)
}

func (s *Store) CreateClient(ctx context.Context, c authtoken.Client, first authtoken.APIKey) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO clients (id, name, redirect_uris, environment, allowed_origins, created_at) VALUES ($1, $2, coalesce($3::text[], '{}'), coalesce(nullif($4, ''), 'sandbox'), coalesce($5::text[], '{}'), $6)`,
			c.ID, c.Name, c.RedirectURIs, c.Environment, c.AllowedOrigins, c.CreatedAt); err != nil {
			return fmt.Errorf("insert client: %w", err)
		}
		return (&Store{db: tx}).CreateAPIKey(ctx, first)
	})
}

const clientColumns = `id, name, redirect_uris, environment, allowed_origins, created_at`

func scanClient(row pgx.Row) (c authtoken.Client, err error) {
	err = row.Scan(&c.ID, &c.Name, &c.RedirectURIs, &c.Environment, &c.AllowedOrigins, &c.CreatedAt)
	return c, err
}

func (s *Store) GetClient(ctx context.Context, id string) (authtoken.Client, error) {
	c, err := scanClient(s.db.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id))
	return c, postgres.NotFound(err, authtoken.ErrClientNotFound)
}

func (s *Store) ListClients(ctx context.Context, p authtoken.Page) ([]authtoken.Client, error) {
	rows, err := s.db.Query(ctx, `SELECT `+clientColumns+` FROM clients WHERE ($1 = '' OR id < $1) ORDER BY id DESC LIMIT $2`, p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (authtoken.Client, error) { return scanClient(r) })
}

const keyColumns = `id, client_id, name, secret_hash, secret_hint, created_at, revoked_at`

func scanKey(row pgx.Row) (k authtoken.APIKey, err error) {
	err = row.Scan(&k.ID, &k.ClientID, &k.Name, &k.SecretHash, &k.SecretHint, &k.CreatedAt, &k.RevokedAt)
	return k, err
}

func (s *Store) CreateAPIKey(ctx context.Context, k authtoken.APIKey) error {
	_, err := s.db.Exec(ctx, `INSERT INTO api_keys (id, client_id, name, secret_hash, secret_hint, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.ClientID, k.Name, k.SecretHash, k.SecretHint, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

func (s *Store) ListAPIKeys(ctx context.Context, clientID string) ([]authtoken.APIKey, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE client_id = $1 ORDER BY id DESC`, clientID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (authtoken.APIKey, error) { return scanKey(r) })
}

func (s *Store) RevokeAPIKey(ctx context.Context, clientID, id string, at time.Time) (k authtoken.APIKey, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		k, err = scanKey(tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE client_id = $1 AND id = $2 RETURNING `+keyColumns, clientID, id, at))
		if err != nil {
			return postgres.NotFound(err, authtoken.ErrAPIKeyNotFound)
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE api_key_id = $1 AND revoked_at IS NULL`, id, at)
		return err
	})
	return k, err
}

func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (authtoken.APIKey, error) {
	var k authtoken.APIKey
	err := s.db.QueryRow(ctx, `SELECT k.id, k.client_id, k.name, k.secret_hash, k.secret_hint, k.created_at, k.revoked_at, c.environment
		FROM api_keys k JOIN clients c ON c.id = k.client_id WHERE k.secret_hash = $1`, hash).
		Scan(&k.ID, &k.ClientID, &k.Name, &k.SecretHash, &k.SecretHint, &k.CreatedAt, &k.RevokedAt, &k.ClientEnvironment)
	return k, postgres.NotFound(err, authtoken.ErrInvalidClient)
}

func (s *Store) CreateRefreshToken(ctx context.Context, t authtoken.RefreshToken) error {
	_, err := s.db.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id, client_id, api_key_id, created_at, family_expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.Hash, t.FamilyID, t.ClientID, t.APIKeyID, t.CreatedAt, t.FamilyExpiresAt)
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

func (s *Store) RotateRefreshToken(ctx context.Context, old []byte, clientID string, next authtoken.RefreshToken) (authtoken.RefreshToken, error) {
	var reused bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var cur authtoken.RefreshToken
		var rotated, revoked, keyRevoked *time.Time
		err := tx.QueryRow(ctx, `
			SELECT r.family_id, r.client_id, r.api_key_id, r.family_expires_at, r.rotated_at, r.revoked_at, k.revoked_at
			FROM refresh_tokens r JOIN api_keys k ON k.id = r.api_key_id
			WHERE r.token_hash = $1 FOR UPDATE OF r`, old).
			Scan(&cur.FamilyID, &cur.ClientID, &cur.APIKeyID, &cur.FamilyExpiresAt, &rotated, &revoked, &keyRevoked)
		if err != nil {
			return postgres.NotFound(err, authtoken.ErrInvalidGrant)
		}
		switch {
		case cur.ClientID != clientID:
			return authtoken.ErrInvalidGrant
		case rotated != nil:
			// Someone presents a token that was already exchanged: one of the two holders is
			// not the client. End the family; the caller must authenticate afresh.
			if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`, cur.FamilyID, next.CreatedAt); err != nil {
				return err
			}
			reused = true
			return nil
		case revoked != nil, keyRevoked != nil, !next.CreatedAt.Before(cur.FamilyExpiresAt):
			return authtoken.ErrInvalidGrant
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1`, old, next.CreatedAt); err != nil {
			return err
		}
		next.FamilyID, next.ClientID, next.APIKeyID, next.FamilyExpiresAt = cur.FamilyID, cur.ClientID, cur.APIKeyID, cur.FamilyExpiresAt
		return (&Store{db: tx}).CreateRefreshToken(ctx, next)
	})
	if err != nil {
		return authtoken.RefreshToken{}, err
	}
	if reused {
		return authtoken.RefreshToken{}, authtoken.ErrInvalidGrant
	}
	return next, nil
}

const userColumns = `id, client_id, external_ref, kind, coalesce(tax_id_type, ''), coalesce(tax_id, ''), created_at`

func scanUser(row pgx.Row) (u authtoken.User, err error) {
	err = row.Scan(&u.ID, &u.ClientID, &u.ExternalRef, &u.Kind, &u.TaxIDType, &u.TaxID, &u.CreatedAt)
	return u, err
}

func (s *Store) CreateUser(ctx context.Context, u authtoken.User) error {
	_, err := s.db.Exec(ctx, `INSERT INTO users (id, client_id, external_ref, kind, tax_id_type, tax_id, created_at) VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), $7)`,
		u.ID, u.ClientID, u.ExternalRef, u.Kind, u.TaxIDType, u.TaxID, u.CreatedAt)
	if c, ok := postgres.IsUniqueViolation(err); ok && c == "users_external_ref_unique" {
		return authtoken.ErrExternalRefTaken
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

func (s *Store) GetUser(ctx context.Context, clientID, id string) (authtoken.User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE client_id = $1 AND id = $2`, clientID, id))
	return u, postgres.NotFound(err, authtoken.ErrUserNotFound)
}

func (s *Store) ListUsers(ctx context.Context, clientID, externalRef string, p authtoken.Page) ([]authtoken.User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE client_id = $1 AND ($2 = '' OR external_ref = $2) AND ($3 = '' OR id < $3)
		ORDER BY id DESC LIMIT $4`, clientID, externalRef, p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (authtoken.User, error) { return scanUser(r) })
}

func (s *Store) ResolveUsers(ctx context.Context, clientID string, ids, externalRefs []string) ([]authtoken.User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE client_id = $1 AND (id = ANY($2) OR external_ref = ANY($3))`, clientID, nonNilStrings(ids), nonNilStrings(externalRefs))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (authtoken.User, error) { return scanUser(r) })
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Store) CreateLinkToken(ctx context.Context, t authtoken.LinkToken) error {
	_, err := s.db.Exec(ctx, `INSERT INTO link_tokens (id, client_id, user_id, token_hash, products, country, language, redirect_uri, consent_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.ID, t.ClientID, t.UserID, t.Hash, t.Products, t.Country, t.Language, t.RedirectURI, t.ConsentID, t.CreatedAt, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert link token: %w", err)
	}
	return nil
}

func (s *Store) ExchangeLinkToken(ctx context.Context, hash []byte, at time.Time) (t authtoken.LinkToken, err error) {
	// One statement: of any number of concurrent exchanges, exactly one sees exchanged_at NULL.
	err = s.db.QueryRow(ctx, `UPDATE link_tokens SET exchanged_at = $2
		WHERE token_hash = $1 AND exchanged_at IS NULL AND expires_at > $2
		RETURNING id, client_id, user_id, products, country, language, redirect_uri, consent_id, created_at, expires_at`, hash, at).
		Scan(&t.ID, &t.ClientID, &t.UserID, &t.Products, &t.Country, &t.Language, &t.RedirectURI, &t.ConsentID, &t.CreatedAt, &t.ExpiresAt)
	return t, postgres.NotFound(err, authtoken.ErrLinkTokenInvalid)
}

const signingKeyColumns = `id, public_key, private_sealed, created_at, activate_at, publish_until`

func (s *Store) SigningKeys(ctx context.Context, at time.Time) ([]authtoken.SigningKey, error) {
	rows, err := s.db.Query(ctx, `SELECT `+signingKeyColumns+` FROM signing_keys WHERE publish_until IS NULL OR publish_until > $1 ORDER BY activate_at DESC`, at)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (k authtoken.SigningKey, err error) {
		err = r.Scan(&k.ID, &k.Public, &k.PrivateSealed, &k.CreatedAt, &k.ActivateAt, &k.PublishUntil)
		return k, err
	})
}

func (s *Store) AddSigningKey(ctx context.Context, k authtoken.SigningKey, publishUntil time.Time, onlyIfNone bool) (out authtoken.SigningKey, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// Replicas starting or rotating at once take turns, so exactly one key is added.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('puente.authtoken.signing_keys'))`); err != nil {
			return err
		}
		var pending authtoken.SigningKey
		// A pending key (not yet active) stands in for a new rotation; any unretired key stands in
		// for a first key.
		cond := `activate_at > $1`
		if onlyIfNone {
			cond = `publish_until IS NULL OR $1::timestamptz IS NULL`
		}
		err := tx.QueryRow(ctx, `SELECT `+signingKeyColumns+` FROM signing_keys WHERE `+cond+` ORDER BY activate_at DESC LIMIT 1`, k.CreatedAt).
			Scan(&pending.ID, &pending.Public, &pending.PrivateSealed, &pending.CreatedAt, &pending.ActivateAt, &pending.PublishUntil)
		if err == nil {
			out = pending
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET publish_until = $1 WHERE publish_until IS NULL`, publishUntil); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO signing_keys (id, public_key, private_sealed, created_at, activate_at) VALUES ($1, $2, $3, $4, $5)`,
			k.ID, k.Public, k.PrivateSealed, k.CreatedAt, k.ActivateAt); err != nil {
			return err
		}
		out = k
		return nil
	})
	return out, err
}

func (s *Store) DeleteExpired(ctx context.Context, at time.Time) (n int64, err error) {
	for _, q := range []string{
		`DELETE FROM refresh_tokens WHERE family_expires_at < $1`,
		`DELETE FROM link_tokens WHERE expires_at < $1::timestamptz - interval '24 hours'`,
	} {
		tag, err := s.db.Exec(ctx, q, at)
		if err != nil {
			return n, fmt.Errorf("delete expired: %w", err)
		}
		n += tag.RowsAffected()
	}
	keys, err := idempotency.DeleteExpired(ctx, s.db, at)
	if err != nil {
		return n, fmt.Errorf("delete expired: %w", err)
	}
	return n + keys, nil
}

func (s *Store) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(authtoken.Store) ([]byte, error)) ([]byte, error) {
	return idempotency.Do(ctx, s.db, scope, requestID, fingerprint, func(tx pgx.Tx) ([]byte, error) {
		return create(&Store{db: tx})
	})
}
