package suite_test

// End-to-end tests of webhook delivery, as an integrator sees it: what reaches their receiver,
// signed how, how often, and what the API says about it (deliveries and their attempts, the event
// log), through receivers that are down, hanging, redirecting, rotating secrets, and a webhook
// service killed mid-burst.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"puente.dev/services/puente/suite/suitetest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
	"puente.dev/pkg/ids"
	"puente.dev/services/puente/suite"
	"puente.dev/services/webhook"
)

// ---- suites with their own configuration

// setupWebhook is setup(t) with the webhook configuration changed by mutate.
func setupWebhook(t testing.TB, mutate func(*webhook.Config)) *bundle {
	t.Helper()
	return setupLogging(t, nil, slog.LevelDebug, func(c *suite.Config) { mutate(&c.Webhook) })
}

// ---- an integrator's receiver that records everything

const inFlight = -1

// hit is one request a hook received.
type hit struct {
	WebhookID, EventID, Type, FlowID string
	Data                             map[string]any
	Header                           http.Header
	Body                             []byte
	// Status is what the hook answered: inFlight while its handler runs, 0 when the sender went
	// away (or the test ended) before an answer.
	Status int
}

func (h hit) ok() bool { return h.Status >= 200 && h.Status < 300 }

// hook is a webhook receiver whose answers the test decides (respond; nil answers 200) and that
// keeps every request it gets, answered or not.
type hook struct {
	t       testing.TB
	mu      sync.Mutex
	srv     *httptest.Server
	hits    []hit
	busy    int // requests being handled now
	maxBusy int
	respond func(w http.ResponseWriter, r *http.Request) int
	closing chan struct{} // closed when the test ends, to free handlers that hold requests
}

func newHook(t testing.TB) *hook {
	h := newUnstartedHook(t)
	h.mu.Lock()
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	h.mu.Unlock()
	return h
}

// newUnstartedHook is a hook that listens nowhere until startAt.
func newUnstartedHook(t testing.TB) *hook {
	h := &hook{t: t, closing: make(chan struct{})}
	t.Cleanup(func() {
		close(h.closing)
		h.mu.Lock()
		srv := h.srv
		h.mu.Unlock()
		if srv != nil {
			srv.Close()
		}
	})
	return h
}

// startAt starts the hook on addr (host:port).
func (h *hook) startAt(addr string) {
	h.t.Helper()
	l, err := net.Listen("tcp", addr)
	require.NoError(h.t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
}

func (h *hook) url() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.srv.URL + "/hooks"
}

func (h *hook) setRespond(fn func(w http.ResponseWriter, r *http.Request) int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.respond = fn
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var env struct {
		ID     string         `json:"id"`
		Type   string         `json:"type"`
		FlowID string         `json:"flow_id"`
		Data   map[string]any `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	h.mu.Lock()
	i := len(h.hits)
	h.hits = append(h.hits, hit{
		WebhookID: r.Header.Get("webhook-id"), EventID: env.ID, Type: env.Type, FlowID: env.FlowID, Data: env.Data,
		Header: r.Header.Clone(), Body: body, Status: inFlight,
	})
	h.busy++
	h.maxBusy = max(h.maxBusy, h.busy)
	respond := h.respond
	h.mu.Unlock()

	status := http.StatusOK
	if respond != nil {
		status = respond(w, r)
	}
	h.mu.Lock()
	h.hits[i].Status = status
	h.busy--
	h.mu.Unlock()
	if status == 0 {
		panic(http.ErrAbortHandler) // drop the connection without an answer
	}
	w.WriteHeader(status)
}

func (h *hook) all() []hit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.hits)
}

func (h *hook) inFlight() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for _, x := range h.hits {
		if x.Status == inFlight {
			ids = append(ids, x.WebhookID)
		}
	}
	return ids
}

func (h *hook) peakConcurrency() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxBusy
}

// waitFor waits until cond holds for what arrived, and returns it.
func (h *hook) waitFor(msg string, cond func([]hit) bool) []hit {
	h.t.Helper()
	var got []hit
	suitetest.WaitUntil(h.t, 20*time.Second, msg, func() (bool, string) {
		got = h.all()
		return cond(got), summarize(got)
	})
	return got
}

// waitForEvents waits until every event in ids was answered 2xx.
func (h *hook) waitForEvents(msg string, ids ...string) []hit {
	h.t.Helper()
	return h.waitFor(msg, func(hs []hit) bool { return hasAll(hs, ids) })
}

func summarize(hs []hit) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests:", len(hs))
	for i, x := range hs {
		if i == 40 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " %s/%s→%d", x.Type, x.WebhookID, x.Status)
	}
	return b.String()
}

// okCounts is how many times each event (by webhook-id) was answered 2xx.
func okCounts(hs []hit) map[string]int {
	n := map[string]int{}
	for _, x := range hs {
		if x.ok() {
			n[x.WebhookID]++
		}
	}
	return n
}

// arrivals is how many requests each event (by webhook-id) made, answered or not.
func arrivals(hs []hit) map[string]int {
	n := map[string]int{}
	for _, x := range hs {
		n[x.WebhookID]++
	}
	return n
}

func hasAll(hs []hit, ids []string) bool {
	ok := okCounts(hs)
	for _, id := range ids {
		if ok[id] == 0 {
			return false
		}
	}
	return true
}

// verifies reports whether both signature schemes of x verify with secret.
func verifies(t testing.TB, x hit, secret string) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	return verifyPuente(x.Header, x.Body, key) && verifyStandard(x.Header, x.Body, key)
}

// signatureCount is how many v1 signatures each header of x carries.
func signatureCount(x hit) (puente, standard int) {
	for part := range strings.SplitSeq(x.Header.Get("Puente-Signature"), ",") {
		if strings.HasPrefix(part, "v1=") {
			puente++
		}
	}
	for part := range strings.FieldsSeq(x.Header.Get("webhook-signature")) {
		if strings.HasPrefix(part, "v1,") {
			standard++
		}
	}
	return puente, standard
}

// newHangingHook never answers: the sender gives up (its timeout), or the test ends.
func newHangingHook(t testing.TB) *hook {
	h := newHook(t)
	h.setRespond(func(_ http.ResponseWriter, r *http.Request) int {
		select {
		case <-r.Context().Done():
		case <-h.closing:
		}
		return 0
	})
	return h
}

func answer(status int) func(http.ResponseWriter, *http.Request) int {
	return func(http.ResponseWriter, *http.Request) int { return status }
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// ---- the API as an integrator reads it

type apiAttempt struct {
	Number       int       `json:"number"`
	Time         time.Time `json:"time"`
	StatusCode   int       `json:"status_code"`
	LatencyMs    string    `json:"latency_ms"` // int64: a JSON string
	Error        string    `json:"error"`
	ResponseBody string    `json:"response_body"`
}

type apiDelivery struct {
	ID              string       `json:"id"`
	EventID         string       `json:"event_id"`
	EndpointID      string       `json:"endpoint_id"`
	Status          string       `json:"status"`
	AttemptCount    int          `json:"attempt_count"`
	NextAttemptTime *time.Time   `json:"next_attempt_time"`
	CreateTime      time.Time    `json:"create_time"`
	DeliveredTime   *time.Time   `json:"delivered_time"`
	Attempts        []apiAttempt `json:"attempts"` // newest first
}

const (
	dPending   = "DELIVERY_STATUS_PENDING"
	dDelivered = "DELIVERY_STATUS_DELIVERED"
	dFailed    = "DELIVERY_STATUS_FAILED"
)

// listDeliveries is GET /v1/deliveries?<query>, every page.
func (b *bundle) listDeliveries(token, query string) []apiDelivery {
	b.t.Helper()
	var all []apiDelivery
	pageToken := ""
	for {
		r := b.do(http.MethodGet, "/v1/deliveries?page_size=200&page_token="+pageToken+"&"+query, token, nil)
		require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
		var page struct {
			Deliveries    []apiDelivery `json:"deliveries"`
			NextPageToken string        `json:"next_page_token"`
		}
		require.NoError(b.t, json.Unmarshal([]byte(r.Raw), &page))
		all = append(all, page.Deliveries...)
		if page.NextPageToken == "" {
			return all
		}
		pageToken = page.NextPageToken
	}
}

// deliveriesReach waits until the deliveries of query satisfy cond, and returns them.
func (b *bundle) deliveriesReach(token, query, msg string, cond func([]apiDelivery) bool) []apiDelivery {
	b.t.Helper()
	var ds []apiDelivery
	suitetest.WaitUntil(b.t, 20*time.Second, msg, func() (bool, string) {
		ds = b.listDeliveries(token, query)
		raw, _ := json.Marshal(ds)
		if len(raw) > 4000 {
			raw = append(raw[:4000], "…"...)
		}
		return cond(ds), string(raw)
	})
	return ds
}

// deliveredEvents lists the event of each delivery.
func deliveredEvents(ds []apiDelivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.EventID
	}
	return ids
}

func byEvent(ds []apiDelivery) map[string]apiDelivery {
	m := map[string]apiDelivery{}
	for _, d := range ds {
		m[d.EventID] = d
	}
	return m
}

// sendTestEvent is POST /v1/webhook-endpoints/{id}:test; it returns the event's id.
func (b *bundle) sendTestEvent(token, endpointID string) string {
	b.t.Helper()
	r := b.do(http.MethodPost, "/v1/webhook-endpoints/"+endpointID+":test", token, map[string]any{})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	require.Equal(b.t, "webhook.test", str(r.JSON, "event", "type"))
	return str(r.JSON, "event", "id")
}

// fieldViolations names the fields a 400 blames.
func fieldViolations(t testing.TB, r response) []string {
	t.Helper()
	var body struct {
		Details []struct {
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"field_violations"`
		} `json:"details"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &body), r.Raw)
	var fields []string
	for _, d := range body.Details {
		for _, f := range d.FieldViolations {
			fields = append(fields, f.Field)
		}
	}
	return fields
}

// ---- making events

// makeConsents creates n consents; each writes one consent.created event.
func (b *bundle) makeConsents(token, user, institution string, n int) []string {
	b.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = b.newConsent(token, user, institution).GetId()
	}
	return ids
}

// makeConnections starts n sandbox logins that succeed at once; each writes a few
// connection.status_changed events.
func (b *bundle) makeConnections(token, user, institution string, n int) []string {
	b.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = b.connect(token, user, institution, map[string]string{"username": "user_good", "password": "pass_good"}).GetId()
	}
	return ids
}

func (b *bundle) allSucceed(token string, connections []string) {
	b.t.Helper()
	for _, id := range connections {
		b.watchUntil(token, id, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	}
}

type logEvent struct {
	ID, Type, FlowID string
}

// logEvents reads the client's events from the event log (webhook.events), oldest first.
func (b *bundle) logEvents(clientID string) []logEvent {
	b.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.cfg.DatabaseURL)
	require.NoError(b.t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, type, flow_id FROM webhook.events WHERE client_id = $1 ORDER BY seq`, clientID)
	require.NoError(b.t, err)
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logEvent])
	require.NoError(b.t, err)
	return evs
}

