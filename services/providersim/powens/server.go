// Package powens simulates Powens' API (domain https://<domain>.biapi.pro/2.0) for Puente's
// tests: users with temporary and permanent tokens, the connector catalogue with sources and
// fields, connections that go through the documented states (wrongpass, SCARequired,
// additionalInformationNeeded, decoupled, ...), sources added one after the other, accounts that
// arrive disabled until activated, paged transactions, the /webauth redirect, signed
// CONNECTION_SYNCED webhooks, and injected faults. It speaks Powens' shapes and codes, not
// Puente's, and keeps all state in memory; nothing advances by the clock except token expiry.
package powens

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"puente.dev/services/providersim"
)

// Options configure a Server.
type Options struct {
	// ClientID and ClientSecret are the domain's client application (POST /auth/token/access,
	// /webauth's client_id).
	ClientID, ClientSecret string
	// WebhookURL receives CONNECTION_SYNCED, signed with WebhookSecret; empty: no webhooks.
	WebhookURL, WebhookSecret string
	// TemporaryTokenTTL is a temporary token's and a code's lifetime (default 30 minutes).
	TemporaryTokenTTL time.Duration
	// Transactions per account (default 25).
	Transactions int
	// Now is the clock (time.Now when nil); tests move it to expire temporary tokens.
	Now func() time.Time
}

// Fault is a failure injected on matching requests.
type Fault int

const (
	// NoFault answers normally.
	NoFault Fault = iota
	// Garbage answers 200 with a body that is not JSON.
	Garbage
	// WrongShape answers 200 with JSON of another shape.
	WrongShape
	// Hang never answers (until the client gives up).
	Hang
	// Drop closes the connection without an answer.
	Drop
)

type tokenKind string

const (
	temporary tokenKind = "temporary"
	permanent tokenKind = "permanent"
)

type token struct {
	user    int64
	kind    tokenKind
	expires time.Time // zero: never
}

type authCode struct {
	user    int64
	expires time.Time
}

type connection struct {
	id, user  int64
	connector connector
	state     string
	fields    []field // asked for again (additionalInformationNeeded)
	sources   []source
	login     string
	created   time.Time
}

type account struct {
	id, connection, user, source int64
	tpl                          accountTemplate
	disabled                     string // "" when activated
}

type webauthSession struct {
	user               int64
	connector          connector
	source             source
	redirectURI, state string
}

// Server is the simulator; it is an http.Handler.
type Server struct {
	o    Options
	mux  *http.ServeMux
	done chan struct{}
	once sync.Once

	mu        sync.Mutex
	nextID    int64
	tokens    map[string]token
	codes     map[string]authCode
	conns     map[int64]*connection
	accounts  map[int64]*account
	sessions  map[string]webauthSession
	faults    map[string]Fault
	faulted   int
	dataCalls map[tokenKind]int
}

// New returns a simulator configured by o.
func New(o Options) *Server {
	if o.TemporaryTokenTTL <= 0 {
		o.TemporaryTokenTTL = 30 * time.Minute
	}
	if o.Transactions <= 0 {
		o.Transactions = 25
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, mux: http.NewServeMux(), done: make(chan struct{}), nextID: 1000,
		tokens: map[string]token{}, codes: map[string]authCode{}, conns: map[int64]*connection{},
		accounts: map[int64]*account{}, sessions: map[string]webauthSession{}, faults: map[string]Fault{},
		dataCalls: map[tokenKind]int{}}
	s.mux.HandleFunc("POST /auth/init", s.authInit)
	s.mux.HandleFunc("GET /auth/token/code", s.authCode)
	s.mux.HandleFunc("POST /auth/token/access", s.authAccess)
	s.mux.HandleFunc("POST /auth/renew", s.authRenew)
	s.mux.HandleFunc("GET /connectors", s.listConnectors)
	s.mux.HandleFunc("POST /users/me/connections", s.createConnection)
	s.mux.HandleFunc("GET /users/me/connections", s.listConnections)
	s.mux.HandleFunc("GET /users/me/connections/{id}", s.getConnection)
	s.mux.HandleFunc("POST /users/me/connections/{id}", s.updateConnection)
	s.mux.HandleFunc("DELETE /users/me/connections/{id}", s.deleteConnection)
	s.mux.HandleFunc("GET /users/me/accounts", s.listAccounts)
	s.mux.HandleFunc("POST /users/me/accounts/{id}", s.updateAccount)
	s.mux.HandleFunc("PUT /users/me/accounts/{id}", s.updateAccount)
	s.mux.HandleFunc("GET /users/me/accounts/{id}/transactions", s.listTransactions)
	s.mux.HandleFunc("DELETE /users/me", s.deleteUser)
	s.mux.HandleFunc("GET /webauth", s.webauth)
	s.mux.HandleFunc("GET /webauth/bank", s.webauthBank)
	return s
}

