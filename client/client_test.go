package client_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"puente.dev/client"
	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
)

const (
	testClientID = "cli_test"
	testSecret   = "psk_very_secret_value"
	userID       = "usr_01J00000000000000000000000"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// tokenServer issues tok-1, tok-2, … living expiresIn seconds. fail, when set, answers a call
// instead (nil lets it through); gate, when set, holds each call until it is closed.
type tokenServer struct {
	authtokenv1.UnimplementedTokenServiceServer
	expiresIn int64
	calls     atomic.Int64
	entered   chan struct{}
	gate      chan struct{}
	holdCall  int64 // 0: every call goes through entered and gate; n: only the n-th
	fail      func(n int64) error
}

func (s *tokenServer) CreateToken(ctx context.Context, req *authtokenv1.CreateTokenRequest) (*authtokenv1.CreateTokenResponse, error) {
	n := s.calls.Add(1)
	if s.holdCall == 0 || s.holdCall == n {
		if s.entered != nil {
			s.entered <- struct{}{}
		}
		if s.gate != nil {
			<-s.gate
		}
	}
	if req.GetGrantType() != "client_credentials" || req.GetClientId() != testClientID || req.GetClientSecret() != testSecret {
		return nil, status.Error(codes.Unauthenticated, "invalid client credentials")
	}
	if s.fail != nil {
		if err := s.fail(n); err != nil {
			return nil, err
		}
	}
	return &authtokenv1.CreateTokenResponse{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer", ExpiresIn: s.expiresIn}, nil
}

// userServer records what each GetUser call carried. fail, when set, may answer a call instead.
type userServer struct {
	authtokenv1.UnimplementedUserServiceServer
	mu        sync.Mutex
	tokens    []string
	deadlines []time.Duration // remaining at arrival; -1 for none
	fail      func(n int) error
}

func (s *userServer) GetUser(ctx context.Context, req *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	remaining := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		remaining = time.Until(d)
	}
	s.mu.Lock()
	s.tokens = append(s.tokens, strings.Join(md.Get("authorization"), ","))
	s.deadlines = append(s.deadlines, remaining)
	n := len(s.tokens)
	s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(n); err != nil {
			return nil, err
		}
	}
	return &authtokenv1.GetUserResponse{User: &authtokenv1.User{Id: req.GetId()}}, nil
}

func (s *userServer) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

func (s *userServer) lastToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[len(s.tokens)-1]
}

// watchServer records whether WatchConnection streams arrive with a deadline.
type watchServer struct {
	connectionv1.UnimplementedConnectionServiceServer
	hadDeadline chan bool
}

func (s *watchServer) WatchConnection(req *connectionv1.WatchConnectionRequest, stream connectionv1.ConnectionService_WatchConnectionServer) error {
	_, ok := stream.Context().Deadline()
	s.hadDeadline <- ok
	return stream.Send(&connectionv1.WatchConnectionResponse{Connection: &connectionv1.Connection{Id: req.GetId()}})
}

// backend is one loopback gRPC server with the fakes registered.
type backend struct {
	addr   string
	tokens *tokenServer
	users  *userServer
	watch  *watchServer
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &backend{addr: lis.Addr().String(), tokens: &tokenServer{expiresIn: 600}, users: &userServer{},
		watch: &watchServer{hadDeadline: make(chan bool, 1)}}
	s := grpc.NewServer()
	authtokenv1.RegisterTokenServiceServer(s, b.tokens)
	authtokenv1.RegisterUserServiceServer(s, b.users)
	connectionv1.RegisterConnectionServiceServer(s, b.watch)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return b
}

func dialTest(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = testClientID, testSecret
	}
	cfg.Insecure = true
	c, err := client.Dial(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func getUser(ctx context.Context, c *client.Client) error {
	_, err := c.Users.GetUser(ctx, &authtokenv1.GetUserRequest{Id: userID})
	return err
}

func TestTokenIsReusedUntilDueThenRefreshedBeforeExpiry(t *testing.T) {
	b := startBackend(t)
	clock := newFakeClock()
	c := dialTest(t, client.Config{Target: b.addr, Now: clock.Now})
	ctx := t.Context()

	require.NoError(t, getUser(ctx, c))
	assert.Equal(t, "Bearer tok-1", b.users.lastToken())

	// A 600 s token is refreshed with a minute left: at 539 s it is still reused.
	clock.Advance(539 * time.Second)
	for range 5 {
		require.NoError(t, getUser(ctx, c))
	}
	assert.EqualValues(t, 1, b.tokens.calls.Load(), "reused while far from expiry")
	assert.Equal(t, "Bearer tok-1", b.users.lastToken())

	clock.Advance(2 * time.Second) // 59 s left: refresh, though tok-1 is still valid
	require.NoError(t, getUser(ctx, c))
	assert.EqualValues(t, 2, b.tokens.calls.Load())
	assert.Equal(t, "Bearer tok-2", b.users.lastToken())

	require.NoError(t, getUser(ctx, c))
	assert.EqualValues(t, 2, b.tokens.calls.Load(), "the new token is reused")
	tok, err := c.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "tok-2", tok, "Token gives REST callers the same token")
}

