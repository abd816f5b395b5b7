package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"puente.dev/pkg/metrics"
)

// The metrics interceptors sit outermost, beside logging, so a call counts with the code its
// caller saw: domain errors already mapped, a panic as Internal, a refused token as
// Unauthenticated. Health checks and reflection count too: their methods are a closed set, and
// probe traffic that fails is worth seeing.

func unaryMetrics(m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.RPC(info.FullMethod, status.Code(err), time.Since(start))
		return resp, err
	}
}

func streamMetrics(m *metrics.Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.RPC(info.FullMethod, status.Code(err), time.Since(start))
		return err
	}
}