// Close releases requests held by a Hang fault.
func (s *Server) Close() { s.once.Do(func() { close(s.done) }) }

// Fault makes requests whose "METHOD /path" starts with route (or whose path does, when route
// has no method) fail as f; NoFault removes it.
func (s *Server) Fault(route string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == NoFault {
		delete(s.faults, route)
		return
	}
	s.faults[route] = f
}

// SetWebhookURL changes where webhooks go (a suite's address is known after it starts).
func (s *Server) SetWebhookURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.WebhookURL = u
}

// LastConnection is the id of the connection created last (0: none).
func (s *Server) LastConnection() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last int64
	for id := range s.conns {
		last = max(last, id)
	}
	return last
}

// UserOf is the user that owns connection id (0: no such connection).
func (s *Server) UserOf(id int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[id]; c != nil {
		return c.user
	}
	return 0
}

// Faulted counts the requests a fault was injected into.
func (s *Server) Faulted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faulted
}

// DataCalls counts the account and transaction reads made with each kind of token.
func (s *Server) DataCalls() (temporaryToken, permanentToken int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dataCalls[temporary], s.dataCalls[permanent]
}

// Connections counts the connections that exist.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// EnabledAccounts counts the accounts activated, over every user.
func (s *Server) EnabledAccounts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.accounts {
		if a.disabled == "" {
			n++
		}
	}
	return n
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The API lives under /2.0 on a real domain; both are served.
	if p, ok := strings.CutPrefix(r.URL.Path, "/2.0/"); ok {
		r.URL.Path = "/" + p
	}
	if f := s.faultFor(r); f != NoFault {
		s.inject(w, r, f)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) faultFor(r *http.Request) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	for route, f := range s.faults {
		if strings.HasPrefix(key, route) || strings.HasPrefix(r.URL.Path, route) {
			s.faulted++
			return f
		}
	}
	return NoFault
}

func (s *Server) inject(w http.ResponseWriter, r *http.Request, f Fault) {
	switch f {
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "<html><body>502 Bad Gateway</body></html>")
	case WrongShape:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result": [1, 2, 3], "transactions": "none"}`)
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	case Drop:
		providersim.Drop(w)
	}
}

// ---- helpers

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// serviceError writes Powens' ServiceError.
func serviceError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, jsonObj{"code": code, "description": description, "message": description, "request_id": "sim-" + randomString(6)})
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

func (s *Server) now() time.Time { return s.o.Now() }

// paris is Europe/Paris, falling back to a fixed +01:00 where no zone database is installed.
var paris = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Paris"); err == nil {
		return l
	}
	return time.FixedZone("CET", 3600)
}()

func sqlDateTime(t time.Time) string { return t.In(paris).Format("2006-01-02 15:04:05") }

// user authenticates the bearer token; s.mu must be held.
func (s *Server) user(w http.ResponseWriter, r *http.Request) (token, bool) {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t, found := s.tokens[v]
	if !ok || !found {
		serviceError(w, http.StatusUnauthorized, "invalidToken", "Invalid token")
		return token{}, false
	}
	if !t.expires.IsZero() && !s.now().Before(t.expires) {
		serviceError(w, http.StatusUnauthorized, "invalidToken", "Token expired")
		return token{}, false
	}
	return t, true
}

func pathID(r *http.Request) (int64, bool) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return n, err == nil && n > 0
}

// readBody reads a JSON object of strings (numbers and booleans are kept as their text).
func readBody(r *http.Request) (map[string]string, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return out, nil
	}
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		q, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		for k := range q {
			out[k] = q.Get(k)
		}
		return out, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out[k] = x
		case nil:
		default:
			b, _ := json.Marshal(x)
			out[k] = string(b)
		}
	}
	return out, nil
}

