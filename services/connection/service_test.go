package connection_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/connection"
	connectionpg "puente.dev/services/connection/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ---- a controlled clock

// clock moves only when the test moves it. It starts an hour ahead of the database's clock, so
// that jobs enqueued "now" (by the database's clock) are due for the worker, while jobs the
// service schedules itself (polls, two-factor deadlines) wait until the test advances it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ---- collaborators other than the provider

// anyUser accepts every user: user checks belong to the authtoken service. It embeds the
// interface (nil) so that methods added to it later still compile; these tests use Check only.
type anyUser struct{ connection.Users }

func (anyUser) Check(context.Context, string) error { return nil }

// noConsents fails the test if the service reaches for the consent service: these tests
// create no connection with a consent. It embeds the interface, as anyUser does.
type noConsents struct {
	connection.Consents
	t *testing.T
}

func (c noConsents) Check(context.Context, string, string, string) error {
	c.t.Errorf("unexpected consent check")
	return errors.New("no consents here")
}

func (c noConsents) Settle(context.Context, string, string, string, bool, string) error {
	c.t.Errorf("unexpected consent settlement")
	return errors.New("no consents here")
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ---- one test's world

// bundle is one test's connection service over its own database, with the fake provider, a
// controlled clock and a job worker on that clock.
type bundle struct {
	ctx         context.Context
	svc         *connection.Service
	api         *connection.GRPC
	provider    *fakeProvider
	clock       *clock
	worker      *jobs.Worker
	admin       *pgx.Conn // superuser, to look behind the service
	institution string    // our id of the fake's institution
	client      string    // the client most tests act as
	user        string    // an end user of that client
	metrics     *metrics.Metrics
	// pool and cfg are the service's, for a test that starts a second replica.
	pool *pgxpool.Pool
	cfg  connection.Config
}

func setup(t *testing.T) bundle {
	t.Helper()
	return setupWith(t)
}

// setupWith is setup with more providers beside the fake (the sandbox, say).
func setupWith(t *testing.T, more ...connection.Provider) bundle {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, connectionpg.Migrate(ctx, url))
	pool, err := postgres.Open(ctx, url, connectionpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })

	hashKey := make([]byte, 32)
	for i := range hashKey {
		hashKey[i] = byte(i)
	}
	cfg := connection.Config{
		EncryptionKeys:  secretbox.NewKeySpec("t1"),
		HashKey:         base64.StdEncoding.EncodeToString(hashKey),
		PublicURL:       "http://127.0.0.1:8080",
		Workers:         1,
		MinPollInterval: time.Second,
		Metrics:         metrics.New(metrics.Options{}),
	}
	provider := newFakeProvider(t)
	svc, err := connection.NewService(connectionpg.New(pool), append([]connection.Provider{provider}, more...), anyUser{}, noConsents{t: t}, cfg, discard())
	require.NoError(t, err)
	clk := &clock{now: time.Now().UTC().Add(time.Hour).Truncate(time.Second)}
	svc.SetClock(clk.Now)
	require.NoError(t, svc.SyncCatalogs(ctx))

	b := bundle{
		ctx: ctx, svc: svc, api: connection.NewGRPC(svc), provider: provider, clock: clk,
		worker: jobs.NewWorker(jobs.Options{Pool: pool, Handlers: svc.Handlers(), Now: clk.Now, Logger: discard()}),
		admin:  admin, client: ids.New("cli"), user: ids.New("usr"),
		metrics: cfg.Metrics, pool: pool, cfg: cfg,
	}
	ins, err := b.api.ListInstitutions(b.as(b.client), &connectionv1.ListInstitutionsRequest{Query: fakeInstitution.Name})
	require.NoError(t, err)
	require.Len(t, ins.GetInstitutions(), 1)
	b.institution = ins.GetInstitutions()[0].GetId()
	return b
}

// as is a request context carrying a client's principal, as the auth interceptor makes it.
func (b bundle) as(clientID string) context.Context {
	return caller.With(b.ctx, caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: clientID})
}

// runJobs runs every job due by the test's clock.
func (b bundle) runJobs(t *testing.T) {
	t.Helper()
	_, err := b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
}

// create links the bundle's user to the fake institution as the bundle's client.
func (b bundle) create(t *testing.T, creds map[string]string) *connectionv1.Connection {
	t.Helper()
	resp, err := b.api.CreateConnection(b.as(b.client), &connectionv1.CreateConnectionRequest{
		UserId: b.user, InstitutionId: b.institution, Credentials: creds,
	})
	require.NoError(t, err)
	return resp.GetConnection()
}

// get reads a connection as the bundle's client.
func (b bundle) get(t *testing.T, id string) *connectionv1.Connection {
	t.Helper()
	resp, err := b.api.GetConnection(b.as(b.client), &connectionv1.GetConnectionRequest{Id: id})
	require.NoError(t, err)
	return resp.GetConnection()
}

