package tracing_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

const createConnection = "puente.connection.v1.ConnectionService/CreateConnection"

// One REST request that enqueues background work (a connection, whose login a job runs) makes
// one trace: the gateway's span → its gRPC call → the connection service's handling and SQL →
// the login job, and what the job does.
func TestOneTraceFollowsARequestIntoTheJobItEnqueued(t *testing.T) {
	col := startCollector(t, "127.0.0.1:0")
	p := startPuente(t, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+col.addr, "OTEL_EXPORTER_OTLP_INSECURE=true")
	tn := p.newTenant(t)
	conID := p.linkSandbox(t, tn)
	p.stop(t) // flushes the exporter
	spans, _ := col.received()

	var roots []*span
	for _, s := range spans {
		if s.Name == "POST /v1/connections" {
			roots = append(roots, s)
		}
		require.NotContains(t, s.Name, conID, "span names hold routes, never ids")
	}
	require.Len(t, roots, 1, "one span for the one POST /v1/connections")
	root := roots[0]
	tr := traceOf(spans, root)
	t.Logf("the trace of POST /v1/connections:\n%s", tr)

	require.Empty(t, root.ParentSpanId, "the gateway's span is the root")
	require.Equal(t, tracev1.Span_SPAN_KIND_SERVER, root.Kind)
	require.Equal(t, "/v1/connections", root.attr("http.route"))
	require.Equal(t, "puente", root.service)

	client := only(t, tr.children[root.id()], createConnection, tracev1.Span_SPAN_KIND_CLIENT)
	server := only(t, tr.children[client.id()], createConnection, tracev1.Span_SPAN_KIND_SERVER)
	require.NotEmpty(t, named(tr.under(server), "postgres.query"), "the service's SQL is in the request's trace")

	var jobs []*span
	for _, s := range tr.under(server) {
		if strings.HasPrefix(s.Name, "job ") {
			jobs = append(jobs, s)
		}
	}
	require.NotEmpty(t, jobs, "the job the request enqueued ran in its trace, under the service that enqueued it")
	job := jobs[0]
	require.Equal(t, tracev1.Span_SPAN_KIND_CONSUMER, job.Kind)
	require.Equal(t, "connection", job.attr("job.queue"))
	require.Equal(t, strings.TrimPrefix(job.Name, "job "), job.attr("job.kind"))
	require.Equal(t, "1", job.attr("job.attempt"))
	require.NotEmpty(t, job.attr("job.id"))
	require.NotEmpty(t, named(tr.under(job), "postgres.query"), "the job's SQL is under the job")

	// Later requests are traces of their own, named by route.
	var reads int
	for _, s := range spans {
		if s.Name == "GET /v1/connections/{id}" && len(s.ParentSpanId) == 0 {
			reads++
			require.NotEqual(t, root.traceID(), s.traceID())
		}
	}
	require.NotZero(t, reads)

	// Nothing secret rides on a span: not in an attribute, an event or a status.
	for _, s := range spans {
		for what, secret := range p.secrets(tn) {
			for _, text := range spanTexts(s) {
				require.NotContains(t, text, secret, "span %q holds the %s", s.Name, what)
			}
		}
	}
}

// Without OTEL_EXPORTER_OTLP_ENDPOINT nothing leaves the process, even with the exporter's other
// variables set: a collector on the exporter's default address (localhost:4317), where a default
// exporter would send, receives nothing, though the process does make spans (its logs carry
// their trace ids).
func TestWithoutAnEndpointNothingIsExported(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:4317")
	require.NoError(t, err, "this test needs the OTLP default port on loopback")
	lis.Close()
	collectors := []*collector{startCollector(t, "127.0.0.1:4317")}
	if l6, err := net.Listen("tcp", "[::1]:4317"); err == nil {
		l6.Close() // localhost may resolve to ::1 first
		collectors = append(collectors, startCollector(t, "[::1]:4317"))
	}
	p := startPuente(t, "OTEL_EXPORTER_OTLP_INSECURE=true", "OTEL_TRACES_EXPORTER=otlp")
	tn := p.newTenant(t)
	p.call(t, http.MethodGet, "/v1/institutions?country=CL", tn.token, nil)
	p.stop(t)

	for _, col := range collectors {
		spans, exports := col.received()
		require.Zero(t, exports, "no export reached %s", col.addr)
		require.Empty(t, spans)
	}
	require.Contains(t, p.logs.String(), `"trace_id"`, "spans are made (their ids are in the logs)")
}

func only(t *testing.T, spans []*span, name string, kind tracev1.Span_SpanKind) *span {
	t.Helper()
	var found []*span
	for _, s := range spans {
		if s.Name == name && s.Kind == kind {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "one %s span %q", kind, name)
	return found[0]
}

func named(spans []*span, name string) []*span {
	var out []*span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// spanTexts is every text a span carries.
func spanTexts(s *span) []string {
	out := []string{s.Name, s.Status.GetMessage()}
	for _, kv := range s.Attributes {
		out = append(out, kv.Key+"="+value(kv.Value))
	}
	for _, e := range s.Events {
		out = append(out, e.Name)
		for _, kv := range e.Attributes {
			out = append(out, kv.Key+"="+value(kv.Value))
		}
	}
	return out
}