func findConnector(uuid string) (connector, bool) {
	for _, c := range catalogue() {
		if c.UUID == uuid {
			return c, true
		}
	}
	return connector{}, false
}

// ---- authentication

// isClient reports whether a request body carries the client's own credentials.
func (s *Server) isClient(body map[string]string) bool {
	return body["client_id"] == s.o.ClientID && body["client_secret"] == s.o.ClientSecret
}

func (s *Server) authInit(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid JSON body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := temporary
	if body["client_id"] != "" || body["client_secret"] != "" {
		if !s.isClient(body) {
			serviceError(w, http.StatusUnauthorized, "forbidden", "Invalid client credentials")
			return
		}
		kind = permanent
	}
	user := s.id()
	tok := token{user: user, kind: kind}
	out := jsonObj{"id_user": user, "type": string(kind)}
	if kind == temporary {
		tok.expires = s.now().Add(s.o.TemporaryTokenTTL)
		out["expires_in"] = int64(s.o.TemporaryTokenTTL / time.Second)
	}
	v := randomString(24)
	s.tokens[v] = tok
	out["auth_token"] = v
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) authCode(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	code := randomString(16)
	s.codes[code] = authCode{user: t.user, expires: s.now().Add(s.o.TemporaryTokenTTL)}
	access := "standard"
	if r.URL.Query().Get("type") == "singleAccess" {
		access = "single"
	}
	writeJSON(w, http.StatusOK, jsonObj{"code": code, "type": "temporary", "access": access, "expires_in": int64(s.o.TemporaryTokenTTL / time.Second)})
}

// takeCode consumes a valid code; s.mu must be held.
func (s *Server) takeCode(code string) (authCode, bool) {
	c, ok := s.codes[code]
	delete(s.codes, code)
	return c, ok && s.now().Before(c.expires)
}

func (s *Server) authAccess(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid JSON body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isClient(body) {
		serviceError(w, http.StatusUnauthorized, "forbidden", "Invalid client credentials")
		return
	}
	c, ok := s.takeCode(body["code"])
	if !ok {
		serviceError(w, http.StatusBadRequest, "invalidCode", "Invalid or expired code")
		return
	}
	v := randomString(32)
	s.tokens[v] = token{user: c.user, kind: permanent}
	writeJSON(w, http.StatusOK, jsonObj{"access_token": v, "token_type": "Bearer"})
}

// authRenew gives an existing user (id_user) a new permanent token, for the client's own
// backend; without id_user Powens would make a new user, which no test needs.
func (s *Server) authRenew(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid JSON body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if body["grant_type"] != "client_credentials" || !s.isClient(body) {
		serviceError(w, http.StatusUnauthorized, "forbidden", "Invalid client credentials")
		return
	}
	user, err := strconv.ParseInt(body["id_user"], 10, 64)
	exists := false
	for _, t := range s.tokens {
		exists = exists || t.user == user
	}
	if err != nil || !exists {
		serviceError(w, http.StatusNotFound, "notFound", "Unknown user")
		return
	}
	v := randomString(32)
	s.tokens[v] = token{user: user, kind: permanent}
	writeJSON(w, http.StatusOK, jsonObj{"access_token": v, "token_type": "Bearer"})
}

// ---- connectors

func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request) {
	expand := map[string]bool{}
	for _, e := range strings.Split(r.URL.Query().Get("expand"), ",") {
		expand[strings.TrimSpace(e)] = true
	}
	var out []jsonObj
	for _, c := range catalogue() {
		if c.Hidden {
			continue
		}
		o := c.json()
		for _, k := range []string{"sources", "fields", "countries"} {
			if !expand[k] {
				delete(o, k)
			}
		}
		out = append(out, o)
	}
	writeJSON(w, http.StatusOK, jsonObj{"connectors": out})
}

// ---- connections

