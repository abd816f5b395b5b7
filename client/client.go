// Package client is how internal services call Puente over gRPC: one Dial gives ready stubs for
// every service, with TLS (or an explicit choice of plaintext), client-side round-robin across
// every address the resolver returns, default deadlines, retries of UNAVAILABLE, keepalives for
// long-lived connections, and an access token from the OAuth 2.0 client-credentials grant on
// every call, fetched once and shared.
//
//	cfg, err := client.FromEnv()
//	c, err := client.Dial(ctx, cfg)
//	defer c.Close()
//	resp, err := c.Users.GetUser(ctx, &authtokenv1.GetUserRequest{Id: id})
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
)

// serviceNames are the services a Config can address, in a fixed order.
var serviceNames = []string{"authtoken", "consent", "connection", "extraction", "sync", "webhook"}

// Client holds Puente's stubs. Every stub sends the client's access token; all of them are safe
// for concurrent use.
type Client struct {
	// authtoken
	Users      authtokenv1.UserServiceClient
	LinkTokens authtokenv1.LinkTokenServiceClient
	// Tokens is for CreateTaskToken and GetJwks; the client's own token comes from Token.
	Tokens  authtokenv1.TokenServiceClient
	APIKeys authtokenv1.ApiKeyServiceClient
	// consent
	Consents       consentv1.ConsentServiceClient
	ConsentSandbox consentv1.SandboxServiceClient
	// connection
	Connections       connectionv1.ConnectionServiceClient
	Institutions      connectionv1.InstitutionServiceClient
	ConnectionSandbox connectionv1.SandboxServiceClient
	// extraction, sync, webhook
	Extraction       extractionv1.ExtractionServiceClient
	Syncs            syncv1.SyncServiceClient
	WebhookEndpoints webhookv1.WebhookEndpointServiceClient
	Events           webhookv1.EventServiceClient

	clientID string
	tokens   *tokenSource
	conns    []*grpc.ClientConn
}

// Dial checks cfg and prepares connections to every service. Like grpc.NewClient it does not
// wait for them (ctx is not used today): the first call connects, and fetches the first token.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	targets, err := cfg.targets()
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sc, err := serviceConfig()
	if err != nil {
		return nil, err
	}
	transport := insecure.NewCredentials()
	if cfg.TLS != nil {
		transport = credentials.NewTLS(cfg.TLS)
	}
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultServiceConfig(sc),
		// Pings keep idle connections alive through conntrack and load balancers that drop
		// them silently after minutes, and find a dead pod in ~40 s rather than at the next
		// call's deadline. Puente's servers accept pings every 10 s, with or without streams.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithUserAgent("puente-go-client"),
	}
	base = append(base, cfg.DialOptions...)

	c := &Client{clientID: cfg.ClientID}
	// One connection per distinct address: services that share a target share it.
	byTarget := map[string]*grpc.ClientConn{}
	conn := func(service string) (*grpc.ClientConn, error) {
		target := targets[service]
		if cc, ok := byTarget[target]; ok {
			return cc, nil
		}
		cc, err := grpc.NewClient(target, base...)
		if err != nil {
			return nil, fmt.Errorf("puente client: dialling %s at %s: %w", service, target, err)
		}
		byTarget[target] = cc
		c.conns = append(c.conns, cc)
		return cc, nil
	}
	conns := map[string]*grpc.ClientConn{}
	for _, name := range serviceNames {
		cc, err := conn(name)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		conns[name] = cc
	}
	c.tokens = &tokenSource{
		tokens:   authtokenv1.NewTokenServiceClient(conns["authtoken"]),
		clientID: cfg.ClientID, secret: cfg.ClientSecret, now: cfg.Now, timeout: cfg.Timeout,
	}

	// The stubs send the token; the token source's own stub above does not.
	authed := func(name string) grpc.ClientConnInterface {
		return stubConn{cc: conns[name], timeout: cfg.Timeout,
			creds: grpc.PerRPCCredentials(bearer{source: c.tokens, insecure: cfg.Insecure})}
	}
	c.Users = authtokenv1.NewUserServiceClient(authed("authtoken"))
	c.LinkTokens = authtokenv1.NewLinkTokenServiceClient(authed("authtoken"))
	c.Tokens = authtokenv1.NewTokenServiceClient(authed("authtoken"))
	c.APIKeys = authtokenv1.NewApiKeyServiceClient(authed("authtoken"))
	c.Consents = consentv1.NewConsentServiceClient(authed("consent"))
	c.ConsentSandbox = consentv1.NewSandboxServiceClient(authed("consent"))
	c.Connections = connectionv1.NewConnectionServiceClient(authed("connection"))
	c.Institutions = connectionv1.NewInstitutionServiceClient(authed("connection"))
	c.ConnectionSandbox = connectionv1.NewSandboxServiceClient(authed("connection"))
	c.Extraction = extractionv1.NewExtractionServiceClient(authed("extraction"))
	c.Syncs = syncv1.NewSyncServiceClient(authed("sync"))
	c.WebhookEndpoints = webhookv1.NewWebhookEndpointServiceClient(authed("webhook"))
	c.Events = webhookv1.NewEventServiceClient(authed("webhook"))
	return c, nil
}

// Token returns the access token the stubs send, for callers that also use the REST API.
func (c *Client) Token(ctx context.Context) (string, error) { return c.tokens.Token(ctx) }

// Close closes every connection; calls in flight fail.
func (c *Client) Close() error {
	var errs []error
	for _, cc := range c.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.conns = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("puente client: closing: %w", err)
	}
	return nil
}

// String names the client and nothing secret.
func (c *Client) String() string { return fmt.Sprintf("puente client %s", c.clientID) }

// stubConn is the connection the stubs call through: it adds the bearer credentials (so that the
// token source's own calls, made on the bare connection, carry none) and the default deadline.
type stubConn struct {
	cc      *grpc.ClientConn
	creds   grpc.CallOption
	timeout time.Duration
}

// Invoke gives a unary call without a deadline the default one. This is not the service
// config's "timeout", which gRPC applies as a cap even to callers that chose a longer deadline.
func (s stubConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	return s.cc.Invoke(ctx, method, args, reply, append([]grpc.CallOption{s.creds}, opts...)...)
}

// NewStream leaves streams without a deadline: WatchConnection lives as long as its caller wants.
func (s stubConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return s.cc.NewStream(ctx, desc, method, append([]grpc.CallOption{s.creds}, opts...)...)
}

// serviceConfig is the default service config: round-robin over every resolved address, and
// retries. Deadlines are not set here (see stubConn.Invoke).
func serviceConfig() (string, error) {
	// Only UNAVAILABLE is retried: it means the call never reached a server that acted on it
	// (a pod going away, a refused connection, a draining server), so it is safe for every
	// method, creates included. DEADLINE_EXCEEDED or INTERNAL may come after the server acted,
	// and retrying a non-idempotent call then could do it twice.
	retry := map[string]any{
		"maxAttempts":          4,
		"initialBackoff":       "0.1s",
		"maxBackoff":           "1s",
		"backoffMultiplier":    2,
		"retryableStatusCodes": []string{"UNAVAILABLE"},
	}
	sc := map[string]any{
		"loadBalancingConfig": []any{map[string]any{"round_robin": map[string]any{}}},
		// An empty name is every method of every service, WatchConnection included (a stream
		// is retried only until its first message arrives).
		"methodConfig": []any{map[string]any{"name": []any{map[string]any{}}, "retryPolicy": retry}},
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("puente client: service config: %w", err)
	}
	return string(b), nil
}
