// Package suite runs a selection of Puente's services in one process: all of them on a laptop and in
// tests, one per process in Kubernetes. Whatever shares the process, services reach each other
// only through gRPC clients, dialled at configured addresses.
package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/server"
	"puente.dev/pkg/upstream/boufin"
	"puente.dev/pkg/upstream/guiabolso"
	"puente.dev/pkg/upstream/klavi"
	"puente.dev/pkg/upstream/powens"
	"puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/authtoken"
	"puente.dev/services/connection"
	"puente.dev/services/consent"
	"puente.dev/services/extraction"
	"puente.dev/services/gateway"
	syncs "puente.dev/services/sync"
	"puente.dev/services/webhook"
)

// Names are the services this binary can run, in start order.
var Names = []string{"authtoken", "webhook", "consent", "connection", "extraction", "sync", "gateway"}

// migrations of each service that owns tables.
var migrations = map[string]func(ctx context.Context, url string) error{}

// Config is the process's configuration; each service's own part is nested.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL"`
	// GRPCAddr and HTTPAddr are where this process listens (gRPC for the services, REST for the gateway).
	GRPCAddr string `env:"PUENTE_GRPC_ADDR" default:":9090"`
	HTTPAddr string `env:"PUENTE_HTTP_ADDR" default:":8080"`
	// MetricsAddr is where Prometheus scrapes /metrics, away from the API; "off" serves none.
	MetricsAddr string `env:"PUENTE_METRICS_ADDR" default:":9464"`
	// AuthtokenAddr is the authtoken service's gRPC address (dns:///authtoken:9090 in Kubernetes).
	// Empty means this process runs it.
	AuthtokenAddr string `env:"PUENTE_AUTHTOKEN_ADDR"`
	// ConnectionAddr and ConsentAddr are the connection and consent services' gRPC addresses;
	// empty means this process runs them.
	ConnectionAddr string `env:"PUENTE_CONNECTION_ADDR"`
	ConsentAddr    string `env:"PUENTE_CONSENT_ADDR"`
	WebhookAddr    string `env:"PUENTE_WEBHOOK_ADDR"`
	ExtractionAddr string `env:"PUENTE_EXTRACTION_ADDR"`
	SyncAddr       string `env:"PUENTE_SYNC_ADDR"`
	// AdminToken is the operator's bearer token for the admin API; empty disables it.
	AdminToken string `env:"PUENTE_ADMIN_TOKEN"`
	// ServiceToken is the bearer token services call each other's internal methods with.
	ServiceToken   string        `env:"PUENTE_SERVICE_TOKEN"`
	MigrateOnStart bool          `env:"PUENTE_MIGRATE_ON_START" default:"true"`
	DrainTimeout   time.Duration `env:"PUENTE_DRAIN_TIMEOUT" default:"25s"`

	Authtoken  authtoken.Config
	Consent    consent.Config
	Connection connection.Config
	Gateway    gateway.Config
	Webhook    webhook.Config
	Extraction extraction.Config
	Sync       syncs.Config

	// The upstream providers; each is off until its URL is set.
	Boufin    boufin.Config
	Syncfy    syncfy.Config
	Guiabolso guiabolso.Config
	Powens    powens.Config
	Klavi     klavi.Config
}

