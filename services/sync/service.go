package syncs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/page"
	"puente.dev/pkg/secretbox"
)

// tombstoneTTL is how long the mark of an ended consent's schedule is kept: far longer than the
// consent service retries telling this one about a change, so a late AUTHORISED always meets it.
const tombstoneTTL = 30 * 24 * time.Hour

// MaxPageSize is the largest page of results.
const MaxPageSize = 1000

// Service is the sync logic over a Store and the services it calls.
type Service struct {
	store     Store
	directory Directory
	consents  Consents
	refresher Refresher
	limiter   *keyedSemaphore
	batch     *batching // nil: every consent is refreshed directly
	interval  time.Duration
	// upstreamTimeout bounds a wait for a batch provider; gather is how long its request waits
	// for more users.
	upstreamTimeout, gather time.Duration
	box                     *secretbox.Box
	log                     *slog.Logger
	now                     func() time.Time
}

// NewService checks cfg and returns the service.
func NewService(store Store, directory Directory, consents Consents, refresher Refresher, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sync config: %w", err)
	}
	box, err := secretbox.Parse(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("sync config: PUENTE_ENCRYPTION_KEYS: %w", err)
	}
	return &Service{
		store: store, directory: directory, consents: consents, refresher: refresher,
		limiter: newKeyedSemaphore(cfg.InstitutionConcurrency), interval: cfg.DefaultInterval,
		upstreamTimeout: cfg.UpstreamTimeout, gather: cfg.BatchGather,
		box: box, log: log, now: time.Now,
	}, nil
}

// SetClock replaces the clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// clock is now at the database's (microsecond) precision, so that what a call returns is what a
// later read returns.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// withStore returns a copy of s over another store (a transaction).
func (s *Service) withStore(st Store) *Service {
	c := *s
	c.store = st
	return &c
}

// Idempotent runs fn once per (scope, requestID); repeats get fn's first result back. Responses
// are stored sealed, like every other service's.
func (s *Service) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, fn func(*Service) ([]byte, error)) ([]byte, error) {
	if requestID == "" {
		return fn(s)
	}
	return idempotency.Sealed(ctx, s.box, s.store.Idempotent, scope, requestID, fingerprint, func(tx Store) ([]byte, error) {
		return fn(s.withStore(tx))
	})
}

// Housekeep is the service's periodic work: it deletes request ids past their day and the
// tombstones of long-ended schedules.
func (s *Service) Housekeep(ctx context.Context) error {
	now := s.clock()
	n, err := s.store.DeleteExpired(ctx, now, now.Add(-tombstoneTTL))
	if n > 0 {
		s.log.InfoContext(ctx, "deleted expired rows", "rows", n)
	}
	return err
}

// clientOf is the client a client principal acts for; nobody else may use the client API.
func clientOf(p caller.Principal) (string, error) {
	if p.Kind != apiv1.Principal_PRINCIPAL_CLIENT || p.ClientID == "" {
		return "", ErrPermissionDenied
	}
	return p.ClientID, nil
}

// ---- syncs

// CreateSync accepts a batch of users and returns at once, RUNNING: the fan-out job resolves
// and refreshes them in the background.
//
// A user sent twice (the same user_id, or the same external_ref) is kept once, at its first
// position: one user, one result and one event. The counts are of the users kept.
func (s *Service) CreateSync(ctx context.Context, p caller.Principal, users []UserRef) (Sync, error) {
	clientID, err := clientOf(p)
	if err != nil {
		return Sync{}, err
	}
	switch {
	case len(users) == 0:
		return Sync{}, apierr.Invalid("users", "is required")
	case len(users) > MaxUsers:
		return Sync{}, apierr.Invalid("users", fmt.Sprintf("at most %d users per sync", MaxUsers))
	}
	kept := make([]UserRef, 0, len(users))
	seen := make(map[UserRef]struct{}, len(users))
	for i, u := range users {
		if err := checkRef(i, u); err != nil {
			return Sync{}, err
		}
		if _, dup := seen[u]; dup {
			continue
		}
		seen[u] = struct{}{}
		kept = append(kept, u)
	}
	now := s.clock()
	sy := Sync{
		ID: ids.New("syn"), ClientID: clientID, Status: Running, Total: len(kept), Pending: len(kept), CreatedAt: now,
	}
	fanout := Job{
		Kind: JobFanout, Args: fanoutArgs{SyncID: sy.ID, ClientID: clientID}, RunAt: now,
		MaxAttempts: fanoutAttempts, UniqueKey: "fanout:" + sy.ID,
	}
	if err := s.store.CreateSync(ctx, sy, kept, fanout); err != nil {
		return Sync{}, fmt.Errorf("create sync: %w", err)
	}
	return sy, nil
}

// checkRef checks the i-th user reference: exactly one of user_id and external_ref.
func checkRef(i int, u UserRef) error {
	field := fmt.Sprintf("users[%d]", i)
	switch {
	case u.UserID != "" && u.ExternalRef != "":
		return apierr.Invalid(field, "names a user by user_id or by external_ref, not both")
	case u.UserID != "":
		if !ids.Valid("usr", u.UserID) {
			return apierr.Invalid(field+".user_id", "is not a user id")
		}
	case u.ExternalRef != "":
		if utf8.RuneCountInString(u.ExternalRef) > 128 {
			return apierr.Invalid(field+".external_ref", "is longer than 128 characters")
		}
	default:
		return apierr.Invalid(field, "needs a user_id or an external_ref")
	}
	return nil
}

// GetSync returns one of the caller's syncs with its progress.
func (s *Service) GetSync(ctx context.Context, p caller.Principal, id string) (Sync, error) {
	clientID, err := clientOf(p)
	if err != nil {
		return Sync{}, err
	}
	if !ids.Valid("syn", id) {
		return Sync{}, ErrSyncNotFound
	}
	return s.store.GetSync(ctx, clientID, id)
}

// ListSyncResults lists one of the caller's syncs' users in the order they were sent, with
// their results; status "" lists every user.
func (s *Service) ListSyncResults(ctx context.Context, p caller.Principal, id string, status UserStatus, pg ResultsPage) ([]UserResult, error) {
	clientID, err := clientOf(p)
	if err != nil {
		return nil, err
	}
	if status != "" && !slices.Contains(UserStatuses, status) {
		return nil, apierr.Invalid("status", "is not a user result status")
	}
	if !ids.Valid("syn", id) {
		return nil, ErrSyncNotFound
	}
	switch {
	case pg.Limit <= 0:
		pg.Limit = page.DefaultSize
	case pg.Limit > MaxPageSize:
		return nil, apierr.Invalid("page_size", fmt.Sprintf("must be at most %d", MaxPageSize))
	}
	pg.After = max(pg.After, -1)
	return s.store.ListResults(ctx, clientID, id, status, pg)
}
