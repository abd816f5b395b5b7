// Package syncs refreshes users' data in batches (Guiabolso's model: up to 5,000 users a request,
// one sync id, one event per user) and on a recurring schedule per consent.
//
// A sync is accepted in one transaction (the sync, its users copied in bulk, one fan-out job) and
// answered at once. The fan-out job resolves the users with the authtoken service in chunks and
// queues one job per user found; each user job refreshes the user's AUTHORISED consents through
// the extraction service and records the user's one final result. Every step is idempotent, so
// the at-least-once job queue and crashes can repeat work but never a result or an event.
//
// The package is named syncs so that it does not shadow the standard library's sync.
package syncs

import (
	"context"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/idempotency"
)

// MaxUsers is the most users one sync may carry (Guiabolso's limit).
const MaxUsers = 5000

// SyncStatus is where a sync is. The words are the proto's.
type SyncStatus string

const (
	Running   SyncStatus = "RUNNING"
	Completed SyncStatus = "COMPLETED"
)

// UserStatus is where one user of a sync is. PENDING is the only status that is not final.
type UserStatus string

const (
	UserPending  UserStatus = "PENDING"
	UserSuccess  UserStatus = "SUCCESS"
	UserPartial  UserStatus = "PARTIAL"
	UserError    UserStatus = "ERROR"
	UserNotFound UserStatus = "NOT_FOUND"
)

// UserStatuses are every user status, in the order of the proto enum.
var UserStatuses = []UserStatus{UserPending, UserSuccess, UserPartial, UserError, UserNotFound}

// AccountStatus is the outcome of one account's refresh.
type AccountStatus string

const (
	AccountSuccess AccountStatus = "SUCCESS"
	AccountError   AccountStatus = "ERROR"
)

// Reasons a user ends ERROR for, besides the consents' own (LOGIN_REQUIRED, ...).
const (
	ReasonNoAuthorisedConsent = "NO_AUTHORISED_CONSENT"
	// ReasonInternal: Puente could not finish the refresh (a service it needs kept failing).
	ReasonInternal = "INTERNAL"
)

// UserRef names a user by Puente id or by the client's own reference: exactly one is set.
type UserRef struct {
	UserID      string
	ExternalRef string
}

// Sync is a batch of users being refreshed, with its progress. The counters always add up:
// Total = Pending + Succeeded + Partial + Failed + NotFound.
type Sync struct {
	ID          string
	ClientID    string
	Status      SyncStatus
	Total       int
	Pending     int
	Succeeded   int
	Partial     int
	Failed      int
	NotFound    int
	CreatedAt   time.Time
	CompletedAt time.Time // zero while RUNNING
}

// AccountResult is one account's refresh outcome. A consent that could not be refreshed at all
// has one result without an AccountID, carrying the consent's reason.
type AccountResult struct {
	AccountID string
	ConsentID string
	Status    AccountStatus
	Reason    string
}

// UserResult is one user of a sync, at its position (0-based, in the order sent).
type UserResult struct {
	SyncID     string
	Position   int
	Ref        UserRef
	UserID     string // set once the user is found
	Status     UserStatus
	Reason     string // why it ended ERROR
	Accounts   []AccountResult
	FinishedAt time.Time // zero while PENDING
}

// Resolved is a user the directory found: the store records its id and queues Job, unless a
// previous run of the fan-out already resolved it.
type Resolved struct {
	Position int
	UserID   string
	Job      Job
}

// ResultsPage is where a list of results resumes: after position After (-1: from the start),
// at most Limit results.
type ResultsPage struct {
	After int
	Limit int
}

// Job is background work to queue with a change, in its transaction.
type Job struct {
	Kind        string
	Args        any
	RunAt       time.Time
	MaxAttempts int
	UniqueKey   string
}

// Schedule is a consent's recurring refresh. Every AUTHORISED consent has one; a consent that
// reached a final status has none.
type Schedule struct {
	ConsentID     string
	ClientID      string
	UserID        string
	IntervalHours int
	Paused        bool
	NextRunAt     time.Time
	LastRunAt     time.Time // zero before the first run
	LastStatus    UserStatus
}

// ScheduleRun is the outcome of one scheduled refresh.
type ScheduleRun struct {
	At     time.Time
	Status UserStatus // SUCCESS, PARTIAL or ERROR
}

