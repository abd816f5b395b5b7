package syncs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	syncv1 "puente.dev/gen/go/puente/sync/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	syncs "puente.dev/services/sync"
)

// ---- fakes of a batch provider (Guiabolso's wallet monitoring) and the catalog

const (
	batchInstitution  = "ins_BATCH"
	directInstitution = "ins_DIRECT"
)

type catalog struct {
	mu    sync.Mutex
	calls int
}

func (c *catalog) Provider(_ context.Context, institutionID string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if institutionID == batchInstitution {
		return "batchy", nil
	}
	return "sandbox", nil
}

// batchy is a fake batch provider: each request gets an id "req-N" and is remembered; events
// are JSON {"type", "request", "ref", "failed"}.
type batchy struct {
	mu       sync.Mutex
	max      int
	requests [][]string
	fail     func(n int) error              // the error of the n-th request (1-based), if any
	hook     func(id string, refs []string) // runs before Request returns
}

func (p *batchy) Name() string               { return "batchy" }
func (p *batchy) MaxBatch() int              { return p.max }
func (p *batchy) Ref(c syncs.Consent) string { return "ref-" + c.ID }

func (p *batchy) Request(_ context.Context, refs []string) (string, error) {
	p.mu.Lock()
	n := len(p.requests) + 1
	if p.fail != nil {
		if err := p.fail(n); err != nil {
			p.requests = append(p.requests, nil)
			p.mu.Unlock()
			return "", err
		}
	}
	p.requests = append(p.requests, append([]string(nil), refs...))
	hook := p.hook
	p.mu.Unlock()
	id := fmt.Sprintf("req-%d", n)
	if hook != nil {
		hook(id, refs)
	}
	return id, nil
}

func (p *batchy) Requests() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]string(nil), p.requests...)
}

type batchyEvent struct {
	Type    string   `json:"type"`
	Request string   `json:"request"`
	Ref     string   `json:"ref"`
	Failed  []string `json:"failed,omitempty"`
}

func (p *batchy) ParseEvent(_ string, body []byte) (syncs.BatchEvent, error) {
	var e batchyEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return syncs.BatchEvent{}, err
	}
	switch e.Type {
	case "finished", "notFound":
		return syncs.BatchEvent{RequestID: e.Request, Ref: e.Ref, NotFound: e.Type == "notFound", FailedAccounts: e.Failed}, nil
	}
	return syncs.BatchEvent{}, syncs.ErrNotBatchEvent
}

func body(e batchyEvent) []byte {
	b, _ := json.Marshal(e)
	return b
}

// batchBundle is a bundle whose service asks batchy for refreshes of batchInstitution's consents.
type batchBundle struct {
	bundle
	provider *batchy
	catalog  *catalog
}

func setupBatch(t *testing.T, maxBatch int) batchBundle {
	t.Helper()
	b := setup(t)
	p, c := &batchy{max: maxBatch}, &catalog{}
	require.NoError(t, b.svc.EnableBatching(syncs.Batching{Providers: []syncs.BatchProvider{p}, Catalog: c}))
	return batchBundle{bundle: b, provider: p, catalog: c}
}

func (b batchBundle) event(t *testing.T, e batchyEvent) {
	t.Helper()
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, serviceP, "batchy", "", body(e)))
}

// requestOf returns the id of the request that carried ref.
func (b batchBundle) requestOf(t *testing.T, ref string) string {
	t.Helper()
	for i, refs := range b.provider.Requests() {
		for _, r := range refs {
			if r == ref {
				return fmt.Sprintf("req-%d", i+1)
			}
		}
	}
	t.Fatalf("no request carried %s", ref)
	return ""
}

func resultsByUser(rs []syncs.UserResult) map[string]syncs.UserResult {
	out := map[string]syncs.UserResult{}
	for _, r := range rs {
		out[r.UserID] = r
	}
	return out
}

// ---- tests