func (b bundle) submitMfa(id, challengeID string, answers map[string]string) (*connectionv1.Connection, error) {
	resp, err := b.api.SubmitMfa(b.as(b.client), &connectionv1.SubmitMfaRequest{Id: id, ChallengeId: challengeID, Answers: answers})
	return resp.GetConnection(), err
}

func (b bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.admin.QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

// pendingJobs counts the jobs of a connection still waiting or running.
func (b bundle) pendingJobs(t *testing.T, id string) int {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM connection.jobs WHERE args->>'connection_id' = $1 AND state IN ('available', 'running')`, id)
}

// event is a connection.status_changed event of the outbox.
type event struct {
	ClientID, ConnectionID, UserID, Status, Reason, UpstreamCode string
	At                                                           time.Time
}

// statusEvents reads the status events of a connection from the outbox, oldest first.
func (b bundle) statusEvents(t *testing.T, id string) []event {
	t.Helper()
	rows, err := b.admin.Query(b.ctx, `SELECT client_id, data->>'connection_id', data->>'user_id', data->>'status',
			data->>'reason', data->>'upstream_code', created_at
		FROM connection.outbox WHERE type = 'connection.status_changed' AND flow_id = $1 ORDER BY id`, id)
	require.NoError(t, err)
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (e event, err error) {
		err = r.Scan(&e.ClientID, &e.ConnectionID, &e.UserID, &e.Status, &e.Reason, &e.UpstreamCode, &e.At)
		return e, err
	})
	require.NoError(t, err)
	return evs
}

// requireEventPerStep checks the outbox holds one status event per step of c's timeline, in
// the same order, saying the same thing.
func (b bundle) requireEventPerStep(t *testing.T, c *connectionv1.Connection) {
	t.Helper()
	evs := b.statusEvents(t, c.GetId())
	require.Len(t, evs, len(c.GetTimeline()), "one outbox event per status change")
	for i, st := range c.GetTimeline() {
		e := evs[i]
		require.Equal(t, b.client, e.ClientID, "event %d", i)
		require.Equal(t, c.GetId(), e.ConnectionID, "event %d", i)
		require.Equal(t, c.GetUserId(), e.UserID, "event %d", i)
		require.Equal(t, statusName(st.GetStatus()), e.Status, "event %d", i)
		require.Equal(t, reasonName(st.GetReason()), e.Reason, "event %d", i)
		require.Equal(t, st.GetUpstreamCode(), e.UpstreamCode, "event %d", i)
		require.True(t, st.GetTime().AsTime().Equal(e.At), "event %d at %s, its step at %s", i, e.At, st.GetTime().AsTime())
	}
}

// ---- reading protos

func statusName(s connectionv1.ConnectionStatus) string {
	return strings.TrimPrefix(s.String(), "CONNECTION_STATUS_")
}

func reasonName(r connectionv1.FailureReason) string {
	if r == connectionv1.FailureReason_FAILURE_REASON_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(r.String(), "FAILURE_REASON_")
}

func timeline(c *connectionv1.Connection) []string {
	out := []string{}
	for _, st := range c.GetTimeline() {
		s := statusName(st.GetStatus())
		if r := reasonName(st.GetReason()); r != "" {
			s += "/" + r
		}
		out = append(out, s)
	}
	return out
}

func lastStep(c *connectionv1.Connection) *connectionv1.ConnectionStep {
	steps := c.GetTimeline()
	return steps[len(steps)-1]
}

// codeOf is the gRPC code a caller sees for err (the server's error interceptor maps it the
// same way).
func codeOf(t *testing.T, err error) codes.Code {
	t.Helper()
	require.Error(t, err)
	st, _ := apierr.Status(err)
	return st.Code()
}

// fieldOf is the first bad field an InvalidArgument error names.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var ae *apierr.Error
	require.True(t, errors.As(err, &ae), "want an *apierr.Error, got %v", err)
	require.NotEmpty(t, ae.Fields)
	return ae.Fields[0].Field
}

// ---- outcomes

func succeeded(code string) connection.Outcome {
	return connection.Outcome{Status: connection.Succeeded, UpstreamCode: code, Message: "logged in"}
}

func challenge(round int, expires time.Time, state string, fields ...string) connection.Outcome {
	ch := &connection.Challenge{ID: fmt.Sprintf("upstream-challenge-%d", round), Round: round, ExpiresAt: expires}
	for _, f := range fields {
		ch.Fields = append(ch.Fields, connection.ChallengeField{Name: f, Type: connection.ChallengeText, Label: f})
	}
	return connection.Outcome{Status: connection.WaitingMFA, UpstreamCode: "410", Challenge: ch, State: []byte(state)}
}

var aliceCreds = map[string]string{"username": "alice.smith", "password": "hunter2-correct"}

// ---- tests

func TestCredentialsLoginSucceedsWithTimelineAndEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.provider.on("Start", succeeded("200"))
	created := b.clock.Now()

	c := b.create(t, aliceCreds)
	require.True(t, strings.HasPrefix(c.GetId(), "con_"), c.GetId())
	require.Equal(t, "PENDING", statusName(c.GetStatus()), "the login runs in the background")
	require.Equal(t, []string{"PENDING"}, timeline(c))
	require.Equal(t, "al•••••••th", c.GetUsernameHint(), "the username is masked, never echoed")
	require.Empty(t, b.provider.Calls(), "the provider is called from a job, not from the request")

	// The sealed credentials at rest do not hold the password in clear.
	var sealed []byte
	require.NoError(t, b.admin.QueryRow(b.ctx, `SELECT credentials FROM connection.connections WHERE id = $1`, c.GetId()).Scan(&sealed))
	require.NotEmpty(t, sealed)
	require.NotContains(t, string(sealed), aliceCreds["password"])

	b.clock.Advance(time.Second)
	started := b.clock.Now()
	b.runJobs(t)

	calls := b.provider.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, providerCall{
		Method: "Start", ConnectionID: c.GetId(), Institution: fakeInstitution.ExternalID, Credentials: aliceCreds, State: "", Round: 0,
	}, calls[0], "the provider gets the decrypted credentials of this connection")

	c = b.get(t, c.GetId())
	require.Equal(t, "SUCCEEDED", statusName(c.GetStatus()))
	require.Equal(t, "200", c.GetUpstreamCode())
	require.Empty(t, reasonName(c.GetReason()))
	require.Nil(t, c.GetMfa())
	require.Equal(t, []string{"PENDING", "STARTING", "SUCCEEDED"}, timeline(c))
	require.Equal(t, "200", lastStep(c).GetUpstreamCode(), "the upstream code is recorded on the step")
	require.True(t, c.GetTimeline()[0].GetTime().AsTime().Equal(created))
	require.True(t, c.GetTimeline()[1].GetTime().AsTime().Equal(started))
	require.True(t, lastStep(c).GetTime().AsTime().Equal(started))
	require.True(t, c.GetUpdateTime().AsTime().Equal(started))
	b.requireEventPerStep(t, c)

	// Nothing is left to run: a later pass calls nobody.
	b.clock.Advance(time.Hour)
	b.runJobs(t)
	require.Len(t, b.provider.Calls(), 1)
	require.Zero(t, b.pendingJobs(t, c.GetId()))
}

func TestLoginRunningThenSucceededOnPoll(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.provider.
		on("Start", connection.Outcome{Status: connection.Running, UpstreamCode: "101", PollAfter: 30 * time.Second, State: []byte("job-1")}).
		on("Poll", connection.Outcome{Status: connection.Running, UpstreamCode: "101", PollAfter: 10 * time.Second, State: []byte("job-2")}).
		on("Poll", succeeded("200"))

	c := b.create(t, aliceCreds)
	b.runJobs(t)
	c = b.get(t, c.GetId())
	require.Equal(t, "RUNNING", statusName(c.GetStatus()))
	require.Equal(t, "101", c.GetUpstreamCode())
	require.Equal(t, []string{"PENDING", "STARTING", "RUNNING"}, timeline(c))

	// Not polled before PollAfter.
	b.clock.Advance(29 * time.Second)
	b.runJobs(t)
	require.Empty(t, b.provider.CallsOf("Poll"), "polled before PollAfter")
	require.Equal(t, "RUNNING", statusName(b.get(t, c.GetId()).GetStatus()))

	b.clock.Advance(time.Second)
	b.runJobs(t)
	polls := b.provider.CallsOf("Poll")
	require.Len(t, polls, 1)
	require.Equal(t, "job-1", polls[0].State, "the poll gets the State the provider returned")
	require.Equal(t, aliceCreds, polls[0].Credentials)
	c = b.get(t, c.GetId())
	require.Equal(t, "RUNNING", statusName(c.GetStatus()))
	require.Equal(t, []string{"PENDING", "STARTING", "RUNNING"}, timeline(c), "still running, as before, adds no step")

	b.clock.Advance(10 * time.Second)
	b.runJobs(t)
	polls = b.provider.CallsOf("Poll")
	require.Len(t, polls, 2)
	require.Equal(t, "job-2", polls[1].State, "each poll gets the latest State")
	c = b.get(t, c.GetId())
	require.Equal(t, "SUCCEEDED", statusName(c.GetStatus()))
	require.Equal(t, "200", c.GetUpstreamCode())
	require.Equal(t, []string{"PENDING", "STARTING", "RUNNING", "SUCCEEDED"}, timeline(c))
	require.Equal(t, "101", c.GetTimeline()[2].GetUpstreamCode())
	require.Equal(t, "200", lastStep(c).GetUpstreamCode())
	b.requireEventPerStep(t, c)
	require.Zero(t, b.pendingJobs(t, c.GetId()), "no poll left once it succeeded")
}

func TestPollsRecordEachNewUpstreamCodeOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	running := func(code string) connection.Outcome {
		return connection.Outcome{Status: connection.Running, UpstreamCode: code, Message: "working " + code, PollAfter: time.Second}
	}
	b.provider.
		on("Start", running("100")).
		on("Poll", running("100")).
		on("Poll", running("101")).
		on("Poll", running("102")).
		on("Poll", running("102")).
		on("Poll", succeeded("200"))

	c := b.create(t, aliceCreds)
	b.runJobs(t)
	for range 5 {
		b.clock.Advance(time.Second)
		b.runJobs(t)
	}
	require.Len(t, b.provider.CallsOf("Poll"), 5)
	c = b.get(t, c.GetId())
	require.Equal(t, "SUCCEEDED", statusName(c.GetStatus()))
	var got []string
	for _, st := range c.GetTimeline() {
		got = append(got, statusName(st.GetStatus())+":"+st.GetUpstreamCode())
	}
	require.Equal(t, []string{"PENDING:", "STARTING:", "RUNNING:100", "RUNNING:101", "RUNNING:102", "SUCCEEDED:200"}, got)
	require.Equal(t, "working 101", c.GetTimeline()[3].GetMessage())
	b.requireEventPerStep(t, c)
}

func TestMfaTwoRoundsEachAnsweredWithCurrentChallenge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expires1 := b.clock.Now().Add(5 * time.Minute)
	b.provider.
		on("Start", challenge(1, expires1, "session-1", "otp")).
		on("Answer", challenge(2, expires1.Add(time.Minute), "session-2", "pin")).
		on("Answer", succeeded("200"))

	c := b.create(t, aliceCreds)
	id := c.GetId()
	b.runJobs(t)

	// Round 1.
	c = b.get(t, id)
	require.Equal(t, "WAITING_MFA", statusName(c.GetStatus()))
	first := c.GetMfa()
	require.NotNil(t, first)
	require.True(t, strings.HasPrefix(first.GetId(), "chl_"), "challenge ids are Puente's, not the upstream's: %q", first.GetId())
	require.EqualValues(t, 1, first.GetRound())
	require.True(t, first.GetExpireTime().AsTime().Equal(expires1))
	require.Len(t, first.GetFields(), 1)
	require.Equal(t, "otp", first.GetFields()[0].GetName())

	// A challenge id that is not the pending one is refused, and changes nothing.
	_, err := b.submitMfa(id, "chl_"+strings.Repeat("0", 26), map[string]string{"otp": "111111"})
	require.Equal(t, codes.InvalidArgument, codeOf(t, err))
	require.Equal(t, "challenge_id", fieldOf(t, err))
	// An answer missing a field of the challenge is refused.
	_, err = b.submitMfa(id, first.GetId(), map[string]string{"other": "x"})
	require.Equal(t, codes.InvalidArgument, codeOf(t, err))
	require.Equal(t, "answers.otp", fieldOf(t, err))
	require.Equal(t, first.GetId(), b.get(t, id).GetMfa().GetId())

	b.clock.Advance(time.Second)
	got, err := b.submitMfa(id, first.GetId(), map[string]string{"otp": "111111"})
	require.NoError(t, err)
	require.Equal(t, "RUNNING", statusName(got.GetStatus()))
	require.Nil(t, got.GetMfa())
	// The same answer twice: the connection no longer waits for one.
	_, err = b.submitMfa(id, first.GetId(), map[string]string{"otp": "111111"})
	require.Equal(t, codes.FailedPrecondition, codeOf(t, err))
	require.Empty(t, b.provider.CallsOf("Answer"), "answers go to the provider from a job")

	b.runJobs(t)
	answers := b.provider.CallsOf("Answer")
	require.Len(t, answers, 1)
	require.Equal(t, map[string]string{"otp": "111111"}, answers[0].Answers, "the answers reach the provider")
	require.Equal(t, "session-1", answers[0].State)
	require.Equal(t, aliceCreds, answers[0].Credentials)

	// Round 2: a new challenge, under a new id.
	c = b.get(t, id)
	require.Equal(t, "WAITING_MFA", statusName(c.GetStatus()))
	second := c.GetMfa()
	require.NotNil(t, second)
	require.NotEqual(t, first.GetId(), second.GetId())
	require.EqualValues(t, 2, second.GetRound())
	require.Equal(t, "pin", second.GetFields()[0].GetName())

	// The answer to round 1, again: stale.
	_, err = b.submitMfa(id, first.GetId(), map[string]string{"pin": "4242"})
	require.Equal(t, codes.InvalidArgument, codeOf(t, err))
	require.Equal(t, "challenge_id", fieldOf(t, err))
	require.Equal(t, second.GetId(), b.get(t, id).GetMfa().GetId(), "a stale answer changes nothing")

	b.clock.Advance(time.Second)
	_, err = b.submitMfa(id, second.GetId(), map[string]string{"pin": "4242"})
	require.NoError(t, err)
	b.runJobs(t)
	answers = b.provider.CallsOf("Answer")
	require.Len(t, answers, 2)
	require.Equal(t, map[string]string{"pin": "4242"}, answers[1].Answers)
	require.Equal(t, "session-2", answers[1].State)
	require.Equal(t, answers[0].Round+1, answers[1].Round, "Login.Round counts the rounds answered")

	c = b.get(t, id)
	require.Equal(t, "SUCCEEDED", statusName(c.GetStatus()))
	require.Nil(t, c.GetMfa())
	require.Equal(t, []string{"PENDING", "STARTING", "WAITING_MFA", "RUNNING", "WAITING_MFA", "RUNNING", "SUCCEEDED"}, timeline(c))
	b.requireEventPerStep(t, c)

	// The deadlines of both challenges pass: their timeouts must not touch a finished login.
	b.clock.Advance(time.Hour)
	b.runJobs(t)
	c = b.get(t, id)
	require.Equal(t, "SUCCEEDED", statusName(c.GetStatus()))
	require.Len(t, c.GetTimeline(), 7)
	require.Zero(t, b.pendingJobs(t, id))
}

func TestMfaDeadlinePassedFailsWithMfaTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	deadline := b.clock.Now().Add(5 * time.Minute)
	b.provider.on("Start", challenge(1, deadline, "session-1", "otp"))

	c := b.create(t, aliceCreds)
	id := c.GetId()
	b.runJobs(t)
	ch := b.get(t, id).GetMfa()
	require.NotNil(t, ch)

	// Just before the deadline it still waits.
	b.clock.Advance(5*time.Minute - time.Second)
	b.runJobs(t)
	c = b.get(t, id)
	require.Equal(t, "WAITING_MFA", statusName(c.GetStatus()))
	require.Equal(t, ch.GetId(), c.GetMfa().GetId())

	// Past it, an answer is refused even before the timeout job has run.
	b.clock.Advance(2 * time.Second)
	_, err := b.submitMfa(id, ch.GetId(), map[string]string{"otp": "111111"})
	require.Equal(t, codes.FailedPrecondition, codeOf(t, err))

	b.runJobs(t)
	c = b.get(t, id)
	require.Equal(t, "FAILED", statusName(c.GetStatus()))
	require.Equal(t, "MFA_TIMEOUT", reasonName(c.GetReason()))
	require.Nil(t, c.GetMfa(), "an expired challenge is no longer shown")
	require.Equal(t, []string{"PENDING", "STARTING", "WAITING_MFA", "FAILED/MFA_TIMEOUT"}, timeline(c))
	require.True(t, lastStep(c).GetTime().AsTime().Equal(b.clock.Now()))
	b.requireEventPerStep(t, c)

	_, err = b.submitMfa(id, ch.GetId(), map[string]string{"otp": "111111"})
	require.Equal(t, codes.FailedPrecondition, codeOf(t, err))
	require.Empty(t, b.provider.CallsOf("Answer"), "no answer reached the provider")
	require.Zero(t, b.pendingJobs(t, id))
}

func TestProviderTransientErrorsEndFailedInternalAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// An upstream error that echoes what it was sent: none of it may reach the timeline.
	b.provider.alwaysFail("Start", fmt.Errorf("upstream 503 while logging in %s", aliceCreds["password"]))

	c := b.create(t, aliceCreds)
	id := c.GetId()
	maxAttempts := b.count(t, `SELECT max_attempts FROM connection.jobs WHERE kind = $1 AND args->>'connection_id' = $2`, connection.JobLogin, id)
	require.Greater(t, maxAttempts, 1)

	for attempt := 1; attempt <= maxAttempts; attempt++ {
		b.runJobs(t)
		require.Len(t, b.provider.CallsOf("Start"), attempt)
		c = b.get(t, id)
		if attempt < maxAttempts {
			require.False(t, statusName(c.GetStatus()) == "SUCCEEDED" || statusName(c.GetStatus()) == "FAILED",
				"attempt %d: retried, not final yet (%s)", attempt, statusName(c.GetStatus()))
			require.NotEqual(t, "RUNNING", statusName(c.GetStatus()), "a login whose start failed is not RUNNING")
		}
		// Past any retry backoff.
		b.clock.Advance(time.Hour)
	}

	require.Equal(t, "FAILED", statusName(c.GetStatus()))
	require.Equal(t, "INTERNAL", reasonName(c.GetReason()))
	require.Equal(t, []string{"PENDING", "STARTING", "FAILED/INTERNAL"}, timeline(c), "retries add no steps")
	b.requireEventPerStep(t, c)
	for _, st := range c.GetTimeline() {
		require.NotContains(t, st.GetMessage(), aliceCreds["password"])
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM connection.jobs WHERE position($1 in coalesce(last_error, '')) > 0`, aliceCreds["password"]),
		"the provider's error text, which may echo credentials, is not stored")

	// Nothing retries it any more.
	require.Zero(t, b.pendingJobs(t, id))
	b.clock.Advance(24 * time.Hour)
	b.runJobs(t)
	require.Len(t, b.provider.CallsOf("Start"), maxAttempts)
	require.Equal(t, "FAILED", statusName(b.get(t, id).GetStatus()))
}

