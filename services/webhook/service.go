package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/page"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/webhook/egress"
	"puente.dev/services/webhook/signature"
)

// Service is the webhook logic over a Store.
type Service struct {
	store  Store
	box    *secretbox.Box
	cfg    Config
	policy egress.Policy
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	busy   *limiter
	// inbound are the providers whose webhooks are taken, by name.
	inbound map[string]InboundProvider
}

// NewService checks cfg and returns the service.
func NewService(store Store, cfg Config, log *slog.Logger, providers ...InboundProvider) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook config: %w", err)
	}
	box, err := secretbox.Parse(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("webhook config: PUENTE_ENCRYPTION_KEYS: %w", err)
	}
	policy := egress.Policy{AllowLoopback: cfg.AllowInsecureURLs, AllowPrivate: cfg.AllowInsecureURLs, AllowHTTP: cfg.AllowInsecureURLs}
	s := &Service{
		store: store, box: box, cfg: cfg, policy: policy, client: policy.Client(cfg.Timeout), log: log, now: time.Now,
		busy: &limiter{max: cfg.PerEndpoint, slots: map[string]chan struct{}{}}, inbound: map[string]InboundProvider{},
	}
	for _, p := range providers {
		s.inbound[p.Name] = p
	}
	return s, nil
}

// SetClock replaces the clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// ---- endpoints

// NewEndpoint is what CreateEndpoint takes.
type NewEndpoint struct {
	URL         string
	EventTypes  []string
	Description string
	RequestID   string
}

func (s *Service) checkURL(raw string) error {
	if err := s.policy.CheckURL(raw); err != nil {
		return apierr.Invalid("url", err.Error())
	}
	return nil
}

func (s *Service) sealSecret(endpointID, secret string) []byte {
	return s.box.Seal([]byte(secret), []byte("webhook-secret:"+endpointID))
}

func (s *Service) openSecret(endpointID string, sealed []byte) (string, error) {
	b, err := s.box.Open(sealed, []byte("webhook-secret:"+endpointID))
	return string(b), err
}

var errRequestIDReused = apierr.Invalid("request_id", "was used for another endpoint; use a new request_id")

// MaxEndpoints is how many webhook endpoints a client may have.
const MaxEndpoints = 20

// ReplayWindow is how long a create's request_id shows the endpoint's secret again.
const ReplayWindow = 24 * time.Hour

