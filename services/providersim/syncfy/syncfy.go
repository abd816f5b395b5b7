// Package syncfy simulates Syncfy's REST API (ex Paybook Sync): users and sessions under an API
// key, the catalogues, credentials whose jobs walk a status history one step per status read
// (deterministic, never by the clock), two-factor rounds at code 410, accounts and transactions,
// all in Syncfy's own envelope {rid, code, errors, status, message, response}. Faults (garbage,
// a hang, a dropped connection) are injected per path for tests.
package syncfy

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"puente.dev/services/providersim"
)

// Options configure a Server.
type Options struct {
	// APIKey is the partner API key the server accepts.
	APIKey string
	// TransactionsPerAccount is how many transactions each account has (default 30).
	TransactionsPerAccount int
	// Now is the clock of dt_* fields (time.Now when nil). Progress never depends on it.
	Now func() time.Time
}

// Fault is a failure injected on a path.
type Fault string

const (
	NoFault Fault = ""
	// Garbage answers 200 with a body that is not JSON.
	Garbage Fault = "garbage"
	// WrongShape answers 200 with JSON that is not the envelope's shape.
	WrongShape Fault = "wrong-shape"
	// Hang answers nothing until the client gives up (or the server closes).
	Hang Fault = "hang"
	// Drop closes the connection without an answer.
	Drop Fault = "drop"
	// Unavailable answers 503 in the envelope.
	Unavailable Fault = "unavailable"
)

// Server is the simulator; it is an http.Handler.
type Server struct {
	opts Options

	mu       sync.Mutex
	seq      int
	users    map[string]*user
	sessions map[string]*session
	creds    map[string]*credential
	jobs     map[string]*job
	faults   map[string]Fault
	release  chan struct{}
	closed   bool
	reads    map[string]int // path prefix → requests seen, for tests
}

type user struct {
	ID       string  `json:"id_user"`
	External *string `json:"id_external"`
	Name     string  `json:"name"`
	Created  int64   `json:"dt_create"`
	Modified *int64  `json:"dt_modify"`
}

// session is a session token's user and last use: it dies after SessionIdle unused.
type session struct {
	user string
	last time.Time
}

// SessionIdle is how long a session token lives unused (documented: five minutes).
const SessionIdle = 5 * time.Minute

type credential struct {
	ID, User, Site, Username string
	Code                     int
	Job                      string
	Created                  time.Time
}

type jobStatus struct {
	Code    int            `json:"code"`
	Address string         `json:"address,omitempty"`
	Twofa   []twofaElement `json:"twofa,omitempty"`
}

type twofaElement struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Label   string   `json:"label"`
	Image   string   `json:"imgBase64File,omitempty"`
	Options []option `json:"options,omitempty"`
}

type job struct {
	ID, Cred, User string
	history        []jobStatus
	plan           []int // codes still to come, one per status read
	waiting        bool  // at 410, until answered or expired
	twofa          []twofaElement
	right          func(map[string]string) bool
	twofaURL       string
}

// New returns a simulator.
func New(o Options) *Server {
	if o.TransactionsPerAccount <= 0 {
		o.TransactionsPerAccount = 30
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{opts: o, users: map[string]*user{}, sessions: map[string]*session{}, creds: map[string]*credential{},
		jobs: map[string]*job{}, faults: map[string]Fault{}, release: make(chan struct{}), reads: map[string]int{}}
}

// Fault makes every request whose path starts with prefix fail as f; NoFault clears it.
func (s *Server) Fault(prefix string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == NoFault {
		delete(s.faults, prefix)
		return
	}
	s.faults[prefix] = f
}

// Close releases hanging requests; call it before closing the HTTP server.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.release)
	}
}

// ExpireTwofa ends every job waiting at 410 with 411 TwofaTimeout (on its next status read), as
// Syncfy does when the user takes too long; it returns how many it expired.
func (s *Server) ExpireTwofa() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, j := range s.jobs {
		if j.waiting {
			j.waiting, j.plan = false, []int{411}
			n++
		}
	}
	return n
}

// ExpireSessions ends every session, as five idle minutes would.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// Requests is how many requests reached a path starting with prefix.
func (s *Server) Requests(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.reads {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// Users is how many Syncfy users exist.
func (s *Server) Users() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}

// ---- envelope

func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("%08x%016x", 0x5f000000+s.seq, s.seq)
}

func token() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func rid() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func reply(w http.ResponseWriter, status int, response any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"rid": rid(), "code": status, "errors": nil, "status": true, "message": nil, "response": response})
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"rid": rid(), "code": status, "errors": nil, "status": false, "message": msg, "response": nil})
}

// ---- routing

