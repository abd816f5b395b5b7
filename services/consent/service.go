package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/secretbox"
)

const (
	// DefaultTTL is the life of a consent created without an expire_time (Open Finance Brasil's
	// cap of a year).
	DefaultTTL = 365 * 24 * time.Hour
	// MaxTTL is the furthest ahead an expire_time may be: a year, leap day included.
	MaxTTL = 366 * 24 * time.Hour
)

// Products are the products a consent can cover.
var Products = []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS", "IDENTITY", "INVESTMENTS", "CREDIT_CARDS", "REPORTS"}

// Service is the consent logic over a Store.
type Service struct {
	store    Store
	watchers []Watcher
	box      *secretbox.Box
	log      *slog.Logger
	now      func() time.Time
}

// NewService checks cfg and returns the service.
func NewService(store Store, watchers []Watcher, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consent config: %w", err)
	}
	box, err := secretbox.Parse(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("consent config: PUENTE_ENCRYPTION_KEYS: %w", err)
	}
	return &Service{store: store, watchers: watchers, box: box, log: log, now: time.Now}, nil
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

// Housekeep is the service's periodic work: it deletes request ids past their day.
func (s *Service) Housekeep(ctx context.Context) error {
	n, err := s.store.DeleteExpired(ctx, s.clock())
	if n > 0 {
		s.log.InfoContext(ctx, "deleted expired rows", "rows", n)
	}
	return err
}

// ---- consents

// NewConsent is what CreateConsent takes.
type NewConsent struct {
	UserID        string
	InstitutionID string
	Products      []string
	ExpiresAt     time.Time // zero: DefaultTTL from now
}

// CreateConsent asks a user's permission: the consent waits for authorisation (the user linking
// the institution) until it expires.
//
// It does not check that the user or the institution exist: they belong to other services, and
// the connection service checks both when it links the institution, before it authorises the
// consent. A consent naming a user or institution that does not exist just never gets authorised.
func (s *Service) CreateConsent(ctx context.Context, p caller.Principal, n NewConsent) (Consent, []HistoryEntry, error) {
	switch p.Kind {
	case apiv1.Principal_PRINCIPAL_WIDGET:
		if n.UserID != "" && n.UserID != p.UserID {
			return Consent{}, nil, apierr.Invalid("user_id", "a widget session asks consent of its own user only")
		}
		n.UserID = p.UserID
	case apiv1.Principal_PRINCIPAL_CLIENT:
		if n.UserID == "" {
			return Consent{}, nil, apierr.Invalid("user_id", "is required")
		}
	default:
		return Consent{}, nil, ErrPermissionDenied
	}
	if p.ClientID == "" {
		return Consent{}, nil, ErrPermissionDenied
	}
	if !ids.Valid("usr", n.UserID) {
		return Consent{}, nil, apierr.Invalid("user_id", "is not a user id")
	}
	switch {
	case n.InstitutionID == "":
		return Consent{}, nil, apierr.Invalid("institution_id", "is required")
	case !ids.Valid("ins", n.InstitutionID):
		return Consent{}, nil, apierr.Invalid("institution_id", "is not an institution id")
	}
	if err := checkProducts(p, n.Products); err != nil {
		return Consent{}, nil, err
	}
	now := s.clock()
	expires := n.ExpiresAt.UTC().Truncate(time.Microsecond)
	switch {
	case n.ExpiresAt.IsZero():
		expires = now.Add(DefaultTTL)
	case !expires.After(now):
		return Consent{}, nil, apierr.Invalid("expire_time", "must be in the future")
	case expires.After(now.Add(MaxTTL)):
		return Consent{}, nil, apierr.Invalid("expire_time", "must be at most 366 days ahead")
	}
	c := Consent{
		ID: ids.New("cns"), ClientID: p.ClientID, UserID: n.UserID, InstitutionID: n.InstitutionID,
		Products: slices.Clone(n.Products), Status: AwaitingAuthorisation, ExpiresAt: expires, CreatedAt: now, UpdatedAt: now,
	}
	first := HistoryEntry{Status: AwaitingAuthorisation, At: now}
	// One expiry job covers the consent's whole life: authorisation keeps its expire_time.
	if err := s.store.CreateConsent(ctx, c, first, []Job{{Kind: JobExpire, RunAt: expires}}); err != nil {
		return Consent{}, nil, fmt.Errorf("create consent: %w", err)
	}
	return c, []HistoryEntry{first}, nil
}

