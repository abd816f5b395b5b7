package suite

import (
	"context"
	"time"

	"google.golang.org/grpc"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	"puente.dev/pkg/jobs"
	syncs "puente.dev/services/sync"
	syncpg "puente.dev/services/sync/postgres"
)

func init() { migrations["sync"] = syncpg.Migrate }

func startSync(ctx context.Context, s *Suite, authtokenConn, consentConn, extractionConn, webhookConn, connectionConn *grpc.ClientConn) error {
	pool, err := s.database(ctx, "sync", syncpg.Schema)
	if err != nil {
		return err
	}
	svc, err := syncs.NewService(syncpg.New(pool),
		syncs.NewDirectoryClient(authtokenv1.NewUserServiceClient(authtokenConn), s.cfg.ServiceToken),
		syncs.NewConsentsClient(consentv1.NewConsentServiceClient(consentConn), s.cfg.ServiceToken),
		syncs.NewRefresherClient(extractionv1.NewExtractionServiceClient(extractionConn), s.cfg.ServiceToken),
		s.cfg.Sync, s.log)
	if err != nil {
		return err
	}
	batch, err := s.syncProviders()
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		catalog := syncs.NewCatalogClient(connectionv1.NewInstitutionServiceClient(connectionConn), s.cfg.ServiceToken)
		if err := svc.EnableBatching(syncs.Batching{Providers: batch, Catalog: catalog}); err != nil {
			return err
		}
	}
	s.every("sync housekeeping", time.Hour, svc.Housekeep)
	s.every("sync schedules", time.Minute, svc.RunDueSchedules)
	s.every("sync sweep", time.Minute, svc.Sweep)
	s.relay("sync", pool, webhookConn)
	worker := jobs.NewWorker(jobs.Options{Pool: pool, Queue: "sync", Metrics: s.metrics, Handlers: svc.Handlers(), Concurrency: s.cfg.Sync.Workers, Lease: s.cfg.Sync.Lease, Logger: s.log})
	s.background(func(ctx context.Context) {
		if err := worker.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "sync worker stopped", "err", err)
		}
	})
	syncs.NewGRPC(svc).Register(s.grpc.GRPC)
	return nil
}