// logSettled waits until every event the client's services wrote to their outboxes is published
// and in the event log, and returns the log's events of the client (webhook.test ones aside).
// The log must hold nothing the outboxes did not write.
func (b *bundle) logSettled(clientID string) []logEvent {
	b.t.Helper()
	suitetest.WaitUntil(b.t, 20*time.Second, "every outbox event reaches the event log", func() (bool, string) {
		var written, unpublished, logged, inLog int
		b.scan(`SELECT count(*), count(*) FILTER (WHERE o.published_at IS NULL), count(e.id),
				(SELECT count(*) FROM webhook.events WHERE client_id = $1 AND type <> 'webhook.test')
			FROM (SELECT id, published_at FROM connection.outbox WHERE client_id = $1
				UNION ALL SELECT id, published_at FROM consent.outbox WHERE client_id = $1) o
			LEFT JOIN webhook.events e ON e.id = o.id`, []any{clientID}, &written, &unpublished, &logged, &inLog)
		return unpublished == 0 && logged == written && inLog == written,
			fmt.Sprintf("outboxes: %d events, %d unpublished; %d of them in the log, which holds %d", written, unpublished, logged, inLog)
	})
	var out []logEvent
	for _, e := range b.logEvents(clientID) {
		if e.Type != "webhook.test" {
			out = append(out, e)
		}
	}
	return out
}

func eventIDs(evs []logEvent) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// ---- 1. a receiver that is down, then up

