// Package postgres is the extraction service's store on PostgreSQL (pgx/v5).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/outbox"
	"puente.dev/pkg/postgres"
	"puente.dev/services/extraction"
)

// Schema is the service's schema (and, prefixed, its role).
const Schema = "extraction"

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
		"005_jobs_trace.up.sql": jobs.TraceMigration,
		"006_jobs_stats.up.sql": jobs.StatsMigration,
	})
}

// Migrate applies the service's migrations.
func Migrate(ctx context.Context, url string) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	return postgres.Migrate(ctx, url, Schema, all)
}

// Store implements extraction.Store.
type Store struct{ db postgres.DB }

var _ extraction.Store = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, fn)
}

// snapshot runs fn in a read-only repeatable-read transaction (or in the store's transaction,
// when it is bound to one).
func (s *Store) snapshot(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if b, ok := s.db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		return pgx.BeginTxFunc(ctx, b, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	}
	return s.tx(ctx, fn)
}

// ---- consents

func (s *Store) EnsureConsent(ctx context.Context, c extraction.Consent, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO consents (id, client_id, user_id, institution_id, connection_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
		c.ID, c.ClientID, c.UserID, c.InstitutionID, c.ConnectionID, at)
	if err != nil {
		return fmt.Errorf("record consent: %w", err)
	}
	return nil
}

// lockConsent takes the consent's row lock, which orders every write of its data (and so its
// change numbers), and returns its last change number.
func lockConsent(ctx context.Context, tx pgx.Tx, clientID, id string) (int64, error) {
	var version int64
	var ended *time.Time
	err := tx.QueryRow(ctx, `SELECT version, ended_at FROM consents WHERE client_id = $1 AND id = $2 FOR UPDATE`, clientID, id).Scan(&version, &ended)
	if err != nil {
		return 0, postgres.NotFound(err, extraction.ErrConsentNotFound)
	}
	if ended != nil {
		return 0, extraction.ErrConsentEnded
	}
	return version, nil
}

func (s *Store) EndConsent(ctx context.Context, clientID, consentID string, at, purgeAt time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		// A consent never extracted gets a row too, so that a refresh in flight cannot write
		// its data afterwards.
		tag, err := tx.Exec(ctx, `INSERT INTO consents (id, client_id, user_id, institution_id, connection_id, created_at, ended_at, purge_after)
			VALUES ($1, $2, '', '', '', $3, $3, $4)
			ON CONFLICT (id) DO UPDATE SET ended_at = coalesce(consents.ended_at, excluded.ended_at),
				purge_after = coalesce(consents.purge_after, excluded.purge_after)
			WHERE consents.client_id = excluded.client_id`, consentID, clientID, at, purgeAt)
		if err != nil {
			return fmt.Errorf("end consent: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // another client's consent id: nothing of ours
		}
		var when time.Time
		if err := tx.QueryRow(ctx, `SELECT purge_after FROM consents WHERE id = $1`, consentID).Scan(&when); err != nil {
			return err
		}
		return jobs.Enqueue(ctx, tx, extraction.JobPurge, map[string]string{"id": consentID}, jobs.EnqueueOptions{RunAt: when, UniqueKey: "purge:" + consentID})
	})
}

func (s *Store) Purge(ctx context.Context, consentID string, now time.Time) (notBefore time.Time, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var purgeAfter, purgedAt *time.Time
		err := tx.QueryRow(ctx, `SELECT purge_after, purged_at FROM consents WHERE id = $1 FOR UPDATE`, consentID).Scan(&purgeAfter, &purgedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case purgeAfter == nil || purgedAt != nil:
			return nil
		case purgeAfter.After(now):
			notBefore = *purgeAfter
			return nil
		}
		for _, table := range []string{"transactions", "identities", "accounts", "reports", "upstream_documents"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE consent_id = $1`, consentID); err != nil {
				return fmt.Errorf("delete %s: %w", table, err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE consents SET purged_at = $2 WHERE id = $1`, consentID, now)
		return err
	})
	return notBefore, err
}

