package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/services/webhook/inbound"
)

// Inbound is an upstream webhook, verified and recorded.
type Inbound struct {
	ID         string
	Provider   string
	ExternalID string
	Type       string
	SignedAt   time.Time
	ReceivedAt time.Time
	Body       []byte
	RoutedAt   *time.Time
}

// InboundProvider is how one provider's webhooks are verified and where they go: Route hands a
// recorded webhook to the service that owns it (over gRPC), from a job, so an owner that is down
// delays it but never loses it.
type InboundProvider struct {
	Name   string
	Scheme inbound.Scheme
	Route  func(ctx context.Context, w Inbound) error
}

var (
	errNoSuchProvider   = apierr.New(apierr.NotFound, "NOT_FOUND", "no inbound webhooks are configured for this provider")
	errInvalidSignature = apierr.New(apierr.Unauthenticated, "INVALID_SIGNATURE", "the webhook's signature does not verify")
	errStaleWebhook     = apierr.New(apierr.Unauthenticated, "STALE_TIMESTAMP", "the webhook's timestamp is too far from now")
	// ErrDuplicateInbound is a webhook already recorded: a replay, or a provider's retry of one
	// that was taken.
	ErrDuplicateInbound = apierr.New(apierr.AlreadyExists, "DUPLICATE_WEBHOOK", "this webhook was already received")
	// ErrInboundNotFound is an inbound webhook id the store does not have.
	ErrInboundNotFound = errors.New("inbound webhook not found")
)

// ReceiveInbound verifies a provider's webhook, records it once and queues its routing.
func (s *Service) ReceiveInbound(ctx context.Context, provider string, h inbound.Headers, body []byte) (Inbound, error) {
	p, ok := s.inbound[provider]
	if !ok {
		return Inbound{}, errNoSuchProvider
	}
	now := s.clock()
	v, err := p.Scheme.Verify(h, body, now)
	switch {
	case errors.Is(err, inbound.ErrStale):
		return Inbound{}, errStaleWebhook
	case err != nil:
		s.log.WarnContext(ctx, "inbound webhook refused", "provider", provider, "err", err)
		return Inbound{}, errInvalidSignature
	}
	w := Inbound{ID: ids.New("inb"), Provider: provider, ExternalID: v.ID, Type: v.Type, SignedAt: v.SignedAt, ReceivedAt: now, Body: body}
	if err := s.store.RecordInbound(ctx, w); err != nil {
		return Inbound{}, err
	}
	return w, nil
}

// JobRouteInbound hands a recorded inbound webhook to its owner. Args: {"inbound_id": "inb_…"}.
const JobRouteInbound = "webhook.route_inbound"

// RouteArgs are a routing job's arguments.
type RouteArgs struct {
	InboundID string `json:"inbound_id"`
}

func (s *Service) routeInbound(ctx context.Context, j jobs.Job) error {
	var a RouteArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.InboundID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	w, err := s.store.GetInbound(ctx, a.InboundID)
	if errors.Is(err, ErrInboundNotFound) {
		return nil
	}
	if err != nil || w.RoutedAt != nil {
		return err
	}
	p, ok := s.inbound[w.Provider]
	if !ok {
		return jobs.Cancel(fmt.Errorf("provider %q is no longer configured", w.Provider))
	}
	if p.Route != nil {
		if err := p.Route(ctx, w); err != nil {
			return fmt.Errorf("route %s webhook %s: %w", w.Provider, w.ID, err)
		}
	}
	return s.store.MarkRouted(ctx, w.ID, s.clock())
}