var (
	jobPath  = regexp.MustCompile(`^/v1/jobs/([0-9a-f]{24})/(status|twofa)$`)
	credPath = regexp.MustCompile(`^/v1/credentials/([0-9a-f]{24})$`)
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m := r.Header.Get("X-Http-Method-Override"); m != "" && r.Method == http.MethodPost {
		r.Method = strings.ToUpper(m)
	}
	p := r.URL.Path
	s.mu.Lock()
	s.reads[p]++
	var f Fault
	for prefix, pf := range s.faults {
		if strings.HasPrefix(p, prefix) {
			f = pf
		}
	}
	release := s.release
	s.mu.Unlock()
	switch f {
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("<html>upstream proxy error"))
		return
	case WrongShape:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"rid":"x","code":200,"status":true,"response":"not what you wanted"}`))
		return
	case Hang:
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return
	case Drop:
		providersim.Drop(w)
	case Unavailable:
		fail(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}

	switch {
	case p == "/v1/users" && r.Method == http.MethodGet:
		s.withKey(w, r, s.listUsers)
	case p == "/v1/users" && r.Method == http.MethodPost:
		s.withKey(w, r, s.createUser)
	case p == "/v1/sessions" && r.Method == http.MethodPost:
		s.withKey(w, r, s.createSession)
	case strings.HasPrefix(p, "/v1/catalogues/") && r.Method == http.MethodGet:
		if _, ok := s.keyOK(r); !ok {
			if _, ok := s.session(r); !ok {
				fail(w, http.StatusUnauthorized, "Unauthorized")
				return
			}
		}
		s.catalogue(w, r, strings.TrimPrefix(p, "/v1/catalogues/"))
	case p == "/v1/credentials" && r.Method == http.MethodPost:
		s.withSession(w, r, s.createCredential)
	case credPath.MatchString(p) && r.Method == http.MethodDelete:
		s.withSession(w, r, func(w http.ResponseWriter, r *http.Request, idUser string) {
			s.deleteCredential(w, credPath.FindStringSubmatch(p)[1], idUser)
		})
	case jobPath.MatchString(p):
		m := jobPath.FindStringSubmatch(p)
		s.withSession(w, r, func(w http.ResponseWriter, r *http.Request, idUser string) {
			switch {
			case m[2] == "status" && r.Method == http.MethodGet:
				s.status(w, m[1], idUser)
			case m[2] == "twofa" && r.Method == http.MethodPost:
				s.answer(w, r, m[1], idUser)
			default:
				fail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			}
		})
	case p == "/v1/accounts" && r.Method == http.MethodGet:
		s.withSession(w, r, s.accounts)
	case p == "/v1/transactions" && r.Method == http.MethodGet:
		s.withSession(w, r, s.transactions)
	default:
		fail(w, http.StatusNotFound, "Not Found")
	}
}

// keyOK accepts "Authorization: api_key api_key=KEY" (or ?api_key=KEY, as the seed documents).
func (s *Server) keyOK(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(v, "api_key api_key=")
	if !ok {
		key = r.URL.Query().Get("api_key")
	}
	return key, key != "" && key == s.opts.APIKey
}

// session accepts "Authorization: TOKEN token=T", "Bearer T" or ?token=T; a session is refused
// once expired.
func (s *Server) session(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(v, "TOKEN token=")
	if !ok {
		tok, ok = strings.CutPrefix(v, "Bearer ")
	}
	if !ok {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, found := s.sessions[tok]
	if !found {
		return "", false
	}
	now := s.opts.Now()
	if now.Sub(ses.last) > SessionIdle {
		delete(s.sessions, tok)
		return "", false
	}
	ses.last = now
	return ses.user, true
}

func (s *Server) withKey(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	if _, ok := s.keyOK(r); !ok {
		fail(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	h(w, r)
}

func (s *Server) withSession(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request, string)) {
	u, ok := s.session(r)
	if !ok {
		fail(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	h(w, r, u)
}

func decode(w http.ResponseWriter, r *http.Request, into any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(into); err != nil {
		fail(w, http.StatusBadRequest, "Bad Request: the body is not JSON")
		return false
	}
	return true
}

// ---- users and sessions

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	ext := r.URL.Query().Get("id_external")
	s.mu.Lock()
	out := []*user{}
	for _, u := range s.users {
		if ext == "" || (u.External != nil && *u.External == ext) {
			out = append(out, u)
		}
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, out)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		External *string `json:"id_external"`
		Name     string  `json:"name"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Name == "" {
		fail(w, http.StatusBadRequest, "name is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.External != nil {
		for _, u := range s.users {
			if u.External != nil && *u.External == *in.External {
				fail(w, http.StatusBadRequest, "id_external already exists")
				return
			}
		}
	}
	u := &user{ID: s.newID(), External: in.External, Name: in.Name, Created: s.opts.Now().Unix()}
	s.users[u.ID] = u
	reply(w, http.StatusOK, u)
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	var in struct {
		IDUser string `json:"id_user"`
	}
	if !decode(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[in.IDUser]; !ok {
		fail(w, http.StatusNotFound, "User not found")
		return
	}
	t := token()
	s.sessions[t] = &session{user: in.IDUser, last: s.opts.Now()}
	reply(w, http.StatusOK, map[string]string{"token": t})
}

// ---- catalogues

func page[T any](r *http.Request, all []T) []T {
	skip, _ := strconv.Atoi(r.URL.Query().Get("skip"))
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		limit = 1000
	}
	skip = min(max(skip, 0), len(all))
	return all[skip:min(skip+limit, len(all))]
}

