// Package boufin simulates Boufin Connect (Chile) for Puente's tests and make run: entities,
// the server-side Token OTP that opens a consent (natural and legal persons), a hosted Connect app
// that spends the OTP, Task Tokens per end user, consent management and product pulls. Its wire
// follows the guesses of puente.dev/pkg/upstream/boufin/assumptions.go (the simulator does not
// import it: it speaks for Boufin, not for Puente). Progress is per request, never by the clock.
package boufin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
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
	// APIKey is the partner key every server call must carry in x-api-key.
	APIKey string
	// ClientIDs are the clientIds the partner may use (empty: any).
	ClientIDs []string
	// Entities are the institutions offered (empty: DefaultEntities).
	Entities []Entity
	// Users by RUT (empty: DefaultUsers).
	Users []User
	// WrongPassword is the password the app refuses with wrong_login (empty: "wrong").
	WrongPassword string
	// Products are what every consent covers (empty: cuentas, movimientos, validacion-identidad).
	Products []string
	// RunningPolls is how many times a product pull answers 202 running before its data (per
	// consent and product; 0 answers at once).
	RunningPolls int
	// OTPTTL and TaskTTL are the tokens' lifetimes (10 min and 1 h when zero).
	OTPTTL, TaskTTL time.Duration
	// Now is the clock tokens expire by (time.Now when nil).
	Now func() time.Time
}

