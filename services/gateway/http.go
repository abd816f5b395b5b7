package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// cors answers preflights and lets the configured origins read every response; checkToken adds
// the origins a widget session's client registered. A preflight is answered for any origin: it
// carries no credential, and the bearer token the real request needs is what protects the API
// (browsers send no ambient credential to it), while the response stays unreadable to an origin
// that is not allowed.
func cors(origins []string, next http.Handler) http.Handler {
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		// Always: a cache must not serve one origin's answer to another.
		w.Header().Add("Vary", "Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			allowOrigin(h, origin)
			h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if anyOrigin || slices.Contains(origins, origin) {
			allowOrigin(h, origin)
		}
		next.ServeHTTP(w, r)
	})
}

func allowOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate, X-Request-Id")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// accessLog writes one line per request. The query string is left out: it can carry tokens.
// Every request has a request id: the caller's X-Request-Id when it is a sane one, else a new
// one. It is answered in X-Request-Id and passed on to the services, whose logs carry it too.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.InfoContext(r.Context(), "http", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", id)
	})
}

// validRequestID admits ids that are safe to log and echo: up to 128 printable ASCII characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// traced makes each request's server span, the root of its trace: a caller's traceparent is only
// linked (the API is public: no caller picks Puente's trace ids or sampling). The span is named by
// the route that served the request ("GET /v1/consents/{id}"), never by its path, which holds ids.
func traced(next http.Handler) http.Handler {
	h := otelhttp.NewHandler(next, "gateway", otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }), otelhttp.WithSpanNameFormatter(spanName))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, new(string))))
	})
}

// routeKey holds the grpc-gateway route that served a request, for its span's name: the span is
// named again once the request has been served, when the route is known.
type routeKey struct{}

// recordRoute notes the grpc-gateway route of a request.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			route := strings.ReplaceAll(p.String(), "=*}", "}") // "{id=*}" reads "{id}"
			if held, _ := r.Context().Value(routeKey{}).(*string); held != nil {
				*held = route
			}
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("http.route", route))
		}
		next(w, r, params)
	}
}

// spanName is "METHOD route", or the method alone before the route is known and for a request no
// route served. Methods outside the standard ones read "HTTP", so callers cannot mint names.
func spanName(_ string, r *http.Request) string {
	method := r.Method
	if !slices.Contains(standardMethods, method) {
		method = "HTTP"
	}
	if held, _ := r.Context().Value(routeKey{}).(*string); held != nil && *held != "" {
		return method + " " + *held
	}
	// A route of the gateway's own mux ("POST /v1/oauth/token"); "/" is grpc-gateway's, which
	// found no route.
	pattern := r.Pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern != "" && pattern != "/" {
		return method + " " + pattern
	}
	return method
}

var standardMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}
