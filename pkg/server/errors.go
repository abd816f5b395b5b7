package server

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	"puente.dev/pkg/apierr"
)

// The one place where a handler's error becomes the caller's status. Internal errors are logged in
// full here and masked for the caller.

func unaryErrors(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, toStatus(ctx, log, info.FullMethod, err)
		}
		return resp, nil
	}
}

func streamErrors(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := handler(srv, ss); err != nil {
			return toStatus(ss.Context(), log, info.FullMethod, err)
		}
		return nil
	}
}

func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	st, internal := apierr.Status(err)
	if internal {
		log.ErrorContext(ctx, "internal error", "method", method, "err", err)
	}
	return st.Err()
}
