// Package postgres is the webhook service's store on PostgreSQL (pgx/v5).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/page"
	"puente.dev/pkg/postgres"
	"puente.dev/services/webhook"
)

// Schema is the service's schema (and, prefixed, its role).
const Schema = "webhook"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the service's migrations and the job queue's.
func Migrations() (fs.FS, error) {
	base, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return postgres.WithMigrations(base, map[string]string{
		"002_jobs.up.sql":       jobs.Migration,
		"004_jobs_trace.up.sql": jobs.TraceMigration,
		"005_jobs_stats.up.sql": jobs.StatsMigration,
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

// Store implements webhook.Store.
type Store struct{ pool *pgxpool.Pool }

var _ webhook.Store = (*Store)(nil)

// New returns a store over pool (whose search_path is the service's schema).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// ---- endpoints

const endpointColumns = `id, client_id, url, event_types, enabled, description, coalesce(request_id, ''), secret, previous_secret,
	previous_secret_expires_at, created_at, updated_at`

func scanEndpoint(row pgx.Row) (e webhook.Endpoint, err error) {
	err = row.Scan(&e.ID, &e.ClientID, &e.URL, &e.EventTypes, &e.Enabled, &e.Description, &e.RequestID, &e.Secret, &e.PreviousSecret,
		&e.PreviousExpiresAt, &e.CreatedAt, &e.UpdatedAt)
	return e, err
}

func (s *Store) CreateEndpoint(ctx context.Context, e webhook.Endpoint, limit int) (webhook.Endpoint, error) {
	types := e.EventTypes
	if types == nil {
		types = []string{}
	}
	out, err := scanEndpoint(s.pool.QueryRow(ctx, `INSERT INTO endpoints (id, client_id, url, event_types, enabled, description, request_id, secret, created_at, updated_at)
		SELECT $1, $2, $3, $4, $5, $6, nullif($7, ''), $8, $9, $10
		WHERE (SELECT count(*) FROM endpoints WHERE client_id = $2) < $11
		ON CONFLICT (client_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
		RETURNING `+endpointColumns, e.ID, e.ClientID, e.URL, types, e.Enabled, e.Description, e.RequestID, e.Secret, e.CreatedAt, e.UpdatedAt, limit))
	if !errors.Is(err, pgx.ErrNoRows) {
		return out, err
	}
	// Nothing inserted: a replay of request_id, or the limit.
	out, err = scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE client_id = $1 AND request_id = nullif($2, '')`, e.ClientID, e.RequestID))
	return out, postgres.NotFound(err, webhook.ErrEndpointLimit)
}

func (s *Store) GetEndpoint(ctx context.Context, clientID, id string) (webhook.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE client_id = $1 AND id = $2`, clientID, id))
	return e, postgres.NotFound(err, webhook.ErrEndpointNotFound)
}

func (s *Store) ListEndpoints(ctx context.Context, clientID string, p page.Page) ([]webhook.Endpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE client_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3`,
		clientID, p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Endpoint, error) { return scanEndpoint(r) })
}

const failPending = `UPDATE deliveries SET status = 'FAILED', next_attempt_at = NULL, parked = false WHERE endpoint_id = $1 AND status = 'PENDING'`

func (s *Store) UpdateEndpoint(ctx context.Context, clientID, id string, at time.Time, fn func(*webhook.Endpoint) error) (out webhook.Endpoint, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		e, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE client_id = $1 AND id = $2 FOR UPDATE`, clientID, id))
		if err != nil {
			return postgres.NotFound(err, webhook.ErrEndpointNotFound)
		}
		if err := fn(&e); err != nil {
			return err
		}
		types := e.EventTypes
		if types == nil {
			types = []string{}
		}
		if _, err := tx.Exec(ctx, `UPDATE endpoints SET url = $2, event_types = $3, enabled = $4, description = $5, secret = $6,
				previous_secret = $7, previous_secret_expires_at = $8, updated_at = $9 WHERE id = $1`,
			e.ID, e.URL, types, e.Enabled, e.Description, e.Secret, e.PreviousSecret, e.PreviousExpiresAt, e.UpdatedAt); err != nil {
			return err
		}
		if !e.Enabled {
			if _, err := tx.Exec(ctx, failPending, e.ID); err != nil {
				return err
			}
		}
		out = e
		return nil
	})
	return out, err
}