// ---- accounts

const accountColumns = `id, client_id, consent_id, user_id, institution_id, upstream_id, type, subtype, name, mask, currency,
	bank_code, has_balance, balance_current, balance_available, balance_limit, balance_as_of, created_at, updated_at`

func scanAccount(row pgx.Row) (a extraction.Account, err error) {
	var asOf *time.Time
	err = row.Scan(&a.ID, &a.ClientID, &a.ConsentID, &a.UserID, &a.InstitutionID, &a.UpstreamAccount.ID, &a.Type, &a.Subtype,
		&a.Name, &a.Mask, &a.Currency, &a.BankCode, &a.HasBalance, &a.Balance.Current, &a.Balance.Available, &a.Balance.Limit,
		&asOf, &a.CreatedAt, &a.UpdatedAt)
	if asOf != nil {
		a.Balance.AsOf = asOf.UTC()
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, err
}

// sameAccount reports whether an upstream account says nothing new of a stored one (the
// balance's time aside).
func sameAccount(a extraction.Account, u extraction.UpstreamAccount, withBalance bool) bool {
	b, ub := a.Balance, u.Balance
	if !withBalance {
		ub = extraction.Balance{}
	}
	b.AsOf, ub.AsOf = time.Time{}, time.Time{}
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Type == u.Type && a.Subtype == u.Subtype && a.Name == u.Name && a.Mask == u.Mask && a.Currency == u.Currency &&
		a.BankCode == u.BankCode && a.HasBalance == withBalance && b.Current == ub.Current && eq(b.Available, ub.Available) && eq(b.Limit, ub.Limit)
}

func (s *Store) SaveAccounts(ctx context.Context, c extraction.Consent, ups []extraction.UpstreamAccount, withBalances bool, at time.Time) (out []extraction.Account, counts extraction.Counts, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockConsent(ctx, tx, c.ClientID, c.ID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+accountColumns+` FROM accounts WHERE consent_id = $1`, c.ID)
		if err != nil {
			return err
		}
		stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (extraction.Account, error) { return scanAccount(r) })
		if err != nil {
			return err
		}
		byUpstream := make(map[string]extraction.Account, len(stored))
		for _, a := range stored {
			byUpstream[a.UpstreamAccount.ID] = a
		}
		for _, u := range ups {
			a, ok := byUpstream[u.ID]
			if ok && sameAccount(a, u, withBalances) {
				if withBalances {
					a.Balance.AsOf = u.Balance.AsOf
					if _, err := tx.Exec(ctx, `UPDATE accounts SET balance_as_of = $2 WHERE id = $1`, a.ID, nullTime(u.Balance.AsOf)); err != nil {
						return err
					}
				}
				out = append(out, a)
				continue
			}
			if !ok {
				a = extraction.Account{ID: ids.New("acc"), ClientID: c.ClientID, ConsentID: c.ID, UserID: c.UserID, InstitutionID: c.InstitutionID, CreatedAt: at}
				counts.Added++
			} else {
				counts.Modified++
			}
			a.UpstreamAccount, a.HasBalance, a.UpdatedAt = u, withBalances, at
			if !withBalances {
				a.Balance = extraction.Balance{}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
				ON CONFLICT (id) DO UPDATE SET type = excluded.type, subtype = excluded.subtype, name = excluded.name,
					mask = excluded.mask, currency = excluded.currency, bank_code = excluded.bank_code,
					has_balance = excluded.has_balance, balance_current = excluded.balance_current,
					balance_available = excluded.balance_available, balance_limit = excluded.balance_limit,
					balance_as_of = excluded.balance_as_of, updated_at = excluded.updated_at`,
				a.ID, a.ClientID, a.ConsentID, a.UserID, a.InstitutionID, u.ID, u.Type, u.Subtype, u.Name, u.Mask, u.Currency,
				u.BankCode, a.HasBalance, a.Balance.Current, a.Balance.Available, a.Balance.Limit, nullTime(a.Balance.AsOf), a.CreatedAt, a.UpdatedAt); err != nil {
				return fmt.Errorf("save account: %w", err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, counts, err
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Store) GetAccount(ctx context.Context, clientID, id string) (extraction.Account, error) {
	a, err := scanAccount(s.db.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE client_id = $1 AND id = $2`, clientID, id))
	return a, postgres.NotFound(err, extraction.ErrAccountNotFound)
}

