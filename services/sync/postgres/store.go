// Package postgres is the sync service's store on PostgreSQL (pgx/v5).
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/outbox"
	"puente.dev/pkg/postgres"
	syncs "puente.dev/services/sync"
)

// Schema is the service's schema (and, prefixed, its role).
const Schema = "sync"

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

// Migrate applies the service's migrations, the outbox's and the job queue's.
func Migrate(ctx context.Context, url string) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	return postgres.Migrate(ctx, url, Schema, all)
}

// Store implements syncs.Store.
type Store struct{ db postgres.DB }

var _ syncs.Store = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, fn)
}

// pipeline queues statements to send together, in one round trip. jobs.Enqueue and outbox.Write
// write through its Exec, so a fan-out chunk's hundreds of jobs and events cost one round trip
// rather than one each; their errors come back from send.
type pipeline struct{ b pgx.Batch }

func (p *pipeline) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (p *pipeline) send(ctx context.Context, tx pgx.Tx) error {
	if p.b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &p.b).Close()
}

func enqueue(ctx context.Context, tx jobs.Tx, j syncs.Job) error {
	return jobs.Enqueue(ctx, tx, j.Kind, j.Args, jobs.EnqueueOptions{RunAt: j.RunAt, MaxAttempts: j.MaxAttempts, UniqueKey: j.UniqueKey})
}

// ---- syncs

const syncColumns = `id, client_id, status, total_users, pending_users, succeeded_users, partial_users, failed_users, not_found_users, created_at, completed_at`

func scanSync(row pgx.Row) (sy syncs.Sync, err error) {
	var status string
	var completed *time.Time
	if err = row.Scan(&sy.ID, &sy.ClientID, &status, &sy.Total, &sy.Pending, &sy.Succeeded, &sy.Partial, &sy.Failed, &sy.NotFound,
		&sy.CreatedAt, &completed); err != nil {
		return sy, err
	}
	sy.Status, sy.CreatedAt = syncs.SyncStatus(status), sy.CreatedAt.UTC()
	if completed != nil {
		sy.CompletedAt = completed.UTC()
	}
	return sy, nil
}

// refColumns are how a user reference is stored: its kind and its value.
func refColumns(r syncs.UserRef) (kind, value string) {
	if r.UserID != "" {
		return "user_id", r.UserID
	}
	return "external_ref", r.ExternalRef
}

func refOf(kind, value string) syncs.UserRef {
	if kind == "user_id" {
		return syncs.UserRef{UserID: value}
	}
	return syncs.UserRef{ExternalRef: value}
}

