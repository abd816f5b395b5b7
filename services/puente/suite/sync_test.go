package suite_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"puente.dev/services/puente/suite/suitetest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
)

// syncCompletes waits until the sync is COMPLETED and returns it.
func (b *bundle) syncCompletes(token, id string, timeout time.Duration) *syncv1.Sync {
	b.t.Helper()
	var got *syncv1.Sync
	suitetest.WaitUntil(b.t, timeout, "the sync completes", func() (bool, string) {
		r, err := syncv1.NewSyncServiceClient(b.conn).GetSync(bearerCtx(token), &syncv1.GetSyncRequest{Id: id})
		require.NoError(b.t, err)
		got = r.GetSync()
		return got.GetStatus() == syncv1.SyncStatus_SYNC_STATUS_COMPLETED, got.String()
	})
	return got
}

func (b *bundle) syncResults(token, id string) []*syncv1.UserResult {
	b.t.Helper()
	var out []*syncv1.UserResult
	req := &syncv1.ListSyncResultsRequest{Id: id, PageSize: 1000}
	for {
		r, err := syncv1.NewSyncServiceClient(b.conn).ListSyncResults(bearerCtx(token), req)
		require.NoError(b.t, err)
		out = append(out, r.GetResults()...)
		if req.PageToken = r.GetNextPageToken(); req.PageToken == "" {
			return out
		}
	}
}

func TestASyncRefreshesABatchAndTellsEachUserOnce(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	rcv := newReceiver(t)
	_, secret := b.newEndpoint(c.Token, rcv.srv.URL+"/hooks", "sync.*")
	rcv.setSecret(secret)

	good := b.link(c, "good", "user_good", "CL", "ACCOUNTS", "BALANCES", "TRANSACTIONS")
	partial := b.link(c, "partial", "user_partial", "MX", "ACCOUNTS", "TRANSACTIONS")
	idle := b.newUser(c, "idle") // no consent
	missing := "usr_01J0000000000000000000000X"
	body := map[string]any{"request_id": "batch-1", "users": []map[string]string{
		{"external_ref": "good"}, {"user_id": partial.user}, {"user_id": idle}, {"external_ref": "ghost"}, {"user_id": missing},
	}}
	r := b.do(http.MethodPost, "/v1/syncs", c.Token, body)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	id := str(r.JSON, "sync", "id")
	require.Regexp(t, `^syn_`, id)
	again := b.do(http.MethodPost, "/v1/syncs", c.Token, body)
	require.Equal(t, id, str(again.JSON, "sync", "id"), "the same request_id is the same sync")

	s := b.syncCompletes(c.Token, id, 30*time.Second)
	require.Equal(t, int32(5), s.GetTotalUsers())
	require.Equal(t, int32(1), s.GetSucceededUsers())
	require.Equal(t, int32(1), s.GetPartialUsers())
	require.Equal(t, int32(1), s.GetFailedUsers())
	require.Equal(t, int32(2), s.GetNotFoundUsers())
	require.Zero(t, s.GetPendingUsers())

	res := b.syncResults(c.Token, id)
	require.Len(t, res, 5)
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_SUCCESS, res[0].GetStatus())
	require.Equal(t, good.user, res[0].GetUserId())
	require.Len(t, res[0].GetAccounts(), 2)
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_PARTIAL, res[1].GetStatus())
	var reasons []string
	for _, a := range res[1].GetAccounts() {
		reasons = append(reasons, a.GetStatus().String()+":"+a.GetReason())
	}
	require.ElementsMatch(t, []string{"ACCOUNT_RESULT_STATUS_SUCCESS:", "ACCOUNT_RESULT_STATUS_ERROR:INSTITUTION_UNAVAILABLE"}, reasons)
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_ERROR, res[2].GetStatus())
	require.Equal(t, "NO_AUTHORISED_CONSENT", res[2].GetReason())
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_NOT_FOUND, res[3].GetStatus())
	require.Equal(t, syncv1.UserResultStatus_USER_RESULT_STATUS_NOT_FOUND, res[4].GetStatus())

	// The data was refreshed: the good user's transactions are there to sync.
	added, _, _, _ := b.syncAll(c.Token, good.consent, "", 500)
	require.Greater(t, len(added), 40)

	// One signed event per user, and one for the sync.
	got := rcv.waitFor("every user's event and the sync's arrive", func(ds []delivered) bool {
		n := 0
		for _, d := range ds {
			if d.FlowID == id {
				n++
			}
		}
		return n == 6
	})
	byType := map[string][]delivered{}
	for _, d := range got {
		require.Equal(t, []bool{true}, d.SignedBy)
		byType[d.Type] = append(byType[d.Type], d)
	}
	require.Len(t, byType["sync.user.finished"], 3)
	require.Len(t, byType["sync.user.not_found"], 2)
	require.Len(t, byType["sync.completed"], 1)
	for _, d := range byType["sync.user.finished"] {
		if d.Data["user_id"] == good.user {
			require.Equal(t, "good", d.Data["external_ref"])
			require.Equal(t, "SUCCESS", d.Data["status"])
			require.Len(t, d.Data["accounts"], 2)
		}
	}

	// Limits, and other clients.
	users := make([]map[string]string, 5001)
	for i := range users {
		users[i] = map[string]string{"external_ref": strconv.Itoa(i)}
	}
	tooMany := b.do(http.MethodPost, "/v1/syncs", c.Token, map[string]any{"users": users})
	require.Equal(t, http.StatusBadRequest, tooMany.Status)
	require.Contains(t, tooMany.Raw, "users")
	require.Contains(t, tooMany.Raw, "5000")
	other := b.newClient("other")
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/syncs/"+id, other.Token, nil).Status)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/syncs/"+id+"/results", other.Token, nil).Status)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/consents/"+good.consent+"/schedule", other.Token, nil).Status)
}

