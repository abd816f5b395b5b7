package client_test

import (
	"context"
	"crypto/rand"
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
	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
	"puente.dev/services/puente/suite/suitetest"
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
	dbURL := pgtest.NewDatabase(tb)
	if tb.err != nil {
		return nil, tb.err
	}
	cfg, admin := suitetest.Config(dbURL)
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
