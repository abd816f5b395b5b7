package suite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/secretbox"
	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
	"puente.dev/services/puente/suite/suitetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is a whole running suite: every service and the gateway in-process on port 0, over a
// fresh database, with its logs captured at debug level.
type bundle struct {
	t          testing.TB
	suite      *suite.Suite
	cfg        suite.Config
	rest       string
	conn       *grpc.ClientConn
	logs       *suitetest.Output
	adminToken string
}

func setup(t testing.TB) *bundle {
	t.Helper()
	return setupLogging(t, nil, slog.LevelDebug)
}

// setupLogging is setup with logs at level into w (nil: captured in bundle.logs), after
// configure has changed the configuration. Benchmarks log at info, as production does.
func setupLogging(t testing.TB, w io.Writer, level slog.Level, configure ...func(*suite.Config)) *bundle {
	t.Helper()
	cfg, admin := suiteConfig(t)
	for _, c := range configure {
		c(&cfg)
	}
	return startBundleLogging(t, cfg, admin, suite.Names, w, level)
}

// suiteConfig is the configuration setup uses, over a fresh database, and its admin token.
func suiteConfig(t testing.TB) (suite.Config, string) {
	t.Helper()
	cfg, admin := suitetest.Config(pgtest.NewDatabase(t))
	cfg.Gateway.AllowedOrigins = []string{"https://app.example"}
	return cfg, admin
}

// startBundle starts services with cfg, logging at debug into bundle.logs.
func startBundle(t testing.TB, cfg suite.Config, admin string, services []string) *bundle {
	t.Helper()
	return startBundleLogging(t, cfg, admin, services, nil, slog.LevelDebug)
}

func startBundleLogging(t testing.TB, cfg suite.Config, admin string, services []string, w io.Writer, level slog.Level) *bundle {
	t.Helper()
	b := &bundle{t: t, cfg: cfg, logs: &suitetest.Output{}, adminToken: admin}
	if w == nil {
		w = b.logs
	}
	s, err := suite.Start(context.Background(), cfg, services, telemetry.NewLogger(w, level, false))
	require.NoError(t, err)
	b.suite = s
	if s.HTTPAddr() != "" {
		b.rest = "http://" + s.HTTPAddr()
	}
	b.conn = dial(t, s.GRPCAddr())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return b
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// client is a tenant created through the admin API.
type client struct {
	ID, Secret string
	Token      string // an access token
	Refresh    string
}

func (b *bundle) adminCtx() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+b.adminToken)
}

func bearerCtx(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func (b *bundle) newClient(name string) client {
	b.t.Helper()
	return b.createClient(&authtokenv1.CreateClientRequest{Name: name, RedirectUris: []string{"https://app.example/done"}})
}

// createClient creates a client as req says and gets it an access token.
func (b *bundle) createClient(req *authtokenv1.CreateClientRequest) client {
	b.t.Helper()
	resp, err := authtokenv1.NewClientServiceClient(b.conn).CreateClient(b.adminCtx(), req)
	require.NoError(b.t, err)
	c := client{ID: resp.GetClient().GetId(), Secret: resp.GetApiKey().GetSecret()}
	tok, err := authtokenv1.NewTokenServiceClient(b.conn).CreateToken(context.Background(), &authtokenv1.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: c.ID, ClientSecret: c.Secret,
	})
	require.NoError(b.t, err)
	c.Token, c.Refresh = tok.GetAccessToken(), tok.GetRefreshToken()
	return c
}

func (b *bundle) newUser(c client, ref string) string {
	b.t.Helper()
	resp, err := authtokenv1.NewUserServiceClient(b.conn).CreateUser(bearerCtx(c.Token), &authtokenv1.CreateUserRequest{
		ExternalRef: ref, Kind: authtokenv1.UserKind_USER_KIND_NATURAL,
	})
	require.NoError(b.t, err)
	return resp.GetUser().GetId()
}

// response is a REST response with its JSON body decoded.
type response struct {
	Status int
	Header http.Header
	Raw    string
	JSON   map[string]any
}

// do sends a REST request; body is JSON-encoded unless it is a string (sent as is).
func (b *bundle) do(method, path, token string, body any, headers ...string) response {
	b.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(b.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.rest+path, rd)
	require.NoError(b.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.JSON)
	return r
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// signingKey reads the active signing key out of the database, as only an attacker who stole it
// (or a test) could, to forge tokens that differ from real ones in one claim only.
func (b *bundle) signingKey() authn.SigningKey {
	b.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.cfg.DatabaseURL)
	require.NoError(b.t, err)
	defer conn.Close(ctx)
	var id string
	var sealed []byte
	require.NoError(b.t, conn.QueryRow(ctx, `SELECT id, private_sealed FROM authtoken.signing_keys ORDER BY activate_at DESC LIMIT 1`).Scan(&id, &sealed))
	box, err := secretbox.Parse(b.cfg.Authtoken.EncryptionKeys)
	require.NoError(b.t, err)
	seed, err := box.Open(sealed, []byte(id))
	require.NoError(b.t, err)
	return authn.SigningKey{ID: id, Private: ed25519.NewKeyFromSeed(seed)}
}

// validClaims are the claims of a real client token.
func (b *bundle) validClaims(clientID string) authn.Claims {
	now := time.Now()
	return authn.Claims{
		Issuer: b.cfg.Authtoken.Issuer, Audience: []string{b.cfg.Authtoken.Audience}, Subject: clientID,
		ID: "jti_forged", Scope: authn.ScopeClient, IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(5 * time.Minute),
	}
}

// scan reads one row straight from the database into dest, as an auditor would.
func (b *bundle) scan(sql string, args []any, dest ...any) {
	b.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.cfg.DatabaseURL)
	require.NoError(b.t, err)
	defer conn.Close(ctx)
	require.NoError(b.t, conn.QueryRow(ctx, sql, args...).Scan(dest...))
}
