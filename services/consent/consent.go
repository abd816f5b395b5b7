// Package consent owns users' consents: a user's permission for a client to read some products
// at one institution, until an expiry, and the history of every change of its status.
package consent

import (
	"context"
	"fmt"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/page"
)

// Status is where a consent is in its life. The words are the proto's.
type Status string

const (
	AwaitingAuthorisation Status = "AWAITING_AUTHORISATION"
	Authorised            Status = "AUTHORISED"
	Rejected              Status = "REJECTED"
	Revoked               Status = "REVOKED"
	Expired               Status = "EXPIRED"
)

// Statuses are every status, in the order of the proto enum.
var Statuses = []Status{AwaitingAuthorisation, Authorised, Rejected, Revoked, Expired}

// moves are the status machine: the statuses each status may become. REJECTED, REVOKED and
// EXPIRED are final.
var moves = map[Status][]Status{
	AwaitingAuthorisation: {Authorised, Rejected, Expired, Revoked},
	Authorised:            {Revoked, Expired},
}

// Final reports whether no further status follows s.
func (s Status) Final() bool { return len(moves[s]) == 0 }

// CanBecome reports whether the status machine allows a move from s to next.
func (s Status) CanBecome(next Status) bool {
	for _, to := range moves[s] {
		if to == next {
			return true
		}
	}
	return false
}

// Reasons recorded in a consent's history (a rejection's reason is the connection's failure
// reason, given by the connection service).
const (
	ReasonRevokedByClient   = "REVOKED_BY_CLIENT"
	ReasonExpireTimeReached = "EXPIRE_TIME_REACHED"
	ReasonExpiredBySandbox  = "EXPIRED_BY_SANDBOX"
)

// Consent is a user's permission to read products at an institution.
type Consent struct {
	ID            string
	ClientID      string
	UserID        string
	InstitutionID string
	ConnectionID  string // the connection that authorised it; empty until then
	Products      []string
	Status        Status
	ExpiresAt     time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// HistoryEntry is one change of a consent's status, its creation included.
type HistoryEntry struct {
	Status Status
	Reason string
	At     time.Time
}

// Page is where a list resumes (keyset pagination by id).
type Page = page.Page

// Filter narrows a list of consents; zero fields match everything.
type Filter struct {
	UserID string
	Status Status
}

// Job is background work a consent asks for, run at RunAt.
type Job struct {
	Kind  string
	RunAt time.Time
}

var (
	ErrConsentNotFound   = apierr.New(apierr.NotFound, "NOT_FOUND", "consent not found")
	ErrConsentExpired    = apierr.New(apierr.FailedPrecondition, "CONSENT_EXPIRED", "the consent's expire_time has passed")
	ErrOtherConnection   = apierr.New(apierr.FailedPrecondition, "CONSENT_ALREADY_AUTHORISED", "the consent is AUTHORISED through another connection")
	ErrPermissionDenied  = apierr.New(apierr.PermissionDenied, "PERMISSION_DENIED", "this caller may not do that to consents")
	ErrRequestIDReused   = idempotency.ErrRequestIDReused
	ErrRequestInProgress = idempotency.ErrRequestInProgress
)

// TransitionError is the FailedPrecondition of a move the status machine refuses.
func TransitionError(from, to Status) *apierr.Error {
	msg := fmt.Sprintf("the consent is %s and cannot become %s", from, to)
	if from.Final() {
		msg = fmt.Sprintf("the consent is %s, which is final; it cannot become %s", from, to)
	}
	return apierr.New(apierr.FailedPrecondition, "INVALID_STATUS_TRANSITION", msg)
}

// Store keeps consents and their history. Methods taking a client id never see another client's
// consents: a foreign id reads as not found.
type Store interface {
	// CreateConsent stores a new consent with its first history entry, its "consent.created"
	// event and its jobs, in one transaction.
	CreateConsent(ctx context.Context, c Consent, first HistoryEntry, jobs []Job) error
	// GetConsent returns a consent and its history, oldest entry first.
	GetConsent(ctx context.Context, clientID, id string) (Consent, []HistoryEntry, error)
	// ListConsents lists a client's consents matching f, newest first, without their history.
	ListConsents(ctx context.Context, clientID string, f Filter, p Page) ([]Consent, error)
	// Update locks the consent and lets fn change it. When fn returns an entry, the consent, the
	// entry and a "consent.status_changed" event are written in one transaction; when it returns
	// nil, nothing changed and nothing is written. It returns the consent and its history.
	// clientID "" is the service's own background work.
	Update(ctx context.Context, clientID, id string, fn func(c *Consent) (*HistoryEntry, error)) (Consent, []HistoryEntry, error)

	// Idempotent runs create at most once per (scope, requestID): a repeat with the same
	// fingerprint returns the first response; another fingerprint is ErrRequestIDReused. create
	// runs in the transaction that records the response, with a Store bound to it (see
	// idempotency.Do).
	Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(Store) ([]byte, error)) ([]byte, error)
	// DeleteExpired removes request ids a day after first use, returning the count.
	DeleteExpired(ctx context.Context, at time.Time) (int64, error)
}
