package suite

import (
	"context"
	"time"

	"google.golang.org/grpc"

	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	"puente.dev/pkg/jobs"
	"puente.dev/services/consent"
	consentpg "puente.dev/services/consent/postgres"
)

func init() { migrations["consent"] = consentpg.Migrate }

func startConsent(ctx context.Context, s *Suite, webhookConn, extractionConn, syncConn *grpc.ClientConn) error {
	pool, err := s.database(ctx, "consent", consentpg.Schema)
	if err != nil {
		return err
	}
	watchers := []consent.Watcher{
		consent.ExtractionWatcher{Client: extractionv1.NewExtractionServiceClient(extractionConn), ServiceToken: s.cfg.ServiceToken},
		consent.SyncWatcher{Client: syncv1.NewSyncServiceClient(syncConn), ServiceToken: s.cfg.ServiceToken},
	}
	svc, err := consent.NewService(consentpg.New(pool), watchers, s.cfg.Consent, s.log)
	if err != nil {
		return err
	}
	s.every("consent housekeeping", time.Hour, svc.Housekeep)
	s.relay("consent", pool, webhookConn)
	worker := jobs.NewWorker(jobs.Options{Pool: pool, Queue: "consent", Metrics: s.metrics, Handlers: svc.Handlers(), Logger: s.log})
	s.background(func(ctx context.Context) {
		if err := worker.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "consent worker stopped", "err", err)
		}
	})
	consent.NewGRPC(svc).Register(s.grpc.GRPC)
	return nil
}
