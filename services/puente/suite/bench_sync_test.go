package suite_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"puente.dev/services/puente/suite/suitetest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
)

// Sync benchmarks: accepting a 5,000-user sync beside a bare COPY of 5,000 rows; the same batch
// of instant sandbox users run to the delivery of its last event.

const batchUsers = 5000

// BenchmarkBaselineCopy5000 COPYs 5,000 rows shaped like a sync's users into a table of their
// own: one op is one COPY.
func BenchmarkBaselineCopy5000(b *testing.B) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE bench_users (sync_id text, position int, ref_kind text, ref_value text, PRIMARY KEY (sync_id, position))`)
	require.NoError(b, err)
	n := 0
	for b.Loop() {
		n++
		rows := make([][]any, batchUsers)
		for i := range rows {
			rows[i] = []any{strconv.Itoa(n), i, "external_ref", fmt.Sprintf("user-%d", i)}
		}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_users"}, []string{"sync_id", "position", "ref_kind", "ref_value"}, pgx.CopyFromRows(rows))
		require.NoError(b, err)
	}
}

func refs(prefix string, n int) []*syncv1.UserRef {
	out := make([]*syncv1.UserRef, n)
	for i := range out {
		out[i] = &syncv1.UserRef{Ref: &syncv1.UserRef_ExternalRef{ExternalRef: fmt.Sprintf("%s-%d", prefix, i)}}
	}
	return out
}

// BenchmarkCreateSync5000 is CreateSync of 5,000 users over gRPC, request to response: one op
// is one sync accepted. The clock stops while the batch runs (its users are unknown, so it ends
// quickly), so that one op's background work does not weigh on the next one's accept.
func BenchmarkCreateSync5000(b *testing.B) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo)
	c := bd.newClient("bench")
	req := &syncv1.CreateSyncRequest{Users: refs("user", batchUsers)}
	syncs := syncv1.NewSyncServiceClient(bd.conn)
	for b.Loop() {
		resp, err := syncs.CreateSync(bearerCtx(c.Token), req)
		require.NoError(b, err)
		b.StopTimer()
		bd.syncCompletes(c.Token, resp.GetSync().GetId(), time.Minute)
		b.StartTimer()
	}
}

// linkMany gives n users of c an AUTHORISED consent at a sandbox institution, 16 at a time,
// and returns their external refs.
func (b *bundle) linkMany(c client, n int) []string {
	b.t.Helper()
	in := b.sandboxInstitution(c.Token, "CL")
	out := make([]string, n)
	var wg sync.WaitGroup
	users := authtokenv1.NewUserServiceClient(b.conn)
	consents := consentv1.NewConsentServiceClient(b.conn)
	connections := connectionv1.NewConnectionServiceClient(b.conn)
	ctx := bearerCtx(c.Token)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				out[i] = fmt.Sprintf("linked-%d", i)
				u, err := users.CreateUser(ctx, &authtokenv1.CreateUserRequest{ExternalRef: out[i], Kind: authtokenv1.UserKind_USER_KIND_NATURAL})
				require.NoError(b.t, err)
				cns, err := consents.CreateConsent(ctx, &consentv1.CreateConsentRequest{
					UserId: u.GetUser().GetId(), InstitutionId: in.GetId(), Products: []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"},
				})
				require.NoError(b.t, err)
				_, err = connections.CreateConnection(ctx, &connectionv1.CreateConnectionRequest{
					UserId: u.GetUser().GetId(), InstitutionId: in.GetId(), ConsentId: cns.GetConsent().GetId(),
					Credentials: map[string]string{"username": "user_good", "password": "pass_good"},
				})
				require.NoError(b.t, err)
			}
		})
	}
	wg.Wait()
	suitetest.WaitUntil(b.t, 10*time.Minute, "every consent is authorised", func() (bool, string) {
		var authorised int
		b.scan(`SELECT count(*) FROM consent.consents WHERE client_id = $1 AND status = 'AUTHORISED'`, []any{c.ID}, &authorised)
		return authorised == n, strconv.Itoa(authorised)
	})
	return out
}

// BenchmarkSync5000ToLastEvent runs a sync of 5,000 users who each have an AUTHORISED sandbox
// consent (instant logins) and stops the clock when the client's endpoint has received the
// last of the 5,001 events (one per user, one for the sync): one op is one whole batch.
func BenchmarkSync5000ToLastEvent(b *testing.B) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo)
	c := bd.newClient("bench")
	ext := bd.linkMany(c, batchUsers)
	req := &syncv1.CreateSyncRequest{Users: make([]*syncv1.UserRef, len(ext))}
	for i, r := range ext {
		req.Users[i] = &syncv1.UserRef{Ref: &syncv1.UserRef_ExternalRef{ExternalRef: r}}
	}
	syncs := syncv1.NewSyncServiceClient(bd.conn)
	for b.Loop() {
		b.StopTimer()
		srv, done, _ := countingReceiver(b, batchUsers+1)
		endpoint, _ := bd.newEndpoint(c.Token, srv.URL, "sync.*")
		b.StartTimer()
		_, err := syncs.CreateSync(bearerCtx(c.Token), req)
		require.NoError(b, err)
		select {
		case <-done:
		case <-time.After(15 * time.Minute):
			b.Fatal("the batch's events never all arrived")
		}
		b.StopTimer()
		r := bd.do("DELETE", "/v1/webhook-endpoints/"+endpoint, c.Token, nil)
		require.Equal(b, 200, r.Status, r.Raw)
		b.StartTimer()
	}
}