func TestInvalidCredentialsThenReauthenticateSucceedsUnderSameID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	newCreds := map[string]string{"username": "alice.smith", "password": "hunter3-fixed"}
	b.provider.
		on("Start", connection.Outcome{Status: connection.Failed, Reason: connection.InvalidCredentials, UpstreamCode: "401", Message: "wrong password"}).
		on("Start", succeeded("200"))

	c := b.create(t, map[string]string{"username": "alice.smith", "password": "wrong"})
	id := c.GetId()
	b.runJobs(t)
	c = b.get(t, id)
	require.Equal(t, "FAILED", statusName(c.GetStatus()))
	require.Equal(t, "INVALID_CREDENTIALS", reasonName(c.GetReason()))
	require.Equal(t, "401", c.GetUpstreamCode())

	b.clock.Advance(time.Minute)
	resp, err := b.api.ReauthenticateConnection(b.as(b.client), &connectionv1.ReauthenticateConnectionRequest{Id: id, Credentials: newCreds})
	require.NoError(t, err)
	re := resp.GetConnection()
	require.Equal(t, id, re.GetId(), "re-authentication keeps the connection's id")
	require.Equal(t, "PENDING", statusName(re.GetStatus()))
	require.Empty(t, reasonName(re.GetReason()), "the old failure is cleared")
	require.Empty(t, re.GetUpstreamCode())

	// While that login is under way, another re-authentication is refused.
	_, err = b.api.ReauthenticateConnection(b.as(b.client), &connectionv1.ReauthenticateConnectionRequest{Id: id, Credentials: newCreds})
	require.Equal(t, codes.FailedPrecondition, codeOf(t, err))

	b.runJobs(t)
	starts := b.provider.CallsOf("Start")
	require.Len(t, starts, 2)
	require.Equal(t, id, starts[1].ConnectionID)
	require.Equal(t, newCreds, starts[1].Credentials, "the new credentials replace the old")

	c = b.get(t, id)
	require.Equal(t, "SUCCEEDED", statusName(c.GetStatus()))
	require.Empty(t, reasonName(c.GetReason()))
	require.Equal(t, "200", c.GetUpstreamCode())
	require.Equal(t, []string{"PENDING", "STARTING", "FAILED/INVALID_CREDENTIALS", "PENDING", "STARTING", "SUCCEEDED"}, timeline(c),
		"the timeline keeps the failed attempt")
	require.Equal(t, "401", c.GetTimeline()[2].GetUpstreamCode())
	b.requireEventPerStep(t, c)

	list, err := b.api.ListConnections(b.as(b.client), &connectionv1.ListConnectionsRequest{UserId: b.user})
	require.NoError(t, err)
	require.Len(t, list.GetConnections(), 1, "no second connection was made")
}

