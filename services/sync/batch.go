package syncs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/jobs"
)

// Batch refreshes. Some upstreams refresh users' data only when asked, many users a request, and
// say by webhook how each went (Guiabolso's wallet monitoring: up to 5,000 userTrackingIds a
// request, one synchronizationId, then a "finished" or "notFound" event per user).
//
// A sync's user with a consent at such a provider waits for it. The user's job records one Wait
// per such consent and queues the provider's job for the sync, then ends. The provider's job
// sends the unsent waits in batches and records each request's id. Each webhook settles the wait
// it names; one received before its request's id was recorded is kept, and settles the wait when
// the id is. A user whose last wait settles gets its job again, which refreshes every consent
// through the extraction service (the provider's data is fresh now) and records the user's one
// result. A wait the provider does not answer by its deadline ends TIMEOUT; one whose request the
// provider refused ends FAILED. Every step is a transaction over the waits and the job queue, so
// a crash or a repeated webhook delays a result but never loses or doubles one.

// BatchProvider is an upstream whose refreshes are asked for in batches and answered by webhook.
type BatchProvider interface {
	// Name is the provider's id, as the catalog and the inbound webhooks name it.
	Name() string
	// MaxBatch is the most references one request may carry.
	MaxBatch() int
	// Ref is the provider's reference of the user a consent's link holds.
	Ref(c Consent) string
	// Request asks the provider to refresh refs' data and returns the request's id. It is not
	// repeated blindly: a request whose answer was lost is sent again, with a new id, and the
	// first one's events are kept but settle nothing. Errors are *UpstreamError when the
	// provider's answer says whether trying again may help.
	Request(ctx context.Context, refs []string) (string, error)
	// ParseEvent reads a verified webhook: ErrNotBatchEvent for one about something else.
	ParseEvent(eventType string, body []byte) (BatchEvent, error)
}

// BatchEvent is a provider's word on one reference of one request.
type BatchEvent struct {
	RequestID string
	Ref       string
	// NotFound: the provider knows no such user.
	NotFound bool
	// FailedAccounts are the provider's ids of the accounts whose refresh failed.
	FailedAccounts []string
}

// ErrNotBatchEvent is a webhook that is not about a batch refresh.
var ErrNotBatchEvent = errors.New("not a batch refresh event")

// UpstreamError is a provider's refusal or failure: Reason is Puente's word for it, Temporary
// whether trying again later may help.
type UpstreamError struct {
	Reason    string
	Temporary bool
	Err       error
}

func (e *UpstreamError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *UpstreamError) Unwrap() error { return e.Err }

// WaitStatus is where a wait is; PENDING is the only status that is not final.
type WaitStatus string

const (
	WaitPending  WaitStatus = "PENDING"
	WaitFinished WaitStatus = "FINISHED"
	WaitNotFound WaitStatus = "NOT_FOUND"
	WaitTimeout  WaitStatus = "TIMEOUT"
	WaitFailed   WaitStatus = "FAILED"
)

// Wait is a sync's user waiting for a provider's refresh of one consent.
type Wait struct {
	SyncID    string
	Position  int
	ConsentID string
	ClientID  string
	UserID    string
	Provider  string
	Ref       string
	RequestID string // "" until a request carries it
	Status    WaitStatus
	Reason    string // why it FAILED
	// FailedAccounts are the provider's ids of the accounts it could not refresh (FINISHED).
	FailedAccounts []string
	Deadline       time.Time
}

// Reasons a batch-refreshed consent ends ERROR for.
const (
	ReasonUpstreamUserNotFound = "UPSTREAM_USER_NOT_FOUND"
	ReasonUpstreamTimeout      = "UPSTREAM_TIMEOUT"
	ReasonUpstreamUnavailable  = "UPSTREAM_UNAVAILABLE"
)

// Catalog tells which provider serves an institution (the connection service).
type Catalog interface {
	Provider(ctx context.Context, institutionID string) (string, error)
}

// BatchStore keeps the waits. Each method is one transaction; those that settle waits queue
// userJob's job for each user whose last pending wait they settle.
type BatchStore interface {
	// AddWaits records a user's waits (a wait already recorded is kept as it is) and queues each
	// job, or, when it is pending, makes it due no later than its RunAt.
	AddWaits(ctx context.Context, waits []Wait, jobs []Job) error
	// Waits returns a sync's user's waits.
	Waits(ctx context.Context, syncID string, position int) ([]Wait, error)
	// Unsent returns up to limit distinct references of a sync's pending waits on provider that
	// no request carries yet.
	Unsent(ctx context.Context, syncID, provider string, limit int) ([]string, error)
	// Sent records that a request carries refs, then settles them with the events already
	// received for it.
	Sent(ctx context.Context, syncID, provider string, refs []string, requestID string, userJob func(Wait) Job) error
	// Settle keeps a provider's event and settles the pending wait it names. A repeated event
	// changes nothing.
	Settle(ctx context.Context, provider string, ev BatchEvent, at time.Time, userJob func(Wait) Job) error
	// FailUnsent ends FAILED, with reason, a sync's pending waits on provider for refs that no
	// request carries.
	FailUnsent(ctx context.Context, syncID, provider string, refs []string, reason string, userJob func(Wait) Job) error
	// Expire ends TIMEOUT a sync's waits on provider that a request carries and whose deadline
	// is at or before now, and returns the earliest deadline of those left pending (zero: none).
	Expire(ctx context.Context, syncID, provider string, now time.Time, userJob func(Wait) Job) (time.Time, error)
}