// checkProducts checks a consent's products: one or more, known, each once, and for a widget
// session among the session's own.
func checkProducts(p caller.Principal, products []string) error {
	if len(products) == 0 {
		return apierr.Invalid("products", "is required")
	}
	for i, prod := range products {
		field := fmt.Sprintf("products[%d]", i)
		switch {
		case !slices.Contains(Products, prod):
			return apierr.Invalid(field, "is not a product")
		case slices.Index(products, prod) != i:
			return apierr.Invalid(field, "is given twice")
		}
	}
	if p.Kind == apiv1.Principal_PRINCIPAL_WIDGET {
		for _, prod := range products {
			if !slices.Contains(p.Products, prod) {
				return apierr.Invalid("products", "must be among the widget session's products")
			}
		}
	}
	return nil
}

// clientOf is the client whose consents p acts on. A service token names it (clientID); anyone
// else acts on its own client's, and naming another reads as not found.
func clientOf(p caller.Principal, clientID string) (string, error) {
	if p.Kind == apiv1.Principal_PRINCIPAL_SERVICE {
		if clientID == "" {
			return "", apierr.Invalid("client_id", "is required with a service token")
		}
		return clientID, nil
	}
	if p.ClientID == "" || (clientID != "" && clientID != p.ClientID) {
		return "", ErrConsentNotFound
	}
	return p.ClientID, nil
}

// maySee reports whether p may see c: widget sessions and task tokens see their own user's
// consents only, and a task token naming a consent sees that one only.
func maySee(p caller.Principal, c Consent) bool {
	if p.UserID != "" && c.UserID != p.UserID {
		return false
	}
	if p.Kind == apiv1.Principal_PRINCIPAL_TASK && p.ConsentID != "" && c.ID != p.ConsentID {
		return false
	}
	return true
}

// GetConsent returns a consent and its history, if the caller may see it. clientID is the
// request's: required with a service token, otherwise empty or the caller's own.
func (s *Service) GetConsent(ctx context.Context, p caller.Principal, clientID, id string) (Consent, []HistoryEntry, error) {
	cid, err := clientOf(p, clientID)
	if err != nil {
		return Consent{}, nil, err
	}
	c, h, err := s.store.GetConsent(ctx, cid, id)
	if err != nil {
		return Consent{}, nil, err
	}
	if !maySee(p, c) {
		return Consent{}, nil, ErrConsentNotFound
	}
	return c, h, nil
}

// ListConsents lists the client's consents matching f, newest first (a task token: its user's;
// one naming a consent: that one).
func (s *Service) ListConsents(ctx context.Context, p caller.Principal, clientID string, f Filter, page Page) ([]Consent, error) {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return nil, apierr.Invalid("status", "is not a consent status")
	}
	if p.Kind == apiv1.Principal_PRINCIPAL_SERVICE {
		if clientID == "" {
			return nil, apierr.Invalid("client_id", "is required with a service token")
		}
		return s.store.ListConsents(ctx, clientID, f, page)
	}
	if p.ClientID == "" {
		return nil, ErrPermissionDenied
	}
	if clientID != "" && clientID != p.ClientID {
		return nil, nil // another client's consents: none to see
	}
	if p.UserID != "" {
		if f.UserID != "" && f.UserID != p.UserID {
			return nil, nil
		}
		f.UserID = p.UserID
	}
	if p.Kind == apiv1.Principal_PRINCIPAL_TASK && p.ConsentID != "" {
		// A task token narrowed to one consent sees it as a list of one (or none, if the filter
		// excludes it).
		c, _, err := s.store.GetConsent(ctx, p.ClientID, p.ConsentID)
		if errors.Is(err, ErrConsentNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if page.After != "" || c.UserID != f.UserID || (f.Status != "" && c.Status != f.Status) {
			return nil, nil
		}
		return []Consent{c}, nil
	}
	return s.store.ListConsents(ctx, p.ClientID, f, page)
}

// move changes c's status to `to` at now, if the status machine allows it, and returns the
// history entry to record.
func move(c *Consent, to Status, reason string, now time.Time) (*HistoryEntry, error) {
	if !c.Status.CanBecome(to) {
		return nil, TransitionError(c.Status, to)
	}
	c.Status, c.UpdatedAt = to, now
	return &HistoryEntry{Status: to, Reason: reason, At: now}, nil
}

// RevokeConsent ends a consent for good. Revoking a revoked consent returns it unchanged;
// a rejected or expired one cannot be revoked.
func (s *Service) RevokeConsent(ctx context.Context, p caller.Principal, id string) (Consent, []HistoryEntry, error) {
	if p.Kind == apiv1.Principal_PRINCIPAL_SERVICE || p.ClientID == "" {
		return Consent{}, nil, ErrPermissionDenied
	}
	now := s.clock()
	return s.store.Update(ctx, p.ClientID, id, func(c *Consent) (*HistoryEntry, error) {
		if !maySee(p, *c) {
			return nil, ErrConsentNotFound
		}
		if c.Status == Revoked {
			return nil, nil
		}
		return move(c, Revoked, ReasonRevokedByClient, now)
	})
}

