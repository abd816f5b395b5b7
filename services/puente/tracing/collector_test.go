package tracing_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// collector is an OTLP/gRPC trace collector that keeps every span it is sent.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu      sync.Mutex
	exports int
	spans   []*span
}

// span is an exported span with its process's service name.
type span struct {
	*tracev1.Span
	service string
}

func (s *span) id() string      { return hex.EncodeToString(s.SpanId) }
func (s *span) parent() string  { return hex.EncodeToString(s.ParentSpanId) }
func (s *span) traceID() string { return hex.EncodeToString(s.TraceId) }
func (s *span) attr(key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return value(kv.Value)
		}
	}
	return ""
}

// startCollector serves a collector on addr ("127.0.0.1:0" for any port) until the test ends.
func startCollector(t testing.TB, addr string) *collector {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	c := &collector{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return c
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exports++
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = value(kv.Value)
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, &span{Span: sp, service: service})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// received is every span exported so far, and how many Export calls brought them.
func (c *collector) received() ([]*span, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.spans), c.exports
}

func value(v *commonv1.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return x.StringValue
	case *commonv1.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonv1.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonv1.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonv1.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, value(e))
		}
		return strings.Join(parts, ",")
	case *commonv1.AnyValue_BytesValue:
		return string(x.BytesValue)
	}
	return v.String()
}

// tree is one trace's spans by parent.
type tree struct {
	root     *span
	children map[string][]*span
}

func traceOf(spans []*span, root *span) tree {
	tr := tree{root: root, children: map[string][]*span{}}
	for _, s := range spans {
		if s.traceID() == root.traceID() && s != root {
			tr.children[s.parent()] = append(tr.children[s.parent()], s)
		}
	}
	for _, kids := range tr.children {
		slices.SortFunc(kids, func(a, b *span) int { return int(int64(a.StartTimeUnixNano) - int64(b.StartTimeUnixNano)) })
	}
	return tr
}

// under is every span below s, depth first.
func (tr tree) under(s *span) []*span {
	var out []*span
	for _, k := range tr.children[s.id()] {
		out = append(out, k)
		out = append(out, tr.under(k)...)
	}
	return out
}

// String draws the tree, one span a line; runs of postgres.query siblings are folded.
func (tr tree) String() string {
	var b strings.Builder
	var draw func(s *span, depth int)
	draw = func(s *span, depth int) {
		fmt.Fprintf(&b, "%s%s [%s]\n", strings.Repeat("  ", depth), s.Name, strings.TrimPrefix(s.Kind.String(), "SPAN_KIND_"))
		kids := tr.children[s.id()]
		for i := 0; i < len(kids); i++ {
			if kids[i].Name == "postgres.query" && len(tr.children[kids[i].id()]) == 0 {
				n := 1
				for i+n < len(kids) && kids[i+n].Name == "postgres.query" && len(tr.children[kids[i+n].id()]) == 0 {
					n++
				}
				fmt.Fprintf(&b, "%spostgres.query [CLIENT] ×%d\n", strings.Repeat("  ", depth+1), n)
				i += n - 1
				continue
			}
			draw(kids[i], depth+1)
		}
	}
	draw(tr.root, 0)
	return b.String()
}
