package suite

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	"puente.dev/services/webhook"

	"puente.dev/services/connection"
	"puente.dev/services/extraction"
	syncs "puente.dev/services/sync"
	"puente.dev/services/webhook/inbound"
)

// upstream is one provider's wiring into the services that own part of its flow. Each
// upstream_<name>.go adds its own in init; a provider runs when its configuration enables it.
type upstream struct {
	enabled    func(Config) bool
	connection func(s *Suite) (connection.Provider, error)
	extraction func(s *Suite) (extraction.Provider, error)
	// sync is the provider's batch refreshes, when it has them.
	sync func(s *Suite) (syncs.BatchProvider, error)
	// inbound verifies the provider's webhooks; events names the services they go to
	// ("connection", "extraction", "sync"), each of which reads what concerns it.
	inbound func(s *Suite) (inbound.Scheme, error)
	events  []string
}

var upstreams = map[string]upstream{}

// enabledUpstreams returns the configured providers, by name, in a stable order.
func (s *Suite) enabledUpstreams() []string {
	var names []string
	for name, u := range upstreams {
		if u.enabled(s.cfg) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// adapters builds one side of every enabled provider that has it (side returns nil for one that
// has not), by provider name.
func adapters[T any](s *Suite, side func(upstream) func(*Suite) (T, error)) ([]T, error) {
	var out []T
	for _, name := range s.enabledUpstreams() {
		if build := side(upstreams[name]); build != nil {
			p, err := build(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *Suite) connectionProviders() ([]connection.Provider, error) {
	return adapters(s, func(u upstream) func(*Suite) (connection.Provider, error) { return u.connection })
}

func (s *Suite) extractionProviders() ([]extraction.Provider, error) {
	return adapters(s, func(u upstream) func(*Suite) (extraction.Provider, error) { return u.extraction })
}

func (s *Suite) syncProviders() ([]syncs.BatchProvider, error) {
	return adapters(s, func(u upstream) func(*Suite) (syncs.BatchProvider, error) { return u.sync })
}

// syncNeeds are the services the sync service calls: with batch providers, also the connection
// service's catalog, which tells a consent's provider.
func (s *Suite) syncNeeds() []string {
	needs := []string{"consent", "extraction", "webhook"}
	for _, name := range s.enabledUpstreams() {
		if upstreams[name].sync != nil {
			return append(needs, "connection")
		}
	}
	return needs
}

// inboundRoutes are the services enabled providers' webhooks go to.
func (s *Suite) inboundRoutes() []string {
	var out []string
	for _, name := range s.enabledUpstreams() {
		if u := upstreams[name]; u.inbound != nil {
			for _, svc := range u.events {
				if !slices.Contains(out, svc) {
					out = append(out, svc)
				}
			}
		}
	}
	return out
}

// inboundProviders are the enabled providers' webhook schemes, each routed to the services it
// names: every one of them is told (HandleUpstreamEvent) and reads what concerns it. A service
// that fails is retried by the routing job, so each must take a webhook twice without harm.
func (s *Suite) inboundProviders(conns map[string]*grpc.ClientConn) ([]webhook.InboundProvider, error) {
	var out []webhook.InboundProvider
	for _, name := range s.enabledUpstreams() {
		u := upstreams[name]
		if u.inbound == nil {
			continue
		}
		scheme, err := u.inbound(s)
		if err != nil {
			return nil, fmt.Errorf("%s webhooks: %w", name, err)
		}
		var handlers []func(ctx context.Context, w webhook.Inbound) error
		for _, svc := range u.events {
			conn := conns[svc]
			switch svc {
			case "connection":
				c := connectionv1.NewConnectionServiceClient(conn)
				handlers = append(handlers, func(ctx context.Context, w webhook.Inbound) error {
					_, err := c.HandleUpstreamEvent(ctx, &connectionv1.HandleUpstreamEventRequest{Provider: w.Provider, EventType: w.Type, Body: w.Body, InboundId: w.ID})
					return err
				})
			case "extraction":
				c := extractionv1.NewExtractionServiceClient(conn)
				handlers = append(handlers, func(ctx context.Context, w webhook.Inbound) error {
					_, err := c.HandleUpstreamEvent(ctx, &extractionv1.HandleUpstreamEventRequest{Provider: w.Provider, EventType: w.Type, Body: w.Body, InboundId: w.ID})
					return err
				})
			case "sync":
				c := syncv1.NewSyncServiceClient(conn)
				handlers = append(handlers, func(ctx context.Context, w webhook.Inbound) error {
					_, err := c.HandleUpstreamEvent(ctx, &syncv1.HandleUpstreamEventRequest{Provider: w.Provider, EventType: w.Type, Body: w.Body, InboundId: w.ID})
					return err
				})
			default:
				return nil, fmt.Errorf("%s webhooks go to %q, which is not a service that takes them", name, svc)
			}
		}
		token := s.cfg.ServiceToken
		out = append(out, webhook.InboundProvider{Name: name, Scheme: scheme, Route: func(ctx context.Context, w webhook.Inbound) error {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
			for _, h := range handlers {
				if err := h(ctx, w); err != nil {
					return err
				}
			}
			return nil
		}})
	}
	return out, nil
}