// JobUpstream sends a sync's waits on one provider and ends those it does not answer in time.
// Args: {"sync_id", "provider"}.
const JobUpstream = "sync.upstream"

// upstreamAttempts bounds the provider job's failed runs (snoozes do not count): its requests
// are retried for about 8 minutes before their waits end FAILED.
const upstreamAttempts = 10

type upstreamArgs struct {
	SyncID   string `json:"sync_id"`
	Provider string `json:"provider"`
}

func upstreamJobKey(syncID, provider string) string { return "upstream:" + syncID + ":" + provider }

// Batching is what batch refreshes need: the providers and the catalog that tells a consent's.
type Batching struct {
	Providers []BatchProvider
	Catalog   Catalog
}

// batching is the service's batch providers, by name, and a cache of the catalog: an
// institution's provider never changes.
type batching struct {
	providers map[string]BatchProvider
	catalog   Catalog
	store     BatchStore

	mu         sync.Mutex
	providerOf map[string]string
}

// EnableBatching makes the service ask b's providers for refreshes in batches. The store must
// keep waits as well.
func (s *Service) EnableBatching(b Batching) error {
	st, ok := s.store.(BatchStore)
	if !ok {
		return errors.New("sync: the store does not keep batch waits")
	}
	if b.Catalog == nil {
		return errors.New("sync: batch refreshes need the catalog")
	}
	s.batch = &batching{providers: map[string]BatchProvider{}, catalog: b.Catalog, store: st, providerOf: map[string]string{}}
	for _, p := range b.Providers {
		s.batch.providers[p.Name()] = p
	}
	return nil
}

// provider returns the batch provider serving an institution, nil for one refreshed directly.
func (b *batching) provider(ctx context.Context, institutionID string) (BatchProvider, error) {
	b.mu.Lock()
	name, ok := b.providerOf[institutionID]
	b.mu.Unlock()
	if !ok {
		var err error
		if name, err = b.catalog.Provider(ctx, institutionID); err != nil {
			return nil, fmt.Errorf("provider of institution %s: %w", institutionID, err)
		}
		b.mu.Lock()
		b.providerOf[institutionID] = name
		b.mu.Unlock()
	}
	return b.providers[name], nil
}

// waitFor returns the user's waits, recording them (and queueing their providers' jobs) on the
// user's first run. wait reports that the user waits for a provider: its job ends, and the
// last of its waits to settle queues it again. Without batch providers, or with none among the
// user's consents, there is nothing to wait for.
func (s *Service) waitFor(work, record context.Context, a userArgs, consents []Consent, last bool) (waits map[string]Wait, wait bool, err error) {
	if s.batch == nil || len(consents) == 0 {
		return nil, false, nil
	}
	got, err := s.batch.store.Waits(record, a.SyncID, a.Position)
	if err != nil {
		return nil, false, fmt.Errorf("waits: %w", err)
	}
	if len(got) > 0 {
		waits = make(map[string]Wait, len(got))
		for _, w := range got {
			if w.Status == WaitPending {
				return nil, true, nil // a settled wait, or the deadline, queues the user again
			}
			waits[w.ConsentID] = w
		}
		return waits, false, nil
	}
	now := s.clock()
	var add []Wait
	var queue []Job
	for _, c := range consents {
		p, err := s.batch.provider(work, c.InstitutionID)
		switch {
		case err != nil && transient(err) && !last:
			return nil, false, err
		case err != nil:
			// The catalog kept failing: refresh the consent directly, which reads what the
			// provider has rather than nothing.
			s.log.ErrorContext(work, "finding a consent's provider failed for good; refreshing it directly", "consent_id", c.ID, "err", err)
			continue
		case p == nil:
			continue
		}
		add = append(add, Wait{
			SyncID: a.SyncID, Position: a.Position, ConsentID: c.ID, ClientID: a.ClientID, UserID: a.UserID,
			Provider: p.Name(), Ref: p.Ref(c), Status: WaitPending, Deadline: now.Add(s.upstreamTimeout),
		})
		if !slices.ContainsFunc(queue, func(j Job) bool { return j.UniqueKey == upstreamJobKey(a.SyncID, p.Name()) }) {
			queue = append(queue, Job{
				Kind: JobUpstream, Args: upstreamArgs{SyncID: a.SyncID, Provider: p.Name()}, RunAt: now.Add(s.gather),
				MaxAttempts: upstreamAttempts, UniqueKey: upstreamJobKey(a.SyncID, p.Name()),
			})
		}
	}
	if len(add) == 0 {
		return nil, false, nil
	}
	if err := s.batch.store.AddWaits(record, add, queue); err != nil {
		return nil, false, fmt.Errorf("record waits: %w", err)
	}
	return nil, true, nil
}