func TestBatchRefreshWaitsForTheProvidersWordPerUser(t *testing.T) {
	t.Parallel()
	b := setupBatch(t, 2)
	var users, batchConsents []string
	for i := range 3 {
		u := b.dir.add(b.client, fmt.Sprintf("ext-%d", i))
		users = append(users, u)
		batchConsents = append(batchConsents, b.consents.add(u, batchInstitution))
	}
	direct := b.consents.add(users[0], directInstitution) // user 0 also has a consent refreshed directly
	sy := b.createSync(t, byID(users[0]), byID(users[1]), byID(users[2]))

	// The fan-out and the users' jobs run: each user waits, and nothing is asked yet.
	b.runJobs(t)
	require.Equal(t, 3, b.getSync(t, sy.ID).Pending)
	require.Empty(t, b.provider.Requests())
	require.Zero(t, b.refresher.Calls(direct), "a waiting user's direct consents are refreshed with its result")
	require.Equal(t, 2, b.catalog.calls, "one catalog call per institution")

	// After the gathering delay, the provider's job asks for all three, at most two a request.
	b.clock.Advance(2 * time.Second)
	b.runJobs(t)
	reqs := b.provider.Requests()
	require.Len(t, reqs, 2)
	require.Len(t, reqs[0], 2)
	require.Len(t, reqs[1], 1)

	// User 0 finished with one account failing upstream; user 1 is unknown to the provider; the
	// event repeated, and an event of an unknown request, change nothing.
	e0 := batchyEvent{Type: "finished", Request: b.requestOf(t, "ref-"+batchConsents[0]), Ref: "ref-" + batchConsents[0], Failed: []string{"77"}}
	b.event(t, e0)
	b.event(t, e0)
	b.event(t, batchyEvent{Type: "notFound", Request: b.requestOf(t, "ref-"+batchConsents[1]), Ref: "ref-" + batchConsents[1]})
	b.event(t, batchyEvent{Type: "finished", Request: "req-999", Ref: "ref-" + batchConsents[2]})
	b.runJobs(t)

	rs := resultsByUser(b.results(t, sy.ID, ""))
	require.Equal(t, syncs.UserSuccess, rs[users[0]].Status)
	require.Len(t, rs[users[0]].Accounts, 2)
	require.Equal(t, []string{"77"}, b.refresher.failed[batchConsents[0]], "the provider's failed accounts go to the refresh")
	require.Equal(t, 1, b.refresher.Calls(direct))
	require.Equal(t, 1, b.refresher.Calls(batchConsents[0]))
	require.Equal(t, syncs.UserError, rs[users[1]].Status)
	require.Equal(t, syncs.ReasonUpstreamUserNotFound, rs[users[1]].Reason)
	require.Zero(t, b.refresher.Calls(batchConsents[1]), "a user the provider does not know is not read")
	require.Equal(t, syncs.UserPending, rs[users[2]].Status)

	// User 2's word never comes: at its deadline it ends ERROR UPSTREAM_TIMEOUT.
	b.clock.Advance(29 * time.Minute)
	b.runJobs(t)
	require.Equal(t, syncs.UserPending, resultsByUser(b.results(t, sy.ID, ""))[users[2]].Status)
	b.clock.Advance(time.Minute)
	b.runJobs(t)
	rs = resultsByUser(b.results(t, sy.ID, ""))
	require.Equal(t, syncs.UserError, rs[users[2]].Status)
	require.Equal(t, syncs.ReasonUpstreamTimeout, rs[users[2]].Reason)

	got := b.getSync(t, sy.ID)
	require.Equal(t, syncs.Completed, got.Status)
	require.Equal(t, 1, got.Succeeded)
	require.Equal(t, 2, got.Failed)
	require.Len(t, userEvents(t, b.events(t, sy.ID)), 3, "one event per user")
	require.Zero(t, b.count(t, `SELECT count(*) FROM sync.jobs WHERE state IN ('available', 'running')`), "nothing left queued")

	// A late event for user 2 changes nothing.
	b.event(t, batchyEvent{Type: "finished", Request: b.requestOf(t, "ref-"+batchConsents[2]), Ref: "ref-" + batchConsents[2]})
	b.runJobs(t)
	require.Len(t, userEvents(t, b.events(t, sy.ID)), 3)
}

func TestBatchEventBeforeItsRequestIsRecordedStillSettles(t *testing.T) {
	t.Parallel()
	b := setupBatch(t, 10)
	u := b.dir.add(b.client, "early")
	c := b.consents.add(u, batchInstitution)
	// The provider's webhook arrives while its request's answer is on its way back.
	b.provider.hook = func(id string, refs []string) {
		for _, r := range refs {
			b.event(t, batchyEvent{Type: "finished", Request: id, Ref: r})
		}
	}
	sy := b.createSync(t, byID(u))
	b.runJobs(t)
	b.clock.Advance(2 * time.Second)
	b.runJobs(t)
	b.runJobs(t) // the user's job, queued by the recording of the request
	rs := b.results(t, sy.ID, "")
	require.Equal(t, syncs.UserSuccess, rs[0].Status)
	require.Equal(t, 1, b.refresher.Calls(c))
	require.Equal(t, syncs.Completed, b.getSync(t, sy.ID).Status)
}

