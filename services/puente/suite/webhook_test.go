package suite_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
)

// receiver is an integrator's webhook endpoint: it checks both signatures with its own HMAC code,
// the way the README tells integrators to, and keeps what arrives.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	keys   [][]byte // any of them may sign
	got    []delivered
	answer func(n int) int // status to answer the n-th request (1-based); nil: 200
	notify chan struct{}
}

type delivered struct {
	ID, Type, FlowID string
	Data             map[string]any
	Header           http.Header
	// SignedBy lists, for each key, whether both schemes verified with it.
	SignedBy []bool
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t, notify: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = nil
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		require.NoError(r.t, err)
		r.keys = append(r.keys, key)
	}
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	n := len(r.got) + 1
	status := http.StatusOK
	if r.answer != nil {
		status = r.answer(n)
	}
	if status == http.StatusOK {
		var env struct {
			ID     string         `json:"id"`
			Type   string         `json:"type"`
			FlowID string         `json:"flow_id"`
			Data   map[string]any `json:"data"`
		}
		require.NoError(r.t, json.Unmarshal(body, &env))
		d := delivered{ID: env.ID, Type: env.Type, FlowID: env.FlowID, Data: env.Data, Header: req.Header.Clone()}
		for _, k := range r.keys {
			d.SignedBy = append(d.SignedBy, verifyPuente(req.Header, body, k) && verifyStandard(req.Header, body, k))
		}
		r.got = append(r.got, d)
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(status)
}

