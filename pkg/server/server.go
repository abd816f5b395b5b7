// Package server builds the gRPC server every Puente service runs on: health, reflection,
// OpenTelemetry, and the interceptors, whose order is written once, here.
package server

import (
	"context"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"puente.dev/pkg/authn"
	"puente.dev/pkg/metrics"
)

// Verifier checks an access token; *authn.Verifier is one.
type Verifier interface {
	Verify(ctx context.Context, token string) (authn.Claims, error)
}

// Options configure a Server.
type Options struct {
	Logger   *slog.Logger
	Verifier Verifier
	// AdminToken, when set, is the bearer token of the operator (PRINCIPAL_ADMIN).
	AdminToken string
	// ServiceToken, when set, is the bearer token services call each other's internal methods
	// with (PRINCIPAL_SERVICE).
	ServiceToken string
	// Metrics, when set, counts and times every call (puente_rpc_*).
	Metrics *metrics.Metrics
}

// Server is a gRPC server with health checking.
type Server struct {
	GRPC   *grpc.Server
	health *health.Server
	log    *slog.Logger
}

// New returns a server with the interceptors in this order, outermost first:
//
//	metrics → logging → recovery → errors → auth → validate → handler
//
// so that every call is counted and logged with its final code, a panic becomes Internal, domain errors are
// mapped once, and only authenticated calls reach validation and the handler.
func New(o Options) (*Server, error) {
	validate, err := newValidator()
	if err != nil {
		return nil, err
	}
	auth := newAuthenticator(o.Verifier, o.AdminToken, o.ServiceToken)
	s := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(
			unaryMetrics(o.Metrics),
			unaryLogging(o.Logger),
			unaryRecovery(o.Logger),
			unaryErrors(o.Logger),
			auth.unary,
			validate.unary,
		),
		grpc.ChainStreamInterceptor(
			streamMetrics(o.Metrics),
			streamLogging(o.Logger),
			streamRecovery(o.Logger),
			streamErrors(o.Logger),
			auth.stream,
			validate.stream,
		),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Puente's largest request is a few KiB; bound what a caller can make us parse.
		grpc.MaxRecvMsgSize(1<<20),
		grpc.MaxHeaderListSize(64<<10),
		grpc.MaxConcurrentStreams(1000),
	)
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
	return &Server{GRPC: s, health: h, log: o.Logger}, nil
}

// Serve serves on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	return s.GRPC.Serve(lis)
}

// Drain marks every service NOT_SERVING, so load balancers stop sending new calls.
func (s *Server) Drain() {
	s.health.Shutdown()
}

// Shutdown lets calls in flight finish until ctx ends, then cuts the rest.
func (s *Server) Shutdown(ctx context.Context) {
	s.Drain()
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("grpc: drain deadline reached, closing remaining calls")
		s.GRPC.Stop()
		<-done
	}
}