// CreateEndpoint registers a URL and returns it with its secret. A repeated request_id returns
// the endpoint it created, with its current secret.
func (s *Service) CreateEndpoint(ctx context.Context, p caller.Principal, n NewEndpoint) (Endpoint, string, error) {
	if err := s.checkURL(n.URL); err != nil {
		return Endpoint{}, "", err
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	now := s.clock()
	e := Endpoint{
		ID: ids.New("whe"), ClientID: p.ClientID, URL: n.URL, EventTypes: n.EventTypes, Enabled: true,
		Description: n.Description, RequestID: n.RequestID, CreatedAt: now, UpdatedAt: now,
	}
	e.Secret = s.sealSecret(e.ID, secret)
	got, err := s.store.CreateEndpoint(ctx, e, MaxEndpoints)
	if err != nil {
		return Endpoint{}, "", err
	}
	if got.ID != e.ID { // a replay
		if got.URL != n.URL || !slices.Equal(got.EventTypes, n.EventTypes) || got.Description != n.Description {
			return Endpoint{}, "", errRequestIDReused
		}
		// The secret is shown again only to a retry of the create itself: not once it was
		// rotated (the caller has the new one), nor a day later.
		if got.PreviousSecret != nil || now.Sub(got.CreatedAt) > ReplayWindow {
			return got, "", nil
		}
		if secret, err = s.openSecret(got.ID, got.Secret); err != nil {
			return Endpoint{}, "", fmt.Errorf("open endpoint secret: %w", err)
		}
	}
	return got, secret, nil
}

func (s *Service) GetEndpoint(ctx context.Context, p caller.Principal, id string) (Endpoint, error) {
	return s.store.GetEndpoint(ctx, p.ClientID, id)
}

func (s *Service) ListEndpoints(ctx context.Context, p caller.Principal, pg page.Page) ([]Endpoint, error) {
	return s.store.ListEndpoints(ctx, p.ClientID, pg)
}

// EndpointChange holds the fields an update sets (nil: unchanged).
type EndpointChange struct {
	URL         *string
	EventTypes  *[]string
	Enabled     *bool
	Description *string
}

func (s *Service) UpdateEndpoint(ctx context.Context, p caller.Principal, id string, ch EndpointChange) (Endpoint, error) {
	if ch.URL != nil {
		if err := s.checkURL(*ch.URL); err != nil {
			return Endpoint{}, err
		}
	}
	now := s.clock()
	return s.store.UpdateEndpoint(ctx, p.ClientID, id, now, func(e *Endpoint) error {
		if ch.URL != nil {
			e.URL = *ch.URL
		}
		if ch.EventTypes != nil {
			e.EventTypes = *ch.EventTypes
		}
		if ch.Enabled != nil {
			e.Enabled = *ch.Enabled
		}
		if ch.Description != nil {
			e.Description = *ch.Description
		}
		e.UpdatedAt = now
		return nil
	})
}

func (s *Service) DeleteEndpoint(ctx context.Context, p caller.Principal, id string) error {
	return s.store.DeleteEndpoint(ctx, p.ClientID, id, s.clock())
}

// DefaultOverlap is how long the previous secret keeps signing after a rotation.
const DefaultOverlap = 24 * time.Hour

// RotateSecret makes a new secret; the current one keeps signing beside it for overlap.
func (s *Service) RotateSecret(ctx context.Context, p caller.Principal, id string, overlap time.Duration) (Endpoint, string, error) {
	if overlap == 0 {
		overlap = DefaultOverlap
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	now := s.clock()
	e, err := s.store.UpdateEndpoint(ctx, p.ClientID, id, now, func(e *Endpoint) error {
		current, err := s.openSecret(e.ID, e.Secret)
		if err != nil {
			return fmt.Errorf("open endpoint secret: %w", err)
		}
		until := now.Add(overlap)
		e.PreviousSecret, e.PreviousExpiresAt = s.sealSecret(e.ID, current), &until
		e.Secret, e.UpdatedAt = s.sealSecret(e.ID, secret), now
		return nil
	})
	return e, secret, err
}

// SendTestEvent writes a "webhook.test" event delivered to this endpoint only.
func (s *Service) SendTestEvent(ctx context.Context, p caller.Principal, id string) (Event, error) {
	e, err := s.store.GetEndpoint(ctx, p.ClientID, id)
	if err != nil {
		return Event{}, err
	}
	if !e.Enabled {
		return Event{}, ErrEndpointDisabled
	}
	now := s.clock()
	data, _ := json.Marshal(map[string]any{"endpoint_id": e.ID, "message": "a test event from Puente"})
	ev := Event{ID: ids.New("evt"), Type: "webhook.test", Version: 1, CreatedAt: now, FlowID: e.ID, ClientID: p.ClientID, Data: data}
	if _, err := s.store.Record(ctx, []Event{ev}, e.ID, now); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// ---- the event log

// Publish records events coming from a service's outbox (service token only).
func (s *Service) Publish(ctx context.Context, events []Event) (int, error) {
	return s.store.Record(ctx, events, "", s.clock())
}

func (s *Service) ListEvents(ctx context.Context, p caller.Principal, f EventFilter) ([]Event, error) {
	return s.store.ListEvents(ctx, p.ClientID, f)
}

func (s *Service) GetEvent(ctx context.Context, p caller.Principal, id string) (Event, error) {
	return s.store.GetEvent(ctx, p.ClientID, id)
}

func (s *Service) RedeliverEvent(ctx context.Context, p caller.Principal, eventID, endpointID string) ([]Delivery, error) {
	return s.store.Redeliver(ctx, p.ClientID, eventID, endpointID, s.clock())
}

func (s *Service) RedeliverFailed(ctx context.Context, p caller.Principal, endpointID string, since time.Time) (int64, error) {
	e, err := s.store.GetEndpoint(ctx, p.ClientID, endpointID)
	if err != nil {
		return 0, err
	}
	if !e.Enabled {
		return 0, ErrEndpointDisabled
	}
	return s.store.RedeliverFailed(ctx, p.ClientID, endpointID, since, s.clock())
}

func (s *Service) ListDeliveries(ctx context.Context, p caller.Principal, f DeliveryFilter, pg page.Page) ([]Delivery, error) {
	return s.store.ListDeliveries(ctx, p.ClientID, f, pg)
}

// Housekeep deletes events past the retention period.
func (s *Service) Housekeep(ctx context.Context) error {
	n, err := s.store.Prune(ctx, s.clock().Add(-s.cfg.Retention))
	if err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	if n > 0 {
		s.log.InfoContext(ctx, "pruned events", "count", n)
	}
	return nil
}

// ---- delivery

// JobDeliver attempts one delivery. Args: {"delivery_id": "dlv_…"}.
const JobDeliver = "webhook.deliver"

// Handlers are the service's job handlers.
func (s *Service) Handlers() map[string]jobs.Handler {
	return map[string]jobs.Handler{JobDeliver: s.deliver, JobRouteInbound: s.routeInbound}
}

// DeliverArgs are a delivery job's arguments.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
	Generation int    `json:"generation"`
}

// DeliverJobKey is the unique key of a delivery's job in one generation.
func DeliverJobKey(deliveryID string, generation int) string {
	return fmt.Sprintf("deliver:%s:%d", deliveryID, generation)
}

// parkedFor is how long a parked delivery sleeps before it looks for a slot again on its own,
// should no finished attempt wake it (its endpoint's attempts ran in a process that died).
const parkedFor = 5 * time.Minute

// maxResponseBody is how much of a receiver's answer an attempt keeps.
const maxResponseBody = 1 << 10

// deliver makes one attempt: it posts the signed envelope, records the attempt, and either ends
// the delivery or snoozes until the next attempt. A worker that dies mid-post leaves the job to
// run again after its lease, so a receiver may see an event twice (with the same webhook-id),
// never zero times.
func (s *Service) deliver(ctx context.Context, j jobs.Job) error {
	var a DeliverArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.DeliveryID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	w, err := s.store.Work(ctx, a.DeliveryID)
	if errors.Is(err, ErrDeliveryNotFound) {
		return nil // its event was pruned
	}
	if err != nil {
		return err
	}
	d := w.Delivery
	if d.Status != Pending || d.Generation != a.Generation {
		return nil // delivered, failed, or redelivered under a newer job
	}
	now := s.clock()
	if d.NextAttemptAt != nil && d.NextAttemptAt.After(now) {
		return jobs.Snooze(d.NextAttemptAt.Sub(now))
	}
	if w.Endpoint == nil || !w.Endpoint.Enabled {
		// The client's choice, not the receiver's failure: no POST, and not counted as failed.
		_, err := s.store.RecordAttempt(ctx, d.ID, d.Generation, Attempt{Number: d.Attempts + 1, At: now, Error: "the endpoint was deleted or disabled"}, Failed, nil)
		return err
	}
	if !s.busy.take(ctx, w.Endpoint.ID, slotWait) {
		// The endpoint holds its share of workers (it is slow or hanging). Park: give the worker
		// back to other endpoints and sleep until an attempt to this endpoint finishes, rather
		// than coming back again and again, which would crowd everyone else's deliveries out.
		if err := s.store.Park(ctx, d.ID, d.Generation, true); err != nil {
			return err
		}
		if !s.busy.take(ctx, w.Endpoint.ID, 0) { // a slot freed while parking would wake no one
			// Jittered, so that a backlog that no attempt wakes does not wake all at once.
			return jobs.Snooze(parkedFor + rand.N(parkedFor/2))
		}
		if err := s.store.Park(ctx, d.ID, d.Generation, false); err != nil {
			s.busy.give(w.Endpoint.ID)
			return err
		}
	}
	defer func() {
		s.busy.give(w.Endpoint.ID)
		if err := s.store.Unpark(context.WithoutCancel(ctx), w.Endpoint.ID); err != nil {
			s.log.WarnContext(ctx, "waking a parked delivery", "endpoint_id", w.Endpoint.ID, "err", err)
		}
	}()

	attempt, result := s.post(ctx, w, now)
	if attempt.StatusCode >= 200 && attempt.StatusCode < 300 {
		s.cfg.Metrics.DeliveryAttempt(w.Endpoint.ID, result)
		return s.finish(ctx, w, attempt, Delivered)
	}
	if ctx.Err() != nil {
		// Shutting down mid-post: the job runs again (a crash would do the same), and the
		// attempt is not counted, as it is not recorded.
		return ctx.Err()
	}
	if result != "" {
		s.cfg.Metrics.DeliveryAttempt(w.Endpoint.ID, result)
	}
	delay := s.backoff(attempt.Number - d.WindowAttempts)
	next := attempt.At.Add(delay)
	if next.After(d.WindowStart.Add(s.cfg.RetryWindow)) {
		return s.finish(ctx, w, attempt, Failed)
	}
	if _, err := s.store.RecordAttempt(ctx, d.ID, d.Generation, attempt, Pending, &next); err != nil {
		return err
	}
	return jobs.Snooze(next.Sub(s.clock()))
}

// finish records the attempt that ends a delivery (Delivered or Failed) and counts the delivery,
// only when this attempt is the one that ended it: a worker whose lease ran out, or an older
// generation, changes nothing and counts nothing, so each replica counts its own deliveries once.
func (s *Service) finish(ctx context.Context, w Work, attempt Attempt, status DeliveryStatus) error {
	recorded, err := s.store.RecordAttempt(ctx, w.Delivery.ID, w.Delivery.Generation, attempt, status, nil)
	if err != nil || !recorded {
		return err
	}
	outcome := metrics.DeliveryDelivered
	if status == Failed {
		outcome = metrics.DeliveryFailed
	}
	s.cfg.Metrics.DeliveryFinished(w.Endpoint.ID, outcome, attempt.Number)
	return nil
}

// backoff is the delay after the n-th failed attempt: RetryBase doubling up to RetryMax, with
// the upper half jittered so that retries of many deliveries spread out.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryBase << min(n-1, 30)
	if d <= 0 || d > s.cfg.RetryMax {
		d = s.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// post makes one attempt, and says how it went as a metric result (metrics.Attempt*); "" when
// nothing was sent (the envelope or the secret could not be made ready).
func (s *Service) post(ctx context.Context, w Work, now time.Time) (Attempt, string) {
	a := Attempt{Number: w.Delivery.Attempts + 1, At: now}
	body, err := json.Marshal(w.Event) // the envelope
	if err != nil {
		a.Error = "encode the event: " + err.Error()
		return a, ""
	}
	keys, err := s.signingKeys(*w.Endpoint, now)
	if err != nil {
		a.Error = "the endpoint's secret cannot be opened"
		s.log.ErrorContext(ctx, "open webhook secret", "endpoint_id", w.Endpoint.ID, "err", err)
		return a, ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		a.Error = "bad request: " + err.Error()
		return a, ""
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Puente-Webhooks/1")
	signature.Sign(req.Header, w.Event.ID, now, body, keys...)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		a.Latency = time.Since(start)
		a.Error = attemptError(err)
		return a, transportResult(err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	a.Latency = time.Since(start)
	a.StatusCode, a.ResponseBody = resp.StatusCode, storable(head)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Error = fmt.Sprintf("the endpoint answered %d", resp.StatusCode)
	}
	return a, statusResult(resp.StatusCode)
}

// statusResult is an answer's metric result. A redirect (never followed) or a 1xx is the
// receiver's misconfiguration, as a 4xx is.
func statusResult(code int) string {
	switch {
	case code >= 200 && code < 300:
		return metrics.AttemptSuccess
	case code >= 500:
		return metrics.AttemptServerError
	default:
		return metrics.AttemptClientError
	}
}

// transportResult is the metric result of a POST that got no answer.
func transportResult(err error) string {
	switch {
	case errors.Is(err, egress.ErrForbiddenAddress):
		return metrics.AttemptRefused
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return metrics.AttemptTimeout
	}
	return metrics.AttemptNetwork
}

// storable is text Postgres takes: valid UTF-8 without NUL bytes, whatever a receiver answered.
func storable(b []byte) string {
	return strings.ReplaceAll(string(bytes.ToValidUTF8(b, []byte("\uFFFD"))), "\x00", "\uFFFD")
}

// attemptError says why no response came back, without the URL (it may carry a token).
func attemptError(err error) string {
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		err = uerr.Unwrap()
	}
	switch {
	case errors.Is(err, egress.ErrForbiddenAddress):
		return "refused: the endpoint resolves to an address webhooks may not reach"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timed out"
	}
	return storable([]byte(err.Error()))
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// signingKeys are the HMAC keys that sign now: the current secret, and the previous one during
// a rotation's overlap.
func (s *Service) signingKeys(e Endpoint, now time.Time) ([][]byte, error) {
	sealed := [][]byte{e.Secret}
	if e.PreviousSecret != nil && e.PreviousExpiresAt != nil && now.Before(*e.PreviousExpiresAt) {
		sealed = append(sealed, e.PreviousSecret)
	}
	var keys [][]byte
	for _, b := range sealed {
		secret, err := s.openSecret(e.ID, b)
		if err != nil {
			return nil, err
		}
		key, err := signature.ParseSecret(secret)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// slotWait is how long a delivery waits for its endpoint's slot before it parks: a fast
// endpoint frees one within it, a slow or hanging one does not.
const slotWait = 20 * time.Millisecond

// limiter bounds the deliveries in flight per endpoint in this process.
type limiter struct {
	mu    sync.Mutex
	max   int
	slots map[string]chan struct{}
}

func (l *limiter) sem(id string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.slots[id]
	if !ok {
		s = make(chan struct{}, l.max)
		l.slots[id] = s
	}
	return s
}

func (l *limiter) take(ctx context.Context, id string, wait time.Duration) bool {
	s := l.sem(id)
	select {
	case s <- struct{}{}:
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *limiter) give(id string) { <-l.sem(id) }