// Parse reads a -service value: "all" or a comma-separated list of names.
func Parse(list string) ([]string, error) {
	if list == "" || list == "all" {
		return Names, nil
	}
	var out []string
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(Names, name) {
			return nil, fmt.Errorf("unknown service %q (known: all, %s)", name, strings.Join(Names, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Suite is a running selection of services.
type Suite struct {
	cfg      Config
	services []string
	log      *slog.Logger

	grpc          *server.Server
	grpcLis       net.Listener
	http          *http.Server
	httpLis       net.Listener
	metrics       *metrics.Metrics
	metricsServer *http.Server
	metricsLis    net.Listener
	conns         []*grpc.ClientConn
	closers       []func()
	verifier      *authn.Verifier

	errs chan error
	once sync.Once

	stopBackground context.CancelFunc
	backgroundCtx  context.Context
	workers        sync.WaitGroup
}

// background runs fn until the suite shuts down.
func (s *Suite) background(fn func(ctx context.Context)) {
	s.workers.Go(func() { fn(s.backgroundCtx) })
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Suite) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the address of the REST gateway, or "" when it does not run here.
func (s *Suite) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// MetricsAddr is the address of the Prometheus endpoint, or "" when it is off.
func (s *Suite) MetricsAddr() string {
	if s.metricsLis == nil {
		return ""
	}
	return s.metricsLis.Addr().String()
}

// Verifier is the token verifier every service of this process and the gateway use.
func (s *Suite) Verifier() *authn.Verifier { return s.verifier }

// Start migrates (when configured), wires and serves the selected services.
func Start(ctx context.Context, cfg Config, services []string, log *slog.Logger) (_ *Suite, err error) {
	s := &Suite{cfg: cfg, services: services, log: log, errs: make(chan error, 3), metrics: metrics.New(metrics.Options{})}
	s.backgroundCtx, s.stopBackground = context.WithCancel(context.WithoutCancel(ctx))
	// The upstream clients every service builds from its copy of the configuration time their
	// calls in this process's metrics.
	s.cfg.Boufin.Metrics, s.cfg.Syncfy.Metrics, s.cfg.Guiabolso.Metrics = s.metrics, s.metrics, s.metrics
	s.cfg.Powens.Metrics, s.cfg.Klavi.Metrics = s.metrics, s.metrics
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.runs("authtoken") {
		if err := cfg.Authtoken.Validate(); err != nil {
			return nil, fmt.Errorf("authtoken config: %w", err)
		}
	}
	if t := cfg.AdminToken; t != "" && !strongToken(t) {
		return nil, errors.New("PUENTE_ADMIN_TOKEN must be at least 32 characters, without dots or spaces (puente keygen makes one)")
	}
	if cfg.ServiceToken == cfg.AdminToken {
		return nil, errors.New("PUENTE_SERVICE_TOKEN and PUENTE_ADMIN_TOKEN must differ")
	}
	if !strongToken(cfg.ServiceToken) {
		return nil, errors.New("PUENTE_SERVICE_TOKEN must be set: at least 32 characters, without dots or spaces (puente keygen makes one)")
	}
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	if cfg.MetricsAddr != "off" && cfg.MetricsAddr != "" {
		if s.metricsLis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.Handler())
		s.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	authtokenConn, err := s.dial(cfg.AuthtokenAddr, "authtoken")
	if err != nil {
		return nil, err
	}
	tokens := authtokenv1.NewTokenServiceClient(authtokenConn)
	keys := authn.NewCache(func(ctx context.Context) (authn.JWKS, error) {
		resp, err := tokens.GetJwks(ctx, &authtokenv1.GetJwksRequest{})
		if err != nil {
			return authn.JWKS{}, err
		}
		var set authn.JWKS
		for _, k := range resp.GetKeys() {
			set.Keys = append(set.Keys, authn.JWK{Kty: k.GetKty(), Crv: k.GetCrv(), X: k.GetX(), Kid: k.GetKid(), Use: k.GetUse(), Alg: k.GetAlg()})
		}
		return set, nil
	})
	s.verifier = authn.NewVerifier(keys, cfg.Authtoken.Issuer, cfg.Authtoken.Audience)
	if s.grpc, err = server.New(server.Options{Logger: log, Verifier: s.verifier, AdminToken: cfg.AdminToken, ServiceToken: cfg.ServiceToken, Metrics: s.metrics}); err != nil {
		return nil, err
	}
	if s.runs("authtoken") {
		if err := startAuthtoken(ctx, s); err != nil {
			return nil, err
		}
	}
	// The services call each other: each selected service's dependencies are dialled before any
	// starts (a gRPC client connects lazily, so a service may be dialled before it serves).
	conns := map[string]*grpc.ClientConn{"authtoken": authtokenConn}
	addrs := map[string]string{
		"webhook": cfg.WebhookAddr, "consent": cfg.ConsentAddr, "connection": cfg.ConnectionAddr,
		"extraction": cfg.ExtractionAddr, "sync": cfg.SyncAddr,
	}
	needs := map[string][]string{
		"consent":    {"webhook", "extraction", "sync"},
		"connection": {"consent", "webhook"},
		"extraction": {"consent", "connection", "webhook"},
		"sync":       s.syncNeeds(),
		"gateway":    {"connection", "consent", "webhook", "extraction", "sync"},
		// The webhook service hands upstream webhooks to the services their providers name.
		"webhook": s.inboundRoutes(),
	}
	for _, name := range services {
		for _, dep := range needs[name] {
			if conns[dep] == nil {
				if conns[dep], err = s.dial(addrs[dep], dep); err != nil {
					return nil, err
				}
			}
		}
	}
	if s.runs("webhook") {
		if err := startWebhook(ctx, s, conns); err != nil {
			return nil, err
		}
	}
	if s.runs("consent") {
		if err := startConsent(ctx, s, conns["webhook"], conns["extraction"], conns["sync"]); err != nil {
			return nil, err
		}
	}
	if s.runs("connection") {
		if err := startConnection(ctx, s, authtokenConn, conns["consent"], conns["webhook"]); err != nil {
			return nil, err
		}
	}
	if s.runs("extraction") {
		if err := startExtraction(ctx, s, conns["consent"], conns["connection"], conns["webhook"]); err != nil {
			return nil, err
		}
	}
	if s.runs("sync") {
		if err := startSync(ctx, s, authtokenConn, conns["consent"], conns["extraction"], conns["webhook"], conns["connection"]); err != nil {
			return nil, err
		}
	}
	if s.runs("gateway") {
		b := gateway.Backends{
			Authtoken: authtokenConn, Connection: conns["connection"], Consent: conns["consent"], Webhook: conns["webhook"],
			Extraction: conns["extraction"], Sync: conns["sync"],
		}
		if err := startGateway(ctx, s, b); err != nil {
			return nil, err
		}
	}
	go func() { s.errs <- s.grpc.Serve(s.grpcLis) }()
	if s.http != nil {
		go func() {
			if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
				s.errs <- err
			}
		}()
	}
	if s.metricsServer != nil {
		go func() {
			if err := s.metricsServer.Serve(s.metricsLis); !errors.Is(err, http.ErrServerClosed) {
				s.errs <- err
			}
		}()
	}
	log.InfoContext(ctx, "puente started", "services", strings.Join(services, ","), "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "metrics", s.MetricsAddr())
	return s, nil
}

// database migrates a service's schema (when configured to at start) and opens its pool, closed
// with the suite.
func (s *Suite) database(ctx context.Context, service, schema string) (*pgxpool.Pool, error) {
	if s.cfg.MigrateOnStart {
		if err := migrations[service](ctx, s.cfg.DatabaseURL); err != nil {
			return nil, err
		}
	}
	pool, err := postgres.Open(ctx, s.cfg.DatabaseURL, schema)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, pool.Close)
	return pool, nil
}

func (s *Suite) runs(name string) bool { return slices.Contains(s.services, name) }

func strongToken(t string) bool { return len(t) >= 32 && !strings.ContainsAny(t, ". \t") }

// dial returns a client connection to a service: addr, or this process's own gRPC server when the
// service runs here and addr is empty.
func (s *Suite) dial(addr, service string) (*grpc.ClientConn, error) {
	if addr == "" {
		if !s.runs(service) {
			return nil, fmt.Errorf("PUENTE_%s_ADDR must be set when %s does not run in this process", strings.ToUpper(service), service)
		}
		_, port, _ := net.SplitHostPort(s.grpcLis.Addr().String())
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		// Pods behind a headless Service: balance calls over all of them, not one HTTP/2 connection.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin":{}}]}`),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", service, addr, err)
	}
	s.conns = append(s.conns, conn)
	return conn, nil
}

// Wait blocks until a server fails or ctx ends.
func (s *Suite) Wait(ctx context.Context) error {
	select {
	case err := <-s.errs:
		return err
	case <-ctx.Done():
		return nil
	}
}

// Shutdown drains: health goes NOT_SERVING, REST stops taking requests and finishes those in
// flight, then gRPC does, then background work stops, then connections and pools close. ctx
// bounds the whole drain.
func (s *Suite) Shutdown(ctx context.Context) {
	s.grpc.Drain()
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			s.log.Warn("http drain incomplete", "err", err)
		}
	}
	s.grpc.Shutdown(ctx)
	s.close()
	// Last, so the drain itself can be watched.
	if s.metricsServer != nil {
		s.metricsServer.Close()
	}
}

func (s *Suite) close() {
	s.once.Do(func() {
		s.stopBackground()
		s.workers.Wait()
		for _, c := range s.conns {
			c.Close()
		}
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
		if s.grpc == nil && s.grpcLis != nil {
			s.grpcLis.Close()
		}
		if s.metricsServer == nil && s.metricsLis != nil {
			s.metricsLis.Close()
		}
	})
}
