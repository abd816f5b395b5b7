package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/postgres"
)

// Publish hands a batch of events to the event log (the webhook service). It must be
// idempotent by event id: after a crash the relay sends again what it cannot know was taken.
type Publish func(ctx context.Context, events []Event) error

// Relay moves a service's outbox into the event log: it publishes unpublished events oldest
// first and marks them published once Publish returned. Any number of relays (one per process)
// can share an outbox; each batch is locked by the relay that sends it.
type Relay struct {
	Pool    *pgxpool.Pool
	Publish Publish
	Log     *slog.Logger
	// Batch is how many events one publish carries. Default 100.
	Batch int
	// Poll is how often the relay looks without being notified (a missed notification, a
	// publish that failed). Default 1s.
	Poll time.Duration
}

// RunOnce publishes one batch and reports how many events it carried.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, r.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, type, version, created_at, flow_id, client_id, data FROM outbox
			WHERE published_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`, r.batch())
		if err != nil {
			return err
		}
		events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
			var e Event
			err := row.Scan(&e.ID, &e.Type, &e.Version, &e.CreatedAt, &e.FlowID, &e.ClientID, &e.Data)
			return e, err
		})
		if err != nil || len(events) == 0 {
			return err
		}
		if err := r.Publish(ctx, events); err != nil {
			return fmt.Errorf("publish %d events: %w", len(events), err)
		}
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		n = len(events)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	return n, nil
}

// KeepPublished is how long published events stay in the outbox (for an operator looking into
// one) before Run deletes them; the webhook service's log is the record.
const KeepPublished = 7 * 24 * time.Hour

// Prune deletes events published before.
func (r *Relay) Prune(ctx context.Context, before time.Time) (int64, error) {
	tag, err := r.Pool.Exec(ctx, `DELETE FROM outbox WHERE published_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("outbox relay: prune: %w", err)
	}
	return tag.RowsAffected(), nil
}

func (r *Relay) batch() int {
	if r.Batch > 0 {
		return r.Batch
	}
	return 100
}

// Run relays until ctx ends: at once when an event commits (LISTEN), and every Poll.
func (r *Relay) Run(ctx context.Context) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	poll := r.Poll
	if poll <= 0 {
		poll = time.Second
	}
	wake := make(chan struct{}, 1)
	go postgres.Listen(ctx, r.Pool, channelSQL, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}, log)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var pruned time.Time
	for {
		if time.Since(pruned) > time.Hour {
			if _, err := r.Prune(ctx, time.Now().Add(-KeepPublished)); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "pruning the outbox", "err", err)
			}
			pruned = time.Now()
		}
		for {
			n, err := r.RunOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					log.WarnContext(ctx, "relaying events; will retry", "err", err)
				}
				break
			}
			if n < r.batch() {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}
