// Package postgres is the consent service's store on PostgreSQL (pgx/v5).
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/outbox"
	"puente.dev/pkg/postgres"
	"puente.dev/services/consent"
)

// Schema is the service's schema (and, prefixed, its role).
const Schema = "consent"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the service's migrations: its own, the outbox's and the job queue's.
func Migrations() (fs.FS, error) {
	base, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return postgres.WithMigrations(base, map[string]string{
		"002_outbox.up.sql":     outbox.Migration,
		"003_jobs.up.sql":       jobs.Migration,
		"004_jobs_trace.up.sql": jobs.TraceMigration,
		"005_jobs_stats.up.sql": jobs.StatsMigration,
	})
}

// Migrate applies the service's migrations, the outbox's and the job queue's.
func Migrate(ctx context.Context, url string) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	return postgres.Migrate(ctx, url, Schema, all)
}

// Store implements consent.Store.
type Store struct{ db postgres.DB }

var _ consent.Store = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, fn)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ---- consents

const consentColumns = `id, client_id, user_id, institution_id, connection_id, products, status, expires_at, created_at, updated_at`

func scanConsent(row pgx.Row, extra ...any) (c consent.Consent, err error) {
	var status string
	dest := append([]any{&c.ID, &c.ClientID, &c.UserID, &c.InstitutionID, &c.ConnectionID, &c.Products, &status,
		&c.ExpiresAt, &c.CreatedAt, &c.UpdatedAt}, extra...)
	if err = row.Scan(dest...); err != nil {
		return c, err
	}
	c.Status = consent.Status(status)
	c.ExpiresAt, c.CreatedAt, c.UpdatedAt = c.ExpiresAt.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

func (s *Store) CreateConsent(ctx context.Context, c consent.Consent, first consent.HistoryEntry, js []consent.Job) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO consents (`+consentColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			c.ID, c.ClientID, c.UserID, c.InstitutionID, c.ConnectionID, nonNil(c.Products), string(c.Status),
			c.ExpiresAt, c.CreatedAt, c.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert consent: %w", err)
		}
		if err := record(ctx, tx, "consent.created", c, first); err != nil {
			return err
		}
		for _, j := range js {
			// One pending job of a kind per consent, however often it is asked for.
			if err := jobs.Enqueue(ctx, tx, j.Kind, map[string]string{"consent_id": c.ID}, jobs.EnqueueOptions{
				RunAt: j.RunAt, UniqueKey: j.Kind + ":" + c.ID,
			}); err != nil {
				return fmt.Errorf("enqueue %s: %w", j.Kind, err)
			}
		}
		return nil
	})
}

// record writes a history entry and its event in tx.
func record(ctx context.Context, tx pgx.Tx, eventType string, c consent.Consent, e consent.HistoryEntry) error {
	if _, err := tx.Exec(ctx, `INSERT INTO consent_history (consent_id, status, reason, at) VALUES ($1, $2, $3, $4)`,
		c.ID, string(e.Status), e.Reason, e.At); err != nil {
		return fmt.Errorf("insert history: %w", err)
	}
	_, err := outbox.Write(ctx, tx, eventType, c.ClientID, c.ID, e.At, map[string]any{
		"consent_id": c.ID, "user_id": c.UserID, "institution_id": c.InstitutionID,
		"status": e.Status, "reason": e.Reason, "connection_id": c.ConnectionID,
	})
	return err
}

// historyColumns read a consent's history in the statement that reads the consent, so both come
// from one snapshot.
const historyColumns = `
	coalesce((SELECT array_agg(h.status ORDER BY h.seq) FROM consent_history h WHERE h.consent_id = consents.id), '{}'),
	coalesce((SELECT array_agg(h.reason ORDER BY h.seq) FROM consent_history h WHERE h.consent_id = consents.id), '{}'),
	coalesce((SELECT array_agg(h.at ORDER BY h.seq) FROM consent_history h WHERE h.consent_id = consents.id), '{}')`

type historyDest struct {
	statuses, reasons []string
	ats               []time.Time
}

func (d *historyDest) targets() []any { return []any{&d.statuses, &d.reasons, &d.ats} }

func (d *historyDest) entries() []consent.HistoryEntry {
	out := make([]consent.HistoryEntry, len(d.statuses))
	for i := range d.statuses {
		out[i] = consent.HistoryEntry{Status: consent.Status(d.statuses[i]), Reason: d.reasons[i], At: d.ats[i].UTC()}
	}
	return out
}

func (s *Store) GetConsent(ctx context.Context, clientID, id string) (consent.Consent, []consent.HistoryEntry, error) {
	var h historyDest
	c, err := scanConsent(s.db.QueryRow(ctx, `SELECT `+consentColumns+`, `+historyColumns+` FROM consents WHERE client_id = $1 AND id = $2`,
		clientID, id), h.targets()...)
	if err != nil {
		return consent.Consent{}, nil, postgres.NotFound(err, consent.ErrConsentNotFound)
	}
	return c, h.entries(), nil
}

func (s *Store) ListConsents(ctx context.Context, clientID string, f consent.Filter, p consent.Page) ([]consent.Consent, error) {
	rows, err := s.db.Query(ctx, `SELECT `+consentColumns+` FROM consents
		WHERE client_id = $1 AND ($2 = '' OR user_id = $2) AND ($3 = '' OR status = $3) AND ($4 = '' OR id < $4)
		ORDER BY id DESC LIMIT $5`, clientID, f.UserID, string(f.Status), p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (consent.Consent, error) { return scanConsent(r) })
}

func (s *Store) Update(ctx context.Context, clientID, id string, fn func(*consent.Consent) (*consent.HistoryEntry, error)) (out consent.Consent, history []consent.HistoryEntry, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		c, err := scanConsent(tx.QueryRow(ctx, `SELECT `+consentColumns+` FROM consents WHERE ($1 = '' OR client_id = $1) AND id = $2 FOR UPDATE`, clientID, id))
		if err != nil {
			return postgres.NotFound(err, consent.ErrConsentNotFound)
		}
		entry, err := fn(&c)
		if err != nil {
			return err
		}
		if entry != nil {
			if _, err := tx.Exec(ctx, `UPDATE consents SET connection_id = $2, status = $3, updated_at = $4 WHERE id = $1`,
				c.ID, c.ConnectionID, string(c.Status), c.UpdatedAt); err != nil {
				return fmt.Errorf("update consent: %w", err)
			}
			if err := record(ctx, tx, "consent.status_changed", c, *entry); err != nil {
				return err
			}
			// The services keeping data and schedules for the consent hear of it, whatever happens
			// next: retried hourly for a month, since a consent's end that is never heard of
			// would keep its data.
			if err := jobs.Enqueue(ctx, tx, consent.JobNotify, consent.Change{ClientID: c.ClientID, ConsentID: c.ID, Status: entry.Status, At: entry.At}, jobs.EnqueueOptions{MaxAttempts: 720}); err != nil {
				return err
			}
		}
		// Under the row's lock, no other entry can be added meanwhile.
		var h historyDest
		if err := tx.QueryRow(ctx, `SELECT `+historyColumns+` FROM consents WHERE id = $1`, c.ID).Scan(h.targets()...); err != nil {
			return err
		}
		out, history = c, h.entries()
		return nil
	})
	if err != nil {
		return consent.Consent{}, nil, err
	}
	return out, history, nil
}

// ---- idempotency

func (s *Store) DeleteExpired(ctx context.Context, at time.Time) (int64, error) {
	n, err := idempotency.DeleteExpired(ctx, s.db, at)
	if err != nil {
		return 0, fmt.Errorf("delete expired: %w", err)
	}
	return n, nil
}

func (s *Store) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(consent.Store) ([]byte, error)) ([]byte, error) {
	return idempotency.Do(ctx, s.db, scope, requestID, fingerprint, func(tx pgx.Tx) ([]byte, error) {
		return create(&Store{db: tx})
	})
}
