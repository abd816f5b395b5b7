package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"puente.dev/pkg/jobs"
	syncs "puente.dev/services/sync"
)

// The waits of batch refreshes (syncs.BatchStore).

var _ syncs.BatchStore = (*Store)(nil)

// waitColumnsOf are the columns scanWait reads, of table alias t ("" or "w.").
func waitColumnsOf(t string) string {
	return t + "sync_id, " + t + "position, " + t + "consent_id, " + t + "client_id, " + t + "user_id, " + t + "provider, " +
		t + "ref, coalesce(" + t + "request_id, ''), " + t + "status, " + t + "reason, " + t + "failed_accounts, " + t + "deadline"
}

var waitColumns = waitColumnsOf("")

func scanWait(row pgx.Row) (w syncs.Wait, err error) {
	var status string
	err = row.Scan(&w.SyncID, &w.Position, &w.ConsentID, &w.ClientID, &w.UserID, &w.Provider, &w.Ref, &w.RequestID, &status, &w.Reason, &w.FailedAccounts, &w.Deadline)
	w.Status = syncs.WaitStatus(status)
	return w, err
}

func (s *Store) AddWaits(ctx context.Context, waits []syncs.Wait, queue []syncs.Job) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var p pipeline
		for _, w := range waits {
			_, _ = p.Exec(ctx, `INSERT INTO upstream_waits (sync_id, position, consent_id, client_id, user_id, provider, ref, deadline)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
				w.SyncID, w.Position, w.ConsentID, w.ClientID, w.UserID, w.Provider, w.Ref, w.Deadline)
		}
		for _, j := range queue {
			if err := enqueue(ctx, &p, j); err != nil {
				return err
			}
			// The job may be pending already, waiting for a deadline: these waits need sending.
			if err := jobs.AdvanceTo(ctx, &p, j.UniqueKey, j.RunAt); err != nil {
				return err
			}
		}
		if err := p.send(ctx, tx); err != nil {
			return fmt.Errorf("add waits: %w", err)
		}
		return nil
	})
}

func (s *Store) Waits(ctx context.Context, syncID string, position int) ([]syncs.Wait, error) {
	rows, err := s.db.Query(ctx, `SELECT `+waitColumns+` FROM upstream_waits WHERE sync_id = $1 AND position = $2 ORDER BY consent_id`, syncID, position)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (syncs.Wait, error) { return scanWait(r) })
}

func (s *Store) Unsent(ctx context.Context, syncID, provider string, limit int) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT ref FROM upstream_waits
		WHERE sync_id = $1 AND provider = $2 AND status = 'PENDING' AND request_id IS NULL ORDER BY ref LIMIT $3`, syncID, provider, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// lockRequest serialises what concerns one request of a provider: recording that it carries its
// refs, and receiving its events. Either comes first; the second sees what the first committed.
func lockRequest(ctx context.Context, tx pgx.Tx, provider, requestID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "upstream:"+provider+":"+requestID)
	return err
}

func (s *Store) Sent(ctx context.Context, syncID, provider string, refs []string, requestID string, userJob func(syncs.Wait) syncs.Job) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockRequest(ctx, tx, provider, requestID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE upstream_waits SET request_id = $4
			WHERE sync_id = $1 AND provider = $2 AND ref = ANY($3) AND request_id IS NULL AND status = 'PENDING'`,
			syncID, provider, refs, requestID); err != nil {
			return fmt.Errorf("record request: %w", err)
		}
		rows, err := tx.Query(ctx, `UPDATE upstream_waits w
			SET status = CASE WHEN e.not_found THEN 'NOT_FOUND' ELSE 'FINISHED' END, failed_accounts = e.failed_accounts, settled_at = e.received_at
			FROM upstream_events e
			WHERE w.sync_id = $1 AND w.provider = $2 AND w.request_id = $3 AND w.status = 'PENDING'
				AND e.provider = w.provider AND e.request_id = w.request_id AND e.ref = w.ref
			RETURNING `+waitColumnsOf("w."), syncID, provider, requestID)
		if err != nil {
			return fmt.Errorf("settle with early events: %w", err)
		}
		return requeue(ctx, tx, rows, userJob)
	})
}

func (s *Store) Settle(ctx context.Context, provider string, ev syncs.BatchEvent, at time.Time, userJob func(syncs.Wait) syncs.Job) error {
	status := syncs.WaitFinished
	if ev.NotFound {
		status = syncs.WaitNotFound
	}
	failed := ev.FailedAccounts
	if failed == nil {
		failed = []string{}
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockRequest(ctx, tx, provider, ev.RequestID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO upstream_events (provider, request_id, ref, not_found, failed_accounts, received_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, provider, ev.RequestID, ev.Ref, ev.NotFound, failed, at)
		if err != nil {
			return fmt.Errorf("keep event: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // a repeat: the first one settled what it could
		}
		rows, err := tx.Query(ctx, `UPDATE upstream_waits SET status = $4, failed_accounts = $5, settled_at = $6
			WHERE provider = $1 AND request_id = $2 AND ref = $3 AND status = 'PENDING'
			RETURNING `+waitColumns, provider, ev.RequestID, ev.Ref, string(status), failed, at)
		if err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		return requeue(ctx, tx, rows, userJob)
	})
}

func (s *Store) FailUnsent(ctx context.Context, syncID, provider string, refs []string, reason string, userJob func(syncs.Wait) syncs.Job) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE upstream_waits SET status = 'FAILED', reason = $4, settled_at = now()
			WHERE sync_id = $1 AND provider = $2 AND ref = ANY($3) AND request_id IS NULL AND status = 'PENDING'
			RETURNING `+waitColumns, syncID, provider, refs, reason)
		if err != nil {
			return fmt.Errorf("fail waits: %w", err)
		}
		return requeue(ctx, tx, rows, userJob)
	})
}