func (r *receiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// waitFor waits until cond holds for what arrived.
func (r *receiver) waitFor(msg string, cond func([]delivered) bool) []delivered {
	r.t.Helper()
	var got []delivered
	require.Eventually(r.t, func() bool { got = r.deliveries(); return cond(got) }, 20*time.Second, 20*time.Millisecond, msg)
	return got
}

// verifyPuente checks Puente-Signature: t=<ts>,v1=<hex HMAC-SHA256(key, "<ts>.<body>")>...
func verifyPuente(h http.Header, body, key []byte) bool {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(h.Get("Puente-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// verifyStandard checks the Standard Webhooks headers.
func verifyStandard(h http.Header, body, key []byte) bool {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for s := range strings.SplitSeq(h.Get("webhook-signature"), " ") {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func (b *bundle) newEndpoint(token, url string, types ...string) (id, secret string) {
	b.t.Helper()
	r := b.do(http.MethodPost, "/v1/webhook-endpoints", token, map[string]any{"url": url, "event_types": types})
	require.Equal(b.t, http.StatusOK, r.Status, r.Raw)
	return str(r.JSON, "endpoint", "id"), str(r.JSON, "secret")
}

func TestEventsOfALinkReachTheClientsEndpointSignedBothWays(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	rcv := newReceiver(t)
	id, secret := b.newEndpoint(c.Token, rcv.srv.URL+"/hooks")
	require.Regexp(t, `^whe_`, id)
	require.Regexp(t, `^whsec_`, secret)
	rcv.setSecret(secret)
	require.NotContains(t, b.do(http.MethodGet, "/v1/webhook-endpoints/"+id, c.Token, nil).Raw, secret, "the secret is shown once")

	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	cns := b.newConsent(c.Token, user, in.GetId())
	resp, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: in.GetId(), ConsentId: cns.GetId(), Credentials: map[string]string{"username": "user_good", "password": "pass_good"},
	})
	require.NoError(t, err)
	con := resp.GetConnection()
	b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)

	got := rcv.waitFor("the connection's and the consent's events arrive", func(ds []delivered) bool {
		var succeeded, authorised bool
		for _, d := range ds {
			succeeded = succeeded || (d.FlowID == con.GetId() && d.Data["status"] == "SUCCEEDED")
			authorised = authorised || (d.FlowID == cns.GetId() && d.Data["status"] == "AUTHORISED")
		}
		return succeeded && authorised
	})
	seen := map[string]bool{}
	for _, d := range got {
		require.Equal(t, []bool{true}, d.SignedBy, "both signatures verify with the endpoint's secret: %s", d.ID)
		require.Equal(t, d.ID, d.Header.Get("webhook-id"))
		require.False(t, seen[d.ID], "no event arrives twice here: %s", d.ID)
		seen[d.ID] = true
	}

	// The feed has them too, in order, and a cursor picks up after the last one.
	feed := b.do(http.MethodGet, "/v1/events?flow_id="+con.GetId(), c.Token, nil)
	require.Equal(t, http.StatusOK, feed.Status, feed.Raw)
	events := feed.JSON["events"].([]any)
	require.NotEmpty(t, events)
	var statuses []string
	for _, e := range events {
		statuses = append(statuses, e.(map[string]any)["data"].(map[string]any)["status"].(string))
	}
	require.Equal(t, "PENDING", statuses[0])
	require.Equal(t, "SUCCEEDED", statuses[len(statuses)-1])
	next := b.do(http.MethodGet, "/v1/events?flow_id="+con.GetId()+"&cursor="+str(feed.JSON, "next_cursor"), c.Token, nil)
	require.Empty(t, next.JSON["events"])
	require.Equal(t, str(feed.JSON, "next_cursor"), str(next.JSON, "next_cursor"), "an empty page keeps the cursor")

	// Another client sees none of it.
	other := b.newClient("other")
	require.Empty(t, b.do(http.MethodGet, "/v1/events", other.Token, nil).JSON["events"])
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/webhook-endpoints/"+id, other.Token, nil).Status)
	evt := events[0].(map[string]any)["id"].(string)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/events/"+evt, other.Token, nil).Status)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodPost, "/v1/events/"+evt+":redeliver", other.Token, map[string]any{}).Status)
	require.Empty(t, b.do(http.MethodGet, "/v1/deliveries?event_id="+evt, other.Token, nil).JSON["deliveries"])
}

func TestInboundWebhooksAreVerifiedRecordedOnceAndRouted(t *testing.T) {
	b := setup(t)
	key, err := base64.StdEncoding.DecodeString(b.cfg.Webhook.SandboxWebhookSecret)
	require.NoError(t, err)
	post := func(id string, at time.Time, body string, key []byte) response {
		ts := strconv.FormatInt(at.Unix(), 10)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "." + body))
		return b.do(http.MethodPost, "/v1/inbound/sandbox", "", body,
			"Sandbox-Webhook-Id", id, "Sandbox-Timestamp", ts, "Sandbox-Event", "login.finished", "Sandbox-Signature", hex.EncodeToString(m.Sum(nil)))
	}
	body := `{"login":"l-1","status":"done"}`
	ok := post("wh_1", time.Now(), body, key)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	id := str(ok.JSON, "id")
	require.Regexp(t, `^inb_`, id)

	replay := post("wh_1", time.Now(), body, key)
	require.Equal(t, http.StatusConflict, replay.Status, "a replay is refused: %s", replay.Raw)
	require.Contains(t, replay.Raw, "DUPLICATE_WEBHOOK")
	stale := post("wh_2", time.Now().Add(-10*time.Minute), body, key)
	require.Equal(t, http.StatusUnauthorized, stale.Status, stale.Raw)
	require.Contains(t, stale.Raw, "STALE_TIMESTAMP")
	forged := post("wh_3", time.Now(), body, []byte("not the key"))
	require.Equal(t, http.StatusUnauthorized, forged.Status, forged.Raw)
	require.Contains(t, forged.Raw, "INVALID_SIGNATURE")
	require.Equal(t, http.StatusNotFound, b.do(http.MethodPost, "/v1/inbound/nobody", "", body).Status)

	var count int
	b.scan(`SELECT count(*) FROM webhook.inbound_webhooks`, nil, &count)
	require.Equal(t, 1, count, "only the good one is recorded, once")
	require.Eventually(t, func() bool {
		var routed bool
		b.scan(`SELECT routed_at IS NOT NULL FROM webhook.inbound_webhooks WHERE id = $1`, []any{id}, &routed)
		return routed
	}, 10*time.Second, 20*time.Millisecond, "the recorded webhook is routed in the background")
}

func TestAReceiverAnsweringBinaryIsRecordedAndDelivered(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\x00\xff\xfe done"))
	}))
	t.Cleanup(srv.Close)
	id, _ := b.newEndpoint(c.Token, srv.URL)
	r := b.do(http.MethodPost, "/v1/webhook-endpoints/"+id+":test", c.Token, map[string]any{})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	evt := str(r.JSON, "event", "id")
	require.Eventually(t, func() bool {
		ds := b.do(http.MethodGet, "/v1/deliveries?event_id="+evt, c.Token, nil).JSON["deliveries"]
		list, _ := ds.([]any)
		return len(list) == 1 && list[0].(map[string]any)["status"] == "DELIVERY_STATUS_DELIVERED"
	}, 10*time.Second, 20*time.Millisecond, "an answer Postgres cannot store as text is cleaned, not a reason to post again")
	ds := b.do(http.MethodGet, "/v1/deliveries?event_id="+evt, c.Token, nil).JSON["deliveries"].([]any)
	attempts := ds[0].(map[string]any)["attempts"].([]any)
	require.Len(t, attempts, 1, "posted once")
	require.Equal(t, "ok\uFFFD\uFFFD done", attempts[0].(map[string]any)["response_body"])
}