func (s *Store) ListAccounts(ctx context.Context, clientID string, consentIDs []string, p extraction.Page) ([]extraction.Account, error) {
	rows, err := s.db.Query(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE client_id = $1 AND consent_id = ANY($2) AND ($3 = '' OR id > $3) ORDER BY id LIMIT $4`,
		clientID, consentIDs, p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (extraction.Account, error) { return scanAccount(r) })
}

// ---- transactions

const txnColumns = `id, client_id, consent_id, account_id, upstream_id, amount_minor, currency, pending,
	booking_date::text, coalesce(value_date::text, ''), description, counterparty_name, counterparty_type, category,
	removed, created_version, version, created_at, updated_at`

func scanTransaction(row pgx.Row) (t extraction.Transaction, err error) {
	u := &t.UpstreamTransaction
	err = row.Scan(&t.ID, &t.ClientID, &t.ConsentID, &t.AccountID, &u.ID, &u.AmountMinor, &u.Currency, &u.Pending,
		&u.BookingDate, &u.ValueDate, &u.Description, &u.CounterpartyName, &u.CounterpartyType, &u.Category,
		&t.Removed, &t.Created, &t.Version, &t.CreatedAt, &t.UpdatedAt)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

// date parses a YYYY-MM-DD for a date column; "" is NULL.
func date(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return nil, fmt.Errorf("date %q: %w", s, err)
	}
	return &t, nil
}

func (s *Store) SaveTransactions(ctx context.Context, a extraction.Account, up extraction.UpstreamTransactions, fetchedAt, at time.Time) (counts extraction.Counts, err error) {
	for _, t := range up.Items {
		if t.BookingDate == "" {
			return counts, fmt.Errorf("upstream transaction without a booking date")
		}
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		counts = extraction.Counts{}
		version, err := lockConsent(ctx, tx, a.ClientID, a.ConsentID)
		if err != nil {
			return err
		}
		// Two pulls of one consent may overlap (an extraction, a sync, a schedule): the one that
		// read the upstream later wins, and an older list is not applied over a newer one.
		tag, err := tx.Exec(ctx, `UPDATE accounts SET transactions_fetched_at = $2
			WHERE id = $1 AND (transactions_fetched_at IS NULL OR transactions_fetched_at <= $2)`, a.ID, fetchedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		upstreamIDs := make([]string, len(up.Items))
		for i, t := range up.Items {
			upstreamIDs[i] = t.ID
		}
		rows, err := tx.Query(ctx, `SELECT `+txnColumns+` FROM transactions
			WHERE account_id = $1 AND NOT removed
				AND (pending OR $2 = '' OR booking_date >= $2::date OR upstream_id = ANY($3))`, a.ID, up.From, upstreamIDs)
		if err != nil {
			return err
		}
		stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (extraction.Transaction, error) { return scanTransaction(r) })
		if err != nil {
			return err
		}
		var added [][]any
		batch := &pgx.Batch{}
		for _, ch := range extraction.SortedChanges(extraction.Reconcile(stored, up)) {
			version++
			u := ch.Txn
			switch ch.Kind {
			case extraction.Added, extraction.Modified:
				booking, err := date(u.BookingDate)
				if err != nil {
					return err
				}
				value, err := date(u.ValueDate)
				if err != nil {
					return err
				}
				if ch.Kind == extraction.Added {
					counts.Added++
					added = append(added, []any{ids.New("txn"), a.ClientID, a.ConsentID, a.ID, u.ID, u.AmountMinor, u.Currency, u.Pending,
						*booking, value, u.Description, u.CounterpartyName, u.CounterpartyType, u.Category, false, version, version, at, at})
					continue
				}
				counts.Modified++
				batch.Queue(`UPDATE transactions SET upstream_id = $2, amount_minor = $3, currency = $4, pending = $5, booking_date = $6,
					value_date = $7, description = $8, counterparty_name = $9, counterparty_type = $10, category = $11, version = $12, updated_at = $13
					WHERE id = $1`, ch.ID, u.ID, u.AmountMinor, u.Currency, u.Pending, *booking, value, u.Description,
					u.CounterpartyName, u.CounterpartyType, u.Category, version, at)
			case extraction.Removed:
				counts.Removed++
				batch.Queue(`UPDATE transactions SET removed = true, version = $2, updated_at = $3 WHERE id = $1`, ch.ID, version, at)
			}
		}
		if batch.Len() > 0 {
			if err := tx.SendBatch(ctx, batch).Close(); err != nil {
				return fmt.Errorf("update transactions: %w", err)
			}
		}
		if len(added) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"transactions"}, []string{"id", "client_id", "consent_id", "account_id",
				"upstream_id", "amount_minor", "currency", "pending", "booking_date", "value_date", "description", "counterparty_name",
				"counterparty_type", "category", "removed", "created_version", "version", "created_at", "updated_at"},
				pgx.CopyFromRows(added)); err != nil {
				return fmt.Errorf("insert transactions: %w", err)
			}
		}
		if counts == (extraction.Counts{}) {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE consents SET version = $2 WHERE id = $1`, a.ConsentID, version); err != nil {
			return err
		}
		// Announced with the data (Plaid's SYNC_UPDATES_AVAILABLE), so that whatever pulled it
		// (an extraction, a sync, a schedule) and whatever happens to that caller, the client
		// hears of it once.
		_, err = outbox.Write(ctx, tx, "transactions.updates_available", a.ClientID, a.ConsentID, at, map[string]any{
			"consent_id": a.ConsentID, "user_id": a.UserID, "account_id": a.ID,
			"added": counts.Added, "modified": counts.Modified, "removed": counts.Removed,
		})
		return err
	})
	return counts, err
}