func (s *Server) connectionJSON(c *connection, expand string) jsonObj {
	var state any
	if c.state != "" {
		state = c.state
	}
	o := jsonObj{"id": c.id, "id_user": c.user, "id_connector": c.connector.ID, "connector_uuid": c.connector.UUID,
		"state": state, "error": state, "error_message": nil, "last_update": sqlDateTime(s.now()), "created": sqlDateTime(c.created),
		"active": true, "next_try": nil}
	if len(c.fields) > 0 {
		var fs []jsonObj
		for _, f := range c.fields {
			fs = append(fs, jsonObj{"name": f.Name, "type": f.Type, "label": f.Label, "required": f.Required, "regex": f.Regex})
		}
		o["fields"] = fs
	}
	exp := map[string]bool{}
	for _, e := range strings.Split(expand, ",") {
		exp[strings.TrimSpace(e)] = true
	}
	if exp["sources"] {
		var ss []jsonObj
		for _, src := range c.sources {
			ss = append(ss, jsonObj{"id": src.ID*1000 + c.id, "id_connection": c.id, "id_connector_source": src.ID, "name": src.Name,
				"state": state, "disabled": nil})
		}
		o["sources"] = ss
	}
	if exp["accounts"] || exp["all_accounts"] {
		var enabled, all []jsonObj
		for _, a := range s.sortedAccounts(func(a *account) bool { return a.connection == c.id }) {
			j := s.accountJSON(a)
			all = append(all, j)
			if a.disabled == "" {
				enabled = append(enabled, j)
			}
		}
		if exp["accounts"] {
			o["accounts"] = orEmpty(enabled)
		}
		if exp["all_accounts"] {
			o["all_accounts"] = orEmpty(all)
		}
	}
	return o
}

func orEmpty(v []jsonObj) []jsonObj {
	if v == nil {
		return []jsonObj{}
	}
	return v
}