func TestWebhookReceiverDownThenUpGetsEveryEventExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newClient("acme")

	// One receiver answers 503 while it is down; the other's port has nobody listening.
	var down atomic.Bool
	down.Store(true)
	unavailable := newHook(t)
	unavailable.setRespond(func(http.ResponseWriter, *http.Request) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	closedAddr := freeAddr(t)
	closed := newUnstartedHook(t)
	ep503, secret503 := b.newEndpoint(c.Token, unavailable.url())
	epClosed, secretClosed := b.newEndpoint(c.Token, "http://"+closedAddr+"/hooks")

	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	b.makeConsents(c.Token, user, in.GetId(), 3)
	b.allSucceed(c.Token, b.makeConnections(c.Token, user, in.GetId(), 2))
	events := eventIDs(b.logSettled(c.ID))
	require.GreaterOrEqual(t, len(events), 5)

	// While they are down, every delivery is attempted, fails, and stays pending for a retry.
	failedTwice := func(ds []apiDelivery) bool {
		if len(ds) != len(events) {
			return false
		}
		for _, d := range ds {
			if d.Status != dPending || d.AttemptCount < 2 {
				return false
			}
		}
		return true
	}
	b.deliveriesReach(c.Token, "endpoint_id="+ep503, "every delivery to the 503 receiver fails twice", failedTwice)
	b.deliveriesReach(c.Token, "endpoint_id="+epClosed, "every delivery to the closed port fails twice", failedTwice)
	require.Empty(t, okCounts(unavailable.all()))

	// Up again: everything arrives.
	down.Store(false)
	closed.startAt(closedAddr)
	for _, tc := range []struct {
		name     string
		h        *hook
		endpoint string
		secret   string
	}{{"503", unavailable, ep503, secret503}, {"closed", closed, epClosed, secretClosed}} {
		got := tc.h.waitForEvents(tc.name+": every event arrives once the receiver is up", events...)
		ok := okCounts(got)
		require.Len(t, ok, len(events), "%s: nothing but the log's events arrives", tc.name)
		seen := map[string]bool{}
		for _, x := range got {
			require.Equal(t, x.EventID, x.WebhookID, "webhook-id is the event's id")
			require.Contains(t, events, x.WebhookID)
			require.False(t, seen[x.WebhookID], "%s: %s was retried after it was accepted", tc.name, x.WebhookID)
			if x.ok() {
				seen[x.WebhookID] = true
				require.True(t, verifies(t, x, tc.secret), "both signatures verify")
			}
		}
		for _, id := range events {
			require.Equal(t, 1, ok[id], "%s: %s is accepted exactly once", tc.name, id)
		}

		// The API tells the story: failed attempts, then the 200.
		ds := b.deliveriesReach(c.Token, "endpoint_id="+tc.endpoint, tc.name+": every delivery DELIVERED", func(ds []apiDelivery) bool {
			for _, d := range ds {
				if d.Status != dDelivered {
					return false
				}
			}
			return len(ds) == len(events)
		})
		require.ElementsMatch(t, events, deliveredEvents(ds), "one delivery per event")
		for _, d := range ds {
			require.NotNil(t, d.DeliveredTime, d.ID)
			require.Nil(t, d.NextAttemptTime, "a delivered delivery has no next attempt: %s", d.ID)
			require.GreaterOrEqual(t, len(d.Attempts), 3, "two failures and the success: %s", d.ID)
			require.Equal(t, d.AttemptCount, d.Attempts[0].Number, d.ID)
			require.Equal(t, http.StatusOK, d.Attempts[0].StatusCode, "the newest attempt is the 200: %s", d.ID)
			for i, a := range d.Attempts[1:] {
				require.Equal(t, d.Attempts[i].Number-1, a.Number, "attempts are numbered, newest first: %s", d.ID)
				if tc.endpoint == ep503 {
					require.Equal(t, http.StatusServiceUnavailable, a.StatusCode, d.ID)
					require.Contains(t, a.Error, "503", d.ID)
				} else {
					require.Zero(t, a.StatusCode, "no response from a closed port: %s", d.ID)
					require.Contains(t, a.Error, "refused", d.ID)
				}
			}
		}
	}

	// The event log has each event once; the feed agrees.
	var total, distinct int
	b.scan(`SELECT count(*), count(DISTINCT id) FROM webhook.events WHERE client_id = $1`, []any{c.ID}, &total, &distinct)
	require.Equal(t, len(events), total)
	require.Equal(t, total, distinct)
	feed := b.do(http.MethodGet, "/v1/events?page_size=500", c.Token, nil)
	require.Equal(t, http.StatusOK, feed.Status, feed.Raw)
	var feedIDs []string
	for _, e := range feed.JSON["events"].([]any) {
		feedIDs = append(feedIDs, e.(map[string]any)["id"].(string))
	}
	require.Equal(t, events, feedIDs, "the feed lists each event once, in order")
}

// ---- 2. a hanging receiver next to a healthy one

func TestWebhookHangingReceiverDoesNotDelayAHealthyOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newClient("acme")

	healthy := newHook(t)
	hanging := newHangingHook(t)
	epHanging, _ := b.newEndpoint(c.Token, hanging.url())
	epHealthy, secret := b.newEndpoint(c.Token, healthy.url())

	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	b.allSucceed(c.Token, b.makeConnections(c.Token, user, in.GetId(), 20))
	events := eventIDs(b.logSettled(c.ID))
	require.GreaterOrEqual(t, len(events), 40)

	got := healthy.waitForEvents("the healthy receiver gets the whole burst", events...)
	for _, x := range got {
		require.True(t, verifies(t, x, secret))
	}
	// ... while the hanging receiver's deliveries are all still pending.
	pending := b.listDeliveries(c.Token, "endpoint_id="+epHanging)
	require.Len(t, pending, len(events))
	for _, d := range pending {
		require.Equal(t, dPending, d.Status, d.ID)
	}
	// None of the healthy deliveries waited behind the hanging ones: each went out at its first
	// attempt (the hanging endpoint never holds more than its share of workers, asserted below).
	for _, d := range b.listDeliveries(c.Token, "endpoint_id="+epHealthy) {
		require.Equal(t, dDelivered, d.Status, d.ID)
		require.Equal(t, 1, d.AttemptCount, d.ID)
		require.NotNil(t, d.DeliveredTime, d.ID)
	}

	// The hanging receiver's attempts are recorded as timed out, and retried.
	ds := b.deliveriesReach(c.Token, "endpoint_id="+epHanging, "the hanging receiver's attempts time out", func(ds []apiDelivery) bool {
		for _, d := range ds {
			if len(d.Attempts) > 0 {
				return true
			}
		}
		return false
	})
	for _, d := range ds {
		require.Equal(t, dPending, d.Status, d.ID)
		for _, a := range d.Attempts {
			require.Zero(t, a.StatusCode, "no answer came back: %s", d.ID)
			require.Equal(t, "timed out", a.Error, d.ID)
			ms, err := strconv.Atoi(a.LatencyMs)
			require.NoError(t, err)
			require.GreaterOrEqual(t, time.Duration(ms)*time.Millisecond, b.cfg.Webhook.Timeout-100*time.Millisecond, d.ID)
		}
		if len(d.Attempts) > 0 {
			require.NotNil(t, d.NextAttemptTime, "a timed-out delivery is retried: %s", d.ID)
		}
	}
	require.LessOrEqual(t, hanging.peakConcurrency(), b.cfg.Webhook.PerEndpoint,
		"the hanging receiver never holds more than its share of requests at once")
}

// publishEvents records n events of a client as its services' outbox relays do (IngestService,
// with the service token): a burst bigger than the sandbox makes quickly.
func (b *bundle) publishEvents(clientID string, n int) []string {
	b.t.Helper()
	req := &webhookv1.PublishEventsRequest{Source: "connection"}
	for range n {
		req.Events = append(req.Events, &webhookv1.OutboxEvent{
			Id: ids.New("evt"), Type: "connection.status_changed", Version: 1, CreateTime: timestamppb.Now(),
			FlowId: "con_burst", ClientId: clientID, Data: []byte(`{"status":"SUCCEEDED"}`),
		})
	}
	resp, err := webhookv1.NewIngestServiceClient(b.conn).PublishEvents(bearerCtx(b.cfg.ServiceToken), req)
	require.NoError(b.t, err)
	require.EqualValues(b.t, n, resp.GetRecorded())
	out := make([]string, n)
	for i, e := range req.Events {
		out[i] = e.GetId()
	}
	return out
}