func TestAnAuthorisedConsentGetsASpreadDailySchedule(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	l := b.link(c, "u-1", "user_good", "CL", "ACCOUNTS", "TRANSACTIONS")
	var sched map[string]any
	suitetest.WaitUntil(t, 20*time.Second, "the consent gets a schedule", func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/consents/"+l.consent+"/schedule", c.Token, nil)
		sched = r.JSON
		return r.Status == http.StatusOK, r.Raw
	})
	require.EqualValues(t, 24, sched["schedule"].(map[string]any)["interval_hours"])
	next, err := time.Parse(time.RFC3339Nano, str(sched, "schedule", "next_run_time"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(12*time.Hour), next, 12*time.Hour+time.Minute, "the first run falls within the first day")

	paused := b.do(http.MethodPatch, "/v1/consents/"+l.consent+"/schedule", c.Token, map[string]any{"paused": true, "interval_hours": 6})
	require.Equal(t, http.StatusOK, paused.Status, paused.Raw)
	require.Equal(t, true, paused.JSON["schedule"].(map[string]any)["paused"])

	rev := b.do(http.MethodPost, "/v1/consents/"+l.consent+":revoke", c.Token, map[string]string{})
	require.Equal(t, http.StatusOK, rev.Status)
	suitetest.WaitUntil(t, 20*time.Second, "a revoked consent loses its schedule", func() (bool, string) {
		r := b.do(http.MethodGet, "/v1/consents/"+l.consent+"/schedule", c.Token, nil)
		return r.Status == http.StatusNotFound, r.Raw
	})
}

// syncProcess is a sync service in a child process.
type syncProcess struct {
	cmd  *exec.Cmd
	logs *suitetest.Output
	done chan struct{}
}

func startSyncProcess(t *testing.T, bin string, b *bundle, addr string) *syncProcess {
	t.Helper()
	p := &syncProcess{cmd: exec.Command(bin, "-service=sync"), logs: &suitetest.Output{}, done: make(chan struct{})}
	p.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + b.cfg.DatabaseURL,
		"PUENTE_GRPC_ADDR=" + addr,
		"PUENTE_HTTP_ADDR=127.0.0.1:0",
		"PUENTE_METRICS_ADDR=127.0.0.1:0",
		"PUENTE_AUTHTOKEN_ADDR=" + b.suite.GRPCAddr(),
		"PUENTE_CONSENT_ADDR=" + b.suite.GRPCAddr(),
		"PUENTE_EXTRACTION_ADDR=" + b.suite.GRPCAddr(),
		"PUENTE_WEBHOOK_ADDR=" + b.suite.GRPCAddr(),
		"PUENTE_ADMIN_TOKEN=" + b.cfg.AdminToken,
		"PUENTE_SERVICE_TOKEN=" + b.cfg.ServiceToken,
		"PUENTE_TOKEN_ISSUER=" + b.cfg.Authtoken.Issuer,
		"PUENTE_TOKEN_AUDIENCE=" + b.cfg.Authtoken.Audience,
		"PUENTE_HASH_KEY=" + b.cfg.Authtoken.HashKey,
		"PUENTE_ENCRYPTION_KEYS=" + b.cfg.Sync.EncryptionKeys,
		"PUENTE_MIGRATE_ON_START=true",
		"PUENTE_DRAIN_TIMEOUT=5s",
		// Two at a time, so that the batch is still running when the process is killed.
		"PUENTE_SYNC_WORKERS=2",
		"PUENTE_SYNC_LEASE=3s", // what the killed process held comes back soon
		"PUENTE_LOG_LEVEL=info",
		"PUENTE_LOG_FORMAT=text",
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.done
		}
		if t.Failed() {
			logs := p.logs.String()
			if len(logs) > 20000 {
				logs = "…" + logs[len(logs)-20000:]
			}
			t.Logf("sync process %d logs:\n%s", p.cmd.Process.Pid, logs)
		}
	})
	suitetest.WaitUntil(t, 30*time.Second, "the sync process starts", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("the sync process exited: %s", p.logs.String())
		default:
		}
		return strings.Contains(p.logs.String(), "puente started"), p.logs.String()
	})
	return p
}

