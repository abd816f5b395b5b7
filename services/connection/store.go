package connection

import (
	"context"
	"time"
)

// Store keeps the catalog and the connections. Methods taking a client id never see another
// client's connections: a foreign id reads as not found.
type Store interface {
	// SyncInstitutions upserts a provider's catalog by (provider, external id), keeping our ids.
	SyncInstitutions(ctx context.Context, provider string, ins []Institution) error
	ListInstitutions(ctx context.Context, f InstitutionFilter, p Page) ([]Institution, error)
	GetInstitution(ctx context.Context, id string) (Institution, error)

	// CreateConnection stores a new connection with its first step, its event and its first job.
	CreateConnection(ctx context.Context, c Connection, s Secrets, step Step, job Job) error
	// GetConnection returns a connection and its timeline, oldest step first.
	GetConnection(ctx context.Context, clientID, id string) (Connection, []Step, error)
	// ConnectionSecrets returns a connection with its sealed secrets, for the services that read
	// its data upstream.
	ConnectionSecrets(ctx context.Context, clientID, id string) (Connection, Secrets, error)
	ListConnections(ctx context.Context, clientID, userID string, p Page) ([]Connection, error)
	// Update locks the connection, lets fn change it and its secrets, and writes the result, the
	// step and event fn reports, and the jobs it asks for, in one transaction. clientID "" is the
	// service's own background work.
	Update(ctx context.Context, clientID, id string, fn func(c *Connection, s *Secrets) (Change, error)) (Connection, error)
	// ConnectionByRedirectState finds the connection waiting on a redirect with this state hash.
	ConnectionByRedirectState(ctx context.Context, stateHash []byte) (clientID, id string, err error)
	// StalledConnections lists connections not final and unchanged since before.
	StalledConnections(ctx context.Context, before time.Time) ([]string, error)
	// FireStatusEvent writes a "connection.status_changed" event with the connection's current
	// status, marked as fired by the sandbox.
	FireStatusEvent(ctx context.Context, clientID, id string, at time.Time) (eventID string, err error)
	// PollNow makes a Running connection of provider's poll job (uniqueKey) due now, enqueuing
	// it if none is pending; a connection in any other status, or of another provider, is left
	// alone.
	PollNow(ctx context.Context, provider, id, pollKind, uniqueKey string) error
	// ConnectionsByRefs returns the connections that hold any of a provider's refs.
	ConnectionsByRefs(ctx context.Context, provider string, refs []string) ([]string, error)
	// DeleteConnection removes the connection, its secrets and its timeline.
	DeleteConnection(ctx context.Context, clientID, id string) error
	// RecentOutcomes sums, per institution, the outcomes of connections that finished since
	// (whole buckets of OutcomeBucket); an institution without any is left out. Update counts
	// them: a change that moves a connection to a final status adds FinishedAs(c) to its
	// institution's bucket of c.UpdatedAt, in the change's transaction.
	RecentOutcomes(ctx context.Context, institutionIDs []string, since time.Time) (map[string]Outcomes, error)
	// PruneOutcomes deletes outcome counts from before.
	PruneOutcomes(ctx context.Context, before time.Time) (int64, error)
	// Changes delivers the id of every connection that changes, until ctx ends.
	Changes(ctx context.Context) (<-chan string, error)
}