func TestDeleteConnectionDestroysCredentialsAndReadsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.provider.on("Start", succeeded("200"))
	c := b.create(t, aliceCreds)
	id := c.GetId()
	b.runJobs(t)
	require.Equal(t, "SUCCEEDED", statusName(b.get(t, id).GetStatus()))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM connection.connections WHERE id = $1 AND credentials IS NOT NULL`, id))

	_, err := b.api.DeleteConnection(b.as(b.client), &connectionv1.DeleteConnectionRequest{Id: id})
	require.NoError(t, err)

	require.Zero(t, b.count(t, `SELECT count(*) FROM connection.connections WHERE id = $1`, id), "the row and its sealed credentials are gone")
	require.Zero(t, b.count(t, `SELECT count(*) FROM connection.connections WHERE credentials IS NOT NULL`), "no sealed credentials are left anywhere")
	require.Zero(t, b.count(t, `SELECT count(*) FROM connection.connection_steps WHERE connection_id = $1`, id))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM connection.outbox WHERE type = 'connection.deleted' AND flow_id = $1 AND client_id = $2`, id, b.client))

	_, err = b.api.GetConnection(b.as(b.client), &connectionv1.GetConnectionRequest{Id: id})
	require.Equal(t, codes.NotFound, codeOf(t, err))
	_, err = b.api.DeleteConnection(b.as(b.client), &connectionv1.DeleteConnectionRequest{Id: id})
	require.Equal(t, codes.NotFound, codeOf(t, err))
	_, err = b.api.ReauthenticateConnection(b.as(b.client), &connectionv1.ReauthenticateConnectionRequest{Id: id, Credentials: aliceCreds})
	require.Equal(t, codes.NotFound, codeOf(t, err))
	list, err := b.api.ListConnections(b.as(b.client), &connectionv1.ListConnectionsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetConnections())
}