func (s *Store) DeleteEndpoint(ctx context.Context, clientID, id string, at time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM endpoints WHERE client_id = $1 AND id = $2`, clientID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return webhook.ErrEndpointNotFound
		}
		_, err = tx.Exec(ctx, failPending, id)
		return err
	})
}

// ---- the event log

// seqLock serialises recording, so that seq order is commit order.
const seqLock = `SELECT pg_advisory_xact_lock(hashtext('puente.webhook.events'))`

func (s *Store) Record(ctx context.Context, events []webhook.Event, onlyTo string, at time.Time) (recorded int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		recorded = 0
		if _, err := tx.Exec(ctx, seqLock); err != nil {
			return err
		}
		endpoints := map[string][]webhook.Endpoint{} // by client, read once per batch
		for _, e := range events {
			tag, err := tx.Exec(ctx, `INSERT INTO events (id, seq, client_id, type, version, created_at, flow_id, data, recorded_at)
				VALUES ($1, nextval('events_seq'), $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
				e.ID, e.ClientID, e.Type, e.Version, e.CreatedAt, e.FlowID, e.Data, at)
			if err != nil {
				return fmt.Errorf("insert event %s: %w", e.ID, err)
			}
			if tag.RowsAffected() == 0 {
				continue // already in the log: its deliveries were made then
			}
			recorded++
			eps, ok := endpoints[e.ClientID]
			if !ok {
				rows, err := tx.Query(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE client_id = $1 AND enabled`, e.ClientID)
				if err != nil {
					return err
				}
				if eps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Endpoint, error) { return scanEndpoint(r) }); err != nil {
					return err
				}
				endpoints[e.ClientID] = eps
			}
			for _, ep := range eps {
				if (onlyTo != "" && ep.ID != onlyTo) || (onlyTo == "" && !ep.Wants(e.Type)) {
					continue
				}
				if err := addDelivery(ctx, tx, ids.New("dlv"), e.ClientID, e.ID, ep.ID, at); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return recorded, err
}

func addDelivery(ctx context.Context, tx pgx.Tx, id, clientID, eventID, endpointID string, at time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO deliveries (id, client_id, event_id, endpoint_id, status, window_start, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, 'PENDING', $5, $5, $5)`, id, clientID, eventID, endpointID, at); err != nil {
		return fmt.Errorf("insert delivery: %w", err)
	}
	return enqueue(ctx, tx, id, 0)
}

func enqueue(ctx context.Context, tx pgx.Tx, deliveryID string, generation int) error {
	return jobs.Enqueue(ctx, tx, webhook.JobDeliver, webhook.DeliverArgs{DeliveryID: deliveryID, Generation: generation},
		jobs.EnqueueOptions{UniqueKey: webhook.DeliverJobKey(deliveryID, generation), MaxAttempts: jobs.DefaultMaxAttempts})
}

const eventColumns = `id, seq, client_id, type, version, created_at, flow_id, data`

func scanEvent(row pgx.Row) (e webhook.Event, err error) {
	err = row.Scan(&e.ID, &e.Seq, &e.ClientID, &e.Type, &e.Version, &e.CreatedAt, &e.FlowID, &e.Data)
	return e, err
}

func (s *Store) ListEvents(ctx context.Context, clientID string, f webhook.EventFilter) ([]webhook.Event, error) {
	var exact, prefixes []string
	for _, t := range f.Types {
		if p, ok := strings.CutSuffix(t, "*"); ok {
			prefixes = append(prefixes, strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(p)+"%") // LIKE-escaped: "_" is literal
		} else {
			exact = append(exact, t)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE client_id = $1 AND seq > $2 AND ($3 = '' OR flow_id = $3)
		  AND ($4::text[] IS NULL OR type = ANY($4) OR type LIKE ANY($5))
		ORDER BY seq LIMIT $6`, clientID, f.AfterSeq, f.FlowID, nilIfEmpty(exact, prefixes), prefixes, f.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Event, error) { return scanEvent(r) })
}

// nilIfEmpty is NULL (no type filter) when neither list has anything, else exact.
func nilIfEmpty(exact, prefixes []string) any {
	if len(exact) == 0 && len(prefixes) == 0 {
		return nil
	}
	if exact == nil {
		return []string{}
	}
	return exact
}

func (s *Store) GetEvent(ctx context.Context, clientID, id string) (webhook.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE client_id = $1 AND id = $2`, clientID, id))
	return e, postgres.NotFound(err, webhook.ErrEventNotFound)
}

// ---- deliveries

const deliveryColumns = `d.id, d.client_id, d.event_id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.window_start, d.created_at,
	d.delivered_at, d.generation, d.window_attempts`

func scanDelivery(row pgx.Row, extra ...any) (d webhook.Delivery, err error) {
	var status string
	err = row.Scan(append([]any{&d.ID, &d.ClientID, &d.EventID, &d.EndpointID, &status, &d.Attempts, &d.NextAttemptAt, &d.WindowStart,
		&d.CreatedAt, &d.DeliveredAt, &d.Generation, &d.WindowAttempts}, extra...)...)
	d.Status = webhook.DeliveryStatus(status)
	return d, err
}

// requeue puts deliveries back to PENDING with a fresh retry window, in a new generation with a
// job of its own (an earlier generation's job, waiting or running, then ends without posting).
func requeue(ctx context.Context, tx pgx.Tx, where string, args []any, at time.Time) ([]webhook.Delivery, error) {
	n := len(args) + 1
	rows, err := tx.Query(ctx, `UPDATE deliveries d SET status = 'PENDING', window_start = $`+fmt.Sprint(n)+`, next_attempt_at = $`+fmt.Sprint(n)+`,
		delivered_at = NULL, generation = generation + 1, parked = false, window_attempts = attempts WHERE `+where+` RETURNING `+deliveryColumns, append(args, at)...)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if err := enqueue(ctx, tx, d.ID, d.Generation); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (s *Store) Redeliver(ctx context.Context, clientID, eventID, endpointID string, at time.Time) (out []webhook.Delivery, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE client_id = $1 AND id = $2)`, clientID, eventID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return webhook.ErrEventNotFound
		}
		if endpointID != "" {
			var enabled bool
			err := tx.QueryRow(ctx, `SELECT enabled FROM endpoints WHERE client_id = $1 AND id = $2`, clientID, endpointID).Scan(&enabled)
			if err != nil {
				return postgres.NotFound(err, webhook.ErrEndpointNotFound)
			}
			if !enabled {
				return webhook.ErrEndpointDisabled
			}
			// An endpoint the event never went to (created later, or filtering it out) gets it now.
			if _, err := tx.Exec(ctx, `INSERT INTO deliveries (id, client_id, event_id, endpoint_id, status, window_start, next_attempt_at, created_at)
				VALUES ($1, $2, $3, $4, 'FAILED', $5, NULL, $5) ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
				ids.New("dlv"), clientID, eventID, endpointID, at); err != nil {
				return err
			}
		}
		out, err = requeue(ctx, tx, `d.client_id = $1 AND d.event_id = $2 AND ($3 = '' OR d.endpoint_id = $3)
			AND d.endpoint_id IN (SELECT id FROM endpoints WHERE enabled)`, []any{clientID, eventID, endpointID}, at)
		return err
	})
	return out, err
}