func TestAKilledSyncProcessStillEndsEveryUserOnce(t *testing.T) {
	t.Parallel()
	type built struct {
		bin string
		err error
	}
	build := make(chan built, 1)
	dir := t.TempDir()
	go func() {
		bin, err := suitetest.BuildPuente(dir, suitetest.RaceEnabled())
		build <- built{bin, err}
	}()

	// Everything in-process but the sync service, which runs in a child process at addr.
	cfg, admin := suiteConfig(t)
	addr := freeAddr(t)
	cfg.SyncAddr = addr
	b := startBundle(t, cfg, admin, []string{"authtoken", "webhook", "consent", "connection", "extraction", "gateway"})
	bin := <-build
	require.NoError(t, bin.err)
	first := startSyncProcess(t, bin.bin, b, addr)
	c := b.newClient("acme")

	// 5,000 users: a few linked at the sandbox, a thousand known without a consent, the rest
	// unknown references.
	refs := make([]map[string]string, 0, 5000)
	for i := range 3 {
		b.link(c, fmt.Sprintf("linked-%d", i), "user_good", "CL", "ACCOUNTS", "TRANSACTIONS")
		refs = append(refs, map[string]string{"external_ref": fmt.Sprintf("linked-%d", i)})
	}
	known := make([]string, 1000)
	var wg sync.WaitGroup
	users := authtokenv1.NewUserServiceClient(b.conn)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(known); i += 8 {
				resp, err := users.CreateUser(bearerCtx(c.Token), &authtokenv1.CreateUserRequest{ExternalRef: fmt.Sprintf("known-%d", i), Kind: authtokenv1.UserKind_USER_KIND_NATURAL})
				if err != nil {
					t.Error(err)
					return
				}
				known[i] = resp.GetUser().GetId()
			}
		})
	}
	wg.Wait()
	for _, id := range known {
		refs = append(refs, map[string]string{"user_id": id})
	}
	for i := len(refs); i < 5000; i++ {
		refs = append(refs, map[string]string{"external_ref": fmt.Sprintf("ghost-%d", i)})
	}

	r := b.do(http.MethodPost, "/v1/syncs", c.Token, map[string]any{"users": refs})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	id := str(r.JSON, "sync", "id")

	// Kill it once the known users are under way.
	suitetest.WaitUntil(t, 60*time.Second, "some users are done", func() (bool, string) {
		var done int
		b.scan(`SELECT count(*) FROM sync.sync_users WHERE sync_id = $1 AND status IN ('SUCCESS', 'ERROR')`, []any{id}, &done)
		return done >= 100, strconv.Itoa(done)
	})
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.done
	var pending int
	b.scan(`SELECT pending_users FROM sync.syncs WHERE id = $1`, []any{id}, &pending)
	require.Positive(t, pending, "the process died mid-batch")

	startSyncProcess(t, bin.bin, b, addr)
	sb := *b // the sync API is served by the child process
	sb.conn = dial(t, addr)
	s := sb.syncCompletes(c.Token, id, 120*time.Second)
	require.Equal(t, int32(5000), s.GetTotalUsers())
	require.Equal(t, int32(3), s.GetSucceededUsers())
	require.Equal(t, int32(1000), s.GetFailedUsers(), "known users without a consent")
	require.Equal(t, int32(5000-1003), s.GetNotFoundUsers())
	res := sb.syncResults(c.Token, id)
	require.Len(t, res, 5000)
	for _, x := range res {
		require.NotEqual(t, syncv1.UserResultStatus_USER_RESULT_STATUS_PENDING, x.GetStatus())
	}

	// Exactly one final event per user and one for the sync, in the event log the client reads.
	suitetest.WaitUntil(t, 60*time.Second, "every event reaches the log", func() (bool, string) {
		var n int
		b.scan(`SELECT count(*) FROM webhook.events WHERE flow_id = $1`, []any{id}, &n)
		return n == 5001, strconv.Itoa(n)
	})
	var finals, distinct, completed int
	b.scan(`SELECT count(*) FILTER (WHERE type LIKE 'sync.user.%'),
			count(DISTINCT coalesce(data->>'user_id', '') || '/' || coalesce(data->>'external_ref', '')) FILTER (WHERE type LIKE 'sync.user.%'),
			count(*) FILTER (WHERE type = 'sync.completed')
		FROM webhook.events WHERE flow_id = $1`, []any{id}, &finals, &distinct, &completed)
	require.Equal(t, 5000, finals)
	require.Equal(t, 5000, distinct, "no user was told twice")
	require.Equal(t, 1, completed)
}
