package suite_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/outbox"
	"puente.dev/pkg/postgres"
	"puente.dev/services/puente/suite"
	"puente.dev/services/webhook/signature"
)

// Webhook benchmarks: deliveries per second beside a bare loop of signed posts to the same
// receiver; commit-to-first-attempt latency; inbound webhooks beside a bare single-row insert.
// The suite runs with the production defaults for workers (16) and per-endpoint slots (4).

func webhookBench(b *testing.B) (*bundle, client) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo, func(c *suite.Config) {
		c.Webhook.Workers, c.Webhook.PerEndpoint = 16, 4
	})
	return bd, bd.newClient("bench")
}

// countingReceiver answers 204 at once and signals when it has seen want requests.
func countingReceiver(b *testing.B, want int64) (*httptest.Server, <-chan struct{}, *atomic.Int64) {
	var n atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if n.Add(1) == want {
			close(done)
		}
	}))
	b.Cleanup(srv.Close)
	return srv, done, &n
}

func BenchmarkBaselineSignedPosts(b *testing.B) {
	srv, _, _ := countingReceiver(b, -1)
	key := make([]byte, 32)
	body := []byte(`{"id":"evt_01JD0000000000000000000000","type":"connection.status_changed","version":1,"data":{"status":"SUCCEEDED"}}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(body)))
			signature.Sign(req.Header, "evt_01JD0000000000000000000000", time.Now(), body, key)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkWebhookDeliveries publishes b.N events through the internal ingest API (as the outbox
// relays do, in batches of 100) and measures until the receiver has them all.
func BenchmarkWebhookDeliveries(b *testing.B) {
	bd, c := webhookBench(b)
	srv, done, _ := countingReceiver(b, int64(b.N))
	bd.newEndpoint(c.Token, srv.URL)
	ingest := webhookv1.NewIngestServiceClient(bd.conn)
	ctx := bearerCtx(bd.cfg.ServiceToken)
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		req := &webhookv1.PublishEventsRequest{Source: "bench"}
		for ; sent < b.N && len(req.Events) < 100; sent++ {
			req.Events = append(req.Events, &webhookv1.OutboxEvent{
				Id: ids.New("evt"), Type: "connection.status_changed", Version: 1, CreateTime: timestamppb.Now(),
				FlowId: "con_bench", ClientId: c.ID, Data: []byte(`{"status":"SUCCEEDED"}`),
			})
		}
		_, err := ingest.PublishEvents(ctx, req)
		require.NoError(b, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("deliveries did not all arrive")
	}
}

// BenchmarkCommitToFirstAttempt writes one event into the connection service's outbox in a
// committed transaction, as a status change does, and times it until the receiver has it: the
// relay, the event log, the delivery job and the post. It reports the median and the 99th
// percentile.
func BenchmarkCommitToFirstAttempt(b *testing.B) {
	bd, c := webhookBench(b)
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		arrived <- struct{}{}
	}))
	b.Cleanup(srv.Close)
	bd.newEndpoint(c.Token, srv.URL)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, bd.cfg.DatabaseURL, "connection")
	require.NoError(b, err)
	defer pool.Close()
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		require.NoError(b, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Write(ctx, tx, "connection.status_changed", c.ID, "con_bench", start, map[string]string{"status": "SUCCEEDED"})
			return err
		}))
		select {
		case <-arrived:
		case <-time.After(time.Minute):
			b.Fatal("the event never arrived")
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkBaselineSingleInsert(b *testing.B) {
	bd, _ := webhookBench(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE bench_inbound (id text PRIMARY KEY, body bytea NOT NULL)`)
	require.NoError(b, err)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pool.Exec(ctx, `INSERT INTO bench_inbound (id, body) VALUES ($1, $2)`, fmt.Sprint("row-", n.Add(1)), []byte(`{"login":"l-1"}`)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInboundREST posts signed Sandbox webhooks to POST /v1/inbound/sandbox: verified,
// recorded once, queued for routing, answered.
func BenchmarkInboundREST(b *testing.B) {
	bd, _ := webhookBench(b)
	key, err := base64.StdEncoding.DecodeString(bd.cfg.Webhook.SandboxWebhookSecret)
	require.NoError(b, err)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := `{"login":"l-1","status":"done"}`
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("wh_", n.Add(1))
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			m := hmac.New(sha256.New, key)
			m.Write([]byte(id + "." + ts + "." + body))
			req, _ := http.NewRequest(http.MethodPost, bd.rest+"/v1/inbound/sandbox", strings.NewReader(body))
			req.Header.Set("Sandbox-Webhook-Id", id)
			req.Header.Set("Sandbox-Timestamp", ts)
			req.Header.Set("Sandbox-Signature", hex.EncodeToString(m.Sum(nil)))
			resp, err := client.Do(req)
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
