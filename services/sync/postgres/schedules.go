package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"puente.dev/pkg/postgres"
	syncs "puente.dev/services/sync"
)

const scheduleColumns = `consent_id, client_id, user_id, interval_hours, paused, next_run_at, last_run_at, last_status`

func scanSchedule(row pgx.Row) (sc syncs.Schedule, err error) {
	var last *time.Time
	var status string
	if err = row.Scan(&sc.ConsentID, &sc.ClientID, &sc.UserID, &sc.IntervalHours, &sc.Paused, &sc.NextRunAt, &last, &status); err != nil {
		return sc, err
	}
	sc.NextRunAt, sc.LastStatus = sc.NextRunAt.UTC(), syncs.UserStatus(status)
	if last != nil {
		sc.LastRunAt = last.UTC()
	}
	return sc, nil
}

// AddSchedule inserts the schedule unless the consent has a row: a live schedule stays as it is
// (a repeat), a tombstone stays a tombstone (the consent ended; AUTHORISED came late). The
// primary key serialises it with a concurrent EndSchedule, in either order.
func (s *Store) AddSchedule(ctx context.Context, sc syncs.Schedule, changedAt time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO schedules (consent_id, client_id, user_id, consent_status, changed_at, interval_hours, next_run_at)
		VALUES ($1, $2, $3, 'AUTHORISED', $4, $5, $6)
		ON CONFLICT (consent_id) DO NOTHING`,
		sc.ConsentID, sc.ClientID, sc.UserID, changedAt, sc.IntervalHours, sc.NextRunAt)
	return err
}

// EndSchedule turns a live schedule into a tombstone, or leaves one where there was nothing (a
// final status that arrived before AUTHORISED). A tombstone already there is kept.
func (s *Store) EndSchedule(ctx context.Context, clientID, consentID, userID, status string, changedAt time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO schedules (consent_id, client_id, user_id, consent_status, changed_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (consent_id) DO UPDATE SET consent_status = EXCLUDED.consent_status, changed_at = EXCLUDED.changed_at,
			interval_hours = NULL, next_run_at = NULL, paused = false, updated_at = now()
		WHERE schedules.consent_status = 'AUTHORISED' AND schedules.client_id = EXCLUDED.client_id`,
		consentID, clientID, userID, status, changedAt)
	return err
}

func (s *Store) GetSchedule(ctx context.Context, clientID, consentID string) (syncs.Schedule, error) {
	sc, err := scanSchedule(s.db.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules
		WHERE client_id = $1 AND consent_id = $2 AND consent_status = 'AUTHORISED'`, clientID, consentID))
	if err != nil {
		return syncs.Schedule{}, postgres.NotFound(err, syncs.ErrScheduleNotFound)
	}
	return sc, nil
}

func (s *Store) UpdateSchedule(ctx context.Context, clientID, consentID string, fn func(*syncs.Schedule) error) (out syncs.Schedule, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		sc, err := scanSchedule(tx.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules
			WHERE client_id = $1 AND consent_id = $2 AND consent_status = 'AUTHORISED' FOR UPDATE`, clientID, consentID))
		if err != nil {
			return postgres.NotFound(err, syncs.ErrScheduleNotFound)
		}
		if err := fn(&sc); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE schedules SET interval_hours = $2, paused = $3, next_run_at = $4, updated_at = now()
			WHERE consent_id = $1`, sc.ConsentID, sc.IntervalHours, sc.Paused, sc.NextRunAt); err != nil {
			return fmt.Errorf("update schedule: %w", err)
		}
		out = sc
		return nil
	})
	if err != nil {
		return syncs.Schedule{}, err
	}
	return out, nil
}

// claimSQL takes due schedules that no one else holds and moves each next run forward by as many
// whole intervals as it takes to pass now: a schedule that was paused or missed runs once, not
// once per missed interval, and keeps its phase (the spread of firstRun).
const claimSQL = `WITH due AS (
    SELECT consent_id FROM schedules
    WHERE consent_status = 'AUTHORISED' AND NOT paused AND next_run_at <= $1::timestamptz
    ORDER BY next_run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE schedules s
SET next_run_at = s.next_run_at + make_interval(hours => s.interval_hours *
        (floor(extract(epoch FROM $1::timestamptz - s.next_run_at) / (s.interval_hours * 3600))::int + 1)),
    updated_at = now()
FROM due
WHERE s.consent_id = due.consent_id
RETURNING s.consent_id, s.client_id, s.user_id, s.interval_hours, s.paused, s.next_run_at, s.last_run_at, s.last_status`

func (s *Store) ClaimDueSchedules(ctx context.Context, now time.Time, limit int, job func(syncs.Schedule) syncs.Job) (int, error) {
	var n int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, claimSQL, now, limit)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (syncs.Schedule, error) { return scanSchedule(r) })
		if err != nil {
			return fmt.Errorf("claim due schedules: %w", err)
		}
		var p pipeline
		for _, sc := range due {
			if err := enqueue(ctx, &p, job(sc)); err != nil {
				return err
			}
		}
		if err := p.send(ctx, tx); err != nil {
			return fmt.Errorf("queue scheduled refreshes: %w", err)
		}
		n = len(due)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Store) RecordRun(ctx context.Context, clientID, consentID string, run syncs.ScheduleRun) error {
	_, err := s.db.Exec(ctx, `UPDATE schedules SET last_run_at = $3, last_status = $4, updated_at = now()
		WHERE client_id = $1 AND consent_id = $2 AND consent_status = 'AUTHORISED'`, clientID, consentID, run.At, string(run.Status))
	if err != nil {
		return fmt.Errorf("record scheduled run: %w", err)
	}
	return nil
}