func TestBatchRequestsRetryTemporaryFailuresAndEndRefusedOnes(t *testing.T) {
	t.Parallel()

	t.Run("a temporary failure is asked again", func(t *testing.T) {
		b := setupBatch(t, 10)
		u := b.dir.add(b.client, "u")
		c := b.consents.add(u, batchInstitution)
		b.provider.fail = func(n int) error {
			if n == 1 {
				return &syncs.UpstreamError{Reason: syncs.ReasonUpstreamUnavailable, Temporary: true, Err: errors.New("503")}
			}
			return nil
		}
		sy := b.createSync(t, byID(u))
		b.runJobs(t)
		b.clock.Advance(2 * time.Second)
		b.runJobs(t)
		require.Len(t, b.provider.Requests(), 1)
		b.clock.Advance(2 * time.Second) // past the retry's backoff
		b.runJobs(t)
		require.Len(t, b.provider.Requests(), 2)
		b.event(t, batchyEvent{Type: "finished", Request: "req-2", Ref: "ref-" + c})
		b.runJobs(t)
		require.Equal(t, syncs.UserSuccess, b.results(t, sy.ID, "")[0].Status)
	})

	t.Run("a refusal ends the users ERROR with its reason", func(t *testing.T) {
		b := setupBatch(t, 10)
		u := b.dir.add(b.client, "u")
		b.consents.add(u, batchInstitution)
		b.provider.fail = func(int) error {
			return &syncs.UpstreamError{Reason: "UPSTREAM_REJECTED", Err: errors.New("400")}
		}
		sy := b.createSync(t, byID(u))
		b.runJobs(t)
		b.clock.Advance(2 * time.Second)
		b.runJobs(t)
		b.runJobs(t)
		rs := b.results(t, sy.ID, "")
		require.Equal(t, syncs.UserError, rs[0].Status)
		require.Equal(t, "UPSTREAM_REJECTED", rs[0].Reason)
		require.Equal(t, syncs.Completed, b.getSync(t, sy.ID).Status)
	})
}

func TestBatchUsersWaitingAreNotSweptUntilTheProvidersJobIsGone(t *testing.T) {
	t.Parallel()
	b := setupBatch(t, 10)
	u := b.dir.add(b.client, "u")
	b.consents.add(u, batchInstitution)
	sy := b.createSync(t, byID(u))
	b.runJobs(t)
	require.NoError(t, b.svc.Sweep(b.ctx))
	require.Equal(t, syncs.UserPending, b.results(t, sy.ID, "")[0].Status, "a user waiting for its provider is not stranded")

	// The provider's job fails for good (here: removed under the store): the sweep ends the user.
	_, err := b.superuser(t).Exec(b.ctx, `UPDATE sync.jobs SET state = 'failed', finished_at = now() WHERE kind = $1`, syncs.JobUpstream)
	require.NoError(t, err)
	require.NoError(t, b.svc.Sweep(b.ctx))
	rs := b.results(t, sy.ID, "")
	require.Equal(t, syncs.UserError, rs[0].Status)
	require.Equal(t, syncs.ReasonInternal, rs[0].Reason)
}

func TestHandleUpstreamEventChecksItsCallerAndBody(t *testing.T) {
	t.Parallel()
	b := setupBatch(t, 10)

	err := b.svc.HandleUpstreamEvent(b.ctx, clientP(b.client), "batchy", "", body(batchyEvent{Type: "finished", Request: "r", Ref: "x"}))
	requireKind(t, err, apierr.PermissionDenied)

	err = b.svc.HandleUpstreamEvent(b.ctx, serviceP, "batchy", "", []byte("not json"))
	requireInvalid(t, err, "body")
	err = b.svc.HandleUpstreamEvent(b.ctx, serviceP, "batchy", "", body(batchyEvent{Type: "finished"}))
	requireInvalid(t, err, "body")

	// Other events and other providers are none of the sync service's business.
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, serviceP, "batchy", "", body(batchyEvent{Type: "consent.updated"})))
	require.NoError(t, b.svc.HandleUpstreamEvent(b.ctx, serviceP, "klavi", "", []byte("{}")))

	// Through gRPC, with the service's principal.
	_, err = b.api.HandleUpstreamEvent(caller.With(b.ctx, serviceP), &syncv1.HandleUpstreamEventRequest{Provider: "batchy", Body: []byte("{")})
	requireInvalid(t, err, "body")
}