func (s *Store) RedeliverFailed(ctx context.Context, clientID, endpointID string, since, at time.Time) (n int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ds, err := requeue(ctx, tx, `d.id IN (SELECT id FROM deliveries WHERE client_id = $1 AND endpoint_id = $2 AND status = 'FAILED'
			AND created_at >= $3 ORDER BY created_at, id LIMIT `+fmt.Sprint(webhook.MaxRedeliver)+`)
			AND d.endpoint_id IN (SELECT id FROM endpoints WHERE enabled)`, []any{clientID, endpointID, since}, at)
		n = int64(len(ds))
		return err
	})
	return n, err
}

func (s *Store) ListDeliveries(ctx context.Context, clientID string, f webhook.DeliveryFilter, p page.Page) ([]webhook.Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
		WHERE d.client_id = $1 AND ($2 = '' OR d.event_id = $2) AND ($3 = '' OR d.endpoint_id = $3) AND ($4 = '' OR d.status = $4)
		  AND ($5 = '' OR d.id < $5)
		ORDER BY d.id DESC LIMIT $6`, clientID, f.EventID, f.EndpointID, string(f.Status), p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Delivery, error) { return scanDelivery(r) })
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	byID := map[string]*webhook.Delivery{}
	idList := make([]string, len(ds))
	for i := range ds {
		byID[ds[i].ID], idList[i] = &ds[i], ds[i].ID
	}
	rows, err = s.pool.Query(ctx, `SELECT delivery_id, number, at, status_code, latency_ms, error, response_body FROM (
			SELECT *, row_number() OVER (PARTITION BY delivery_id ORDER BY number DESC) AS r FROM delivery_attempts WHERE delivery_id = ANY($1)
		) a WHERE r <= 20 ORDER BY delivery_id, number DESC`, idList)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a webhook.Attempt
		var ms int64
		if err := rows.Scan(&id, &a.Number, &a.At, &a.StatusCode, &ms, &a.Error, &a.ResponseBody); err != nil {
			return nil, err
		}
		a.Latency = time.Duration(ms) * time.Millisecond
		byID[id].History = append(byID[id].History, a)
	}
	return ds, rows.Err()
}

func (s *Store) Work(ctx context.Context, deliveryID string) (webhook.Work, error) {
	var w webhook.Work
	var epID *string
	var ep webhook.Endpoint
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`,
			e.id, e.seq, e.client_id, e.type, e.version, e.created_at, e.flow_id, e.data,
			p.id, coalesce(p.url, ''), coalesce(p.enabled, false), p.secret, p.previous_secret, p.previous_secret_expires_at
		FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN endpoints p ON p.id = d.endpoint_id
		WHERE d.id = $1`, deliveryID),
		&w.Event.ID, &w.Event.Seq, &w.Event.ClientID, &w.Event.Type, &w.Event.Version, &w.Event.CreatedAt, &w.Event.FlowID, &w.Event.Data,
		&epID, &ep.URL, &ep.Enabled, &ep.Secret, &ep.PreviousSecret, &ep.PreviousExpiresAt)
	if err != nil {
		return webhook.Work{}, postgres.NotFound(err, webhook.ErrDeliveryNotFound)
	}
	w.Delivery = d
	if epID != nil {
		ep.ID, ep.ClientID = *epID, d.ClientID
		w.Endpoint = &ep
	}
	return w, nil
}

func (s *Store) Park(ctx context.Context, deliveryID string, generation int, parked bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE deliveries SET parked = $3 WHERE id = $1 AND generation = $2 AND status = 'PENDING'`, deliveryID, generation, parked)
	return err
}