// One tenant's hanging endpoint with a backlog must not hold up another tenant's webhooks: the
// per-endpoint share keeps the hanging endpoint from taking the workers, and the deliveries it
// cannot take yet must not keep the workers busy either.
func TestWebhookAHangingEndpointsBacklogDoesNotDelayOtherTenants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	busy := b.newClient("busy")
	other := b.newClient("other")
	hanging := newHangingHook(t)
	epHanging, _ := b.newEndpoint(busy.Token, hanging.url())
	healthy := newHook(t)
	epOther, _ := b.newEndpoint(other.Token, healthy.url())

	b.publishEvents(busy.ID, 250)
	// Once the burst is no news any more: every delivery job of it has run once (to be tried, or
	// put off because the hanging endpoint has no free share), or the hanging endpoint's share has
	// timed out twice over ...
	suitetest.WaitUntil(t, 30*time.Second, "the burst is old news", func() (bool, string) {
		var fresh, timedOut int
		b.scan(`SELECT (SELECT count(*) FROM webhook.jobs WHERE kind = 'webhook.deliver' AND state = 'available' AND run_at <= created_at),
				(SELECT count(*) FROM webhook.delivery_attempts a JOIN webhook.deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1)`,
			[]any{epHanging}, &fresh, &timedOut)
		return fresh == 0 || timedOut >= 2*b.cfg.Webhook.PerEndpoint, fmt.Sprintf("%d jobs never ran, %d attempts timed out", fresh, timedOut)
	})
	// ... the hanging endpoint's backlog no longer stands in the queue: about its share of
	// deliveries is due or running (the rest are parked, their jobs asleep), so the other
	// tenant's events find free workers and nothing queued before them. (The structure is
	// asserted rather than a wait time: no timing assertions in tests.)
	var ahead int
	b.scan(`SELECT count(*) FROM webhook.jobs j JOIN webhook.deliveries d ON j.unique_key = 'deliver:' || d.id || ':' || d.generation
		WHERE d.endpoint_id = $1 AND j.state IN ('available', 'running') AND j.run_at <= now()`, []any{epHanging}, &ahead)
	// Its share running, plus the few just woken or just due for a retry on their way to park.
	require.LessOrEqual(t, ahead, 5*b.cfg.Webhook.PerEndpoint, "the backlog is parked, not queued (%d of 250 due)", ahead)
	var parked int
	b.scan(`SELECT count(*) FROM webhook.deliveries WHERE endpoint_id = $1 AND parked`, []any{epHanging}, &parked)
	require.Greater(t, parked, 200, "most of the backlog waits parked")
	for range 3 {
		evt := b.sendTestEvent(other.Token, epOther)
		healthy.waitForEvents("the other tenant's event arrives", evt)
		d := b.deliveriesReach(other.Token, "event_id="+evt, "the delivery is recorded DELIVERED", func(ds []apiDelivery) bool {
			return len(ds) == 1 && ds[0].Status == dDelivered
		})[0]
		require.Equal(t, 1, d.AttemptCount, "delivered at its first attempt")
	}
}

// ---- 3. the webhook service killed mid-burst

// webhookProcess is a `puente -service=webhook` child process.
type webhookProcess struct {
	cmd  *exec.Cmd
	logs *suitetest.Output
	done chan struct{}
}

// webhookProcessEnv is the environment of a webhook-only process at addr, sharing b's database
// and secrets, with b's gRPC server as its authtoken service.
func webhookProcessEnv(b *bundle, addr string) []string {
	w := b.cfg.Webhook
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + b.cfg.DatabaseURL,
		"PUENTE_GRPC_ADDR=" + addr,
		"PUENTE_HTTP_ADDR=127.0.0.1:0",
		"PUENTE_METRICS_ADDR=127.0.0.1:0",
		"PUENTE_AUTHTOKEN_ADDR=" + b.suite.GRPCAddr(),
		"PUENTE_ADMIN_TOKEN=" + b.cfg.AdminToken,
		"PUENTE_SERVICE_TOKEN=" + b.cfg.ServiceToken,
		"PUENTE_TOKEN_ISSUER=" + b.cfg.Authtoken.Issuer,
		"PUENTE_TOKEN_AUDIENCE=" + b.cfg.Authtoken.Audience,
		"PUENTE_HASH_KEY=" + b.cfg.Authtoken.HashKey,
		"PUENTE_ENCRYPTION_KEYS=" + w.EncryptionKeys,
		"PUENTE_MIGRATE_ON_START=true",
		"PUENTE_DRAIN_TIMEOUT=5s",
		"PUENTE_WEBHOOK_ALLOW_INSECURE_URLS=" + strconv.FormatBool(w.AllowInsecureURLs),
		"PUENTE_WEBHOOK_TIMEOUT=" + w.Timeout.String(),
		"PUENTE_WEBHOOK_RETRY_WINDOW=" + w.RetryWindow.String(),
		"PUENTE_WEBHOOK_RETRY_BASE=" + w.RetryBase.String(),
		"PUENTE_WEBHOOK_RETRY_MAX=" + w.RetryMax.String(),
		"PUENTE_WEBHOOK_WORKERS=" + strconv.Itoa(w.Workers),
		"PUENTE_WEBHOOK_PER_ENDPOINT=" + strconv.Itoa(w.PerEndpoint),
		"PUENTE_WEBHOOK_LEASE=" + w.Lease.String(),
		"PUENTE_EVENT_RETENTION=" + w.Retention.String(),
		"PUENTE_LOG_LEVEL=debug",
		"PUENTE_LOG_FORMAT=text",
	}
}

func startWebhookProcess(t *testing.T, bin string, env []string) *webhookProcess {
	t.Helper()
	p := &webhookProcess{cmd: exec.Command(bin, "-service=webhook"), logs: &suitetest.Output{}, done: make(chan struct{})}
	p.cmd.Env = env
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
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			logs := p.logs.String()
			if len(logs) > 20000 {
				logs = "…" + logs[len(logs)-20000:]
			}
			t.Logf("webhook process %d logs:\n%s", p.cmd.Process.Pid, logs)
		}
	})
	suitetest.WaitUntil(t, 30*time.Second, "the webhook process starts", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("the webhook process exited: %s", p.logs.String())
		default:
		}
		return strings.Contains(p.logs.String(), "puente started"), p.logs.String()
	})
	return p
}

// kill ends the process with SIGKILL: no drain, no handing back of jobs.
func (p *webhookProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed webhook process did not exit")
	}
}

