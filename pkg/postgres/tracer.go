package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes one OpenTelemetry span per SQL statement of a traced request or job, with the
// tracer provider of its parent span. Statements outside any trace (the workers' polling, the
// LISTEN loops, pruning, metrics scrapes) make none: each would be a one-span trace of noise.
// Arguments are never recorded: they hold hashes, sealed secrets and personal data.
type tracer struct{}

const tracerName = "puente.dev/pkg/postgres"

func (tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx
	}
	ctx, _ = parent.TracerProvider().Tracer(tracerName).Start(ctx, "postgres.query", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.query.text", data.SQL)))
	return ctx
}

// TraceQueryEnd ends the statement's span; without one (no parent at the start), ctx holds none
// and the no-op span is ended.
func (tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}
