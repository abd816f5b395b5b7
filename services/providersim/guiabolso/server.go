// Package guiabolso simulates Guiabolso Connect: the events-protocol API (partner and user
// routes, answering events named "<name>:response" or "<name>:<errorType>", HTTP 200 either
// way), the hosted Connect page that hands back an oauthcode, the token exchange and refresh,
// users' accounts and transactions, and wallet monitoring: a sync request answered with a
// synchronizationId, then one signed webhook per user, sent by a worker with retries.
package guiabolso

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"puente.dev/services/providersim"
)

// Routes and the page, as the API names them.
const (
	PartnerRoute = "/partner/events/"
	UserRoute    = "/gbConnect/events/"
	ConnectPath  = "/integracao"
)

// Token lifetimes.
const (
	CodeTTL    = 60 * time.Minute
	AccessTTL  = 30 * time.Minute
	RefreshTTL = 30 * 24 * time.Hour
)

// MaxSyncBatch is the most userTrackingIds one sync request takes.
const MaxSyncBatch = 5000

// Options configure a simulator.
type Options struct {
	// ClientID and ClientSecret are the API key pair it accepts.
	ClientID, ClientSecret string
	// WebhookURL is where wallet-monitoring webhooks go (SetWebhookURL changes it); empty: none
	// are sent. WebhookSecret signs them.
	WebhookURL    string
	WebhookSecret []byte
	// CanonicalHex signs with the 64-character hex instead of Java's BigInteger rendering;
	// LiteralHeader sends the header named HTTP_X_GBC_SIGNATURE_256 instead of X-GBC-Signature-256.
	CanonicalHex  bool
	LiteralHeader bool
	// ErrorStatus answers error events with a 4xx/5xx instead of 200.
	ErrorStatus bool
	// WebhookTries bounds deliveries of one webhook (default 3); RetryDelay waits between them.
	WebhookTries int
	RetryDelay   time.Duration
	// Users are known from the start, by userTrackingId (a "development" user is added).
	Users map[string]User
	// Now is the clock (time.Now when nil); Advance moves it on.
	Now func() time.Time
	// HTTPClient sends the webhooks (http.DefaultClient's transport with a 10 s timeout when nil).
	HTTPClient *http.Client
}

// Fault is a failure a route or an event answers with.
type Fault int

const (
	NoFault    Fault = iota
	Garbage          // a body that is not JSON
	WrongShape       // JSON that is not an event
	Hang             // no answer until the client gives up
	Drop             // the connection is closed without an answer
)

// Server is the simulator, an http.Handler.
type Server struct {
	o      Options
	mux    *http.ServeMux
	key    []byte
	done   chan struct{}
	closer sync.Once

	mu         sync.Mutex
	offset     time.Duration
	users      map[string]User
	codes      map[string]*grant
	access     map[string]*grant
	refresh    map[string]*grant
	faults     map[string]Fault
	webhookURL string
	queue      []delivery
	wake       chan struct{}
	pending    int
	idle       []chan struct{}
	deliveries []Delivery
	syncs      map[string][]string
}

type grant struct {
	user    string
	expires time.Time
	used    bool
}

type delivery struct {
	body []byte
	name string
	user string
}

// Delivery is a webhook the simulator sent, and how it went.
type Delivery struct {
	Name           string
	UserTrackingID string
	Body           []byte
	Header         http.Header // of the last attempt
	Attempts       int
	Status         int // the last answer's status, 0 when none came
}

// New returns a simulator; Close stops its webhook worker.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WebhookTries <= 0 {
		o.WebhookTries = 3
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		o: o, mux: http.NewServeMux(), key: make([]byte, 32), done: make(chan struct{}),
		users: map[string]User{}, codes: map[string]*grant{}, access: map[string]*grant{}, refresh: map[string]*grant{},
		faults: map[string]Fault{}, webhookURL: o.WebhookURL, wake: make(chan struct{}, 1), syncs: map[string][]string{},
	}
	rand.Read(s.key)
	for id, u := range o.Users {
		s.users[id] = u
	}
	if _, ok := s.users["development"]; !ok {
		s.users["development"] = generate("development", ProfileDefault, s.now())
	}
	s.mux.HandleFunc("POST "+PartnerRoute, s.events(false))
	s.mux.HandleFunc("POST "+UserRoute, s.events(true))
	s.mux.HandleFunc(ConnectPath, s.connect)
	for range 4 {
		go s.worker()
	}
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the webhook workers and releases hanging requests.
func (s *Server) Close() { s.closer.Do(func() { close(s.done) }) }

func (s *Server) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Now().Add(s.offset)
}

