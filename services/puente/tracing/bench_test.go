package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"

	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
	"puente.dev/services/puente/suite/suitetest"
)

// The cost of tracing on the main read path, GET /v1/consents/{id} through the gateway, the
// consent service and Postgres on a whole in-process suite, 16 clients at once:
//
//   - Untraced: a no-op tracer provider, the baseline;
//   - Spans: spans made but not exported (a process without OTEL_EXPORTER_OTLP_ENDPOINT);
//   - Exported: spans batched and exported over OTLP/gRPC to a collector in this process (whose
//     decoding of them shares the machine's cores).
//
// make bench prints the last two as ratios of the first.
func BenchmarkConsentReadUntraced(b *testing.B) {
	benchConsentRead(b, noop.NewTracerProvider())
}

func BenchmarkConsentReadSpans(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource()))
	defer tp.Shutdown(context.Background())
	benchConsentRead(b, tp)
}

func BenchmarkConsentReadExported(b *testing.B) {
	col := startCollector(b, "127.0.0.1:0")
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(col.addr), otlptracegrpc.WithInsecure())
	require.NoError(b, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource()), sdktrace.WithBatcher(exp))
	benchConsentRead(b, tp)
	require.NoError(b, tp.Shutdown(context.Background()))
	spans, _ := col.received()
	require.NotEmpty(b, spans, "the spans were exported")
	b.ReportMetric(float64(len(spans))/float64(b.N), "spans/op")
}

// resource is what telemetry.Setup describes the process as.
func resource() *sdkresource.Resource {
	return sdkresource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("puente"))
}

func benchConsentRead(b *testing.B, tp trace.TracerProvider) {
	useProvider(tp)
	cfg, admin := suitetest.Config(pgtest.NewDatabase(b))
	s, err := suite.Start(context.Background(), cfg, suite.Names, telemetry.NewLogger(io.Discard, slog.LevelInfo, false))
	require.NoError(b, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	p := &process{cfg: cfg, admin: admin, rest: "http://" + s.HTTPAddr()}
	tn := p.newTenant(b)
	consent := p.call(b, http.MethodPost, "/v1/consents", tn.token, map[string]any{
		"user_id": tn.user, "institution_id": p.sandboxInstitution(b, tn), "products": []string{"ACCOUNTS"},
	})
	url := p.rest + "/v1/consents/" + field(consent, "consent", "id")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	b.ReportAllocs()
	b.SetParallelism(8) // 16 clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+tn.token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("GET consent: %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
}

// The process's global tracer provider can be set only once for the tracers taken from it before
// (pkg/postgres takes its own at init): benchmarks install one that passes every span on to the
// provider of the benchmark running.
var global struct {
	once     sync.Once
	provider switchable
}

func useProvider(tp trace.TracerProvider) {
	global.provider.current.Store(&tp)
	global.once.Do(func() {
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
		otel.SetTracerProvider(&global.provider)
	})
}

type switchable struct {
	embedded.TracerProvider
	current atomic.Pointer[trace.TracerProvider]
}

func (s *switchable) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return switchTracer{s: s, name: name, opts: opts}
}

type switchTracer struct {
	embedded.Tracer
	s    *switchable
	name string
	opts []trace.TracerOption
}

func (t switchTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return (*t.s.current.Load()).Tracer(t.name, t.opts...).Start(ctx, name, opts...)
}