func TestWebhookDeliveriesSurviveAKilledWebhookProcess(t *testing.T) {
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

	// Everything in-process but the webhook service, which runs in a child process at addr. Its
	// lease is shorter than setup's, so the killed process's deliveries come back sooner.
	cfg, admin := suiteConfig(t)
	cfg.Webhook.Lease = 3 * time.Second
	addr := freeAddr(t)
	cfg.WebhookAddr = addr
	b := startBundle(t, cfg, admin, []string{"authtoken", "consent", "connection", "extraction", "sync", "gateway"})
	bin := <-build
	require.NoError(t, bin.err)
	env := webhookProcessEnv(b, addr)
	first := startWebhookProcess(t, bin.bin, env)

	c := b.newClient("acme")
	// A slow receiver: each request waits until the test lets it through.
	gate := make(chan struct{})
	h := newHook(t)
	h.setRespond(func(_ http.ResponseWriter, r *http.Request) int {
		select {
		case <-gate:
			return http.StatusOK
		case <-r.Context().Done():
			return 0
		case <-h.closing:
			return 0
		}
	})
	endpoint, secret := b.newEndpoint(c.Token, h.url())

	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	connections := b.makeConnections(c.Token, user, in.GetId(), 20)

	// Ten deliveries go through, one at a time; then the next ones are held mid-request and the
	// webhook process is killed under them.
	for i := range 10 {
		select {
		case gate <- struct{}{}:
		case <-time.After(20 * time.Second):
			t.Fatalf("delivery %d never came: %s", i+1, summarize(h.all()))
		}
	}
	var heldAtKill []string
	suitetest.WaitUntil(t, 20*time.Second, "the next deliveries are in flight", func() (bool, string) {
		heldAtKill = h.inFlight()
		return len(heldAtKill) == b.cfg.Webhook.PerEndpoint, summarize(h.all())
	})
	first.kill(t)
	suitetest.WaitUntil(t, 10*time.Second, "the receiver sees the killed process hang up", func() (bool, string) {
		return len(h.inFlight()) == 0, summarize(h.all())
	})

	// While the webhook service is down the burst goes on; its events wait in the outboxes.
	b.makeConsents(c.Token, user, in.GetId(), 5)
	var unpublished int
	b.scan(`SELECT count(*) FROM consent.outbox WHERE client_id = $1 AND published_at IS NULL`, []any{c.ID}, &unpublished)
	require.GreaterOrEqual(t, unpublished, 5)

	second := startWebhookProcess(t, bin.bin, env)
	close(gate) // from now on the receiver answers at once
	b.allSucceed(c.Token, connections)
	events := eventIDs(b.logSettled(c.ID))
	got := h.waitForEvents("every event is delivered after the restart", events...)

	// At least once, and at most one extra delivery per crash, always with the same webhook-id.
	n := arrivals(got)
	for _, id := range events {
		require.LessOrEqual(t, n[id], 2, "event %s arrived %d times across one crash", id, n[id])
	}
	require.Len(t, n, len(events), "nothing arrives that is not in the log")
	ok := okCounts(got)
	for _, id := range heldAtKill {
		require.Equal(t, 1, ok[id], "the delivery in flight at the crash (%s) is made again, once", id)
		require.Equal(t, 2, n[id], "%s", id)
	}
	for _, x := range got {
		require.Equal(t, x.EventID, x.WebhookID)
		require.True(t, verifies(t, x, secret))
	}

	// Every event in the log has one delivery to the endpoint, and each ends DELIVERED.
	ds := b.deliveriesReach(c.Token, "endpoint_id="+endpoint, "every delivery ends DELIVERED", func(ds []apiDelivery) bool {
		for _, d := range ds {
			if d.Status != dDelivered {
				return false
			}
		}
		return len(ds) == len(events)
	})
	require.ElementsMatch(t, events, deliveredEvents(ds), "one delivery per event")
	var logged, delivered, failed, pending int
	b.scan(`SELECT (SELECT count(*) FROM webhook.events WHERE client_id = $1),
			count(*) FILTER (WHERE status = 'DELIVERED'), count(*) FILTER (WHERE status = 'FAILED'), count(*) FILTER (WHERE status = 'PENDING')
		FROM webhook.deliveries WHERE endpoint_id = $2`, []any{c.ID, endpoint}, &logged, &delivered, &failed, &pending)
	require.Equal(t, logged, delivered+failed+pending, "every event published to the endpoint has a delivery")
	require.Equal(t, len(events), delivered)

	for _, p := range []*webhookProcess{first, second} {
		require.NotContains(t, p.logs.String(), "DATA RACE")
	}
}

// ---- 4. secret rotation

func TestWebhookSecretRotationSignsWithBothKeysDuringTheOverlap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newClient("acme")
	h := newHook(t)
	id, oldSecret := b.newEndpoint(c.Token, h.url())

	deliver := func() hit {
		t.Helper()
		evt := b.sendTestEvent(c.Token, id)
		for _, x := range h.waitForEvents("the test event arrives", evt) {
			if x.WebhookID == evt && x.ok() {
				return x
			}
		}
		panic("unreachable")
	}
	before := deliver()
	require.True(t, verifies(t, before, oldSecret))
	p, s := signatureCount(before)
	require.Equal(t, [2]int{1, 1}, [2]int{p, s}, "one secret, one signature per header")

	asked := time.Now()
	r := b.do(http.MethodPost, "/v1/webhook-endpoints/"+id+":rotateSecret", c.Token, map[string]any{"overlap_seconds": 2})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	newSecret := str(r.JSON, "secret")
	require.Regexp(t, `^whsec_`, newSecret)
	require.NotEqual(t, oldSecret, newSecret)
	expires, err := time.Parse(time.RFC3339Nano, str(r.JSON, "endpoint", "previous_secret_expire_time"))
	require.NoError(t, err, r.Raw)
	require.WithinDuration(t, asked.Add(2*time.Second), expires, time.Second)
	require.NotContains(t, b.do(http.MethodGet, "/v1/webhook-endpoints/"+id, c.Token, nil).Raw, newSecret, "the secret is shown once")

	// Deliveries go out until one is signed by the new secret alone.
	var during []hit
	var after hit
	for deadline := time.Now().Add(20 * time.Second); ; {
		require.True(t, time.Now().Before(deadline), "the old secret still signs long after its overlap ended")
		x := deliver()
		if p, _ := signatureCount(x); p == 1 {
			after = x
			break
		}
		during = append(during, x)
	}
	require.NotEmpty(t, during, "deliveries right after the rotation are signed by both secrets")
	for _, x := range during {
		p, s := signatureCount(x)
		require.Equal(t, [2]int{2, 2}, [2]int{p, s}, "two v1 signatures in each header: %v", x.Header)
		require.True(t, verifies(t, x, oldSecret), "a receiver still on the old secret accepts it")
		require.True(t, verifies(t, x, newSecret), "a receiver already on the new secret accepts it")
		ts, err := strconv.ParseInt(x.Header.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		require.LessOrEqual(t, ts, expires.Unix(), "signed by both only during the overlap")
	}
	p, s = signatureCount(after)
	require.Equal(t, [2]int{1, 1}, [2]int{p, s})
	require.True(t, verifies(t, after, newSecret))
	require.False(t, verifies(t, after, oldSecret), "after the overlap the old secret verifies nothing")
	ts, err := strconv.ParseInt(after.Header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, ts, expires.Unix(), "the old secret signed until the overlap ended")
}

// ---- 5. SSRF

func TestWebhookEndpointURLsToInternalAddressesAreRefused(t *testing.T) {
	t.Parallel()
	b := setupWebhook(t, func(c *webhook.Config) { c.AllowInsecureURLs = false })
	c := b.newClient("acme")
	for _, u := range []string{
		"http://example.com/hook",
		"https://127.0.0.1/hook",
		"https://localhost./hook",
		"https://2130706433/hook",
		"https://0x7f000001/hook",
		"https://0177.0.0.1/hook",
		"https://127.1/hook",
		"https://[::1]/hook",
		"https://[::ffff:127.0.0.1]/hook",
		"https://10.0.0.1/hook",
		"https://169.254.169.254/latest/meta-data/",
		"https://[fe80::1%25eth0]/hook",
		"https://192.168.1.1/hook",
	} {
		r := b.do(http.MethodPost, "/v1/webhook-endpoints", c.Token, map[string]any{"url": u})
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", u, r.Raw)
		require.True(t, strings.HasPrefix(str(r.JSON, "message"), "url: "), "%s: %s", u, r.Raw)
		require.Equal(t, []string{"url"}, fieldViolations(t, r), "%s: %s", u, r.Raw)
	}

	ok := b.do(http.MethodPost, "/v1/webhook-endpoints", c.Token, map[string]any{"url": "https://example.com/hook"})
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	id := str(ok.JSON, "endpoint", "id")
	// Nor can an endpoint be pointed somewhere internal afterwards.
	r := b.do(http.MethodPatch, "/v1/webhook-endpoints/"+id, c.Token, map[string]any{"url": "https://169.254.169.254/latest/meta-data/"})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Equal(t, []string{"url"}, fieldViolations(t, r), r.Raw)
	require.Equal(t, "https://example.com/hook", str(b.do(http.MethodGet, "/v1/webhook-endpoints/"+id, c.Token, nil).JSON, "endpoint", "url"))
	list := b.do(http.MethodGet, "/v1/webhook-endpoints", c.Token, nil)
	require.Len(t, list.JSON["endpoints"], 1, "only the accepted endpoint exists: %s", list.Raw)
}

func TestWebhookRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newClient("acme")
	// If a redirect were followed, the delivery would succeed here (and the dead one would show a
	// connection error instead of the 302).
	internal := newHook(t)
	for _, location := range []string{internal.url(), "http://127.0.0.1:1/"} {
		redirector := newHook(t)
		redirector.setRespond(func(w http.ResponseWriter, _ *http.Request) int {
			w.Header().Set("Location", location)
			return http.StatusFound
		})
		id, _ := b.newEndpoint(c.Token, redirector.url())
		evt := b.sendTestEvent(c.Token, id)
		ds := b.deliveriesReach(c.Token, "endpoint_id="+id, "the redirect is retried", func(ds []apiDelivery) bool {
			return len(ds) == 1 && len(ds[0].Attempts) >= 3
		})
		d := ds[0]
		require.Equal(t, evt, d.EventID)
		require.Equal(t, dPending, d.Status, "a redirect is a failed attempt, to be retried")
		require.NotNil(t, d.NextAttemptTime)
		require.Nil(t, d.DeliveredTime)
		for _, a := range d.Attempts {
			require.Equal(t, http.StatusFound, a.StatusCode, "%s: %+v", location, a)
			require.Contains(t, a.Error, "302")
		}
		for _, x := range redirector.all() {
			require.Equal(t, evt, x.WebhookID)
		}
	}
	require.Empty(t, internal.all(), "the redirect target was never requested")
}

// ---- 6. the retry window, and redelivery