func (s *Store) Expire(ctx context.Context, syncID, provider string, now time.Time, userJob func(syncs.Wait) syncs.Job) (next time.Time, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE upstream_waits SET status = 'TIMEOUT', settled_at = $3
			WHERE sync_id = $1 AND provider = $2 AND status = 'PENDING' AND request_id IS NOT NULL AND deadline <= $3
			RETURNING `+waitColumns, syncID, provider, now)
		if err != nil {
			return fmt.Errorf("expire waits: %w", err)
		}
		if err := requeue(ctx, tx, rows, userJob); err != nil {
			return err
		}
		var at *time.Time
		if err := tx.QueryRow(ctx, `SELECT min(deadline) FROM upstream_waits WHERE sync_id = $1 AND provider = $2 AND status = 'PENDING'`,
			syncID, provider).Scan(&at); err != nil {
			return fmt.Errorf("next deadline: %w", err)
		}
		if at != nil {
			next = *at
		}
		return nil
	})
	return next, err
}

// requeue reads the waits rows settled and queues the job of each of their users that has no
// wait left pending.
func requeue(ctx context.Context, tx pgx.Tx, rows pgx.Rows, userJob func(syncs.Wait) syncs.Job) error {
	settled, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (syncs.Wait, error) { return scanWait(r) })
	if err != nil {
		return fmt.Errorf("settled waits: %w", err)
	}
	type user struct {
		syncID   string
		position int
	}
	seen := map[user]bool{}
	var p pipeline
	for _, w := range settled {
		u := user{w.SyncID, w.Position}
		if seen[u] {
			continue
		}
		seen[u] = true
		var pending bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM upstream_waits WHERE sync_id = $1 AND position = $2 AND status = 'PENDING')`,
			w.SyncID, w.Position).Scan(&pending); err != nil {
			return fmt.Errorf("pending waits: %w", err)
		}
		if !pending {
			if err := enqueue(ctx, &p, userJob(w)); err != nil {
				return err
			}
		}
	}
	return p.send(ctx, tx)
}