// userAgain is the job that finishes a user once its waits are settled.
func userAgain(now time.Time) func(Wait) Job {
	return func(w Wait) Job {
		return Job{
			Kind: JobUser, RunAt: now, MaxAttempts: userAttempts, UniqueKey: userJobKey(w.SyncID, w.Position),
			Args: userArgs{SyncID: w.SyncID, ClientID: w.ClientID, Position: w.Position, UserID: w.UserID},
		}
	}
}

// settled is a consent's result from its settled wait, or ok to refresh it (FINISHED), with the
// provider's ids of the accounts it could not refresh.
func settled(w Wait) (failed []string, result *AccountResult) {
	reason := ""
	switch w.Status {
	case WaitFinished:
		return w.FailedAccounts, nil
	case WaitNotFound:
		reason = ReasonUpstreamUserNotFound
	case WaitTimeout:
		reason = ReasonUpstreamTimeout
	default:
		reason = w.Reason
		if reason == "" {
			reason = ReasonUpstreamUnavailable
		}
	}
	return nil, &AccountResult{ConsentID: w.ConsentID, Status: AccountError, Reason: reason}
}

// sendBatches is a sync's provider job. It sends the sync's unsent waits on the provider, at most
// MaxBatch a request, and comes back shortly after for stragglers (users whose jobs ran later);
// a run that sends nothing ends the waits past their deadline and comes back at the next one.
// It ends when no wait of the sync on the provider is pending.
func (s *Service) sendBatches(ctx context.Context, j jobs.Job) error {
	var a upstreamArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.SyncID == "" || a.Provider == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	if s.batch == nil || s.batch.providers[a.Provider] == nil {
		// The provider was turned off: its waits are stranded, and the sweep ends them.
		return jobs.Cancel(fmt.Errorf("provider %q is not enabled for batch refreshes", a.Provider))
	}
	p, st := s.batch.providers[a.Provider], s.batch.store
	last := j.Attempt >= j.MaxAttempts
	work, record, cancel := jobs.Split(ctx)
	defer cancel()
	sent := false
	for {
		refs, err := st.Unsent(record, a.SyncID, a.Provider, p.MaxBatch())
		if err != nil {
			return fmt.Errorf("unsent waits of sync %s on %s: %w", a.SyncID, a.Provider, err)
		}
		if len(refs) == 0 {
			break
		}
		id, err := p.Request(work, refs)
		if err != nil {
			var ue *UpstreamError
			temporary := !errors.As(err, &ue) || ue.Temporary
			if temporary && !last {
				return fmt.Errorf("request a refresh of %d users of sync %s from %s: %w", len(refs), a.SyncID, a.Provider, err)
			}
			reason := ReasonUpstreamUnavailable
			if ue != nil {
				reason = ue.Reason
			}
			s.log.ErrorContext(ctx, "a batch refresh request failed for good", "sync_id", a.SyncID, "provider", a.Provider, "users", len(refs), "reason", reason, "err", err)
			if err := st.FailUnsent(record, a.SyncID, a.Provider, refs, reason, userAgain(s.clock())); err != nil {
				return fmt.Errorf("end the waits of a refused request: %w", err)
			}
			continue
		}
		if err := st.Sent(record, a.SyncID, a.Provider, refs, id, userAgain(s.clock())); err != nil {
			// The provider refreshes these users, and will say so, but the request's id is not
			// recorded: the next run asks again, and waits for that request's events.
			return fmt.Errorf("record request %s of sync %s: %w", id, a.SyncID, err)
		}
		sent = true
	}
	if sent {
		return jobs.Snooze(s.gather)
	}
	now := s.clock()
	next, err := st.Expire(record, a.SyncID, a.Provider, now, userAgain(now))
	if err != nil {
		return fmt.Errorf("expire waits of sync %s on %s: %w", a.SyncID, a.Provider, err)
	}
	if next.IsZero() {
		return nil
	}
	return jobs.Snooze(next.Sub(now))
}

// HandleUpstreamEvent takes a provider's verified webhook (service tokens only): an event on a
// batch refresh settles the wait it names. Other webhooks, and providers without batch
// refreshes, are none of this service's business. A repeated webhook changes nothing.
func (s *Service) HandleUpstreamEvent(ctx context.Context, p caller.Principal, provider, eventType string, body []byte) error {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return ErrPermissionDenied
	}
	if s.batch == nil || s.batch.providers[provider] == nil {
		return nil
	}
	ev, err := s.batch.providers[provider].ParseEvent(eventType, body)
	switch {
	case errors.Is(err, ErrNotBatchEvent):
		return nil
	case err != nil:
		return apierr.Invalid("body", "is not a "+provider+" webhook this service can read")
	case ev.RequestID == "" || ev.Ref == "":
		return apierr.Invalid("body", "names no request or no user")
	}
	now := s.clock()
	if err := s.batch.store.Settle(ctx, provider, ev, now, userAgain(now)); err != nil {
		return fmt.Errorf("settle a %s event: %w", provider, err)
	}
	return nil
}