func (s *Store) CountEndpoints(ctx context.Context, clientID string) (n int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM endpoints WHERE client_id = $1`, clientID).Scan(&n)
	return n, err
}

func (s *Store) Unpark(ctx context.Context, endpointID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id string
		var generation int
		// Only a delivery whose job is waiting (not one already running again) is worth a wake-up;
		// the join builds webhook.DeliverJobKey in SQL.
		err := tx.QueryRow(ctx, `UPDATE deliveries SET parked = false WHERE id = (
				SELECT d.id FROM deliveries d
				JOIN jobs j ON j.unique_key = 'deliver:' || d.id || ':' || d.generation AND j.state = 'available'
				WHERE d.endpoint_id = $1 AND d.parked AND d.status = 'PENDING' AND d.next_attempt_at <= now()
				ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED
			) RETURNING id, generation`, endpointID).Scan(&id, &generation)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return jobs.Advance(ctx, tx, webhook.DeliverJobKey(id, generation))
	})
}

func (s *Store) RecordAttempt(ctx context.Context, deliveryID string, generation int, a webhook.Attempt, status webhook.DeliveryStatus, nextAt *time.Time) (recorded bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var delivered *time.Time
		if status == webhook.Delivered {
			delivered = &a.At
		}
		tag, err := tx.Exec(ctx, `UPDATE deliveries SET status = $2, attempts = greatest(attempts, $3), next_attempt_at = $4, delivered_at = $5,
				parked = false
			WHERE id = $1 AND generation = $6 AND status = 'PENDING'`, deliveryID, string(status), a.Number, nextAt, delivered, generation)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery_id, number, at, status_code, latency_ms, error, response_body)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			deliveryID, a.Number, a.At, a.StatusCode, a.Latency.Milliseconds(), a.Error, a.ResponseBody)
		recorded = err == nil
		return err
	})
	return recorded && err == nil, err
}

// ---- inbound webhooks

func (s *Store) RecordInbound(ctx context.Context, w webhook.Inbound) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO inbound_webhooks (id, provider, external_id, type, signed_at, received_at, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider, external_id) DO NOTHING`,
			w.ID, w.Provider, w.ExternalID, w.Type, w.SignedAt, w.ReceivedAt, w.Body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return webhook.ErrDuplicateInbound
		}
		return jobs.Enqueue(ctx, tx, webhook.JobRouteInbound, webhook.RouteArgs{InboundID: w.ID}, jobs.EnqueueOptions{})
	})
}

func (s *Store) GetInbound(ctx context.Context, id string) (w webhook.Inbound, err error) {
	err = s.pool.QueryRow(ctx, `SELECT id, provider, external_id, type, signed_at, received_at, body, routed_at FROM inbound_webhooks WHERE id = $1`, id).
		Scan(&w.ID, &w.Provider, &w.ExternalID, &w.Type, &w.SignedAt, &w.ReceivedAt, &w.Body, &w.RoutedAt)
	return w, postgres.NotFound(err, webhook.ErrInboundNotFound)
}

func (s *Store) MarkRouted(ctx context.Context, id string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE inbound_webhooks SET routed_at = $2 WHERE id = $1 AND routed_at IS NULL`, id, at)
	return err
}

func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	// Inbound webhooks are kept as long as events: a replay older than that is stale anyway.
	if _, err := s.pool.Exec(ctx, `DELETE FROM inbound_webhooks WHERE received_at < $1`, before); err != nil {
		return 0, err
	}
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < $1 LIMIT 1000)`, before)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}