var (
	ErrSyncNotFound      = apierr.New(apierr.NotFound, "NOT_FOUND", "sync not found")
	ErrScheduleNotFound  = apierr.New(apierr.NotFound, "NOT_FOUND", "schedule not found")
	ErrPermissionDenied  = apierr.New(apierr.PermissionDenied, "PERMISSION_DENIED", "this caller may not do that to syncs")
	ErrRequestIDReused   = idempotency.ErrRequestIDReused
	ErrRequestInProgress = idempotency.ErrRequestInProgress
)

// Store keeps syncs, their users' results and consents' schedules. Methods taking a client id
// never see another client's rows: a foreign id reads as not found.
type Store interface {
	// CreateSync stores a sync, its users (in order, all PENDING) and its fan-out job, in one
	// transaction.
	CreateSync(ctx context.Context, s Sync, users []UserRef, fanout Job) error
	// GetSync returns a sync with its counters.
	GetSync(ctx context.Context, clientID, id string) (Sync, error)
	// ListResults lists a sync's users after p.After in position order, with their account
	// results; status "" lists all. A sync that is not the client's is ErrSyncNotFound.
	ListResults(ctx context.Context, clientID, syncID string, status UserStatus, p ResultsPage) ([]UserResult, error)

	// Unresolved returns up to limit users of a sync that the fan-out has not resolved yet,
	// after position after, in position order.
	Unresolved(ctx context.Context, syncID string, after, limit int) ([]UserResult, error)
	// Resolve records one chunk of the fan-out in one transaction: found users get their id and
	// their job, final ones (NOT_FOUND, or ERROR) their result, the counters and their event.
	// Users another run already resolved are left alone, so a repeat changes nothing.
	Resolve(ctx context.Context, clientID, syncID string, found []Resolved, final []UserResult) error
	// User returns one user of a sync, without account results.
	User(ctx context.Context, syncID string, position int) (UserResult, error)
	// Finish records a PENDING user's final result in one transaction: the result, its account
	// results, the counters, the "sync.user.finished" event and, for the sync's last user, its
	// completion and "sync.completed". A user no longer PENDING is left alone: it reports false.
	Finish(ctx context.Context, clientID string, r UserResult) (bool, error)
	// Stranded returns up to limit users of running syncs that nothing will finish any more: still
	// PENDING, with no job pending for them (their job failed for good, or the fan-out's did),
	// with their syncs' clients.
	Stranded(ctx context.Context, limit int) (users []UserResult, clientIDs []string, err error)

	// AddSchedule stores the schedule of a consent that became AUTHORISED, unless the consent
	// already has one (it is kept as it is) or has ended (it stays without one).
	AddSchedule(ctx context.Context, s Schedule, changedAt time.Time) error
	// EndSchedule removes the schedule of a consent that reached a final status, keeping a
	// tombstone so that a late AUTHORISED cannot bring it back.
	EndSchedule(ctx context.Context, clientID, consentID, userID, status string, changedAt time.Time) error
	// GetSchedule returns a consent's schedule.
	GetSchedule(ctx context.Context, clientID, consentID string) (Schedule, error)
	// UpdateSchedule locks a schedule and stores what fn makes of it.
	UpdateSchedule(ctx context.Context, clientID, consentID string, fn func(*Schedule) error) (Schedule, error)
	// ClaimDueSchedules takes up to limit unpaused schedules due at now (skipping those another
	// caller holds), queues job(s) for each and moves each next run past now by whole intervals,
	// in one transaction. It returns how many it claimed.
	ClaimDueSchedules(ctx context.Context, now time.Time, limit int, job func(Schedule) Job) (int, error)
	// RecordRun records a scheduled refresh's outcome. A schedule gone meanwhile records
	// nothing. (The extraction service announces changed transactions itself, with the data.)
	RecordRun(ctx context.Context, clientID, consentID string, run ScheduleRun) error

	// Idempotent runs create at most once per (scope, requestID): a repeat with the same
	// fingerprint returns the first response; another fingerprint is ErrRequestIDReused. create
	// runs in the transaction that records the response, with a Store bound to it.
	Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(Store) ([]byte, error)) ([]byte, error)
	// DeleteExpired removes request ids a day after first use, and schedule tombstones and batch
	// providers' events older than tombstonesBefore, returning the count.
	DeleteExpired(ctx context.Context, at, tombstonesBefore time.Time) (int64, error)
}