func TestWebhookFailedDeliveriesAreVisibleAndRedeliverable(t *testing.T) {
	t.Parallel()
	b := setupWebhook(t, func(c *webhook.Config) { c.RetryWindow = time.Second })
	c := b.newClient("acme")
	var healthy atomic.Bool
	h := newHook(t)
	h.setRespond(func(http.ResponseWriter, *http.Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	endpoint, secret := b.newEndpoint(c.Token, h.url())
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")

	t0 := time.Now()
	b.makeConsents(c.Token, user, in.GetId(), 2)
	early := eventIDs(b.logSettled(c.ID))
	require.Len(t, early, 2)
	b.deliveriesReach(c.Token, "endpoint_id="+endpoint, "the first deliveries exist", func(ds []apiDelivery) bool { return len(ds) == 2 })
	t1 := time.Now()
	b.makeConsents(c.Token, user, in.GetId(), 2)
	all := eventIDs(b.logSettled(c.ID))
	require.Len(t, all, 4)
	late := all[2:]

	// Past the retry window, every delivery is FAILED, and says why.
	failed := b.deliveriesReach(c.Token, "endpoint_id="+endpoint+"&status=DELIVERY_STATUS_FAILED", "every delivery fails", func(ds []apiDelivery) bool {
		return len(ds) == 4
	})
	for _, d := range failed {
		require.Equal(t, dFailed, d.Status)
		require.Nil(t, d.NextAttemptTime, "a failed delivery is not retried: %s", d.ID)
		require.Nil(t, d.DeliveredTime)
		require.NotEmpty(t, d.Attempts, d.ID)
		require.Equal(t, d.AttemptCount, d.Attempts[0].Number)
		// It was not given up early: its next retry would have come after the window.
		require.Greater(t, d.Attempts[0].Time.Add(b.cfg.Webhook.RetryMax), d.CreateTime.Add(b.cfg.Webhook.RetryWindow), "%+v", d)
		for _, a := range d.Attempts {
			require.Equal(t, http.StatusInternalServerError, a.StatusCode)
			require.Contains(t, a.Error, "500")
		}
	}
	require.Empty(t, okCounts(h.all()))
	// The events themselves stay in the log.
	for _, id := range all {
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/events/"+id, c.Token, nil).Status)
	}

	healthy.Store(true)
	before := byEvent(failed)

	// One event, redelivered by hand.
	r := b.do(http.MethodPost, "/v1/events/"+early[0]+":redeliver", c.Token, map[string]any{})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	var redelivered struct {
		Deliveries []apiDelivery `json:"deliveries"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &redelivered))
	require.Len(t, redelivered.Deliveries, 1)
	require.Equal(t, endpoint, redelivered.Deliveries[0].EndpointID)
	require.Equal(t, dPending, redelivered.Deliveries[0].Status)
	h.waitForEvents("the redelivered event arrives", early[0])
	d := b.deliveriesReach(c.Token, "event_id="+early[0], "the redelivery is DELIVERED", func(ds []apiDelivery) bool {
		return len(ds) == 1 && ds[0].Status == dDelivered
	})[0]
	require.Equal(t, before[early[0]].AttemptCount+1, d.AttemptCount, "the earlier attempts are kept")
	require.Equal(t, http.StatusOK, d.Attempts[0].StatusCode)
	require.Equal(t, http.StatusInternalServerError, d.Attempts[1].StatusCode)

	// The failures since t1: the later two only.
	r = b.do(http.MethodPost, "/v1/webhook-endpoints/"+endpoint+":redeliverFailed", c.Token, map[string]any{"since": t1.UTC().Format(time.RFC3339Nano)})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "2", fmt.Sprint(r.JSON["count"]), r.Raw)
	h.waitForEvents("the failures since t1 arrive", late...)
	require.Equal(t, dFailed, byEvent(b.listDeliveries(c.Token, "endpoint_id="+endpoint))[early[1]].Status, "older failures stay FAILED")
	require.Zero(t, okCounts(h.all())[early[1]])

	// Then the rest.
	r = b.do(http.MethodPost, "/v1/webhook-endpoints/"+endpoint+":redeliverFailed", c.Token, map[string]any{"since": t0.UTC().Format(time.RFC3339Nano)})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "1", fmt.Sprint(r.JSON["count"]), r.Raw)
	got := h.waitForEvents("every event arrives", all...)
	b.deliveriesReach(c.Token, "endpoint_id="+endpoint, "every delivery is DELIVERED", func(ds []apiDelivery) bool {
		for _, d := range ds {
			if d.Status != dDelivered {
				return false
			}
		}
		return len(ds) == 4
	})
	for _, x := range got {
		require.True(t, verifies(t, x, secret))
	}
	for id, n := range okCounts(got) {
		require.Equal(t, 1, n, "%s arrived once", id)
	}
	r = b.do(http.MethodPost, "/v1/webhook-endpoints/"+endpoint+":redeliverFailed", c.Token, map[string]any{"since": t0.UTC().Format(time.RFC3339Nano)})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, []string{"<nil>", "0"}, fmt.Sprint(r.JSON["count"]), "nothing left to redeliver: %s", r.Raw)
}

// An endpoint that was broken is disabled (its pending deliveries fail), fixed, enabled again, and
// its failures asked for again: they come at once, not when the retries they had scheduled before
// the endpoint was disabled would have come.
func TestWebhookRedeliveryAfterReEnablingIsImmediate(t *testing.T) {
	t.Parallel()
	b := setupWebhook(t, func(c *webhook.Config) { c.RetryBase, c.RetryMax = time.Minute, time.Minute })
	c := b.newClient("acme")
	var fixed atomic.Bool
	h := newHook(t)
	h.setRespond(func(http.ResponseWriter, *http.Request) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	id, _ := b.newEndpoint(c.Token, h.url())
	one, two := b.sendTestEvent(c.Token, id), b.sendTestEvent(c.Token, id)
	b.deliveriesReach(c.Token, "endpoint_id="+id, "both deliveries failed once and wait for their retry", func(ds []apiDelivery) bool {
		for _, d := range ds {
			if d.AttemptCount != 1 || d.NextAttemptTime == nil {
				return false
			}
		}
		return len(ds) == 2
	})

	r := b.do(http.MethodPatch, "/v1/webhook-endpoints/"+id, c.Token, map[string]any{"enabled": false})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	for _, d := range b.listDeliveries(c.Token, "endpoint_id="+id) {
		require.Equal(t, dFailed, d.Status)
	}
	fixed.Store(true)
	r = b.do(http.MethodPatch, "/v1/webhook-endpoints/"+id, c.Token, map[string]any{"enabled": true})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)

	r = b.do(http.MethodPost, "/v1/events/"+one+":redeliver", c.Token, map[string]any{})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, dPending)
	r = b.do(http.MethodPost, "/v1/webhook-endpoints/"+id+":redeliverFailed", c.Token,
		map[string]any{"since": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "1", fmt.Sprint(r.JSON["count"]), r.Raw)

	suitetest.WaitUntil(t, 10*time.Second, "the redelivered events arrive promptly (their old retries were a minute away)", func() (bool, string) {
		got := h.all()
		ds, _ := json.Marshal(b.listDeliveries(c.Token, "endpoint_id="+id))
		return hasAll(got, []string{one, two}), summarize(got) + "; deliveries: " + string(ds)
	})
}

// ---- 7. endpoint management

func TestWebhookEndpointManagement(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newClient("acme")

	everything := newHook(t)
	epAll, _ := b.newEndpoint(c.Token, everything.url())
	consents := newHook(t)
	epConsents, _ := b.newEndpoint(c.Token, consents.url(), "consent.*")
	toDisable := newHook(t)
	toDisable.setRespond(answer(http.StatusServiceUnavailable))
	epDisable, _ := b.newEndpoint(c.Token, toDisable.url())
	toDelete := newHook(t)
	toDelete.setRespond(answer(http.StatusServiceUnavailable))
	epDelete, _ := b.newEndpoint(c.Token, toDelete.url())

	// A link with a consent: connection.* and consent.* events.
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	cns := b.newConsent(c.Token, user, in.GetId())
	resp, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: in.GetId(), ConsentId: cns.GetId(), Credentials: map[string]string{"username": "user_good", "password": "pass_good"},
	})
	require.NoError(t, err)
	b.watchUntil(c.Token, resp.GetConnection().GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
	events := b.logSettled(c.ID)
	var consentEvents []string
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
		if strings.HasPrefix(e.Type, "consent.") {
			consentEvents = append(consentEvents, e.ID)
		}
	}
	require.Contains(t, types, "connection.status_changed")
	require.Contains(t, types, "consent.created")
	require.Contains(t, types, "consent.status_changed")

	// The filter: consent.* only.
	everything.waitForEvents("the unfiltered endpoint gets every event", eventIDs(events)...)
	got := consents.waitForEvents("the consent.* endpoint gets the consent events", consentEvents...)
	for _, x := range got {
		require.True(t, strings.HasPrefix(x.Type, "consent."), "consent.* received %s", x.Type)
	}
	require.Len(t, okCounts(got), len(consentEvents))
	require.Len(t, b.listDeliveries(c.Token, "endpoint_id="+epConsents), len(consentEvents), "no delivery is made for a filtered-out event")

	// Disabling stops deliveries: the pending ones end FAILED, new events make none.
	waitPending := func(endpoint string) {
		b.deliveriesReach(c.Token, "endpoint_id="+endpoint, "the 503 endpoint's deliveries are pending", func(ds []apiDelivery) bool {
			for _, d := range ds {
				if d.Status != dPending || d.AttemptCount == 0 {
					return false
				}
			}
			return len(ds) == len(events)
		})
	}
	waitPending(epDisable)
	waitPending(epDelete)
	r := b.do(http.MethodPatch, "/v1/webhook-endpoints/"+epDisable, c.Token, map[string]any{"enabled": false})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NotEqual(t, true, r.JSON["endpoint"].(map[string]any)["enabled"], r.Raw)
	disabledAt := map[string]int{}
	for _, d := range b.listDeliveries(c.Token, "endpoint_id="+epDisable) {
		require.Equal(t, dFailed, d.Status, "a disabled endpoint's pending deliveries fail: %s", d.ID)
		disabledAt[d.ID] = d.AttemptCount
	}
	r = b.do(http.MethodPost, "/v1/webhook-endpoints/"+epDisable+":test", c.Token, map[string]any{})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Contains(t, r.Raw, "ENDPOINT_DISABLED")

	// Deleting: gone from the API, its pending deliveries FAILED.
	r = b.do(http.MethodDelete, "/v1/webhook-endpoints/"+epDelete, c.Token, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/webhook-endpoints/"+epDelete, c.Token, nil).Status)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodDelete, "/v1/webhook-endpoints/"+epDelete, c.Token, nil).Status)
	for _, d := range b.listDeliveries(c.Token, "endpoint_id="+epDelete) {
		require.Equal(t, dFailed, d.Status, "a deleted endpoint's pending deliveries fail: %s", d.ID)
	}
	list := b.do(http.MethodGet, "/v1/webhook-endpoints", c.Token, nil)
	require.Len(t, list.JSON["endpoints"], 3, list.Raw)
	require.NotContains(t, list.Raw, epDelete)

	// A new event goes to the enabled endpoints only.
	toDisable.setRespond(nil)
	toDelete.setRespond(nil)
	later := b.newConsent(c.Token, user, in.GetId())
	var fresh string
	for _, e := range b.logSettled(c.ID) {
		if e.FlowID == later.GetId() {
			fresh = e.ID
		}
	}
	require.NotEmpty(t, fresh)
	everything.waitForEvents("the new event reaches the enabled endpoints", fresh)
	consents.waitForEvents("the new event reaches the enabled endpoints", fresh)
	var to []string
	for _, d := range b.listDeliveries(c.Token, "event_id="+fresh) {
		to = append(to, d.EndpointID)
	}
	require.ElementsMatch(t, []string{epAll, epConsents}, to, "no delivery to a disabled or deleted endpoint")
	for _, d := range b.listDeliveries(c.Token, "endpoint_id="+epDisable) {
		require.Equal(t, dFailed, d.Status)
		require.Equal(t, disabledAt[d.ID], d.AttemptCount, "no attempt after disabling: %s", d.ID)
	}
	for _, h := range []*hook{toDisable, toDelete} {
		require.Empty(t, okCounts(h.all()), "nothing was delivered to a disabled or deleted endpoint")
		for _, x := range h.all() {
			require.NotEqual(t, fresh, x.WebhookID)
		}
	}

	// A test event goes to its endpoint only, whatever the endpoint's filter.
	for _, tc := range []struct {
		id string
		h  *hook
	}{{epAll, everything}, {epConsents, consents}} {
		evt := b.sendTestEvent(c.Token, tc.id)
		got := tc.h.waitForEvents("the test event arrives", evt)
		for _, x := range got {
			if x.WebhookID == evt {
				require.Equal(t, "webhook.test", x.Type)
				require.Equal(t, tc.id, x.Data["endpoint_id"])
			}
		}
		ds := b.listDeliveries(c.Token, "event_id="+evt)
		require.Len(t, ds, 1, "a test event is delivered to its endpoint only")
		require.Equal(t, tc.id, ds[0].EndpointID)
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/events/"+evt, c.Token, nil).Status, "the test event is in the log")
	}

	// Creating twice with one request_id: the same endpoint and secret; another URL is refused.
	create := func(url string) response {
		return b.do(http.MethodPost, "/v1/webhook-endpoints", c.Token, map[string]any{
			"url": url, "event_types": []string{"connection.*"}, "request_id": "req-42",
		})
	}
	first, again := create(everything.url()+"/idem"), create(everything.url()+"/idem")
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.Equal(t, str(first.JSON, "endpoint", "id"), str(again.JSON, "endpoint", "id"))
	require.Equal(t, str(first.JSON, "secret"), str(again.JSON, "secret"))
	other := create(everything.url() + "/elsewhere")
	require.Equal(t, http.StatusBadRequest, other.Status, other.Raw)
	require.Equal(t, []string{"request_id"}, fieldViolations(t, other), other.Raw)
	require.True(t, strings.HasPrefix(str(other.JSON, "message"), "request_id"), other.Raw)
	require.Len(t, b.do(http.MethodGet, "/v1/webhook-endpoints", c.Token, nil).JSON["endpoints"], 4)
}

// ---- 8. tenants

func TestWebhookTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.newClient("acme")
	o := b.newClient("other")
	ha := newHook(t)
	ho := newHook(t)
	createA := b.do(http.MethodPost, "/v1/webhook-endpoints", a.Token, map[string]any{"url": ha.url(), "request_id": "shared"})
	require.Equal(t, http.StatusOK, createA.Status, createA.Raw)
	epA, secretA := str(createA.JSON, "endpoint", "id"), str(createA.JSON, "secret")
	createO := b.do(http.MethodPost, "/v1/webhook-endpoints", o.Token, map[string]any{"url": ho.url(), "request_id": "shared"})
	require.Equal(t, http.StatusOK, createO.Status, createO.Raw)
	epO := str(createO.JSON, "endpoint", "id")
	require.NotEqual(t, epA, epO, "a request_id is the client's own")
	require.NotEqual(t, secretA, str(createO.JSON, "secret"))

	user := b.newUser(a, "u-1")
	in := b.sandboxInstitution(a.Token, "CL")
	cns := b.newConsent(a.Token, user, in.GetId())
	events := eventIDs(b.logSettled(a.ID))
	require.Len(t, events, 1)
	evt := events[0]
	ha.waitForEvents("A's event reaches A", evt)
	evtO := b.sendTestEvent(o.Token, epO)
	ho.waitForEvents("O's test event reaches O", evtO)

	// O cannot touch A's endpoint.
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/webhook-endpoints/" + epA, nil},
		{http.MethodPatch, "/v1/webhook-endpoints/" + epA, map[string]any{"enabled": false}},
		{http.MethodPatch, "/v1/webhook-endpoints/" + epA, map[string]any{"url": ho.url()}},
		{http.MethodPost, "/v1/webhook-endpoints/" + epA + ":rotateSecret", map[string]any{"overlap_seconds": 0}},
		{http.MethodPost, "/v1/webhook-endpoints/" + epA + ":test", map[string]any{}},
		{http.MethodPost, "/v1/webhook-endpoints/" + epA + ":redeliverFailed", map[string]any{"since": since}},
		{http.MethodDelete, "/v1/webhook-endpoints/" + epA, nil},
		// nor see A's events, or send them anywhere
		{http.MethodGet, "/v1/events/" + evt, nil},
		{http.MethodPost, "/v1/events/" + evt + ":redeliver", map[string]any{}},
		{http.MethodPost, "/v1/events/" + evt + ":redeliver", map[string]any{"endpoint_id": epO}},
		// nor send its own events to A's endpoint
		{http.MethodPost, "/v1/events/" + evtO + ":redeliver", map[string]any{"endpoint_id": epA}},
	} {
		r := b.do(req.method, req.path, o.Token, req.body)
		require.Equal(t, http.StatusNotFound, r.Status, "%s %s: %s", req.method, req.path, r.Raw)
		require.NotContains(t, r.Raw, ha.url())
	}
	for _, path := range []string{
		"/v1/events", "/v1/events?flow_id=" + cns.GetId(), "/v1/events?types=consent.*",
		"/v1/deliveries", "/v1/deliveries?event_id=" + evt, "/v1/deliveries?endpoint_id=" + epA,
	} {
		r := b.do(http.MethodGet, path, o.Token, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", path, r.Raw)
		require.NotContains(t, r.Raw, evt, path)
		require.NotContains(t, r.Raw, epA, path)
	}
	for _, e := range b.do(http.MethodGet, "/v1/events", o.Token, nil).JSON["events"].([]any) {
		require.Equal(t, evtO, e.(map[string]any)["id"], "O's feed holds its own test event, none of A's")
	}
	require.Empty(t, b.do(http.MethodGet, "/v1/deliveries?endpoint_id="+epA, o.Token, nil).JSON["deliveries"])
	list := b.do(http.MethodGet, "/v1/webhook-endpoints", o.Token, nil)
	require.Len(t, list.JSON["endpoints"], 1, list.Raw)
	require.Equal(t, epO, list.JSON["endpoints"].([]any)[0].(map[string]any)["id"])

	// A's endpoint is as it was: enabled, same URL, same secret alone, and it still gets A's events.
	got := b.do(http.MethodGet, "/v1/webhook-endpoints/"+epA, a.Token, nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, true, got.JSON["endpoint"].(map[string]any)["enabled"], got.Raw)
	require.Equal(t, ha.url(), str(got.JSON, "endpoint", "url"))
	require.Nil(t, got.JSON["endpoint"].(map[string]any)["previous_secret_expire_time"], "no rotation happened")
	evtA := b.sendTestEvent(a.Token, epA)
	for _, x := range ha.waitForEvents("A's test event reaches A", evtA) {
		require.True(t, verifies(t, x, secretA))
		p, s := signatureCount(x)
		require.Equal(t, [2]int{1, 1}, [2]int{p, s})
	}
	ds := b.listDeliveries(a.Token, "event_id="+evt)
	require.Len(t, ds, 1)
	require.Equal(t, dDelivered, ds[0].Status)
	require.Equal(t, 1, ds[0].AttemptCount, "O redelivered nothing of A's")
	for _, x := range ho.all() {
		require.Equal(t, evtO, x.WebhookID, "O's receiver got nothing of A's")
	}
	for _, x := range ha.all() {
		require.Contains(t, []string{evt, evtA}, x.WebhookID, "A's receiver got nothing of O's")
	}
}