func (s *Store) ListTransactions(ctx context.Context, clientID, accountID string, f extraction.TransactionFilter, p extraction.TransactionPage) ([]extraction.Transaction, error) {
	rows, err := s.db.Query(ctx, `SELECT `+txnColumns+` FROM transactions
		WHERE client_id = $1 AND account_id = $2 AND NOT removed
			AND ($3::text = '' OR booking_date >= $3::text::date) AND ($4::text = '' OR booking_date <= $4::text::date)
			AND ($5::text = '' OR (booking_date, id) < ($5::text::date, $6))
		ORDER BY booking_date DESC, id DESC LIMIT $7`,
		clientID, accountID, f.From, f.To, p.BookingDate, p.ID, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (extraction.Transaction, error) { return scanTransaction(r) })
}

func (s *Store) Changes(ctx context.Context, clientID, consentID string, after, until int64, limit int) (items []extraction.Transaction, now int64, err error) {
	// One snapshot: the consent's number and the changes up to it, so that a refresh committing
	// between the two reads cannot move a change past the number the cursor goes on from.
	err = s.snapshot(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT version FROM consents WHERE client_id = $1 AND id = $2`, clientID, consentID).Scan(&now)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // nothing extracted yet
		}
		if err != nil {
			return err
		}
		if until == 0 || until > now {
			until = now
		}
		rows, err := tx.Query(ctx, `SELECT `+txnColumns+` FROM transactions
			WHERE consent_id = $1 AND client_id = $2 AND version > $3 AND version <= $4
			ORDER BY version LIMIT $5`, consentID, clientID, after, until, limit)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (extraction.Transaction, error) { return scanTransaction(r) })
		return err
	})
	return items, now, err
}

// ---- identity

func (s *Store) SaveIdentity(ctx context.Context, c extraction.Consent, sealed []byte, at time.Time) (added bool, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockConsent(ctx, tx, c.ClientID, c.ID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO identities (consent_id, client_id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (consent_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
			RETURNING xmax = 0`, c.ID, c.ClientID, sealed, at).Scan(&added)
	})
	return added, err
}

