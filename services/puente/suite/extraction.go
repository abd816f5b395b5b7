package suite

import (
	"context"
	"time"

	"google.golang.org/grpc"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	"puente.dev/pkg/jobs"
	"puente.dev/services/extraction"
	extractionpg "puente.dev/services/extraction/postgres"
	"puente.dev/services/extraction/sandbox"
)

func init() { migrations["extraction"] = extractionpg.Migrate }

func startExtraction(ctx context.Context, s *Suite, consentConn, connectionConn, webhookConn *grpc.ClientConn) error {
	cfg := s.cfg.Extraction
	pool, err := s.database(ctx, "extraction", extractionpg.Schema)
	if err != nil {
		return err
	}
	var providers []extraction.Provider
	if cfg.Sandbox {
		providers = append(providers, sandbox.New())
	}
	more, err := s.extractionProviders()
	if err != nil {
		return err
	}
	providers = append(providers, more...)
	svc, err := extraction.NewService(extractionpg.New(pool),
		extraction.ConsentClient{Client: consentv1.NewConsentServiceClient(consentConn), ServiceToken: s.cfg.ServiceToken},
		extraction.ConnectionClient{Client: connectionv1.NewConnectionServiceClient(connectionConn), ServiceToken: s.cfg.ServiceToken},
		providers, cfg, s.log)
	if err != nil {
		return err
	}
	s.every("extraction housekeeping", time.Hour, svc.Housekeep)
	s.relay("extraction", pool, webhookConn)
	worker := jobs.NewWorker(jobs.Options{Pool: pool, Queue: "extraction", Metrics: s.metrics, Handlers: svc.Handlers(), Concurrency: cfg.Workers, Logger: s.log})
	s.background(func(ctx context.Context) {
		if err := worker.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "extraction worker stopped", "err", err)
		}
	})
	extraction.NewGRPC(svc).Register(s.grpc.GRPC)
	return nil
}
