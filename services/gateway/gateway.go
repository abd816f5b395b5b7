// Package gateway serves Puente's REST API: grpc-gateway in front of the services' gRPC APIs,
// with bearer tokens checked locally before a call leaves, errors rendered as JSON, CORS, the
// OAuth 2.0 token endpoint in its RFC 6749 form, and the OpenAPI document.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
	"puente.dev/gen/openapi"
	"puente.dev/pkg/authn"
	"puente.dev/services/gateway/connect"
)

// Config is the gateway's configuration.
type Config struct {
	// AllowedOrigins may call the API from a browser (CORS) whatever the token; "*" allows any.
	// Beyond these, a widget session's responses are readable by its client's registered
	// origins (the token's org claim).
	AllowedOrigins []string `env:"PUENTE_CORS_ORIGINS"`
	// WidgetDir serves the Connect widget's files from this folder instead of those built in
	// (front-end work: edit, reload).
	WidgetDir string `env:"PUENTE_WIDGET_DIR"`
}

// Verifier checks access tokens; *authn.Verifier is one.
type Verifier interface {
	Verify(ctx context.Context, token string) (authn.Claims, error)
}

// Backends are the gRPC connections to each service.
type Backends struct {
	Authtoken  grpc.ClientConnInterface
	Connection grpc.ClientConnInterface
	Consent    grpc.ClientConnInterface
	Webhook    grpc.ClientConnInterface
	Extraction grpc.ClientConnInterface
	Sync       grpc.ClientConnInterface
}

// New returns the REST handler.
func New(ctx context.Context, cfg Config, b Backends, v Verifier, log *slog.Logger) (http.Handler, error) {
	g := &gateway{log: log}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{},
		}),
		runtime.WithErrorHandler(g.errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithForwardResponseOption(redirectBrowser),
		runtime.WithMiddlewares(recordRoute),
	)
	tokens := authtokenv1.NewTokenServiceClient(b.Authtoken)
	for name, register := range map[string]func() error{
		"TokenService": func() error { return authtokenv1.RegisterTokenServiceHandlerClient(ctx, mux, tokens) },
		"ClientService": func() error {
			return authtokenv1.RegisterClientServiceHandlerClient(ctx, mux, authtokenv1.NewClientServiceClient(b.Authtoken))
		},
		"ApiKeyService": func() error {
			return authtokenv1.RegisterApiKeyServiceHandlerClient(ctx, mux, authtokenv1.NewApiKeyServiceClient(b.Authtoken))
		},
		"UserService": func() error {
			return authtokenv1.RegisterUserServiceHandlerClient(ctx, mux, authtokenv1.NewUserServiceClient(b.Authtoken))
		},
		"LinkTokenService": func() error {
			return authtokenv1.RegisterLinkTokenServiceHandlerClient(ctx, mux, authtokenv1.NewLinkTokenServiceClient(b.Authtoken))
		},
		"InstitutionService": func() error {
			return connectionv1.RegisterInstitutionServiceHandlerClient(ctx, mux, connectionv1.NewInstitutionServiceClient(b.Connection))
		},
		"ConsentService": func() error {
			return consentv1.RegisterConsentServiceHandlerClient(ctx, mux, consentv1.NewConsentServiceClient(b.Consent))
		},
		"ConnectionService": func() error {
			return connectionv1.RegisterConnectionServiceHandlerClient(ctx, mux, connectionv1.NewConnectionServiceClient(b.Connection))
		},
		"connection SandboxService": func() error {
			return connectionv1.RegisterSandboxServiceHandlerClient(ctx, mux, connectionv1.NewSandboxServiceClient(b.Connection))
		},
		"WebhookEndpointService": func() error {
			return webhookv1.RegisterWebhookEndpointServiceHandlerClient(ctx, mux, webhookv1.NewWebhookEndpointServiceClient(b.Webhook))
		},
		"EventService": func() error {
			return webhookv1.RegisterEventServiceHandlerClient(ctx, mux, webhookv1.NewEventServiceClient(b.Webhook))
		},
		"ExtractionService": func() error {
			return extractionv1.RegisterExtractionServiceHandlerClient(ctx, mux, extractionv1.NewExtractionServiceClient(b.Extraction))
		},
		"SyncService": func() error {
			return syncv1.RegisterSyncServiceHandlerClient(ctx, mux, syncv1.NewSyncServiceClient(b.Sync))
		},
		"consent SandboxService": func() error {
			return consentv1.RegisterSandboxServiceHandlerClient(ctx, mux, consentv1.NewSandboxServiceClient(b.Consent))
		},
	} {
		if err := register(); err != nil {
			return nil, fmt.Errorf("gateway: register %s: %w", name, err)
		}
	}

	root := http.NewServeMux()
	root.Handle("/", checkToken(v, cfg.AllowedOrigins, callbackParams(mux)))
	root.Handle("POST /v1/oauth/token", g.tokenEndpoint(tokens))
	root.Handle("POST /v1/inbound/{provider}", g.inboundEndpoint(webhookv1.NewInboundServiceClient(b.Webhook)))
	root.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapi.JSON)
	})
	widget := connect.Handler(cfg.WidgetDir)
	root.Handle("GET "+connect.WidgetPath, widget)
	root.Handle("GET "+connect.WidgetPath+"/", widget)
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return traced(accessLog(log, cors(cfg.AllowedOrigins, cacheControl(limitBody(root))))), nil
}

