package suite

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"puente.dev/services/gateway"
)

func startGateway(ctx context.Context, s *Suite, backends gateway.Backends) error {
	h, err := gateway.New(ctx, s.cfg.Gateway, backends, s.verifier, s.log)
	if err != nil {
		return err
	}
	if s.httpLis, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen HTTP on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	return nil
}

// Migrate applies the migrations of the selected services.
func Migrate(ctx context.Context, cfg Config, services []string) error {
	for _, name := range services {
		if m, ok := migrations[name]; ok {
			if err := m(ctx, cfg.DatabaseURL); err != nil {
				return err
			}
		}
	}
	return nil
}