// Advance moves the simulator's clock on (codes and tokens expire; webhooks are signed later).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// Fault makes an event name (or a route path, or a page path) answer with f; NoFault clears it.
func (s *Server) Fault(nameOrPath string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == NoFault {
		delete(s.faults, nameOrPath)
		return
	}
	s.faults[nameOrPath] = f
}

// SetUser adds or replaces a user.
func (s *Server) SetUser(userTrackingID string, u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[userTrackingID] = u
}

// Forget drops a user: wallet monitoring then answers "notFound" for it.
func (s *Server) Forget(userTrackingID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, userTrackingID)
}

// User returns a user's data.
func (s *Server) User(userTrackingID string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userTrackingID]
	return u, ok
}

// SetWebhookURL changes where webhooks go.
func (s *Server) SetWebhookURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL = u
}

// SignatureHeader is the header name and value the simulator would sign body with now.
func (s *Server) SignatureHeader(body []byte) (string, string) {
	name := "X-GBC-Signature-256"
	if s.o.LiteralHeader {
		name = "HTTP_X_GBC_SIGNATURE_256"
	}
	return name, Signature(s.o.WebhookSecret, s.now().UnixMilli(), body, s.o.CanonicalHex)
}

// Synchronization returns the userTrackingIds a synchronization was asked for.
func (s *Server) Synchronization(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.syncs[id]...)
}

// ---- the events API

type envelope struct {
	Name     string          `json:"name"`
	Version  int             `json:"version"`
	ID       string          `json:"id"`
	FlowID   string          `json:"flowId"`
	Payload  json.RawMessage `json:"payload"`
	Identity struct {
		ClientID string `json:"clientId"`
	} `json:"identity"`
	Auth struct {
		ClientSecret string `json:"clientSecret"`
		AccessToken  string `json:"accessToken"`
	} `json:"auth"`
}

// answer is a response event.
type answer struct {
	name    string
	payload any
	status  int // for ErrorStatus
}

func ok(name string, payload any) answer { return answer{name: name + ":response", payload: payload} }

func fail(name, errType, code string, status int) answer {
	return answer{name: name + ":" + errType, payload: map[string]any{"code": code, "parameters": map[string]any{}}, status: status}
}

func (s *Server) fault(keys ...string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if f, ok := s.faults[k]; ok {
			return f
		}
	}
	return NoFault
}

