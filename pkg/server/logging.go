package server

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// One line per call: method, code, latency, client, request id (trace ids come from the handler).
// Request bodies are logged at debug level only, with every field marked debug_redact in the
// protos blanked, so secrets are redacted by type rather than by hoping.

type callInfo struct{ clientID string }

type callInfoKey struct{}

func withCallInfo(ctx context.Context) (context.Context, *callInfo) {
	ci := &callInfo{}
	return context.WithValue(ctx, callInfoKey{}, ci), ci
}

// noteClient records the authenticated client for the log line.
func noteClient(ctx context.Context, clientID string) {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		ci.clientID = clientID
	}
}

func unaryLogging(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ctx, ci := withCallInfo(ctx)
		if m, ok := req.(proto.Message); ok && log.Enabled(ctx, slog.LevelDebug) {
			log.DebugContext(ctx, "rpc request", "method", info.FullMethod, "body", Redacted(m))
		}
		resp, err := handler(ctx, req)
		logCall(ctx, log, info.FullMethod, start, ci, err)
		return resp, err
	}
}

func streamLogging(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		ctx, ci := withCallInfo(ss.Context())
		err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
		logCall(ctx, log, info.FullMethod, start, ci, err)
		return err
	}
}

func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, ci *callInfo, err error) {
	code := status.Code(err)
	attrs := []any{
		"method", method,
		"code", code.String(),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
	}
	if ci.clientID != "" {
		attrs = append(attrs, "client_id", ci.clientID)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 && len(v[0]) <= 128 {
			attrs = append(attrs, "request_id", v[0])
		}
	}
	log.InfoContext(ctx, "rpc", attrs...)
}

// Redacted renders m as JSON with every debug_redact field, at any depth, cleared.
func Redacted(m proto.Message) string {
	c := proto.Clone(m)
	redact(c.ProtoReflect())
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	if err != nil {
		return "<unprintable>"
	}
	return string(b)
}

func redact(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if opts, ok := fd.Options().(interface{ GetDebugRedact() bool }); ok && opts.GetDebugRedact() {
			m.Clear(fd)
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				redact(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				redact(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			redact(v.Message())
		}
		return true
	})
}

// contextStream is a ServerStream whose context an interceptor replaced.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