func TestCallsDuringARefreshUseTheCurrentToken(t *testing.T) {
	b := startBackend(t)
	b.tokens.holdCall = 2
	b.tokens.entered = make(chan struct{}, 1)
	b.tokens.gate = make(chan struct{})
	clock := newFakeClock()
	c := dialTest(t, client.Config{Target: b.addr, Now: clock.Now})

	require.NoError(t, getUser(t.Context(), c))
	clock.Advance(550 * time.Second)
	refreshed := make(chan error, 1)
	go func() { refreshed <- getUser(t.Context(), c) }()
	<-b.tokens.entered // the refresh is held on the server

	require.NoError(t, getUser(t.Context(), c), "not blocked behind the refresh")
	assert.Equal(t, "Bearer tok-1", b.users.lastToken())
	close(b.tokens.gate)
	require.NoError(t, <-refreshed)
	require.NoError(t, getUser(t.Context(), c))
	assert.Equal(t, "Bearer tok-2", b.users.lastToken())
}

func TestFailedRefreshKeepsUsingTheValidToken(t *testing.T) {
	b := startBackend(t)
	b.tokens.fail = func(n int64) error {
		if n == 2 {
			return status.Error(codes.Internal, "database down")
		}
		return nil
	}
	clock := newFakeClock()
	c := dialTest(t, client.Config{Target: b.addr, Now: clock.Now})

	require.NoError(t, getUser(t.Context(), c))
	clock.Advance(570 * time.Second) // due for refresh, valid for 30 s more
	require.NoError(t, getUser(t.Context(), c), "a failed refresh does not fail a call while the token is valid")
	assert.Equal(t, "Bearer tok-1", b.users.lastToken())
	require.NoError(t, getUser(t.Context(), c))
	assert.Equal(t, "Bearer tok-3", b.users.lastToken(), "the next call refreshes again")
	assert.EqualValues(t, 3, b.tokens.calls.Load())
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	b := startBackend(t)
	b.tokens.entered = make(chan struct{}, 1)
	b.tokens.gate = make(chan struct{})
	c := dialTest(t, client.Config{Target: b.addr})

	const callers = 100
	var started, done sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			errs <- getUser(t.Context(), c)
		}()
	}
	started.Wait()
	<-b.tokens.entered // the one fetch is held on the server while the others pile up
	close(b.tokens.gate)
	done.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, b.tokens.calls.Load(), "one CreateToken for all callers")
	assert.Equal(t, callers, b.users.calls())
	for _, tok := range b.users.tokens {
		assert.Equal(t, "Bearer tok-1", tok)
	}
}

func TestFailedFetchFailsTheCallAndTheNextCallFetchesAgain(t *testing.T) {
	b := startBackend(t)
	b.tokens.fail = func(n int64) error {
		if n == 1 {
			return status.Error(codes.Unauthenticated, "invalid client credentials")
		}
		return nil
	}
	c := dialTest(t, client.Config{Target: b.addr})

	err := getUser(t.Context(), c)
	require.Error(t, err)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Contains(t, err.Error(), testClientID)
	assert.NotContains(t, err.Error(), testSecret)
	assert.Zero(t, b.users.calls(), "the call is not sent without a token")

	require.NoError(t, getUser(t.Context(), c))
	assert.EqualValues(t, 2, b.tokens.calls.Load())
	assert.Equal(t, "Bearer tok-2", b.users.lastToken())
}

func TestRefusedCredentialsAreUnauthenticatedWithoutTheSecret(t *testing.T) {
	b := startBackend(t)
	c := dialTest(t, client.Config{Target: b.addr, ClientID: testClientID, ClientSecret: "psk_wrong_secret"})
	err := getUser(t.Context(), c)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.NotContains(t, err.Error(), "psk_wrong_secret")
	_, err = c.Token(t.Context())
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
}

