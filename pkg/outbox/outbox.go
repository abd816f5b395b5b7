// Package outbox writes a service's events in the same transaction as the state change that
// causes them (the transactional outbox), so a crash can delay an event but never lose it. The
// webhook service reads them from there.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"puente.dev/pkg/ids"
)

// Migration is the SQL a service appends to its migrations to hold its outbox.
const Migration = `
CREATE TABLE outbox (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    version      int NOT NULL,
    created_at   timestamptz NOT NULL,
    flow_id      text NOT NULL,
    client_id    text NOT NULL,
    data         jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (created_at, id) WHERE published_at IS NULL;
`

// channelSQL names the NOTIFY channel after the schema holding the outbox (the first of the
// search path), as pkg/jobs does.
const channelSQL = `'outbox_' || current_schema()`

// Event is Puente's event envelope.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	FlowID    string          `json:"flow_id"` // the resource whose story this is (a connection, a consent)
	ClientID  string          `json:"client_id"`
	Data      json.RawMessage `json:"data"`
}

// Tx is a transaction (or pool) to write through.
type Tx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Write adds an event of type typ (e.g. "connection.status_changed") to the outbox in tx.
func Write(ctx context.Context, tx Tx, typ, clientID, flowID string, at time.Time, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("outbox: encode %s: %w", typ, err)
	}
	e := Event{ID: ids.New("evt"), Type: typ, Version: 1, CreatedAt: at, FlowID: flowID, ClientID: clientID, Data: raw}
	// The NOTIFY is delivered on commit, waking the relay at once.
	if _, err := tx.Exec(ctx, `WITH ins AS (
			INSERT INTO outbox (id, type, version, created_at, flow_id, client_id, data) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING 1
		) SELECT pg_notify(`+channelSQL+`, '') FROM ins`,
		e.ID, e.Type, e.Version, e.CreatedAt, e.FlowID, e.ClientID, e.Data); err != nil {
		return Event{}, fmt.Errorf("outbox: write %s: %w", typ, err)
	}
	return e, nil
}