func TestDeleteConnectionBeforeItsLoginRunsNeverReachesProvider(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.create(t, aliceCreds)
	_, err := b.api.DeleteConnection(b.as(b.client), &connectionv1.DeleteConnectionRequest{Id: c.GetId()})
	require.NoError(t, err)

	b.runJobs(t) // the queued login finds nothing to log in
	require.Empty(t, b.provider.Calls(), "credentials of a deleted connection never reach the provider")
	require.Zero(t, b.pendingJobs(t, c.GetId()), "the orphaned login job ends instead of retrying")
	_, err = b.api.GetConnection(b.as(b.client), &connectionv1.GetConnectionRequest{Id: c.GetId()})
	require.Equal(t, codes.NotFound, codeOf(t, err))
}

func TestConnectionOfAnotherClientReadsAsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.provider.on("Start", challenge(1, b.clock.Now().Add(5*time.Minute), "session-1", "otp"))
	c := b.create(t, aliceCreds) // client A's
	id := c.GetId()
	b.runJobs(t)
	ch := b.get(t, id).GetMfa()
	require.NotNil(t, ch)

	other := b.as(ids.New("cli")) // client B
	missing := "con_" + strings.Repeat("0", 26)

	_, err := b.api.GetConnection(other, &connectionv1.GetConnectionRequest{Id: id})
	require.Equal(t, codes.NotFound, codeOf(t, err))
	// Indistinguishable from an id that does not exist.
	_, errMissing := b.api.GetConnection(other, &connectionv1.GetConnectionRequest{Id: missing})
	stOther, _ := apierr.Status(err)
	stMissing, _ := apierr.Status(errMissing)
	require.Equal(t, stMissing.Code(), stOther.Code())
	require.Equal(t, stMissing.Message(), stOther.Message())

	list, err := b.api.ListConnections(other, &connectionv1.ListConnectionsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetConnections())
	list, err = b.api.ListConnections(other, &connectionv1.ListConnectionsRequest{UserId: b.user})
	require.NoError(t, err)
	require.Empty(t, list.GetConnections())

	_, err = b.api.SubmitMfa(other, &connectionv1.SubmitMfaRequest{Id: id, ChallengeId: ch.GetId(), Answers: map[string]string{"otp": "111111"}})
	require.Equal(t, codes.NotFound, codeOf(t, err))
	_, err = b.api.ReauthenticateConnection(other, &connectionv1.ReauthenticateConnectionRequest{Id: id, Credentials: aliceCreds})
	require.Equal(t, codes.NotFound, codeOf(t, err))
	_, err = b.api.DeleteConnection(other, &connectionv1.DeleteConnectionRequest{Id: id})
	require.Equal(t, codes.NotFound, codeOf(t, err))

	// Within client A, a task token for another user sees nothing either.
	task := caller.With(b.ctx, caller.Principal{Kind: apiv1.Principal_PRINCIPAL_TASK, ClientID: b.client, UserID: ids.New("usr")})
	_, err = b.api.GetConnection(task, &connectionv1.GetConnectionRequest{Id: id})
	require.Equal(t, codes.NotFound, codeOf(t, err))

	// Client A's connection is untouched.
	b.runJobs(t)
	c = b.get(t, id)
	require.Equal(t, "WAITING_MFA", statusName(c.GetStatus()))
	require.Equal(t, ch.GetId(), c.GetMfa().GetId())
	require.Empty(t, b.provider.CallsOf("Answer"))
	require.Len(t, b.provider.CallsOf("Start"), 1, "no second login was started")
	list, err = b.api.ListConnections(b.as(b.client), &connectionv1.ListConnectionsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetConnections(), 1)
	require.Equal(t, id, list.GetConnections()[0].GetId())
}

