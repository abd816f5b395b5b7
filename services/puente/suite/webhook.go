package suite

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/outbox"
	"puente.dev/services/webhook"
	"puente.dev/services/webhook/inbound"
	webhookpg "puente.dev/services/webhook/postgres"
)

func init() { migrations["webhook"] = webhookpg.Migrate }

func startWebhook(ctx context.Context, s *Suite, conns map[string]*grpc.ClientConn) error {
	cfg := s.cfg.Webhook
	cfg.Metrics = s.metrics
	pool, err := s.database(ctx, "webhook", webhookpg.Schema)
	if err != nil {
		return err
	}
	var providers []webhook.InboundProvider
	if cfg.SandboxWebhookSecret != "" {
		key, err := base64.StdEncoding.DecodeString(cfg.SandboxWebhookSecret)
		if err != nil || len(key) < 32 {
			return errors.New("PUENTE_SANDBOX_WEBHOOK_SECRET must be the base64 of at least 32 bytes")
		}
		// The Sandbox's webhooks have no owner to go to yet; they are recorded, and routed
		// nowhere. The providers' adapters add real routes.
		providers = append(providers, webhook.InboundProvider{Name: "sandbox", Scheme: inbound.Sandbox{Key: key}})
	}
	more, err := s.inboundProviders(conns)
	if err != nil {
		return err
	}
	providers = append(providers, more...)
	svc, err := webhook.NewService(webhookpg.New(pool), cfg, s.log, providers...)
	if err != nil {
		return err
	}
	s.every("webhook housekeeping", time.Hour, svc.Housekeep)
	worker := jobs.NewWorker(jobs.Options{Pool: pool, Queue: "webhook", Metrics: s.metrics, Handlers: svc.Handlers(), Concurrency: cfg.Workers, Lease: cfg.Lease, Logger: s.log})
	s.background(func(ctx context.Context) {
		if err := worker.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "webhook worker stopped", "err", err)
		}
	})
	webhook.NewGRPC(svc).Register(s.grpc.GRPC)
	return nil
}

// relay moves a service's outbox (in pool's schema) into the webhook service's event log.
func (s *Suite) relay(source string, pool *pgxpool.Pool, webhookConn grpc.ClientConnInterface) {
	ingest := webhookv1.NewIngestServiceClient(webhookConn)
	r := &outbox.Relay{Pool: pool, Log: s.log.With("relay", source), Publish: func(ctx context.Context, events []outbox.Event) error {
		req := &webhookv1.PublishEventsRequest{Source: source}
		for _, e := range events {
			req.Events = append(req.Events, &webhookv1.OutboxEvent{
				Id: e.ID, Type: e.Type, Version: int32(e.Version), CreateTime: timestamppb.New(e.CreatedAt),
				FlowId: e.FlowID, ClientId: e.ClientID, Data: e.Data,
			})
		}
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.cfg.ServiceToken), 30*time.Second)
		defer cancel()
		_, err := ingest.PublishEvents(ctx, req)
		return err
	}}
	s.background(r.Run)
}

// every runs fn now and then every interval until the suite shuts down, logging its errors.
func (s *Suite) every(name string, interval time.Duration, fn func(context.Context) error) {
	s.background(func(ctx context.Context) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, name, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}
