package suite

import (
	"context"
	"fmt"
	"time"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/services/authtoken"
	authtokenpg "puente.dev/services/authtoken/postgres"
)

func init() { migrations["authtoken"] = authtokenpg.Migrate }

func startAuthtoken(ctx context.Context, s *Suite) error {
	pool, err := s.database(ctx, "authtoken", authtokenpg.Schema)
	if err != nil {
		return err
	}
	svc, err := authtoken.NewService(authtokenpg.New(pool), s.cfg.Authtoken, s.log)
	if err != nil {
		return err
	}
	if err := svc.EnsureSigningKey(ctx); err != nil {
		return fmt.Errorf("authtoken: first signing key: %w", err)
	}
	s.background(func(ctx context.Context) {
		tick := time.NewTicker(time.Hour)
		defer tick.Stop()
		for {
			if err := svc.Housekeep(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "authtoken housekeeping", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	g := authtoken.NewGRPC(svc)
	authtokenv1.RegisterTokenServiceServer(s.grpc.GRPC, g)
	authtokenv1.RegisterClientServiceServer(s.grpc.GRPC, g)
	authtokenv1.RegisterApiKeyServiceServer(s.grpc.GRPC, g)
	authtokenv1.RegisterUserServiceServer(s.grpc.GRPC, g)
	authtokenv1.RegisterLinkTokenServiceServer(s.grpc.GRPC, g)
	return nil
}