// syncSource runs a source's first synchronisation: its accounts appear, disabled.
func (s *Server) syncSource(c *connection, src source) {
	for _, tpl := range src.Accounts {
		id := s.id()
		s.accounts[id] = &account{id: id, connection: c.id, user: c.user, source: src.ID, tpl: tpl, disabled: sqlDateTime(s.now())}
	}
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid JSON body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	con, ok := findConnector(body["connector_uuid"])
	if !ok || con.Hidden {
		serviceError(w, http.StatusBadRequest, "dataError", "Unknown connector")
		return
	}
	if con.AuthMechanism != "credentials" {
		serviceError(w, http.StatusBadRequest, "notSupported", "This connector requires the webauth mechanism")
		return
	}
	src, ok := con.firstSource()
	if name := r.URL.Query().Get("source"); name != "" {
		src, ok = con.source(name)
	}
	if !ok {
		serviceError(w, http.StatusBadRequest, "dataError", "Unknown or disabled source")
		return
	}
	for _, f := range con.Fields {
		if f.Required && body[f.Name] == "" && contains(f.AuthMechanisms, "credentials") {
			serviceError(w, http.StatusBadRequest, "dataError", "Missing field "+f.Name)
			return
		}
	}
	login := body["login"]
	if login == LoginWrongpass {
		// Refused credentials: the connection is deleted at once.
		serviceError(w, http.StatusBadRequest, "wrongpass", "Wrong password")
		return
	}
	c := &connection{id: s.id(), user: t.user, connector: con, login: login, sources: []source{src}, created: s.now()}
	s.conns[c.id] = c
	if st, scripted := loginStates[login]; scripted {
		c.state = st
		if st == "additionalInformationNeeded" {
			c.fields = []field{{Name: "otp", Type: "text", Label: "Code reçu par SMS", Required: true, Regex: `^[0-9]{6}$`}}
		}
	} else {
		s.syncSource(c, src)
	}
	writeJSON(w, http.StatusOK, s.connectionJSON(c, r.URL.Query().Get("expand")))
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// owned returns the user's connection id; s.mu must be held.
func (s *Server) owned(w http.ResponseWriter, r *http.Request) (*connection, bool) {
	t, ok := s.user(w, r)
	if !ok {
		return nil, false
	}
	id, ok := pathID(r)
	c := s.conns[id]
	if !ok || c == nil || c.user != t.user {
		serviceError(w, http.StatusNotFound, "notFound", "Connection not found")
		return nil, false
	}
	return c, true
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	var ids []int64
	for id, c := range s.conns {
		if c.user == t.user {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := []jsonObj{}
	for _, id := range ids {
		out = append(out, s.connectionJSON(s.conns[id], r.URL.Query().Get("expand")))
	}
	writeJSON(w, http.StatusOK, jsonObj{"connections": out})
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.owned(w, r)
	if !ok {
		return
	}
	if c.state == "validating" { // the decoupled validation went through
		c.state = ""
		s.syncSource(c, c.sources[len(c.sources)-1])
	}
	writeJSON(w, http.StatusOK, s.connectionJSON(c, r.URL.Query().Get("expand")))
}

func (s *Server) updateConnection(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid JSON body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.owned(w, r)
	if !ok {
		return
	}
	last := c.sources[len(c.sources)-1]
	switch {
	case r.URL.Query().Get("source") != "":
		name := r.URL.Query().Get("source")
		src, ok := c.connector.source(name)
		if !ok {
			serviceError(w, http.StatusBadRequest, "dataError", "Unknown or disabled source")
			return
		}
		for _, have := range c.sources {
			if have.Name == name {
				serviceError(w, http.StatusBadRequest, "dataError", "Source already added")
				return
			}
		}
		if c.state != "" {
			serviceError(w, http.StatusBadRequest, "actionNeeded", "The connection must be synced before a source is added")
			return
		}
		c.sources = append(c.sources, src)
		s.syncSource(c, src)
	case c.state == "additionalInformationNeeded":
		otp := body["otp"]
		if otp == "" {
			serviceError(w, http.StatusBadRequest, "dataError", "Missing field otp")
			return
		}
		if len(otp) != 6 || strings.Trim(otp, "0123456789") != "" {
			serviceError(w, http.StatusBadRequest, "wrongpass", "Wrong one-time code")
			return
		}
		c.state, c.fields = "", nil
		s.syncSource(c, last)
	case c.state == "decoupled" && body["resume"] == "true":
		c.state = "validating"
	case c.state == "validating":
		c.state = ""
		s.syncSource(c, last)
	}
	writeJSON(w, http.StatusOK, s.connectionJSON(c, r.URL.Query().Get("expand")))
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.owned(w, r)
	if !ok {
		return
	}
	delete(s.conns, c.id)
	for id, a := range s.accounts {
		if a.connection == c.id {
			delete(s.accounts, id)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	for id, c := range s.conns {
		if c.user == t.user {
			delete(s.conns, id)
		}
	}
	for id, a := range s.accounts {
		if a.user == t.user {
			delete(s.accounts, id)
		}
	}
	for v, tok := range s.tokens {
		if tok.user == t.user {
			delete(s.tokens, v)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Users counts the users that exist (that hold a token).
func (s *Server) Users() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	users := map[int64]bool{}
	for _, t := range s.tokens {
		users[t.user] = true
	}
	return len(users)
}

// ---- accounts and transactions

func (s *Server) sortedAccounts(keep func(*account) bool) []*account {
	var out []*account
	for _, a := range s.accounts {
		if keep(a) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Server) accountJSON(a *account) jsonObj {
	var disabled any
	if a.disabled != "" {
		disabled = a.disabled
	}
	var coming any
	if a.tpl.Coming != 0 {
		coming = a.tpl.Coming
	}
	return jsonObj{"id": a.id, "id_connection": a.connection, "id_user": a.user, "id_source": a.source, "name": a.tpl.Name,
		"original_name": a.tpl.Name, "balance": a.tpl.Balance, "coming": coming, "type": a.tpl.Type, "number": a.tpl.Number,
		"iban": nil, "disabled": disabled, "deleted": nil, "display": true, "bookmarked": false, "usage": "PRIV",
		"currency":    jsonObj{"id": "EUR", "name": "Euro", "symbol": "€", "precision": 2},
		"last_update": sqlDateTime(s.now())}
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	s.dataCalls[t.kind]++
	_, all := r.URL.Query()["all"]
	var out []jsonObj
	balances := 0.0
	for _, a := range s.sortedAccounts(func(a *account) bool { return a.user == t.user && (all || a.disabled == "") }) {
		out = append(out, s.accountJSON(a))
		balances += a.tpl.Balance
	}
	if len(out) == 0 {
		serviceError(w, http.StatusBadRequest, "noAccount", "No account")
		return
	}
	writeJSON(w, http.StatusOK, jsonObj{"accounts": out, "balances": jsonObj{"EUR": balances}})
}

func (s *Server) updateAccount(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var body struct {
		Disabled *bool `json:"disabled"`
	}
	if err != nil || (len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &body) != nil) {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid JSON body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	id, _ := pathID(r)
	a := s.accounts[id]
	_, all := r.URL.Query()["all"]
	if a == nil || a.user != t.user || (a.disabled != "" && !all) {
		serviceError(w, http.StatusNotFound, "notFound", "Account not found")
		return
	}
	if body.Disabled != nil {
		if *body.Disabled {
			a.disabled = sqlDateTime(s.now())
		} else {
			a.disabled = ""
		}
	}
	writeJSON(w, http.StatusOK, s.accountJSON(a))
}

// transactions are an account's, newest first, the same on every call.
func (s *Server) transactions(a *account) []jsonObj {
	y, m, d := s.now().In(paris).Date()
	base := time.Date(y, m, d-2, 0, 0, 0, 0, paris)
	var out []jsonObj
	for i := range s.o.Transactions {
		day := base.AddDate(0, 0, -i)
		cents := int64((a.id*7919+int64(i)*104729)%50000) + 100
		value := float64(cents) / 100
		wording, typ, party := "CB CARREFOUR CITY", "card", "creditor"
		if i%5 == 0 {
			wording, typ, party = "VIR SEPA SALAIRE ACME", "transfer", "debtor"
		} else {
			value = -value
		}
		var vdate any = day.Format("2006-01-02")
		out = append(out, jsonObj{"id": a.id*100000 + int64(i), "id_account": a.id, "date": day.Format("2006-01-02"),
			"rdate": day.AddDate(0, 0, -1).Format("2006-01-02"), "vdate": vdate, "datetime": nil,
			"value": value, "type": typ, "wording": wording, "original_wording": wording + " " + strconv.Itoa(i),
			"coming": i < 2, "active": true, "deleted": nil, "last_update": sqlDateTime(s.now()),
			"counterparty": jsonObj{"label": strings.TrimPrefix(strings.TrimPrefix(wording, "CB "), "VIR SEPA "), "type": party}})
	}
	return out
}

func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.user(w, r)
	if !ok {
		return
	}
	s.dataCalls[t.kind]++
	id, _ := pathID(r)
	a := s.accounts[id]
	if a == nil || a.user != t.user || a.disabled != "" {
		// Transactions of an account not activated are not synchronised, nor shown.
		serviceError(w, http.StatusNotFound, "notFound", "Account not found")
		return
	}
	q := r.URL.Query()
	all := s.transactions(a)
	if min := q.Get("min_date"); min != "" {
		var kept []jsonObj
		for _, tx := range all {
			if tx["date"].(string) >= min {
				kept = append(kept, tx)
			}
		}
		all = kept
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	offset = max(offset, 0)
	limit, err := strconv.Atoi(q.Get("limit"))
	paged := err == nil && limit > 0
	if !paged {
		limit = len(all)
	}
	limit = min(limit, 1000)
	page := []jsonObj{}
	if offset < len(all) {
		page = all[offset:min(offset+limit, len(all))]
	}
	out := jsonObj{"transactions": page, "first_date": nil, "last_date": nil}
	if len(all) > 0 {
		out["first_date"], out["last_date"] = all[len(all)-1]["date"], all[0]["date"]
	}
	if paged {
		link := func(off int) jsonObj {
			u := *r.URL
			qq := u.Query()
			qq.Set("offset", strconv.Itoa(off))
			qq.Set("limit", strconv.Itoa(limit))
			u.RawQuery = qq.Encode()
			return jsonObj{"href": u.RequestURI()}
		}
		links := jsonObj{"self": link(offset), "next": nil, "prev": nil}
		if offset+limit < len(all) {
			links["next"] = link(offset + limit)
		}
		if offset > 0 {
			links["prev"] = link(max(offset-limit, 0))
		}
		out["_links"] = links
	}
	writeJSON(w, http.StatusOK, out)
}

// ---- webauth

func (s *Server) webauth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Get("client_id") != s.o.ClientID {
		serviceError(w, http.StatusBadRequest, "forbidden", "Unknown client_id")
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() || redirect.RawQuery != "" {
		serviceError(w, http.StatusBadRequest, "dataError", "Invalid redirect_uri")
		return
	}
	code, ok := s.takeCode(q.Get("token"))
	if !ok {
		serviceError(w, http.StatusBadRequest, "invalidCode", "Invalid or expired code")
		return
	}
	con, ok := findConnector(q.Get("connector_uuid"))
	if !ok || con.Hidden {
		serviceError(w, http.StatusBadRequest, "dataError", "Unknown connector")
		return
	}
	src, ok := con.firstSource()
	if name := q.Get("source"); name != "" {
		src, ok = con.source(name)
	}
	if !ok || src.AuthMechanism != "webauth" {
		serviceError(w, http.StatusBadRequest, "dataError", "Unknown, disabled or non-webauth source")
		return
	}
	for _, f := range con.Fields {
		if f.Required && contains(f.AuthMechanisms, "webauth") && q.Get(f.Name) == "" {
			serviceError(w, http.StatusBadRequest, "dataError", "Missing field "+f.Name)
			return
		}
	}
	session := randomString(12)
	s.sessions[session] = webauthSession{user: code.user, connector: con, source: src, redirectURI: redirect.String(), state: q.Get("state")}
	http.Redirect(w, r, "/webauth/bank?session="+session, http.StatusFound)
}

// webauthBank is the bank's consent page; decision=approve|deny answers it, as the user would.
func (s *Server) webauthBank(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[q.Get("session")]
	if !ok {
		http.Error(w, "unknown or finished session", http.StatusBadRequest)
		return
	}
	back := url.Values{}
	switch q.Get("decision") {
	case "approve":
		c := &connection{id: s.id(), user: sess.user, connector: sess.connector, sources: []source{sess.source}, created: s.now()}
		s.conns[c.id] = c
		s.syncSource(c, sess.source)
		back.Set("id_connection", strconv.FormatInt(c.id, 10))
	case "deny":
		back.Set("error", "access_denied")
		back.Set("error_description", "The user refused to grant access")
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		sid := html.EscapeString(url.QueryEscape(q.Get("session")))
		fmt.Fprintf(w, `<!doctype html><title>%s</title><h1>%s</h1><p>Share your accounts with this application?</p>
<a href="?session=%s&amp;decision=approve">Approve</a> <a href="?session=%s&amp;decision=deny">Deny</a>`,
			html.EscapeString(sess.connector.Name), html.EscapeString(sess.connector.Name), sid, sid)
		return
	}
	delete(s.sessions, q.Get("session"))
	back.Set("state", sess.state)
	http.Redirect(w, r, sess.redirectURI+"?"+back.Encode(), http.StatusFound)
}

// ---- webhooks

// Sign is BI-Signature: standard Base64 of HMAC-SHA256(secret, "POST.<path>.<date>.<body>").
func Sign(secret, path, date string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("POST." + path + "." + date + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// NotifyConnectionSynced sends CONNECTION_SYNCED for connection id to Options.WebhookURL, signed,
// as Powens does after a synchronisation (only for users with a permanent token).
func (s *Server) NotifyConnectionSynced(ctx context.Context, id int64) error {
	s.mu.Lock()
	target := s.o.WebhookURL
	if target == "" {
		s.mu.Unlock()
		return fmt.Errorf("powens simulator: no webhook URL configured")
	}
	c := s.conns[id]
	if c == nil {
		s.mu.Unlock()
		return fmt.Errorf("powens simulator: no connection %d", id)
	}
	var userToken string
	for v, t := range s.tokens {
		if t.user == c.user && t.kind == permanent {
			userToken = v
			break
		}
	}
	if userToken == "" {
		s.mu.Unlock()
		return fmt.Errorf("powens simulator: webhooks go to permanent users only")
	}
	var accounts []jsonObj
	for _, a := range s.sortedAccounts(func(a *account) bool { return a.connection == c.id && a.disabled == "" }) {
		j := s.accountJSON(a)
		j["transactions"] = s.transactions(a)
		accounts = append(accounts, j)
	}
	var state any
	if c.state != "" {
		state = c.state
	}
	payload := jsonObj{"user": jsonObj{"id": c.user}, "connection": jsonObj{"id": c.id, "id_user": c.user, "state": state,
		"error_message": nil, "last_update": sqlDateTime(s.now()), "active": true, "accounts": orEmpty(accounts)}}
	s.mu.Unlock()

	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	date := s.now().UTC().Format(http.TimeFormat)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("BI-Signature-Date", date)
	req.Header.Set("BI-Signature", Sign(s.o.WebhookSecret, u.Path, date, body))
	req.Header.Set("Authorization", "Bearer "+userToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("powens simulator: webhook answered %d", resp.StatusCode)
	}
	return nil
}