// SaveDocument keeps the latest document of a kind an upstream pushed for a consent.
func (s *Store) SaveDocument(ctx context.Context, c extraction.Consent, kind string, sealed []byte, at time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockConsent(ctx, tx, c.ClientID, c.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO upstream_documents (consent_id, client_id, kind, sealed, received_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (consent_id, kind) DO UPDATE SET sealed = excluded.sealed, received_at = excluded.received_at`, c.ID, c.ClientID, kind, sealed, at)
		return err
	})
}

// EnqueueRefresh queues a refresh of a consent. Two close pushes may refresh twice: harmless, as
// a refresh reconciles.
func (s *Store) EnqueueRefresh(ctx context.Context, clientID, consentID string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		return jobs.Enqueue(ctx, tx, extraction.JobRefresh, map[string]string{"client_id": clientID, "consent_id": consentID}, jobs.EnqueueOptions{MaxAttempts: 20})
	})
}

// Documents returns a consent's pushed documents, sealed, by kind.
func (s *Store) Documents(ctx context.Context, clientID, consentID string) (map[string]extraction.Document, error) {
	rows, err := s.db.Query(ctx, `SELECT kind, sealed, received_at FROM upstream_documents WHERE client_id = $1 AND consent_id = $2`, clientID, consentID)
	if err != nil {
		return nil, err
	}
	out := map[string]extraction.Document{}
	for rows.Next() {
		var d extraction.Document
		if err := rows.Scan(&d.Kind, &d.Body, &d.ReceivedAt); err != nil {
			return nil, err
		}
		d.ReceivedAt = d.ReceivedAt.UTC()
		out[d.Kind] = d
	}
	return out, rows.Err()
}

func (s *Store) Identity(ctx context.Context, clientID, consentID string) (sealed []byte, at time.Time, err error) {
	err = s.db.QueryRow(ctx, `SELECT sealed, updated_at FROM identities WHERE client_id = $1 AND consent_id = $2`, clientID, consentID).Scan(&sealed, &at)
	return sealed, at.UTC(), postgres.NotFound(err, extraction.ErrIdentityNotFound)
}

// ---- extractions

const extractionColumns = `id, client_id, consent_id, product, status, reason, added, modified, removed, created_at, finished_at`

func scanExtraction(row pgx.Row) (e extraction.Extraction, err error) {
	var status string
	var finished *time.Time
	err = row.Scan(&e.ID, &e.ClientID, &e.ConsentID, &e.Product, &status, &e.Reason, &e.Counts.Added, &e.Counts.Modified,
		&e.Counts.Removed, &e.CreatedAt, &finished)
	e.Status, e.CreatedAt = extraction.JobStatus(status), e.CreatedAt.UTC()
	if finished != nil {
		e.FinishedAt = finished.UTC()
	}
	return e, err
}

func (s *Store) CreateExtraction(ctx context.Context, e extraction.Extraction) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO extractions (id, client_id, consent_id, product, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			e.ID, e.ClientID, e.ConsentID, e.Product, string(e.Status), e.CreatedAt); err != nil {
			return fmt.Errorf("insert extraction: %w", err)
		}
		return jobs.Enqueue(ctx, tx, extraction.JobExtract, map[string]string{"id": e.ID}, jobs.EnqueueOptions{MaxAttempts: 8})
	})
}

func (s *Store) GetExtraction(ctx context.Context, clientID, id string) (extraction.Extraction, error) {
	e, err := scanExtraction(s.db.QueryRow(ctx, `SELECT `+extractionColumns+` FROM extractions WHERE ($1 = '' OR client_id = $1) AND id = $2`, clientID, id))
	return e, postgres.NotFound(err, extraction.ErrExtractionNotFound)
}

func (s *Store) FinishExtraction(ctx context.Context, e extraction.Extraction) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE extractions SET status = $2, reason = $3, added = $4, modified = $5, removed = $6, finished_at = $7
			WHERE id = $1 AND status = 'PENDING'`, e.ID, string(e.Status), e.Reason, e.Counts.Added, e.Counts.Modified, e.Counts.Removed, e.FinishedAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		data := map[string]any{
			"extraction_id": e.ID, "consent_id": e.ConsentID, "product": e.Product, "status": e.Status,
			"added": e.Counts.Added, "modified": e.Counts.Modified, "removed": e.Counts.Removed,
		}
		if e.Reason != "" {
			data["reason"] = e.Reason
		}
		_, err = outbox.Write(ctx, tx, "extraction.completed", e.ClientID, e.ID, e.FinishedAt, data)
		return err
	})
}

