// Package webhook owns Puente's event log and its delivery: client webhook endpoints and their
// signing secrets, every event of every service (taken from their outboxes), deliveries with
// their attempts and retries, and upstream providers' inbound webhooks.
package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/page"
)

// Endpoint is where a client wants its events pushed.
type Endpoint struct {
	ID          string
	ClientID    string
	URL         string
	EventTypes  []string // empty: every event
	Enabled     bool
	Description string
	RequestID   string // the create's request_id, for replays
	// Secret and PreviousSecret are sealed (AES-GCM); the previous one signs until
	// PreviousExpiresAt, during a rotation.
	Secret            []byte
	PreviousSecret    []byte
	PreviousExpiresAt *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Wants reports whether the endpoint takes events of type typ: an exact type, a prefix such as
// "connection.*", "*", or no types at all.
func (e Endpoint) Wants(typ string) bool {
	if len(e.EventTypes) == 0 {
		return true
	}
	for _, t := range e.EventTypes {
		if t == "*" || t == typ || (strings.HasSuffix(t, ".*") && strings.HasPrefix(typ, t[:len(t)-1])) {
			return true
		}
	}
	return false
}

// Event is one entry of the log, in Puente's envelope.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	FlowID    string          `json:"flow_id"`
	ClientID  string          `json:"client_id"`
	Data      json.RawMessage `json:"data"`
	// Seq orders the log: events are numbered in the order they commit.
	Seq int64 `json:"-"`
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

const (
	Pending   DeliveryStatus = "PENDING"
	Delivered DeliveryStatus = "DELIVERED"
	Failed    DeliveryStatus = "FAILED"
)

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID            string
	ClientID      string
	EventID       string
	EndpointID    string
	Status        DeliveryStatus
	Attempts      int
	NextAttemptAt *time.Time
	// WindowStart is when the current run of retries began (creation, or a redelivery), and
	// WindowAttempts how many attempts came before it.
	WindowStart    time.Time
	WindowAttempts int
	CreatedAt      time.Time
	DeliveredAt    *time.Time
	// Generation counts redeliveries; a job of an earlier generation is stale.
	Generation int
	History    []Attempt // newest first
}

// Attempt is one POST of a delivery.
type Attempt struct {
	Number       int
	At           time.Time
	StatusCode   int // 0 when no response came back
	Latency      time.Duration
	Error        string
	ResponseBody string // truncated
}

// Work is what a delivery attempt needs, read in one go.
type Work struct {
	Delivery Delivery
	Event    Event
	Endpoint *Endpoint // nil once the endpoint is deleted
}

// EventFilter narrows the event feed.
type EventFilter struct {
	Types    []string // exact, or "prefix.*"
	FlowID   string
	AfterSeq int64
	Limit    int
}

// DeliveryFilter narrows a list of deliveries.
type DeliveryFilter struct {
	EventID    string
	EndpointID string
	Status     DeliveryStatus
}

// Store keeps endpoints, the event log and deliveries. Methods taking a client id never see
// another client's rows: a foreign id reads as not found.
type Store interface {
	// CreateEndpoint stores e, unless the client already has limit endpoints
	// (ErrEndpointLimit); a create whose (client, request id) is taken returns that endpoint.
	CreateEndpoint(ctx context.Context, e Endpoint, limit int) (Endpoint, error)
	GetEndpoint(ctx context.Context, clientID, id string) (Endpoint, error)
	ListEndpoints(ctx context.Context, clientID string, p page.Page) ([]Endpoint, error)
	// UpdateEndpoint locks the endpoint and lets fn change it; pending deliveries of an endpoint
	// it disables end FAILED.
	UpdateEndpoint(ctx context.Context, clientID, id string, at time.Time, fn func(*Endpoint) error) (Endpoint, error)
	// DeleteEndpoint removes it; its pending deliveries end FAILED.
	DeleteEndpoint(ctx context.Context, clientID, id string, at time.Time) error

	// Record adds events to the log (ids already there are skipped), and for each new one a
	// delivery, with its job, to every enabled endpoint of its client that wants it; onlyTo,
	// when set, restricts that to one endpoint (a test event). It returns how many were new.
	Record(ctx context.Context, events []Event, onlyTo string, at time.Time) (int, error)
	ListEvents(ctx context.Context, clientID string, f EventFilter) ([]Event, error)
	GetEvent(ctx context.Context, clientID, id string) (Event, error)

	// Redeliver queues an event again to one endpoint (endpointID) or to every endpoint it had a
	// delivery to, restarting their retry windows, whatever their status (a PENDING one waiting
	// for a retry is tried now).
	Redeliver(ctx context.Context, clientID, eventID, endpointID string, at time.Time) ([]Delivery, error)
	// RedeliverFailed queues again the FAILED deliveries of an endpoint created since, at most
	// MaxRedeliver of them per call (the oldest first).
	RedeliverFailed(ctx context.Context, clientID, endpointID string, since, at time.Time) (int64, error)
	ListDeliveries(ctx context.Context, clientID string, f DeliveryFilter, p page.Page) ([]Delivery, error)

	// Work reads a delivery with its event and endpoint.
	Work(ctx context.Context, deliveryID string) (Work, error)
	// Park marks a due delivery of generation as waiting for one of its endpoint's slots
	// (parked), or no longer.
	Park(ctx context.Context, deliveryID string, generation int, parked bool) error
	// Unpark wakes the oldest parked, due delivery of the endpoint (its job runs now).
	Unpark(ctx context.Context, endpointID string) error
	// RecordAttempt adds an attempt and moves the delivery to status (with nextAt when
	// PENDING), unless it is no longer PENDING in that generation (a redelivery started since,
	// or another worker recorded it first): recorded says whether this call moved it.
	RecordAttempt(ctx context.Context, deliveryID string, generation int, a Attempt, status DeliveryStatus, nextAt *time.Time) (recorded bool, err error)
	// Prune deletes events created before (and their deliveries), and inbound webhooks received
	// before.
	Prune(ctx context.Context, before time.Time) (int64, error)

	// RecordInbound stores an inbound webhook and queues its routing; one already recorded for
	// (provider, external id) is ErrDuplicateInbound.
	RecordInbound(ctx context.Context, w Inbound) error
	GetInbound(ctx context.Context, id string) (Inbound, error)
	MarkRouted(ctx context.Context, id string, at time.Time) error
}

var (
	ErrEndpointNotFound = apierr.New(apierr.NotFound, "NOT_FOUND", "webhook endpoint not found")
	ErrEventNotFound    = apierr.New(apierr.NotFound, "NOT_FOUND", "event not found")
	ErrDeliveryNotFound = apierr.New(apierr.NotFound, "NOT_FOUND", "delivery not found")
	ErrEndpointDisabled = apierr.New(apierr.FailedPrecondition, "ENDPOINT_DISABLED", "the webhook endpoint is disabled")
	ErrEndpointLimit    = apierr.New(apierr.FailedPrecondition, "ENDPOINT_LIMIT", "a client has at most 20 webhook endpoints; delete one first")
	// MaxRedeliver is how many deliveries one RedeliverFailed queues again; call it again for more.
	MaxRedeliver = 1000
)