// inject answers with f; false when f is NoFault.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f {
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("<html>upstream proxy error</html>"))
	case WrongShape:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"result":[1,2,3]}`))
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	case Drop:
		providersim.Drop(w)
	default:
		return false
	}
	return true
}

func (s *Server) events(userRoute bool) http.HandlerFunc {
	route := PartnerRoute
	if userRoute {
		route = UserRoute
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var ev envelope
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
		if err := dec.Decode(&ev); err != nil || ev.Name == "" {
			s.write(w, envelope{ID: newUUID(), FlowID: newUUID()}, fail("event", "badProtocol", "INVALID_EVENT", http.StatusBadRequest))
			return
		}
		if s.inject(w, r, s.fault(ev.Name, route)) {
			return
		}
		if ev.Identity.ClientID != s.o.ClientID || !hmac.Equal([]byte(ev.Auth.ClientSecret), []byte(s.o.ClientSecret)) {
			s.write(w, ev, fail(ev.Name, "unauthorized", "INVALID_CREDENTIALS", http.StatusUnauthorized))
			return
		}
		var a answer
		switch {
		case !userRoute && ev.Name == "oauth:tokens:exchange":
			a = s.exchange(ev)
		case !userRoute && ev.Name == "oauth:refresh:token:exchange":
			a = s.refreshToken(ev)
		case !userRoute && ev.Name == "gbconnect:sync:accounts":
			a = s.syncAccounts(ev)
		case userRoute && (ev.Name == "gbconnect:user:accounts" || ev.Name == "gbconnect:user:transactions"):
			a = s.userData(ev)
		default:
			a = fail(ev.Name, "eventNotFound", "EVENT_NOT_FOUND", http.StatusNotFound)
		}
		s.write(w, ev, a)
	}
}

func (s *Server) write(w http.ResponseWriter, req envelope, a answer) {
	payload, _ := json.Marshal(a.payload)
	out := map[string]any{
		"name": a.name, "version": 1, "id": req.ID, "flowId": req.FlowID, "payload": json.RawMessage(payload),
		"identity": map[string]any{}, "auth": map[string]any{}, "metadata": map[string]any{},
	}
	w.Header().Set("Content-Type", "application/json")
	if a.status != 0 && s.o.ErrorStatus {
		w.WriteHeader(a.status)
	}
	json.NewEncoder(w).Encode(out)
}

// token issues a JWT-shaped token for user, valid for ttl, and keeps it in m.
func (s *Server) token(m map[string]*grant, typ, user string, ttl time.Duration, now time.Time) string {
	exp := now.Add(ttl)
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": user, "typ": typ, "exp": exp.Unix(), "jti": newUUID()})
	body := head + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(body))
	tok := body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	m[tok] = &grant{user: user, expires: exp}
	return tok
}

func (s *Server) exchange(ev envelope) answer {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(ev.Payload, &p) != nil || p.Code == "" {
		return fail(ev.Name, "badRequest", "MISSING_REQUIRED_PARAMETER", http.StatusBadRequest)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g, found := s.codes[p.Code]
	switch {
	case !found || g.used:
		return fail(ev.Name, "unauthorized", "INVALID_CODE", http.StatusUnauthorized)
	case now.After(g.expires):
		return fail(ev.Name, "expired", "EXPIRED_CODE", http.StatusUnauthorized)
	}
	g.used = true
	return ok(ev.Name, map[string]string{
		"accessToken":  s.token(s.access, "access", g.user, AccessTTL, now),
		"refreshToken": s.token(s.refresh, "refresh", g.user, RefreshTTL, now),
	})
}

func (s *Server) refreshToken(ev envelope) answer {
	var p struct {
		RefreshToken string `json:"refreshToken"`
	}
	if json.Unmarshal(ev.Payload, &p) != nil || p.RefreshToken == "" {
		return fail(ev.Name, "badRequest", "MISSING_REQUIRED_PARAMETER", http.StatusBadRequest)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g, found := s.refresh[p.RefreshToken]
	switch {
	case !found:
		return fail(ev.Name, "unauthorized", "INVALID_TOKEN", http.StatusUnauthorized)
	case now.After(g.expires):
		return fail(ev.Name, "expired", "EXPIRED_TOKEN", http.StatusUnauthorized)
	}
	return ok(ev.Name, map[string]string{"accessToken": s.token(s.access, "access", g.user, AccessTTL, now)})
}

func (s *Server) userData(ev envelope) answer {
	now := s.now()
	s.mu.Lock()
	g, found := s.access[ev.Auth.AccessToken]
	var u User
	var known bool
	if found {
		u, known = s.users[g.user]
	}
	s.mu.Unlock()
	switch {
	case !found:
		return fail(ev.Name, "unauthorized", "INVALID_TOKEN", http.StatusUnauthorized)
	case now.After(g.expires):
		return fail(ev.Name, "expired", "EXPIRED_TOKEN", http.StatusUnauthorized)
	case !known:
		return fail(ev.Name, "notFound", "USER_NOT_FOUND", http.StatusNotFound)
	}
	if ev.Name == "gbconnect:user:accounts" {
		accs := []map[string]any{}
		for _, a := range u.Accounts {
			accs = append(accs, map[string]any{"accountId": a.AccountID, "bacenCode": a.BacenCode, "name": a.Name, "balance": json.Number(a.Balance)})
		}
		return ok(ev.Name, map[string]any{"accounts": accs})
	}
	var p struct {
		AccountID *int64 `json:"accountId"`
	}
	_ = json.Unmarshal(ev.Payload, &p)
	txs := []map[string]any{}
	for _, t := range u.Transactions {
		if p.AccountID != nil && *p.AccountID != t.AccountID {
			continue
		}
		txs = append(txs, map[string]any{"id": t.ID, "accountId": t.AccountID, "date": t.Date, "description": t.Description, "amount": json.Number(t.Amount)})
	}
	return ok(ev.Name, map[string]any{"transactions": txs})
}

// ---- wallet monitoring

func (s *Server) syncAccounts(ev envelope) answer {
	var p struct {
		UserTrackingIDs []string `json:"userTrackingIds"`
		ProducerTag     string   `json:"producerTag"`
	}
	if json.Unmarshal(ev.Payload, &p) != nil || len(p.UserTrackingIDs) == 0 {
		return fail(ev.Name, "badRequest", "MISSING_REQUIRED_PARAMETER", http.StatusBadRequest)
	}
	if len(p.UserTrackingIDs) > MaxSyncBatch {
		return fail(ev.Name, "badRequest", "TOO_MANY_USER_TRACKING_IDS", http.StatusBadRequest)
	}
	if p.ProducerTag == "" {
		p.ProducerTag = "DEFAULT"
	}
	syncID := newUUID()
	s.mu.Lock()
	s.syncs[syncID] = append([]string(nil), p.UserTrackingIDs...)
	var batch []delivery
	if s.webhookURL != "" {
		for _, id := range p.UserTrackingIDs {
			payload := map[string]any{"synchronizationId": syncID, "producerTag": p.ProducerTag, "userTrackingId": id}
			name := "gbconnect:user:notFound"
			if u, known := s.users[id]; known {
				name = "gbconnect:user:sync:accounts:finished"
				accs := []map[string]any{}
				for _, a := range u.Accounts {
					st := "SUCCESS"
					if a.SyncError {
						st = "ERROR"
					}
					accs = append(accs, map[string]any{"accountId": a.AccountID, "bacenCode": a.BacenCode, "result": map[string]string{"status": st}})
				}
				payload["accounts"] = accs
			}
			body, _ := json.Marshal(map[string]any{
				"name": name, "version": 1, "id": newUUID(), "flowId": newUUID(), "payload": payload,
				"identity": map[string]any{}, "auth": map[string]any{}, "metadata": map[string]any{},
			})
			batch = append(batch, delivery{body: body, name: name, user: id})
		}
	}
	s.queue = append(s.queue, batch...)
	s.pending += len(batch)
	s.mu.Unlock()
	if len(batch) > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return ok(ev.Name, map[string]string{"synchronizationId": syncID})
}

// Idle returns a channel closed once every webhook queued so far was sent (or gave up).
func (s *Server) Idle() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.pending == 0 {
		close(ch)
		return ch
	}
	s.idle = append(s.idle, ch)
	return ch
}

// Deliveries returns the webhooks sent so far, in the order they finished.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

func (s *Server) worker() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-s.done:
				return
			case <-s.wake:
				continue
			}
		}
		d := s.queue[0]
		s.queue = s.queue[1:]
		more := len(s.queue) > 0
		s.mu.Unlock()
		if more { // let another worker take the next one
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		rec := s.send(d)
		s.mu.Lock()
		s.deliveries = append(s.deliveries, rec)
		s.pending--
		if s.pending == 0 {
			for _, ch := range s.idle {
				close(ch)
			}
			s.idle = nil
		}
		s.mu.Unlock()
	}
}

// send delivers one webhook, signed afresh on every attempt, up to WebhookTries times while the
// answer is not 2xx.
func (s *Server) send(d delivery) Delivery {
	rec := Delivery{Name: d.name, UserTrackingID: d.user, Body: d.body}
	for rec.Attempts < s.o.WebhookTries {
		if rec.Attempts > 0 && s.o.RetryDelay > 0 {
			select {
			case <-s.done:
				return rec
			case <-time.After(s.o.RetryDelay):
			}
		}
		rec.Attempts++
		s.mu.Lock()
		target := s.webhookURL
		s.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.done:
			case <-ctx.Done():
			}
			cancel()
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(d.body)))
		if err != nil {
			cancel()
			return rec
		}
		req.Header.Set("Content-Type", "application/json")
		name, value := s.SignatureHeader(d.body)
		req.Header[name] = []string{value} // as is: the literal name keeps its underscores
		rec.Header = req.Header.Clone()
		resp, err := s.o.HTTPClient.Do(req)
		cancel()
		if err != nil {
			rec.Status = 0
			continue
		}
		resp.Body.Close()
		rec.Status = resp.StatusCode
		if resp.StatusCode/100 == 2 {
			return rec
		}
	}
	return rec
}

// ---- the Connect page

// connect is the hosted Connect page: GET shows it; action=approve (the user shares their
// banks) sends the browser to callbackURL with code=<oauthcode>, action=quit to fallbackURL
// with error=user_cancel. profile picks the data of a user the simulator does not know yet.
func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, s.fault(ConnectPath)) {
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	clientID, user := r.Form.Get("clientId"), r.Form.Get("userTrackingId")
	callback, fallback := r.Form.Get("callbackURL"), r.Form.Get("fallbackURL")
	if clientID != s.o.ClientID || user == "" || callback == "" || fallback == "" {
		http.Error(w, "missing_params", http.StatusBadRequest)
		return
	}
	switch r.Form.Get("action") {
	case "approve":
		now := s.now()
		code := make([]byte, 24)
		rand.Read(code)
		oauthcode := base64.RawURLEncoding.EncodeToString(code)
		s.mu.Lock()
		if _, known := s.users[user]; !known {
			s.users[user] = generate(user, r.Form.Get("profile"), now)
		}
		s.codes[oauthcode] = &grant{user: user, expires: now.Add(CodeTTL)}
		s.mu.Unlock()
		http.Redirect(w, r, withQuery(callback, "code", oauthcode), http.StatusFound)
	case "quit":
		http.Redirect(w, r, withQuery(fallback, "error", "user_cancel"), http.StatusFound)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		q := html.EscapeString(r.URL.RawQuery)
		fmt.Fprintf(w, `<!doctype html><title>Guiabolso Connect (simulador)</title>
<h1>Guiabolso Connect</h1><p>Compartilhe seus dados bancários.</p>
<form method="post" action="%[1]s?%[2]s"><button name="action" value="approve">Compartilhar</button>
<button name="action" value="quit">Sair</button></form>`, ConnectPath, q)
	}
}

func withQuery(raw, k, v string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