// CreateSync is three round trips whatever the batch's size: the sync and its job together, the
// users in one COPY, the commit.
func (s *Store) CreateSync(ctx context.Context, sy syncs.Sync, users []syncs.UserRef, fanout syncs.Job) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var p pipeline
		_, _ = p.Exec(ctx, `INSERT INTO syncs (id, client_id, status, total_users, pending_users, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			sy.ID, sy.ClientID, string(sy.Status), sy.Total, sy.Pending, sy.CreatedAt)
		if err := enqueue(ctx, &p, fanout); err != nil {
			return err
		}
		if err := p.send(ctx, tx); err != nil {
			return fmt.Errorf("insert sync: %w", err)
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"sync_users"}, []string{"sync_id", "position", "ref_kind", "ref_value"},
			pgx.CopyFromSlice(len(users), func(i int) ([]any, error) {
				kind, value := refColumns(users[i])
				return []any{sy.ID, int32(i), kind, value}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy sync users: %w", err)
		}
		if int(n) != len(users) {
			return fmt.Errorf("copy sync users: copied %d of %d", n, len(users))
		}
		return nil
	})
}

func (s *Store) GetSync(ctx context.Context, clientID, id string) (syncs.Sync, error) {
	sy, err := scanSync(s.db.QueryRow(ctx, `SELECT `+syncColumns+` FROM syncs WHERE client_id = $1 AND id = $2`, clientID, id))
	if err != nil {
		return syncs.Sync{}, postgres.NotFound(err, syncs.ErrSyncNotFound)
	}
	return sy, nil
}

// userColumns are a user's, read from sync_users aliased u.
const userColumns = `u.sync_id, u.position, u.ref_kind, u.ref_value, u.user_id, u.status, u.reason, u.finished_at`

func scanUser(row pgx.Row, extra ...any) (u syncs.UserResult, err error) {
	var kind, value, status string
	var finished *time.Time
	dest := append([]any{&u.SyncID, &u.Position, &kind, &value, &u.UserID, &status, &u.Reason, &finished}, extra...)
	if err = row.Scan(dest...); err != nil {
		return u, err
	}
	u.Ref, u.Status = refOf(kind, value), syncs.UserStatus(status)
	if finished != nil {
		u.FinishedAt = finished.UTC()
	}
	return u, nil
}

// accountColumns read a user's account results in the statement that reads the user, so both
// come from one snapshot.
const accountColumns = `
	coalesce(a.account_ids, '{}'), coalesce(a.consent_ids, '{}'), coalesce(a.statuses, '{}'), coalesce(a.reasons, '{}')`

const accountsJoin = `
	LEFT JOIN LATERAL (
		SELECT array_agg(x.account_id ORDER BY x.seq) AS account_ids, array_agg(x.consent_id ORDER BY x.seq) AS consent_ids,
		       array_agg(x.status ORDER BY x.seq) AS statuses, array_agg(x.reason ORDER BY x.seq) AS reasons
		FROM sync_user_accounts x WHERE x.sync_id = u.sync_id AND x.position = u.position
	) a ON true`

type accountsDest struct{ accountIDs, consentIDs, statuses, reasons []string }

func (d *accountsDest) targets() []any {
	return []any{&d.accountIDs, &d.consentIDs, &d.statuses, &d.reasons}
}

func (d *accountsDest) results() []syncs.AccountResult {
	var out []syncs.AccountResult
	for i := range d.accountIDs {
		out = append(out, syncs.AccountResult{
			AccountID: d.accountIDs[i], ConsentID: d.consentIDs[i], Status: syncs.AccountStatus(d.statuses[i]), Reason: d.reasons[i],
		})
	}
	return out
}

func (s *Store) ListResults(ctx context.Context, clientID, syncID string, status syncs.UserStatus, p syncs.ResultsPage) ([]syncs.UserResult, error) {
	// The sync first: an unknown or foreign sync is not found, where an empty page is not.
	if _, err := s.GetSync(ctx, clientID, syncID); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+`, `+accountColumns+` FROM sync_users u`+accountsJoin+`
		WHERE u.sync_id = $1 AND u.position > $2 AND ($3 = '' OR u.status = $3)
		ORDER BY u.position LIMIT $4`, syncID, p.After, string(status), p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (syncs.UserResult, error) {
		var a accountsDest
		u, err := scanUser(r, a.targets()...)
		u.Accounts = a.results()
		return u, err
	})
}

func (s *Store) User(ctx context.Context, syncID string, position int) (syncs.UserResult, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM sync_users u WHERE u.sync_id = $1 AND u.position = $2`, syncID, position))
	if err != nil {
		return syncs.UserResult{}, postgres.NotFound(err, syncs.ErrSyncNotFound)
	}
	return u, nil
}

