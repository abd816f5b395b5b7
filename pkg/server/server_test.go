package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/server"
)

// users is a UserService whose behaviour each test sets.
type users struct {
	authtokenv1.UnimplementedUserServiceServer
	get func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error)
}

func (u *users) GetUser(ctx context.Context, r *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
	return u.get(ctx, r)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type testBundle struct {
	svc   *users
	conn  *grpc.ClientConn
	logs  *lockedBuffer
	key   authn.SigningKey
	admin string
	// metrics is what the server recorded.
	metrics *metrics.Metrics
}

const userID = "usr_01JD0000000000000000000000"

func setup(t *testing.T, verifier server.Verifier) *testBundle {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	b := &testBundle{svc: &users{}, logs: &lockedBuffer{}, key: authn.SigningKey{ID: "k1", Private: priv}, admin: "padm_test",
		metrics: metrics.New(metrics.Options{})}
	if verifier == nil {
		verifier = authn.NewVerifier(authn.StaticKeys{"k1": pub}, "iss", "aud")
	}
	s, err := server.New(server.Options{
		Logger:     slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Verifier:   verifier,
		AdminToken: b.admin,
		Metrics:    b.metrics,
	})
	require.NoError(t, err)
	authtokenv1.RegisterUserServiceServer(s.GRPC, b.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go s.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	b.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { b.conn.Close() })
	return b
}

func (b *testBundle) token(t *testing.T, scope, user string) string {
	now := time.Now()
	tok, err := authn.Sign(b.key, authn.Claims{Issuer: "iss", Audience: []string{"aud"}, Subject: "cli_1", ID: "j1", Scope: scope, UserID: user,
		LinkID: map[bool]string{true: "lnk_1"}[scope == authn.ScopeWidget], IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Minute)})
	require.NoError(t, err)
	return tok
}

func call(b *testBundle, token string, req *authtokenv1.GetUserRequest) error {
	ctx := context.Background()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	_, err := authtokenv1.NewUserServiceClient(b.conn).GetUser(ctx, req)
	return err
}

func TestAuthenticationFollowsTheAccessOption(t *testing.T) {
	b := setup(t, nil)
	var seen caller.Principal
	b.svc.get = func(ctx context.Context, _ *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		seen = caller.From(ctx)
		return &authtokenv1.GetUserResponse{}, nil
	}
	req := &authtokenv1.GetUserRequest{Id: userID}
	for _, tc := range []struct {
		name  string
		token string
		code  codes.Code
		kind  apiv1.Principal
	}{
		{"a client token is allowed", b.token(t, authn.ScopeClient, ""), codes.OK, apiv1.Principal_PRINCIPAL_CLIENT},
		{"a task token is allowed", b.token(t, authn.ScopeTask, userID), codes.OK, apiv1.Principal_PRINCIPAL_TASK},
		{"a widget token is not", b.token(t, authn.ScopeWidget, userID), codes.PermissionDenied, 0},
		{"the admin token is not (GetUser does not list ADMIN)", b.admin, codes.Unauthenticated, 0},
		{"no token is unauthenticated", "", codes.Unauthenticated, 0},
		{"garbage is unauthenticated", "a.b.c", codes.Unauthenticated, 0},
		{"a client token carrying a user is refused", b.token(t, authn.ScopeClient, userID), codes.Unauthenticated, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen = caller.Principal{}
			err := call(b, tc.token, req)
			require.Equal(t, tc.code, status.Code(err), err)
			if tc.code == codes.OK {
				require.Equal(t, tc.kind, seen.Kind)
				require.Equal(t, "cli_1", seen.ClientID)
			}
		})
	}
}

func TestHealthNeedsNoToken(t *testing.T) {
	b := setup(t, nil)
	resp, err := healthpb.NewHealthClient(b.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}

func TestValidationRunsAfterAuthAndNamesTheField(t *testing.T) {
	b := setup(t, nil)
	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		t.Fatal("an invalid request reached the handler")
		return nil, nil
	}
	err := call(b, "", &authtokenv1.GetUserRequest{Id: "nope"})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "an anonymous caller learns nothing about validation")

	err = call(b, b.token(t, authn.ScopeClient, ""), &authtokenv1.GetUserRequest{Id: "usr_\x00"})
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Contains(t, st.Message(), "id")
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	require.Contains(t, fields, "id")
}

func TestFailuresAreMaskedAndLogged(t *testing.T) {
	b := setup(t, nil)
	token := b.token(t, authn.ScopeClient, "")
	req := &authtokenv1.GetUserRequest{Id: userID}

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		return nil, errors.New("pq: connection to 10.0.0.7 refused for user puente_secret")
	}
	st := status.Convert(call(b, token, req))
	require.Equal(t, codes.Internal, st.Code())
	require.Equal(t, "internal error", st.Message())
	require.Contains(t, b.logs.String(), "puente_secret", "the full error is logged for the operator")

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		panic("boom with detail")
	}
	st = status.Convert(call(b, token, req))
	require.Equal(t, codes.Internal, st.Code())
	require.NotContains(t, st.Message(), "boom")
	require.Contains(t, b.logs.String(), "panic in handler")

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		return nil, apierr.New(apierr.NotFound, "NOT_FOUND", "user not found")
	}
	st = status.Convert(call(b, token, req))
	require.Equal(t, codes.NotFound, st.Code())
	require.Equal(t, "user not found", st.Message())

	// The server still serves after a panic.
	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		return &authtokenv1.GetUserResponse{}, nil
	}
	require.NoError(t, call(b, token, req))
}

type keysDown struct{}

func (keysDown) Verify(context.Context, string) (authn.Claims, error) {
	return authn.Claims{}, authn.ErrKeysUnavailable
}

func TestUnreachableKeysAreUnavailableNotUnauthenticated(t *testing.T) {
	b := setup(t, keysDown{})
	err := call(b, "a.b.c", &authtokenv1.GetUserRequest{Id: userID})
	require.Equal(t, codes.Unavailable, status.Code(err), "a client retries; it does not throw its token away")
}

func TestRedactedBlanksSecretFieldsAtAnyDepth(t *testing.T) {
	out := server.Redacted(&authtokenv1.CreateClientResponse{
		Client: &authtokenv1.Client{Id: "cli_1"},
		ApiKey: &authtokenv1.ApiKey{Id: "key_1", Secret: "psk_topsecret", SecretHint: "cret"},
	})
	require.Contains(t, out, "cli_1")
	require.Contains(t, out, "key_1")
	require.NotContains(t, out, "psk_topsecret")
	req := server.Redacted(&authtokenv1.CreateTokenRequest{GrantType: "refresh_token", ClientId: "cli_1", ClientSecret: "psk_x", RefreshToken: "prt_y"})
	require.NotContains(t, req, "psk_x")
	require.NotContains(t, req, "prt_y")
	require.Contains(t, req, "refresh_token")
}