// Entity is an institution of the catalogue.
type Entity struct {
	EntityID    string   `json:"entityId"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	PersonTypes []string `json:"personTypes"`
	Products    []string `json:"products"`
	Status      string   `json:"status"`
}

// User is an end user (or a company) the simulated banks know, by RUT.
type User struct {
	RUT  string // normalised: 11111111-1
	Name string
	// Legal users are companies; Representatives are the RUTs that may log in for them (empty:
	// anyone).
	Legal           bool
	Representatives []string
	Email, Phone    string
	Accounts        []Account
}

// Account is a bank product with its movements.
type Account struct {
	ID, Type, Number, Name, Currency string
	Current, Available               int64
	Limit                            int64 // credit products
	From, To                         string
	Movements                        []Movement
}

// Movement is a transaction; Amount is signed, in the currency's unit.
type Movement struct {
	ID, Date, Description, Counterparty string
	Amount                              int64
	Pending                             bool
}

// Consent is a consent as the simulator keeps it.
type Consent struct {
	ConsentID   string   `json:"consentId"`
	Target      string   `json:"target"`
	ClientID    string   `json:"clientId"`
	PersonType  string   `json:"personType"`
	RUT         string   `json:"-"`
	Institution string   `json:"institution,omitempty"`
	Products    []string `json:"products"`
	Status      string   `json:"status"`
	ErrorCode   string   `json:"errorCode,omitempty"`
	CreatedAt   string   `json:"createdAt"`
	ExpiresAt   string   `json:"expiresAt"`
}

// FaultKind is a way the simulator misbehaves.
type FaultKind int

const (
	FaultNone FaultKind = iota
	// FaultGarbage answers 200 with a body that is not JSON.
	FaultGarbage
	// FaultWrongShape answers 200 with JSON of the wrong shape.
	FaultWrongShape
	// FaultHang never answers (until the client gives up or the server closes).
	FaultHang
	// FaultDrop closes the connection without an answer.
	FaultDrop
)

// Fault is a misbehaviour on the requests whose path ends with a suffix; Times bounds how many
// requests meet it (0: until cleared).
type Fault struct {
	Kind  FaultKind
	Times int
}

type otp struct {
	consentID string
	expires   time.Time
	used      bool
}

type task struct {
	target, clientID string
	expires          time.Time
}

// Server is the simulator; it is an http.Handler, safe for concurrent use. Mount it so that the
// client's base URL is the server's URL + "/api/v1".
type Server struct {
	o        Options
	mux      *http.ServeMux
	closed   chan struct{}
	closeOne sync.Once

	mu       sync.Mutex
	users    map[string]User
	otps     map[string]*otp
	tasks    map[string]task
	consents map[string]*Consent
	order    []string
	polls    map[string]int
	faults   map[string]*Fault
	calls    map[string]int
}

// New returns a simulator with o.
func New(o Options) *Server {
	if len(o.Entities) == 0 {
		o.Entities = DefaultEntities()
	}
	if len(o.Users) == 0 {
		o.Users = DefaultUsers()
	}
	if o.WrongPassword == "" {
		o.WrongPassword = "wrong"
	}
	if len(o.Products) == 0 {
		o.Products = []string{"cuentas", "movimientos", "validacion-identidad"}
	}
	if o.OTPTTL <= 0 {
		o.OTPTTL = 10 * time.Minute
	}
	if o.TaskTTL <= 0 {
		o.TaskTTL = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, mux: http.NewServeMux(), closed: make(chan struct{}),
		users: map[string]User{}, otps: map[string]*otp{}, tasks: map[string]task{}, consents: map[string]*Consent{},
		polls: map[string]int{}, faults: map[string]*Fault{}, calls: map[string]int{}}
	for _, u := range o.Users {
		s.users[normRUT(u.RUT)] = u
	}
	const p = "/api/v1"
	s.mux.HandleFunc("GET "+p+"/connect/entities", s.server(s.entities))
	s.mux.HandleFunc("POST "+p+"/connect/token-otp", s.server(s.tokenOTP))
	s.mux.HandleFunc("POST "+p+"/connect/task-token", s.server(s.taskToken))
	s.mux.HandleFunc("GET "+p+"/connect/consents", s.server(s.bearer(s.listConsents)))
	s.mux.HandleFunc("GET "+p+"/connect/consents/{id}", s.server(s.bearer(s.getConsent)))
	s.mux.HandleFunc("DELETE "+p+"/connect/consents/{id}", s.server(s.bearer(s.revokeConsent)))
	s.mux.HandleFunc("DELETE "+p+"/connect/consents/{id}/sessions", s.server(s.bearer(s.endSessions)))
	s.mux.HandleFunc("GET "+p+"/connect/consents/{id}/products/{product}", s.server(s.bearer(s.product)))
	s.mux.HandleFunc("GET "+p+"/connect/app", s.appForm)
	s.mux.HandleFunc("POST "+p+"/connect/app", s.appSubmit)
	return s
}

// Close releases requests hanging on a fault.
func (s *Server) Close() { s.closeOne.Do(func() { close(s.closed) }) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.fault(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Fault makes requests whose path ends with suffix misbehave as f says (FaultNone clears it).
func (s *Server) Fault(suffix string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Kind == FaultNone {
		delete(s.faults, suffix)
		return
	}
	s.faults[suffix] = &f
}

// Calls is how many requests reached a path ending with suffix (faulted ones included).
func (s *Server) Calls(suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.calls {
		if strings.HasSuffix(p, suffix) {
			n += c
		}
	}
	return n
}

// Consent returns a consent as the simulator keeps it.
func (s *Server) Consent(id string) (Consent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consents[id]
	if !ok {
		return Consent{}, false
	}
	return *c, true
}

// Consents returns every consent, oldest first.
func (s *Server) Consents() []Consent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Consent, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.consents[id])
	}
	return out
}

// Expire ends a consent as Boufin does when its time is up.
func (s *Server) Expire(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consents[id]
	if ok {
		c.Status = "EXPIRED"
	}
	return ok
}

func (s *Server) fault(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	s.calls[r.URL.Path]++
	var kind FaultKind
	for suffix, f := range s.faults {
		if strings.HasSuffix(r.URL.Path, suffix) {
			kind = f.Kind
			if f.Times > 0 {
				if f.Times--; f.Times == 0 {
					delete(s.faults, suffix)
				}
			}
			break
		}
	}
	s.mu.Unlock()
	switch kind {
	case FaultGarbage:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("<html>502 upstream hiccup</html>\x00{"))
	case FaultWrongShape:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":"maintenance","status":42}`))
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
	case FaultDrop:
		providersim.Drop(w)
	default:
		return false
	}
	return true
}

// ---- helpers

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg, code string) {
	body := map[string]any{"statusCode": status, "message": msg}
	if code != "" {
		body["code"] = code
	}
	writeJSON(w, status, body)
}

func data(w http.ResponseWriter, status int, v any) { writeJSON(w, status, map[string]any{"data": v}) }