func (s *Server) catalogue(w http.ResponseWriter, r *http.Request, name string) {
	switch name {
	case "countries":
		reply(w, http.StatusOK, page(r, countries))
	case "site_organization_types":
		reply(w, http.StatusOK, page(r, orgTypes))
	case "site_organizations":
		reply(w, http.StatusOK, page(r, organizations))
	case "sites":
		reply(w, http.StatusOK, page(r, sites))
	default:
		fail(w, http.StatusNotFound, "Not Found")
	}
}

// ---- credentials and jobs

func (s *Server) baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func mask(u string) string {
	if len(u) <= 2 {
		return "**"
	}
	return u[:1] + strings.Repeat("*", len(u)-2) + u[len(u)-1:]
}

func (s *Server) createCredential(w http.ResponseWriter, r *http.Request, idUser string) {
	var in struct {
		Site        string            `json:"id_site"`
		Credentials map[string]string `json:"credentials"`
	}
	if !decode(w, r, &in) {
		return
	}
	st, ok := siteByID(in.Site)
	if !ok {
		fail(w, http.StatusNotFound, "Site not found")
		return
	}
	var username string
	for _, e := range st.Elements {
		v := in.Credentials[e.Name]
		if e.Required && v == "" {
			fail(w, http.StatusBadRequest, "Missing credential "+e.Name)
			return
		}
		if e.Validation != nil && v != "" && !regexp.MustCompile(*e.Validation).MatchString(v) {
			fail(w, http.StatusBadRequest, "Invalid credential "+e.Name)
			return
		}
		if e.Username {
			username = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := &job{ID: s.newID(), User: idUser}
	c := &credential{ID: s.newID(), User: idUser, Site: st.ID, Username: username, Job: j.ID, Created: s.opts.Now()}
	j.Cred = c.ID
	base := s.baseURL(r)
	j.twofaURL = base + "/v1/jobs/" + j.ID + "/twofa"
	script(j, st, in.Credentials)
	j.history = []jobStatus{{Code: 100}}
	c.Code = 100
	s.creds[c.ID] = c
	s.jobs[j.ID] = j
	reply(w, http.StatusOK, map[string]any{
		"id_credential": c.ID, "id_job": j.ID, "id_job_uuid": rid(), "is_new": 1, "username": mask(username),
		"ws":     "ws" + strings.TrimPrefix(base, "http") + "/v1/status/" + j.ID,
		"status": base + "/v1/jobs/" + j.ID + "/status", "twofa": j.twofaURL,
	})
}

// knownCodes are the codes a Code Response Simulator username may end in.
var knownCodes = []int{100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 400, 401, 403, 405, 406, 408, 409, 410, 411, 413, 500, 501, 504, 509}

// script plans a job's codes after 100 from its site and credentials.
func script(j *job, st site, creds map[string]string) {
	good := creds["username"] == Username && creds["password"] == Password
	ok := []int{101, 102, 200}
	bad := []int{101, 401}
	switch st.ID {
	case SiteNormal:
	case SiteSelect:
		good = good && (creds["account_kind"] == "01" || creds["account_kind"] == "02")
	case SiteCodeResponse:
		code := 200
		if rest, found := strings.CutPrefix(creds["username"], Username+"-"); found {
			code, _ = strconv.Atoi(rest)
		}
		good = creds["password"] == Password && (creds["username"] == Username || containsInt(knownCodes, code))
		switch {
		case !good:
		case code == 410:
			twofaRound(j, tokenRound)
			ok = []int{101, 410}
		case code < 200:
			ok = []int{101, 102, code, 200}
		case code < 300:
			ok = []int{101, 102, code}
		default:
			ok = []int{101, code}
		}
	case SiteToken:
		twofaRound(j, tokenRound)
		ok = []int{101, 410}
	case SiteCaptcha:
		twofaRound(j, captchaRound)
		ok = []int{101, 410}
	case SiteMultipleImage:
		twofaRound(j, imageRound)
		ok = []int{101, 410}
	case SiteMultipleText:
		twofaRound(j, textRound)
		ok = []int{101, 410}
	case SiteBanorte:
		good = creds["password"] == Password
	case SiteSAT:
		good = creds["password"] == Password
	}
	if good {
		j.plan = ok
	} else {
		j.plan = bad
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

type round struct {
	elements []twofaElement
	right    func(map[string]string) bool
}

func twofaRound(j *job, rd round) { j.twofa, j.right = rd.elements, rd.right }

func nonEmpty(names ...string) func(map[string]string) bool {
	return func(a map[string]string) bool {
		for _, n := range names {
			if strings.TrimSpace(a[n]) == "" {
				return false
			}
		}
		return true
	}
}

var (
	tokenRound = round{
		elements: []twofaElement{{Name: "token", Type: "text", Label: "Token"}},
		right:    func(a map[string]string) bool { return strings.TrimSpace(a["token"]) == Token },
	}
	captchaRound = round{
		elements: []twofaElement{{Name: "captcha", Type: "text", Label: "Escribe el texto de la imagen", Image: captchaImage}},
		right:    func(a map[string]string) bool { return strings.EqualFold(strings.TrimSpace(a["captcha"]), Captcha) },
	}
	imageRound = round{
		elements: []twofaElement{{Name: "image", Type: "options", Label: "Selecciona tu imagen de seguridad", Options: []option{
			{Label: "Rojo", Value: "1", Image: squares[0]}, {Label: "Verde", Value: "2", Image: squares[1]}, {Label: "Azul", Value: "3", Image: squares[2]},
		}}},
		right: nonEmpty("image"),
	}
	textRound = round{
		elements: []twofaElement{
			{Name: "answer1", Type: "text", Label: "¿Nombre de tu primera mascota?"},
			{Name: "answer2", Type: "password", Label: "¿Ciudad de nacimiento?"},
		},
		right: nonEmpty("answer1", "answer2"),
	}
)

// advance moves a job one step: the next planned code, unless it waits at 410.
func (s *Server) advance(j *job) {
	if j.waiting || len(j.plan) == 0 {
		return
	}
	code := j.plan[0]
	j.plan = j.plan[1:]
	st := jobStatus{Code: code}
	if code == 410 {
		st.Address, st.Twofa = j.twofaURL, j.twofa
		j.waiting = true
	}
	j.history = append(j.history, st)
	if c := s.creds[j.Cred]; c != nil {
		c.Code = code
	}
}

func (s *Server) status(w http.ResponseWriter, id, idUser string) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	if !ok || j.User != idUser {
		s.mu.Unlock()
		fail(w, http.StatusNotFound, "Job not found")
		return
	}
	s.advance(j)
	hist := append([]jobStatus(nil), j.history...)
	s.mu.Unlock()
	reply(w, http.StatusOK, hist)
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, id, idUser string) {
	var in struct {
		Twofa map[string]string `json:"twofa"`
	}
	if !decode(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok || j.User != idUser {
		fail(w, http.StatusNotFound, "Job not found")
		return
	}
	if !j.waiting {
		fail(w, http.StatusBadRequest, "The job is not waiting for a twofa")
		return
	}
	j.waiting = false
	if j.right != nil && j.right(in.Twofa) {
		j.plan = []int{103, 102, 200}
	} else {
		j.plan = []int{103, 403}
	}
	reply(w, http.StatusOK, true)
}

func (s *Server) deleteCredential(w http.ResponseWriter, id, idUser string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[id]
	if !ok || c.User != idUser {
		fail(w, http.StatusNotFound, "Credential not found")
		return
	}
	delete(s.creds, id)
	reply(w, http.StatusOK, true)
}

// ---- images

func pngBase64(w, h int, fill func(x, y int) color.Color) string {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, fill(x, y))
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

var (
	captchaImage = pngBase64(48, 16, func(x, y int) color.Color {
		if (x/4+y/4)%2 == 0 {
			return color.Gray{Y: 40}
		}
		return color.Gray{Y: 220}
	})
	squares = [3]string{
		pngBase64(8, 8, func(int, int) color.Color { return color.RGBA{R: 220, A: 255} }),
		pngBase64(8, 8, func(int, int) color.Color { return color.RGBA{G: 200, A: 255} }),
		pngBase64(8, 8, func(int, int) color.Color { return color.RGBA{B: 220, A: 255} }),
	}
)
