package client_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"puente.dev/client"
	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/pglocal"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/secretbox"
	"puente.dev/pkg/telemetry"
	"puente.dev/services/authtoken"
	"puente.dev/services/connection"
	"puente.dev/services/consent"
	"puente.dev/services/extraction"
	"puente.dev/services/puente/suite"
	syncs "puente.dev/services/sync"
	"puente.dev/services/webhook"
)

// The running suite the examples and end-to-end tests call: its gRPC address and a sandbox
// client's credentials. Set once by TestMain; examples take no *testing.T to set them up.
var (
	puenteAddr   string
	clientID     string
	clientSecret string
)

// TestMain starts Postgres (unless pgtest's shared cluster is given) and one whole suite for
// the package. pgtest.Main cannot be used: it exits right after the tests, before the suite
// could be shut down.
func TestMain(m *testing.M) { os.Exit(runWithSuite(m)) }

func runWithSuite(m *testing.M) int {
	ctx := context.Background()
	if os.Getenv(pgtest.EnvURL) == "" {
		cluster, err := pglocal.Start(ctx, pglocal.Options{Ephemeral: true})
		if err != nil {
			fmt.Fprintf(os.Stderr, "starting postgres: %v\n", err)
			return 1
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "stopping postgres: %v\n", err)
			}
		}()
		if err := os.Setenv(pgtest.EnvURL, cluster.URL("postgres")); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
			return 1
		}
	}
	var tb mainTB
	defer tb.cleanup()
	stop, err := startSuite(ctx, &tb)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the suite: %v\n", err)
		return 1
	}
	code := m.Run()
	stop()
	return code
}

// startSuite runs every service over a fresh database, with the sandbox on, and creates a
// client with the admin token.
func startSuite(ctx context.Context, tb *mainTB) (stop func(), err error) {
	key := make([]byte, 32)
	rand.Read(key)
	admin := "padm_test_" + base64.RawURLEncoding.EncodeToString(key[:24])
	keys := secretbox.NewKeySpec("t1")
	dbURL := pgtest.NewDatabase(tb)
	if tb.err != nil {
		return nil, tb.err
	}
	cfg := suite.Config{
		DatabaseURL: dbURL, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdminToken:     admin,
		ServiceToken:   "psvc_test_" + base64.RawURLEncoding.EncodeToString(key[8:32]),
		MigrateOnStart: true, DrainTimeout: 5 * time.Second,
		Authtoken: authtoken.Config{
			Issuer: "puente-test", Audience: "puente-api",
			AccessTokenTTL: 10 * time.Minute, RefreshFamilyTTL: 720 * time.Hour, WidgetSessionTTL: 30 * time.Minute,
			KeyPublishLead: 15 * time.Minute, HashKey: base64.StdEncoding.EncodeToString(key), EncryptionKeys: keys,
		},
		Consent: consent.Config{EncryptionKeys: keys},
		Connection: connection.Config{EncryptionKeys: keys, HashKey: base64.StdEncoding.EncodeToString(key),
			PublicURL: "http://puente.test", Sandbox: true, Workers: 2, MinPollInterval: time.Second},
		Extraction: extraction.Config{EncryptionKeys: keys, Sandbox: true, PurgeAfter: 24 * time.Hour, ProviderConcurrency: 4, Workers: 2},
		Sync: syncs.Config{EncryptionKeys: keys, InstitutionConcurrency: 2, DefaultInterval: 24 * time.Hour, Workers: 2,
			Lease: time.Minute, UpstreamTimeout: 30 * time.Minute, BatchGather: 200 * time.Millisecond},
		Webhook: webhook.Config{EncryptionKeys: keys, AllowInsecureURLs: true, Timeout: 2 * time.Second,
			RetryWindow: time.Hour, RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
			Workers: 2, PerEndpoint: 2, Lease: 5 * time.Second, Retention: 720 * time.Hour,
			SandboxWebhookSecret: base64.StdEncoding.EncodeToString(key)},
	}
	s, err := suite.Start(ctx, cfg, suite.Names, telemetry.NewLogger(io.Discard, slog.LevelError, false))
	if err != nil {
		return nil, fmt.Errorf("suite.Start: %w", err)
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}
	puenteAddr = s.GRPCAddr()

	conn, err := grpc.NewClient(puenteAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stop()
		return nil, err
	}
	defer conn.Close()
	adminCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+admin)
	resp, err := authtokenv1.NewClientServiceClient(conn).CreateClient(adminCtx, &authtokenv1.CreateClientRequest{Name: "client package examples"})
	if err != nil {
		stop()
		return nil, fmt.Errorf("CreateClient: %w", err)
	}
	clientID, clientSecret = resp.GetClient().GetId(), resp.GetApiKey().GetSecret()
	return stop, nil
}

// mainTB is the testing.TB pgtest.NewDatabase needs, outside any test: it keeps the first
// failure and runs cleanups when TestMain is done.
type mainTB struct {
	testing.TB
	err      error
	cleanups []func()
}

func (t *mainTB) Helper() {}
func (t *mainTB) Fatalf(format string, args ...any) {
	if t.err == nil {
		t.err = fmt.Errorf(format, args...)
	}
}
func (t *mainTB) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *mainTB) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *mainTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// TestOneTokenForManyCallsAgainstTheSuite counts the CreateToken calls the client makes while
// 50 goroutines call the real services.
func TestOneTokenForManyCallsAgainstTheSuite(t *testing.T) {
	var fetches atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == authtokenv1.TokenService_CreateToken_FullMethodName {
			fetches.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c, err := client.Dial(t.Context(), client.Config{
		Target: puenteAddr, ClientID: clientID, ClientSecret: clientSecret, Insecure: true,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(count)},
	})
	require.NoError(t, err)
	defer c.Close()

	created, err := c.Users.CreateUser(t.Context(), &authtokenv1.CreateUserRequest{
		ExternalRef: "e2e-" + rand.Text(), Kind: authtokenv1.UserKind_USER_KIND_NATURAL,
	})
	require.NoError(t, err)
	id := created.GetUser().GetId()

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			resp, err := c.Users.GetUser(t.Context(), &authtokenv1.GetUserRequest{Id: id})
			if err == nil && resp.GetUser().GetId() != id {
				err = fmt.Errorf("got user %s", resp.GetUser().GetId())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, fetches.Load(), "one token for every call")

	tok, err := c.Token(t.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, tok)
	assert.EqualValues(t, 1, fetches.Load())
}

// TestWrongSecretAgainstTheSuite: the real token service's refusal reaches the caller as
// Unauthenticated, without the secret.
func TestWrongSecretAgainstTheSuite(t *testing.T) {
	c, err := client.Dial(t.Context(), client.Config{Target: puenteAddr, ClientID: clientID, ClientSecret: "psk_not_the_secret", Insecure: true})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Users.ListUsers(t.Context(), &authtokenv1.ListUsersRequest{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Unauthenticated")
	assert.NotContains(t, err.Error(), "psk_not_the_secret")
}