func newID(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newJWT makes an opaque token shaped like a JWT (the simulator keeps what it means).
func newJWT(kind string) string {
	enc := base64.RawURLEncoding
	sig := make([]byte, 24)
	rand.Read(sig)
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"typ":"`+kind+`","jti":"`+newID("")+`"}`)) + "." + enc.EncodeToString(sig)
}

func normRUT(rut string) string {
	r := strings.ToUpper(strings.NewReplacer(".", "", " ", "").Replace(strings.TrimSpace(rut)))
	if r != "" && !strings.Contains(r, "-") && len(r) > 1 {
		r = r[:len(r)-1] + "-" + r[len(r)-1:]
	}
	return r
}

// server wraps a server-to-server handler with the x-api-key check.
func (s *Server) server(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.APIKey == "" || r.Header.Get("x-api-key") != s.o.APIKey {
			writeError(w, http.StatusUnauthorized, "invalid API key", "INVALID_API_KEY")
			return
		}
		h(w, r)
	}
}

// bearer wraps a Task Token handler: the token must be valid, and it names the target.
func (s *Server) bearer(h func(http.ResponseWriter, *http.Request, task)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		s.mu.Lock()
		t, found := s.tasks[tok]
		s.mu.Unlock()
		if !ok || !found || !s.o.Now().Before(t.expires) {
			writeError(w, http.StatusUnauthorized, "invalid or expired task token", "INVALID_TOKEN")
			return
		}
		h(w, r, t)
	}
}

func (s *Server) clientAllowed(id string) bool {
	if id == "" {
		return false
	}
	if len(s.o.ClientIDs) == 0 {
		return true
	}
	for _, c := range s.o.ClientIDs {
		if c == id {
			return true
		}
	}
	return false
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body", "BAD_REQUEST")
		return false
	}
	return true
}

// ---- server calls

func (s *Server) entities(w http.ResponseWriter, r *http.Request) {
	data(w, http.StatusOK, s.o.Entities)
}

func (s *Server) tokenOTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PersonType string `json:"personType"`
		RUT        string `json:"rut"`
		CompanyRUT string `json:"companyRut"`
		ClientID   string `json:"clientId"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !s.clientAllowed(req.ClientID) {
		writeError(w, http.StatusForbidden, "unknown clientId", "INVALID_CLIENT")
		return
	}
	rut, company := normRUT(req.RUT), normRUT(req.CompanyRUT)
	target := rut
	switch req.PersonType {
	case "natural":
		if company != "" {
			writeError(w, http.StatusBadRequest, "companyRut is for legal persons", "BAD_REQUEST")
			return
		}
	case "legal":
		if company == "" {
			writeError(w, http.StatusBadRequest, "companyRut is required for legal persons", "BAD_REQUEST")
			return
		}
		target = company
	default:
		writeError(w, http.StatusBadRequest, "personType must be natural or legal", "BAD_REQUEST")
		return
	}
	if rut == "" {
		writeError(w, http.StatusBadRequest, "rut is required", "BAD_REQUEST")
		return
	}
	now := s.o.Now().UTC()
	c := &Consent{ConsentID: newID(""), Target: target, ClientID: req.ClientID, PersonType: req.PersonType, RUT: rut,
		Products: append([]string(nil), s.o.Products...), Status: "PENDING",
		CreatedAt: now.Format(time.RFC3339), ExpiresAt: now.AddDate(1, 0, 0).Format(time.RFC3339)}
	tok := newJWT("otp")
	s.mu.Lock()
	s.consents[c.ConsentID] = c
	s.order = append(s.order, c.ConsentID)
	s.otps[tok] = &otp{consentID: c.ConsentID, expires: now.Add(s.o.OTPTTL)}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "consentId": c.ConsentID, "expiresIn": int(s.o.OTPTTL / time.Second)})
}