// ExpireConsent expires a consent now, as its deadline would (a sandbox control; the access rule
// keeps production clients out). An expired consent is returned unchanged; a revoked or
// rejected one cannot expire.
func (s *Service) ExpireConsent(ctx context.Context, p caller.Principal, id string) (Consent, []HistoryEntry, error) {
	if p.ClientID == "" {
		return Consent{}, nil, ErrPermissionDenied
	}
	now := s.clock()
	return s.store.Update(ctx, p.ClientID, id, func(c *Consent) (*HistoryEntry, error) {
		if c.Status == Expired {
			return nil, nil
		}
		return move(c, Expired, ReasonExpiredBySandbox, now)
	})
}

// Authorisation is the outcome of a user's linking, as the connection service reports it.
type Authorisation struct {
	ClientID     string
	ConsentID    string
	ConnectionID string // the connection that linked the institution; required when Authorised
	Authorised   bool   // true: AUTHORISED; false: REJECTED
	Reason       string // why it was rejected
}

// AuthoriseConsent records the outcome of the user's linking (service tokens only). Repeating
// it returns the consent unchanged; a consent already final otherwise, or past its expire_time,
// is a FailedPrecondition.
func (s *Service) AuthoriseConsent(ctx context.Context, p caller.Principal, a Authorisation) (Consent, []HistoryEntry, error) {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return Consent{}, nil, ErrPermissionDenied
	}
	if a.ClientID == "" {
		return Consent{}, nil, apierr.Invalid("client_id", "is required")
	}
	if a.Authorised && a.ConnectionID == "" {
		return Consent{}, nil, apierr.Invalid("connection_id", "is required to authorise a consent")
	}
	now := s.clock()
	return s.store.Update(ctx, a.ClientID, a.ConsentID, func(c *Consent) (*HistoryEntry, error) {
		switch {
		case a.Authorised && c.Status == Authorised && c.ConnectionID == a.ConnectionID,
			!a.Authorised && c.Status == Rejected:
			return nil, nil // a repeat
		case a.Authorised && c.Status == Authorised:
			return nil, ErrOtherConnection
		case c.Status == AwaitingAuthorisation && !now.Before(c.ExpiresAt):
			return nil, ErrConsentExpired // its expiry job has yet to run
		case !a.Authorised:
			return move(c, Rejected, a.Reason, now)
		}
		e, err := move(c, Authorised, "", now)
		if err != nil {
			return nil, err
		}
		c.ConnectionID = a.ConnectionID
		return e, nil
	})
}

// ---- background work

// JobExpire expires a consent at its expire_time. Args: {"consent_id": "cns_…"}.
const JobExpire = "consent.expire"

// JobNotify tells the watchers of consents about a change of status. Args: a Change.
const JobNotify = "consent.notify"

// Change is a consent's move to Status at At.
type Change struct {
	ClientID  string    `json:"client_id"`
	ConsentID string    `json:"consent_id"`
	Status    Status    `json:"status"`
	At        time.Time `json:"at"`
}

// Watcher is a service that keeps something for consents (their data, their refresh schedule)
// and must hear of every change of status. A call may repeat, and changes may arrive out of
// order: At tells them apart.
type Watcher interface {
	ConsentChanged(ctx context.Context, c Consent, ch Change) error
}

// Handlers are the service's job handlers.
func (s *Service) Handlers() map[string]jobs.Handler {
	return map[string]jobs.Handler{JobExpire: s.expire, JobNotify: s.notify}
}

// notify tells every watcher of a change, retried (for about a day) until all have heard it.
func (s *Service) notify(ctx context.Context, j jobs.Job) error {
	var ch Change
	if err := json.Unmarshal(j.Args, &ch); err != nil || ch.ConsentID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	c, _, err := s.store.GetConsent(ctx, ch.ClientID, ch.ConsentID)
	if errors.Is(err, ErrConsentNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range s.watchers {
		errs = append(errs, w.ConsentChanged(ctx, c, ch))
	}
	return errors.Join(errs...)
}

type jobArgs struct {
	ConsentID string `json:"consent_id"`
}

// expire moves a consent to EXPIRED once its expire_time has passed, unless it is already
// final. Run early, it snoozes until then.
func (s *Service) expire(ctx context.Context, j jobs.Job) error {
	var a jobArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.ConsentID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	now := s.clock()
	var early time.Duration
	_, _, err := s.store.Update(ctx, "", a.ConsentID, func(c *Consent) (*HistoryEntry, error) {
		if c.Status.Final() {
			return nil, nil
		}
		if now.Before(c.ExpiresAt) {
			early = c.ExpiresAt.Sub(now)
			return nil, nil
		}
		return move(c, Expired, ReasonExpireTimeReached, now)
	})
	switch {
	case errors.Is(err, ErrConsentNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("expire %s: %w", a.ConsentID, err)
	case early > 0:
		return jobs.Snooze(early)
	}
	return nil
}