func (s *Store) Unresolved(ctx context.Context, syncID string, after, limit int) ([]syncs.UserResult, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM sync_users u
		WHERE u.sync_id = $1 AND u.position > $2 AND NOT u.resolved AND u.status = 'PENDING'
		ORDER BY u.position LIMIT $3`, syncID, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (syncs.UserResult, error) { return scanUser(r) })
}

func (s *Store) Stranded(ctx context.Context, limit int) (users []syncs.UserResult, clientIDs []string, err error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+`, s.client_id FROM sync_users u JOIN syncs s ON s.id = u.sync_id
		WHERE s.status = 'RUNNING' AND u.status = 'PENDING' AND NOT EXISTS (
			SELECT 1 FROM jobs j WHERE j.state IN ('available', 'running') AND j.unique_key =
				CASE WHEN u.resolved THEN 'user:' || u.sync_id || ':' || u.position ELSE 'fanout:' || u.sync_id END)
		AND NOT EXISTS (
			-- Waiting for a batch provider whose job for the sync is still pending.
			SELECT 1 FROM upstream_waits w JOIN jobs j ON j.state IN ('available', 'running')
				AND j.unique_key = 'upstream:' || w.sync_id || ':' || w.provider
			WHERE w.sync_id = u.sync_id AND w.position = u.position AND w.status = 'PENDING')
		LIMIT $1`, limit)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var clientID string
		u, err := scanUser(rows, &clientID)
		if err != nil {
			return nil, nil, err
		}
		users, clientIDs = append(users, u), append(clientIDs, clientID)
	}
	return users, clientIDs, rows.Err()
}

// Resolve claims the chunk's users that are still unresolved (one round trip), then queues the
// jobs, results' events and counters of exactly those (another), so that a chunk recorded twice,
// by a fan-out resumed after a crash or two runs racing, queues and announces nothing twice.
func (s *Store) Resolve(ctx context.Context, clientID, syncID string, found []syncs.Resolved, final []syncs.UserResult) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		claimedFound, claimedFinal := map[int]bool{}, map[int]bool{}
		var p pipeline
		if len(found) > 0 {
			positions, userIDs := make([]int32, len(found)), make([]string, len(found))
			for i, f := range found {
				positions[i], userIDs[i] = int32(f.Position), f.UserID
			}
			p.b.Queue(`UPDATE sync_users u SET user_id = v.user_id, resolved = true
				FROM unnest($2::int[], $3::text[]) AS v(position, user_id)
				WHERE u.sync_id = $1 AND u.position = v.position AND NOT u.resolved AND u.status = 'PENDING'
				RETURNING u.position`, syncID, positions, userIDs).Query(collectPositions(claimedFound))
		}
		if len(final) > 0 {
			positions, statuses, reasons, ats := make([]int32, len(final)), make([]string, len(final)), make([]string, len(final)), make([]time.Time, len(final))
			for i, f := range final {
				positions[i], statuses[i], reasons[i], ats[i] = int32(f.Position), string(f.Status), f.Reason, f.FinishedAt
			}
			p.b.Queue(`UPDATE sync_users u SET status = v.status, reason = v.reason, finished_at = v.at, resolved = true
				FROM unnest($2::int[], $3::text[], $4::text[], $5::timestamptz[]) AS v(position, status, reason, at)
				WHERE u.sync_id = $1 AND u.position = v.position AND NOT u.resolved AND u.status = 'PENDING'
				RETURNING u.position`, syncID, positions, statuses, reasons, ats).Query(collectPositions(claimedFinal))
		}
		if err := p.send(ctx, tx); err != nil {
			return fmt.Errorf("claim users: %w", err)
		}

		p = pipeline{}
		for _, f := range found {
			if claimedFound[f.Position] {
				if err := enqueue(ctx, &p, f.Job); err != nil {
					return err
				}
			}
		}
		var delta counts
		var at time.Time
		for _, f := range final {
			if !claimedFinal[f.Position] {
				continue
			}
			f.SyncID = syncID
			typ, data := syncs.UserEvent(f)
			if _, err := outbox.Write(ctx, &p, typ, clientID, syncID, f.FinishedAt, data); err != nil {
				return err
			}
			delta.add(f.Status)
			at = f.FinishedAt
		}
		return s.record(ctx, tx, &p, clientID, syncID, delta, at)
	})
}

// collectPositions reads the positions a statement returns into dst.
func collectPositions(dst map[int]bool) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		positions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		for _, p := range positions {
			dst[p] = true
		}
		return err
	}
}

// counts are the final results a transaction records, by status.
type counts struct{ succeeded, partial, failed, notFound int }

func (c *counts) add(st syncs.UserStatus) {
	switch st {
	case syncs.UserSuccess:
		c.succeeded++
	case syncs.UserPartial:
		c.partial++
	case syncs.UserError:
		c.failed++
	case syncs.UserNotFound:
		c.notFound++
	}
}

func (c counts) total() int { return c.succeeded + c.partial + c.failed + c.notFound }

// countSQL moves a sync's counters by the results recorded and completes the sync when none is
// left pending. The row's lock orders every recorder of the sync, so exactly one sees the
// counter reach zero.
const countSQL = `UPDATE syncs SET
    succeeded_users = succeeded_users + $3::int,
    partial_users   = partial_users + $4::int,
    failed_users    = failed_users + $5::int,
    not_found_users = not_found_users + $6::int,
    pending_users   = pending_users - ($3::int + $4::int + $5::int + $6::int),
    status          = CASE WHEN pending_users = ($3::int + $4::int + $5::int + $6::int) THEN 'COMPLETED' ELSE status END,
    completed_at    = CASE WHEN pending_users = ($3::int + $4::int + $5::int + $6::int) THEN $7::timestamptz ELSE completed_at END
WHERE id = $1 AND client_id = $2
RETURNING ` + syncColumns

// record sends p with the counters' move (when there is one), then writes "sync.completed" if
// that move completed the sync. The counters go last, so the sync's row is locked for as short a
// time as possible: every user of the sync updates it.
func (s *Store) record(ctx context.Context, tx pgx.Tx, p *pipeline, clientID, syncID string, delta counts, at time.Time) error {
	var sy syncs.Sync
	if delta.total() > 0 {
		p.b.Queue(countSQL, syncID, clientID, delta.succeeded, delta.partial, delta.failed, delta.notFound, at).QueryRow(func(row pgx.Row) error {
			var err error
			sy, err = scanSync(row)
			return err
		})
	}
	if err := p.send(ctx, tx); err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	if delta.total() == 0 || sy.Status != syncs.Completed {
		return nil
	}
	_, err := outbox.Write(ctx, tx, syncs.EventCompleted, clientID, syncID, sy.CompletedAt, syncs.CompletedEvent(sy))
	return err
}

// Finish moves the user from PENDING to its result; only the run that moved it writes the rest.
func (s *Store) Finish(ctx context.Context, clientID string, r syncs.UserResult) (finished bool, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sync_users SET status = $3, reason = $4, finished_at = $5, user_id = $6, resolved = true
			WHERE sync_id = $1 AND position = $2 AND status = 'PENDING'`,
			r.SyncID, r.Position, string(r.Status), r.Reason, r.FinishedAt, r.UserID)
		if err != nil {
			return fmt.Errorf("finish user: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return nil // another run recorded it
		}
		finished = true
		var p pipeline
		if n := len(r.Accounts); n > 0 {
			accountIDs, consentIDs, statuses, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			for i, a := range r.Accounts {
				accountIDs[i], consentIDs[i], statuses[i], reasons[i] = a.AccountID, a.ConsentID, string(a.Status), a.Reason
			}
			_, _ = p.Exec(ctx, `INSERT INTO sync_user_accounts (sync_id, position, seq, account_id, consent_id, status, reason)
				SELECT $1, $2, v.seq, v.account_id, v.consent_id, v.status, v.reason
				FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS v(account_id, consent_id, status, reason, seq)`,
				r.SyncID, r.Position, accountIDs, consentIDs, statuses, reasons)
		}
		typ, data := syncs.UserEvent(r)
		if _, err := outbox.Write(ctx, &p, typ, clientID, r.SyncID, r.FinishedAt, data); err != nil {
			return err
		}
		var delta counts
		delta.add(r.Status)
		return s.record(ctx, tx, &p, clientID, r.SyncID, delta, r.FinishedAt)
	})
	if err != nil {
		return false, err
	}
	return finished, nil
}

// ---- idempotency

func (s *Store) DeleteExpired(ctx context.Context, at, tombstonesBefore time.Time) (int64, error) {
	n, err := idempotency.DeleteExpired(ctx, s.db, at)
	if err != nil {
		return 0, fmt.Errorf("delete expired request ids: %w", err)
	}
	tag, err := s.db.Exec(ctx, `DELETE FROM schedules WHERE consent_status <> 'AUTHORISED' AND changed_at < $1`, tombstonesBefore)
	if err != nil {
		return n, fmt.Errorf("delete schedule tombstones: %w", err)
	}
	n += tag.RowsAffected()
	// Batch providers' events long after any wait they could settle.
	tag, err = s.db.Exec(ctx, `DELETE FROM upstream_events WHERE received_at < $1`, tombstonesBefore)
	if err != nil {
		return n, fmt.Errorf("delete upstream events: %w", err)
	}
	return n + tag.RowsAffected(), nil
}

func (s *Store) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(syncs.Store) ([]byte, error)) ([]byte, error) {
	return idempotency.Do(ctx, s.db, scope, requestID, fingerprint, func(tx pgx.Tx) ([]byte, error) {
		return create(&Store{db: tx})
	})
}