func (s *Server) taskToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Target   string `json:"target"`
		ClientID string `json:"clientId"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !s.clientAllowed(req.ClientID) {
		writeError(w, http.StatusForbidden, "unknown clientId", "INVALID_CLIENT")
		return
	}
	if normRUT(req.Target) == "" {
		writeError(w, http.StatusBadRequest, "target is required", "BAD_REQUEST")
		return
	}
	tok := newJWT("task")
	s.mu.Lock()
	s.tasks[tok] = task{target: normRUT(req.Target), clientID: req.ClientID, expires: s.o.Now().Add(s.o.TaskTTL)}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expiresIn": int(s.o.TaskTTL / time.Second)})
}

// owned returns the consent id names when the token's target owns it (a copy), else answers 404.
func (s *Server) owned(w http.ResponseWriter, r *http.Request, t task) (*Consent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consents[r.PathValue("id")]
	if !ok || c.Target != t.target || c.ClientID != t.clientID {
		writeError(w, http.StatusNotFound, "consent not found", "CONSENT_NOT_FOUND")
		return nil, false
	}
	return c, true
}

func (s *Server) listConsents(w http.ResponseWriter, r *http.Request, t task) {
	page, limit := 1, 10
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v > 0 && v <= 100 {
		limit = v
	}
	s.mu.Lock()
	var mine []Consent
	for _, id := range s.order {
		if c := s.consents[id]; c.Target == t.target && c.ClientID == t.clientID {
			mine = append(mine, *c)
		}
	}
	s.mu.Unlock()
	items := []Consent{}
	if from := (page - 1) * limit; from < len(mine) {
		items = mine[from:min(from+limit, len(mine))]
	}
	data(w, http.StatusOK, map[string]any{"items": items, "page": page, "limit": limit, "total": len(mine)})
}

func (s *Server) getConsent(w http.ResponseWriter, r *http.Request, t task) {
	if c, ok := s.owned(w, r, t); ok {
		s.mu.Lock()
		cp := *c
		s.mu.Unlock()
		data(w, http.StatusOK, cp)
	}
}

func (s *Server) revokeConsent(w http.ResponseWriter, r *http.Request, t task) {
	if c, ok := s.owned(w, r, t); ok {
		s.mu.Lock()
		c.Status = "REVOKED"
		cp := *c
		s.mu.Unlock()
		data(w, http.StatusOK, cp)
	}
}

func (s *Server) endSessions(w http.ResponseWriter, r *http.Request, t task) {
	if _, ok := s.owned(w, r, t); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) product(w http.ResponseWriter, r *http.Request, t task) {
	c, ok := s.owned(w, r, t)
	if !ok {
		return
	}
	product := r.PathValue("product")
	s.mu.Lock()
	cp := *c
	key := cp.ConsentID + "/" + product
	s.polls[key]++
	n := s.polls[key]
	u, known := s.users[cp.Target]
	s.mu.Unlock()
	if cp.Status != "ACTIVE" {
		writeError(w, http.StatusConflict, "consent is "+cp.Status, "CONSENT_"+cp.Status)
		return
	}
	if !contains(cp.Products, product) {
		writeError(w, http.StatusNotFound, "product not found for this consent", "PRODUCT_NOT_FOUND")
		return
	}
	if n <= s.o.RunningPolls {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "running"})
		return
	}
	if !known {
		writeJSON(w, http.StatusOK, map[string]any{"status": "error"})
		return
	}
	var d any
	switch product {
	case "cuentas":
		d = accountsOf(u)
	case "movimientos":
		d = movementsOf(u, r.URL.Query().Get("accountId"))
	case "validacion-identidad":
		d = identityOf(u)
	default:
		d = map[string]any{"product": product, "items": []any{}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "done", "data": d})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func accountsOf(u User) any {
	out := []map[string]any{}
	for _, a := range u.Accounts {
		m := map[string]any{"accountId": a.ID, "type": a.Type, "number": a.Number, "name": a.Name, "currency": a.Currency,
			"currentBalance": a.Current, "availableBalance": a.Available}
		if a.Limit != 0 {
			m["creditLimit"] = a.Limit
		}
		out = append(out, m)
	}
	return map[string]any{"accounts": out}
}

func movementsOf(u User, account string) any {
	out := []map[string]any{}
	for _, a := range u.Accounts {
		if account != "" && a.ID != account {
			continue
		}
		ms := []map[string]any{}
		for _, m := range a.Movements {
			ms = append(ms, map[string]any{"id": m.ID, "date": m.Date, "description": m.Description, "amount": m.Amount,
				"currency": a.Currency, "pending": m.Pending, "counterparty": m.Counterparty})
		}
		out = append(out, map[string]any{"accountId": a.ID, "from": a.From, "to": a.To, "movements": ms})
	}
	return map[string]any{"accounts": out}
}

func identityOf(u User) any {
	m := map[string]any{"rut": u.RUT, "fullName": u.Name,
		"address": map[string]string{"street": "Av. Providencia 1234", "commune": "Providencia", "city": "Santiago", "region": "Metropolitana"}}
	if u.Email != "" {
		m["emails"] = []string{u.Email}
	}
	if u.Phone != "" {
		m["phones"] = []string{u.Phone}
	}
	return m
}

// ---- the hosted Connect app

var appPage = template.Must(template.New("app").Parse(`<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>Boufin Connect (simulador)</title></head>
<body><h1>Boufin Connect</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{else}}
<form method="post">
<input type="hidden" name="token" value="{{.Token}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="state" value="{{.State}}">
<label>Entidad <select name="entity">{{range .Entities}}<option value="{{.EntityID}}">{{.Name}}</option>{{end}}</select></label>
<label>RUT <input name="username" value="{{.RUT}}"></label>
<label>Clave <input name="password" type="password"></label>
<button type="submit">Autorizar</button>
<button type="submit" name="cancel" value="1">Cancelar</button>
</form>{{end}}
</body></html>`))

type appView struct {
	Error                   string
	Token, RedirectURI, RUT string
	State                   string
	Entities                []Entity
}

func (s *Server) appFail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	appPage.Execute(w, appView{Error: msg})
}

// lookOTP returns the OTP's consent when the token may still be spent.
func (s *Server) lookOTP(token string) (*Consent, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.otps[token]
	switch {
	case !ok:
		return nil, "token OTP inválido"
	case o.used:
		return nil, "token OTP ya utilizado"
	case !s.o.Now().Before(o.expires):
		return nil, "token OTP expirado"
	}
	return s.consents[o.consentID], ""
}

func validRedirect(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Server) appForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, msg := s.lookOTP(q.Get("token"))
	if c == nil {
		s.appFail(w, http.StatusUnauthorized, msg)
		return
	}
	if !validRedirect(q.Get("redirect_uri")) {
		s.appFail(w, http.StatusBadRequest, "redirect_uri inválido")
		return
	}
	var ents []Entity
	for _, e := range s.o.Entities {
		if contains(e.PersonTypes, c.PersonType) {
			ents = append(ents, e)
		}
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	appPage.Execute(w, appView{Token: q.Get("token"), RedirectURI: q.Get("redirect_uri"), State: q.Get("state"), RUT: c.RUT, Entities: ents})
}

func (s *Server) appSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.appFail(w, http.StatusBadRequest, "formulario inválido")
		return
	}
	f := r.PostForm
	redirect := f.Get("redirect_uri")
	if !validRedirect(redirect) {
		s.appFail(w, http.StatusBadRequest, "redirect_uri inválido")
		return
	}
	// Spend the OTP, once, whatever happens next.
	s.mu.Lock()
	o, ok := s.otps[f.Get("token")]
	var msg string
	switch {
	case !ok:
		msg = "token OTP inválido"
	case o.used:
		msg = "token OTP ya utilizado"
	case !s.o.Now().Before(o.expires):
		msg = "token OTP expirado"
	default:
		o.used = true
	}
	var c *Consent
	if msg == "" {
		c = s.consents[o.consentID]
	}
	s.mu.Unlock()
	if msg != "" {
		s.appFail(w, http.StatusUnauthorized, msg)
		return
	}
	back, _ := url.Parse(redirect)
	q := back.Query()
	q.Set("state", f.Get("state"))
	entity := f.Get("entity")
	s.mu.Lock()
	switch {
	case f.Get("cancel") != "":
		c.Status, c.ErrorCode = "ERROR", "cancelled"
		q.Set("error", "cancelled")
	case !s.entityFor(entity, c.PersonType):
		c.Status, c.ErrorCode = "ERROR", "error"
		q.Set("error", "error")
	case normRUT(f.Get("username")) != c.RUT || f.Get("password") == "" || f.Get("password") == s.o.WrongPassword || !s.mayLogIn(c):
		c.Status, c.ErrorCode, c.Institution = "ERROR", "wrong_login", entity
		q.Set("error", "wrong_login")
	default:
		c.Status, c.Institution = "ACTIVE", entity
		q.Set("consentId", c.ConsentID)
	}
	s.mu.Unlock()
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// entityFor and mayLogIn are called with s.mu held.
func (s *Server) entityFor(id, personType string) bool {
	for _, e := range s.o.Entities {
		if e.EntityID == id {
			return contains(e.PersonTypes, personType)
		}
	}
	return false
}

func (s *Server) mayLogIn(c *Consent) bool {
	u, ok := s.users[c.Target]
	if !ok {
		return false
	}
	if c.PersonType == "legal" {
		return u.Legal && (len(u.Representatives) == 0 || contains(u.Representatives, c.RUT))
	}
	return !u.Legal
}