func TestTokenServerDownIsUnavailable(t *testing.T) {
	b := startBackend(t)
	b.tokens.fail = func(int64) error { return status.Error(codes.Internal, "boom") }
	c := dialTest(t, client.Config{Target: b.addr})
	_, err := c.Token(t.Context())
	assert.Equal(t, codes.Unavailable, status.Code(err))
}

func TestRoundRobinSpreadsCallsOverEveryAddress(t *testing.T) {
	one, two := startBackend(t), startBackend(t)
	r := manual.NewBuilderWithScheme("puentetest")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: one.addr}, {Addr: two.addr}}})
	c := dialTest(t, client.Config{Target: r.Scheme() + ":///puente", DialOptions: []grpc.DialOption{grpc.WithResolvers(r)}})

	// Until both subchannels are ready the picker may only know one; call until both answered.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for one.users.calls() == 0 || two.users.calls() == 0 {
		require.NoError(t, getUser(ctx, c), "pick_first would never reach the second backend")
	}
	before1, before2 := one.users.calls(), two.users.calls()
	for range 10 {
		require.NoError(t, getUser(ctx, c))
	}
	assert.Equal(t, 5, one.users.calls()-before1)
	assert.Equal(t, 5, two.users.calls()-before2)
}

func TestRetryTurnsOneUnavailableIntoSuccess(t *testing.T) {
	b := startBackend(t)
	b.users.fail = func(n int) error {
		if n == 1 {
			return status.Error(codes.Unavailable, "draining")
		}
		return nil
	}
	c := dialTest(t, client.Config{Target: b.addr})
	require.NoError(t, getUser(t.Context(), c))
	assert.Equal(t, 2, b.users.calls())
}

func TestOtherErrorsAreNotRetried(t *testing.T) {
	b := startBackend(t)
	b.users.fail = func(int) error { return status.Error(codes.Internal, "after the write") }
	c := dialTest(t, client.Config{Target: b.addr})
	assert.Equal(t, codes.Internal, status.Code(getUser(t.Context(), c)))
	assert.Equal(t, 1, b.users.calls())
}

func TestUnaryCallsGetTheDefaultDeadlineStreamsDoNot(t *testing.T) {
	b := startBackend(t)
	c := dialTest(t, client.Config{Target: b.addr, Timeout: 7 * time.Second})

	require.NoError(t, getUser(context.Background(), c))
	got := b.users.deadlines[0]
	assert.Positive(t, got, "a unary call without a deadline gets one")
	assert.LessOrEqual(t, got, 7*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	require.NoError(t, getUser(ctx, c))
	assert.Greater(t, b.users.deadlines[1], 7*time.Second, "the caller's own deadline wins")

	stream, err := c.Connections.WatchConnection(context.Background(), &connectionv1.WatchConnectionRequest{Id: "con_1"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
	assert.False(t, <-b.watch.hadDeadline, "a WatchConnection stream has no deadline")
}

func TestDialRefusesPlaintextUnlessInsecure(t *testing.T) {
	base := client.Config{Target: "127.0.0.1:1", ClientID: testClientID, ClientSecret: testSecret}
	_, err := client.Dial(t.Context(), base)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plaintext")

	both := base
	both.TLS, both.Insecure = &tls.Config{}, true
	_, err = client.Dial(t.Context(), both)
	require.Error(t, err)

	noTarget := base
	noTarget.Target, noTarget.Insecure, noTarget.Consent = "", true, "dns:///consent:9090"
	_, err = client.Dial(t.Context(), noTarget)
	require.ErrorContains(t, err, "authtoken")
}

func TestTLSClientDoesNotSendTheTokenOverPlaintext(t *testing.T) {
	b := startBackend(t)
	c, err := client.Dial(t.Context(), client.Config{Target: b.addr, ClientID: testClientID, ClientSecret: testSecret,
		TLS: &tls.Config{InsecureSkipVerify: true}}) //nolint:gosec // the handshake is meant to fail
	require.NoError(t, err)
	defer c.Close()
	require.Error(t, getUser(t.Context(), c), "a plaintext server does not complete a TLS handshake")
	assert.Zero(t, b.tokens.calls.Load(), "the secret never left over plaintext")
}

func TestSecretsStayOutOfStrings(t *testing.T) {
	cfg := client.Config{Target: "dns:///puente:9090", ClientID: testClientID, ClientSecret: testSecret, Insecure: true}
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		assert.NotContains(t, s, testSecret)
		assert.Contains(t, s, testClientID)
	}
	c, err := client.Dial(t.Context(), cfg)
	require.NoError(t, err)
	defer c.Close()
	assert.NotContains(t, fmt.Sprint(c), testSecret)
}
