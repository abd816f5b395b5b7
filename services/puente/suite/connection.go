package suite

import (
	"strings"

	"context"
	"time"

	"google.golang.org/grpc"

	"puente.dev/services/gateway/connect"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	"puente.dev/pkg/jobs"
	"puente.dev/services/connection"
	connectionpg "puente.dev/services/connection/postgres"
	"puente.dev/services/connection/sandbox"
)

func init() { migrations["connection"] = connectionpg.Migrate }

func startConnection(ctx context.Context, s *Suite, authtokenConn, consentConn, webhookConn *grpc.ClientConn) error {
	cfg := s.cfg.Connection
	pool, err := s.database(ctx, "connection", connectionpg.Schema)
	if err != nil {
		return err
	}
	var providers []connection.Provider
	if cfg.Sandbox {
		// The gateway serves the Sandbox's hosted consent page beside the widget.
		providers = append(providers, sandbox.New(sandbox.WithAuthorizeURL(strings.TrimSuffix(cfg.PublicURL, "/")+connect.AuthorizePath)))
	}
	more, err := s.connectionProviders()
	if err != nil {
		return err
	}
	providers = append(providers, more...)
	store := connectionpg.New(pool)
	cfg.Metrics = s.metrics
	svc, err := connection.NewService(store, providers,
		connection.UserDirectory{
			Client: authtokenv1.NewUserServiceClient(authtokenConn), Clients: authtokenv1.NewClientServiceClient(authtokenConn),
			ServiceToken: s.cfg.ServiceToken,
		},
		connection.ConsentClient{Client: consentv1.NewConsentServiceClient(consentConn), ServiceToken: s.cfg.ServiceToken},
		cfg, s.log)
	if err != nil {
		return err
	}
	if err := svc.SyncCatalogs(ctx); err != nil {
		return err
	}
	s.background(func(ctx context.Context) { store.Listen(ctx, s.log) })
	s.every("connection housekeeping", 5*time.Minute, svc.Housekeep)
	s.relay("connection", pool, webhookConn)
	// Polls are queued for later, and no notification wakes a worker when they fall due: look
	// for them as often as the shortest wait between polls asks, within reason.
	poll := min(max(cfg.MinPollInterval, 100*time.Millisecond), time.Second)
	worker := jobs.NewWorker(jobs.Options{Pool: pool, Queue: "connection", Metrics: s.metrics, Handlers: svc.Handlers(), Concurrency: cfg.Workers, PollInterval: poll, Logger: s.log})
	s.background(func(ctx context.Context) {
		if err := worker.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "connection worker stopped", "err", err)
		}
	})
	connection.NewGRPC(svc).Register(s.grpc.GRPC)
	return nil
}
