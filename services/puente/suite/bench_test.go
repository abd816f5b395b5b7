package suite_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
)

// The benchmarks run in pairs, each beside its baseline in the same process (make bench prints
// the ratios): token issue against a bare Ed25519 signature and a bare primary-key select;
// verification against a bare Ed25519 verify; REST through the gateway against the same call
// over gRPC. All run in parallel (GOMAXPROCS goroutines), with info-level logging as in
// production.

func benchSetup(b *testing.B) (*bundle, client, string) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo)
	c := bd.newClient("bench")
	return bd, c, bd.newUser(c, "bench-user")
}

func BenchmarkBaselineEd25519Sign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 300) // about the size of a token's signing input
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ed25519.Sign(priv, msg)
		}
	})
}

func BenchmarkBaselineEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 300)
	sig := ed25519.Sign(priv, msg)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}

func BenchmarkBaselinePrimaryKeySelect(b *testing.B) {
	bd, _, user := benchSetup(b)
	pool, err := pgxpool.New(context.Background(), bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer pool.Close()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var id, ref string
		for pb.Next() {
			if err := pool.QueryRow(context.Background(), `SELECT id, external_ref FROM authtoken.users WHERE id = $1`, user).Scan(&id, &ref); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTokenIssueGRPC(b *testing.B) {
	bd, c, _ := benchSetup(b)
	tokens := authtokenv1.NewTokenServiceClient(bd.conn)
	req := &authtokenv1.CreateTokenRequest{GrantType: "client_credentials", ClientId: c.ID, ClientSecret: c.Secret}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tokens.CreateToken(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenVerify is the interceptor's check: the suite's own verifier over its JWKS cache.
func BenchmarkTokenVerify(b *testing.B) {
	bd, c, _ := benchSetup(b)
	v := bd.suite.Verifier()
	_, err := v.Verify(context.Background(), c.Token)
	require.NoError(b, err)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(context.Background(), c.Token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetUserGRPC(b *testing.B) {
	bd, c, user := benchSetup(b)
	users := authtokenv1.NewUserServiceClient(bd.conn)
	ctx := bearerCtx(c.Token)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := users.GetUser(ctx, &authtokenv1.GetUserRequest{Id: user}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetUserREST(b *testing.B) {
	bd, c, user := benchSetup(b)
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := bd.rest + "/v1/users/" + user
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+c.Token)
			resp, err := httpClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// clientsPerCPU is how many concurrent clients per CPU the throughput benchmarks of connection
// creation and their baseline run: enough to keep the database and the workers busy, as many
// integrators at once would, rather than measuring the latency of two callers.
const clientsPerCPU = 8

// BenchmarkBaselineInsertSelect is a bare insert and a select by key in one pool, the floor of
// creating a connection.
func BenchmarkBaselineInsertSelect(b *testing.B) {
	bd, _, _ := benchSetup(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE bench_rows (id text PRIMARY KEY, body text NOT NULL)`)
	require.NoError(b, err)
	var n atomic.Int64
	b.SetParallelism(clientsPerCPU)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var body string
		for pb.Next() {
			id := fmt.Sprint("row-", n.Add(1))
			if _, err := pool.Exec(ctx, `INSERT INTO bench_rows (id, body) VALUES ($1, $2)`, id, "x"); err != nil {
				b.Fatal(err)
			}
			if err := pool.QueryRow(ctx, `SELECT body FROM bench_rows WHERE id = $1`, id).Scan(&body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateConnectionREST creates connections of the sandbox's instant-success user through
// the gateway.
func BenchmarkCreateConnectionREST(b *testing.B) {
	bd, c, user := benchSetup(b)
	in := bd.sandboxInstitution(c.Token, "CL")
	body := fmt.Sprintf(`{"user_id":%q,"institution_id":%q,"credentials":{"username":"user_good","password":"pass_good"}}`, user, in.GetId())
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(clientsPerCPU)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, bd.rest+"/v1/connections", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+c.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkCreateToSucceeded is the time from CreateConnection to SUCCEEDED as WatchConnection
// reports it, one connection at a time; it reports the median and the 99th percentile.
func BenchmarkCreateToSucceeded(b *testing.B) {
	bd, c, user := benchSetup(b)
	in := bd.sandboxInstitution(c.Token, "CL")
	conns := connectionv1.NewConnectionServiceClient(bd.conn)
	ctx := bearerCtx(c.Token)
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, err := conns.CreateConnection(ctx, &connectionv1.CreateConnectionRequest{
			UserId: user, InstitutionId: in.GetId(), Credentials: map[string]string{"username": "user_good", "password": "pass_good"},
		})
		if err != nil {
			b.Fatal(err)
		}
		stream, err := conns.WatchConnection(ctx, &connectionv1.WatchConnectionRequest{Id: resp.GetConnection().GetId()})
		if err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				b.Fatal(err)
			}
			if msg.GetConnection().GetStatus() == connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED {
				break
			}
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