// ---- reports

const reportColumns = `id, client_id, consent_id, type, status, reason, body, created_at, finished_at`

func scanReport(row pgx.Row) (r extraction.Report, err error) {
	var status string
	var body []byte
	var finished *time.Time
	if err = row.Scan(&r.ID, &r.ClientID, &r.ConsentID, &r.Type, &status, &r.Reason, &body, &r.CreatedAt, &finished); err != nil {
		return r, err
	}
	r.Status, r.CreatedAt = extraction.JobStatus(status), r.CreatedAt.UTC()
	if finished != nil {
		r.FinishedAt = finished.UTC()
	}
	if body != nil {
		r.CashFlow = &extraction.CashFlow{}
		if err := json.Unmarshal(body, r.CashFlow); err != nil {
			return r, fmt.Errorf("decode report %s: %w", r.ID, err)
		}
	}
	return r, nil
}

func (s *Store) CreateReport(ctx context.Context, r extraction.Report) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO reports (id, client_id, consent_id, type, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.ID, r.ClientID, r.ConsentID, r.Type, string(r.Status), r.CreatedAt); err != nil {
			return fmt.Errorf("insert report: %w", err)
		}
		return jobs.Enqueue(ctx, tx, extraction.JobReport, map[string]string{"id": r.ID}, jobs.EnqueueOptions{MaxAttempts: 8})
	})
}

func (s *Store) GetReport(ctx context.Context, clientID, id string) (extraction.Report, error) {
	r, err := scanReport(s.db.QueryRow(ctx, `SELECT `+reportColumns+` FROM reports WHERE ($1 = '' OR client_id = $1) AND id = $2`, clientID, id))
	return r, postgres.NotFound(err, extraction.ErrReportNotFound)
}

func (s *Store) FinishReport(ctx context.Context, r extraction.Report) error {
	var body []byte
	if r.CashFlow != nil {
		var err error
		if body, err = json.Marshal(r.CashFlow); err != nil {
			return err
		}
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE reports SET status = $2, reason = $3, body = $4, finished_at = $5 WHERE id = $1 AND status = 'PENDING'`,
			r.ID, string(r.Status), r.Reason, body, r.FinishedAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		data := map[string]any{"report_id": r.ID, "consent_id": r.ConsentID, "type": r.Type, "status": r.Status}
		if r.Reason != "" {
			data["reason"] = r.Reason
		}
		_, err = outbox.Write(ctx, tx, "report.completed", r.ClientID, r.ID, r.FinishedAt, data)
		return err
	})
}

// ---- idempotency

func (s *Store) DeleteExpired(ctx context.Context, at time.Time) (int64, error) {
	n, err := idempotency.DeleteExpired(ctx, s.db, at)
	if err != nil {
		return 0, fmt.Errorf("delete expired: %w", err)
	}
	return n, nil
}

func (s *Store) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(extraction.Store) ([]byte, error)) ([]byte, error) {
	return idempotency.Do(ctx, s.db, scope, requestID, fingerprint, func(tx pgx.Tx) ([]byte, error) {
		return create(&Store{db: tx})
	})
}