// routedFake is the fake provider with an EventRouter that reads the webhook body as the list
// of what it names. Registered under the fake's name, it replaces the bundle's fake.
type routedFake struct {
	*fakeProvider
	name string
}

func (p *routedFake) Name() string { return p.name }

// Institutions: the fake's catalog under its own name only, so that lookups by name stay unique.
func (p *routedFake) Institutions(ctx context.Context) ([]connection.Institution, error) {
	if p.name != fakeProviderName {
		return nil, nil
	}
	return p.fakeProvider.Institutions(ctx)
}

func (p *routedFake) ConnectionsFor(_ context.Context, _ string, body []byte) ([]string, error) {
	var named []string
	if err := json.Unmarshal(body, &named); err != nil {
		return nil, err
	}
	return named, nil
}

// refFake is a routedFake that is also a Referencer.
type refFake struct{ *routedFake }

func (refFake) Refs(state []byte) []string { return []string{"ref:" + string(state)} }

// pollNowJobs counts the webhook polls queued for a connection.
func (b bundle) pollNowJobs(t *testing.T, id string) int {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM connection.jobs WHERE kind = $1 AND args->>'connection_id' = $2 AND state = 'available'`,
		connection.JobPollNow, id)
}

func TestUpstreamEventsPollTheConnectionsTheyNameOnce(t *testing.T) {
	t.Parallel()
	fp := newFakeProvider(t)
	other := &routedFake{fakeProvider: newFakeProvider(t), name: "other"}
	b := setupWith(t, &routedFake{fakeProvider: fp, name: fakeProviderName}, other, regexCatalog{})
	fp.
		on("Start", connection.Outcome{Status: connection.Running, UpstreamCode: "running", PollAfter: time.Hour, State: []byte("job-1")}).
		on("Poll", succeeded("200"))
	c := b.create(t, aliceCreds)
	b.runJobs(t)
	require.Equal(t, "RUNNING", statusName(b.get(t, c.GetId()).GetStatus()))
	body := []byte(`["` + c.GetId() + `", "con_unknown"]`)

	// Another provider's webhook cannot poke the fake's connection, nor can a provider
	// without a router.
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, "other", "synced", body))
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, "regexbank", "synced", body))
	require.Zero(t, b.pollNowJobs(t, c.GetId()))

	for range 3 {
		require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", body), "an unknown id is ignored")
	}
	require.Equal(t, 1, b.pollNowJobs(t, c.GetId()), "a burst of webhooks makes one poll")
	require.Zero(t, b.pollNowJobs(t, "con_unknown"))

	b.runJobs(t)
	require.Len(t, fp.CallsOf("Poll"), 1)
	require.Equal(t, "SUCCEEDED", statusName(b.get(t, c.GetId()).GetStatus()), "polled before its hour was up")

	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", body))
	require.Zero(t, b.pollNowJobs(t, c.GetId()), "a finished login is not polled")

	err := b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", []byte(`{not json`))
	require.Equal(t, codes.InvalidArgument, codeOf(t, err))
	require.Equal(t, "body", fieldOf(t, err))
}

func TestUpstreamEventsNamingUpstreamRefsReachTheLoginHoldingThem(t *testing.T) {
	t.Parallel()
	fp := newFakeProvider(t)
	b := setupWith(t, refFake{&routedFake{fakeProvider: fp, name: fakeProviderName}})
	fp.
		on("Start", connection.Outcome{Status: connection.Running, PollAfter: time.Hour, State: []byte("job-1")}).
		on("Poll", connection.Outcome{Status: connection.Running, PollAfter: time.Hour, State: []byte("job-2")}).
		on("Poll", succeeded("200"))
	c := b.create(t, aliceCreds)
	b.runJobs(t)

	// A connection id is not a ref: only what the login's state holds names it.
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", []byte(`["`+c.GetId()+`"]`)))
	require.Zero(t, b.pollNowJobs(t, c.GetId()))

	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", []byte(`["ref:job-1"]`)))
	require.Equal(t, 1, b.pollNowJobs(t, c.GetId()))
	b.runJobs(t)
	require.Len(t, fp.CallsOf("Poll"), 1)

	// The poll's new state replaced the login's refs.
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", []byte(`["ref:job-1"]`)))
	require.Zero(t, b.pollNowJobs(t, c.GetId()), "a ref the login no longer holds")
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, fakeProviderName, "synced", []byte(`["ref:job-2"]`)))
	b.runJobs(t)
	require.Equal(t, "SUCCEEDED", statusName(b.get(t, c.GetId()).GetStatus()))

	_, err := b.api.DeleteConnection(b.as(b.client), &connectionv1.DeleteConnectionRequest{Id: c.GetId()})
	require.NoError(t, err)
	require.Zero(t, b.count(t, `SELECT count(*) FROM connection.connection_refs`), "deleted with the connection")
}