// maxBody bounds a request body; the API takes nothing larger.
const maxBody = 1 << 20

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

type gateway struct{ log *slog.Logger }

// headerMatcher forwards the request id and nothing else (grpc-gateway forwards Authorization
// itself): no caller may set gRPC metadata a service might trust, such as Grpc-Metadata-*.
func headerMatcher(key string) (string, bool) {
	if strings.EqualFold(key, "X-Request-Id") {
		return "x-request-id", true
	}
	return "", false
}

// checkToken verifies a bearer JWT here, so a forged or expired token never reaches a service,
// and lets the origins its client registered read the response (CORS). Other bearer values
// (the operator's admin token) are left to the service's own check.
func checkToken(v Verifier, global []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 1 {
			writeError(w, r, status.New(codes.InvalidArgument, "send one Authorization header"))
			return
		}
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			if token := strings.TrimSpace(auth[7:]); strings.Count(token, ".") == 2 {
				claims, err := v.Verify(r.Context(), token)
				if err != nil {
					writeError(w, r, errStatus(err))
					return
				}
				if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(claims.Origins, origin) {
					allowOrigin(w.Header(), origin)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// callbackPath is where redirect institutions send the user back (CompleteRedirect).
const callbackPath = "/v1/connections:callback"

// callbackNamed are CompleteRedirectRequest's own fields, bound from the query as usual.
var callbackNamed = []string{"state", "code", "error", "result"}

// callbackParams rewrites the redirect callback's query so that grpc-gateway, which binds a map
// field only from "params[key]=value", puts every parameter the upstream sent into params: each
// upstream names what it sends back its own way, and only its adapter knows which it needs.
// A key the caller wrote as "params[...]" becomes params[params[...]], which binds nowhere; the
// named fields keep all their values, so a repeated state is refused as before.
func callbackParams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != callbackPath || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		q := r.URL.Query()
		out := url.Values{}
		for k, vs := range q {
			if slices.Contains(callbackNamed, k) {
				out[k] = vs
			}
			if k != "" && len(vs) > 0 {
				out.Set("params["+k+"]", vs[0])
			}
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = out.Encode()
		next.ServeHTTP(w, r2)
	})
}

// redirectBrowser sends the user's browser on from the redirect callback to where the
// connection asked (303 See Other), instead of showing it JSON.
func redirectBrowser(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	if resp, ok := m.(*connectionv1.CompleteRedirectResponse); ok && resp.GetRedirectUri() != "" {
		w.Header().Set("Location", resp.GetRedirectUri())
		w.WriteHeader(http.StatusSeeOther)
	}
	return nil
}

// cacheControl keeps responses (which hold secrets and personal data) out of caches; only the JWKS
// may be cached, briefly, as verifiers expect.
func cacheControl(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/jwks.json" {
			w.Header().Set("Cache-Control", "public, max-age=300")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}
