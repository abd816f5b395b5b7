// Package klavi simulates Klavi Link (Brazilian Open Finance) as its API-only guide describes it:
// the partner's accessKey/secretKey exchanged for a 30-minute accessToken (refreshable), links
// with their linkTokens, the participant list, consents with a one-time consentRedirectURL (60 s)
// that a test approves or denies before the simulator sends the browser back to the partner's
// redirectURL, consent statuses, revocation, report requests for personal and business users,
// and the two webhooks: API events (a JSON array) and reports, both signed with X-Klavi-Signature.
//
// Scenarios: institution 999 (Mock Bank) serves persons and companies; institution 998 is in
// outage; CPF 00000000191 is always REJECTED at the bank; CPF 00000000272's reports fail. Nothing
// advances with the clock: a consent moves when its redirect is opened and answered, and webhooks
// go out in order from one goroutine, or only on Flush when Options.HoldWebhooks is set.
package klavi

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
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"puente.dev/services/providersim"
)

// Scenario tax ids and institutions.
const (
	MockBank       = "999"
	OutageBank     = "998"
	RejectedCPF    = "00000000191"
	FailingReports = "00000000272"
	TokenLifetime  = 1800 * time.Second
	// RedirectLifetime is how long a consentRedirectURL may be opened (once).
	RedirectLifetime = 60 * time.Second
)

// Options configure a simulator.
type Options struct {
	// AccessKey and SecretKey are the partner credentials it accepts; SecretKey signs webhooks.
	AccessKey, SecretKey string
	// EventWebhookURL receives API events; ProductWebhookURL receives reports (the console's
	// global URLs). Empty: not sent.
	EventWebhookURL   string
	ProductWebhookURL string
	// HoldWebhooks keeps webhooks queued until Flush.
	HoldWebhooks bool
	// LowerCaseStatus answers consent statuses in lower case, as some of Klavi's examples do.
	LowerCaseStatus bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Client sends webhooks (a 10 s timeout when nil).
	Client *http.Client
}

// Fault is a failure injected on a path.
type Fault int

const (
	NoFault     Fault = iota
	Garbage           // 200 with a body that is not JSON
	WrongShape        // 200 with JSON of the wrong shape
	Hang              // no answer until the client gives up
	Drop              // the connection is closed without an answer
	Unavailable       // 503
	TooMany           // 429 with Retry-After: 1
)

// Delivery is a webhook the simulator sent.
type Delivery struct {
	Kind   string // "event" or "report"
	Name   string // the event name or product name
	Body   []byte
	Status int // the receiver's status, 0 when it could not be reached
}

// Server is the simulator; it is an http.Handler.
type Server struct {
	o   Options
	mux *http.ServeMux

	mu        sync.Mutex
	tokens    map[string]time.Time // accessToken → expiry
	links     map[string]*link     // by linkId
	linkToks  map[string]*link     // by linkToken
	consents  map[string]*consent
	tickets   map[string]ticket // one-time redirect tickets
	tracks    map[string]bool   // externalTrackIds used
	faults    map[string]Fault
	calls     map[string]int
	pending   []Delivery
	delivered []Delivery
	changed   chan struct{}
	running   bool
	sendMu    sync.Mutex // one sender at a time, so webhooks leave in order
	closed    chan struct{}
	closeOnce sync.Once
	seq       int
}

type link struct {
	ID, Token, PersonalTaxID, BusinessTaxID string
	ExternalInfo                            json.RawMessage
	ProductsCallback                        map[string]string
}

type consent struct {
	ConsentID          string   `json:"consentId"`
	LinkID             string   `json:"linkId"`
	ExternalTrackID    string   `json:"externalTrackId"`
	PersonalTaxID      string   `json:"personalTaxId"`
	BusinessTaxID      string   `json:"businessTaxId"`
	InstitutionCode    string   `json:"institutionCode"`
	Status             string   `json:"status"`
	PermissionsApply   []string `json:"permissionsApply"`
	PermissionsGranted []string `json:"permissionsGranted"`
	ExpireAt           string   `json:"expireAt"`
	CreatedAt          string   `json:"createdAt"`
	UpdatedAt          string   `json:"updatedAt"`
	redirectURL        string
	externalInfo       json.RawMessage
}

type ticket struct {
	consentID string
	expires   time.Time
}

// New returns a simulator.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{o: o, mux: http.NewServeMux(), tokens: map[string]time.Time{}, links: map[string]*link{}, linkToks: map[string]*link{},
		consents: map[string]*consent{}, tickets: map[string]ticket{}, tracks: map[string]bool{}, faults: map[string]Fault{},
		calls: map[string]int{}, changed: make(chan struct{}), closed: make(chan struct{})}
	s.mux.HandleFunc("POST /data/v1/auth", s.auth)
	s.mux.HandleFunc("GET /data/v1/refresh", s.access(s.refresh))
	s.mux.HandleFunc("POST /data/v1/links", s.access(s.createLink))
	s.mux.HandleFunc("GET /data/v1/links/institutions", s.linkAuth(s.institutions))
	s.mux.HandleFunc("GET /data/v1/institutions", s.linkAuth(s.institutions))
	s.mux.HandleFunc("POST /data/v1/consents", s.linkAuth(s.createConsent))
	s.mux.HandleFunc("GET /data/v1/consents", s.access(s.listConsents))
	s.mux.HandleFunc("GET /data/v1/consents/{id}", s.access(s.getConsent))
	s.mux.HandleFunc("DELETE /data/v1/consents/{id}/revoke", s.access(s.revoke))
	s.mux.HandleFunc("POST /data/v1/personal/user-data", s.access(s.report(false)))
	s.mux.HandleFunc("POST /data/v1/business/user-data", s.access(s.report(true)))
	s.mux.HandleFunc("GET /bank/authorize/{id}", s.authorize)
	return s
}

// Fault makes every request to path (exact, or a prefix ending in "*") fail as f; NoFault clears it.
func (s *Server) Fault(path string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == NoFault {
		delete(s.faults, path)
		return
	}
	s.faults[path] = f
}

// Calls is how many requests reached path (faulty ones included).
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// ConsentStatus is a consent's status now, as Klavi would report it.
func (s *Server) ConsentStatus(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consents[id]
	if !ok {
		return "", false
	}
	return c.Status, true
}

// SetConsentStatus moves a consent as the user would elsewhere (revoked at the bank, expired),
// with the matching event.
func (s *Server) SetConsentStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.consents[id]; ok {
		s.setStatus(c, status)
	}
}

// Close releases hanging requests and stops sending webhooks.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[r.URL.Path]++
	f := s.faults[r.URL.Path]
	for p, pf := range s.faults {
		if strings.HasSuffix(p, "*") && strings.HasPrefix(r.URL.Path, strings.TrimSuffix(p, "*")) {
			f = pf
		}
	}
	s.mu.Unlock()
	switch f {
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("<html>upstream proxy error</html>"))
		return
	case WrongShape:
		writeJSON(w, http.StatusOK, map[string]any{"data": []int{1, 2, 3}, "status": 7})
		return
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	case Drop:
		providersim.Drop(w)
	case Unavailable:
		writeJSON(w, http.StatusServiceUnavailable, errBody(503, "Service Unavailable", "maintenance"))
		return
	case TooMany:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, errBody(429, "Too Many Requests", "rate limit exceeded"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

func errBody(code int, errText, msg string) map[string]any {
	return map[string]any{"statusCode": code, "error": errText, "message": msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func business(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, 416, map[string]any{"statusCode": code, "error": "Business Error", "message": msg})
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func unauthorized(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusUnauthorized, errBody(401, "Unauthorized", msg))
}

// access requires a live accessToken.
func (s *Server) access(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		s.mu.Lock()
		exp, ok := s.tokens[tok]
		s.mu.Unlock()
		if tok == "" || !ok || !s.o.Now().Before(exp) {
			unauthorized(w, "invalid or expired accessToken")
			return
		}
		h(w, r)
	}
}

// linkAuth requires a link's linkToken.
func (s *Server) linkAuth(h func(http.ResponseWriter, *http.Request, *link)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		l, ok := s.linkToks[bearer(r)]
		s.mu.Unlock()
		if !ok {
			unauthorized(w, "invalid linkToken")
			return
		}
		h(w, r, l)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newToken mints a JWT-looking accessToken (locked).
func (s *Server) newToken() (string, time.Time) {
	now := s.o.Now()
	exp := now.Add(TokenLifetime)
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": s.o.AccessKey, "iat": now.Unix(), "exp": exp.Unix(), "jti": randomHex(8)})
	tok := head + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte(randomHex(16)))
	s.tokens[tok] = exp
	return tok, exp
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	var in struct{ AccessKey, SecretKey string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "invalid body"))
		return
	}
	if !hmac.Equal([]byte(in.AccessKey), []byte(s.o.AccessKey)) || !hmac.Equal([]byte(in.SecretKey), []byte(s.o.SecretKey)) {
		unauthorized(w, "Invalid accessKey or secretKey")
		return
	}
	s.mu.Lock()
	tok, _ := s.newToken()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"accessToken": tok, "expireIn": int(TokenLifetime / time.Second)})
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	tok, _ := s.newToken()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"accessToken": tok, "expireIn": int(TokenLifetime / time.Second)})
}

func (s *Server) createLink(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PersonalTaxID       string            `json:"personalTaxId"`
		BusinessTaxID       string            `json:"businessTaxId"`
		ProductsCallbackURL map[string]string `json:"productsCallbackURL"`
		ProductsCallbackUrl map[string]string `json:"productsCallbackUrl"` // a third-party spelling
		ExternalInfo        json.RawMessage   `json:"externalInfo"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "invalid body"))
		return
	}
	if (in.PersonalTaxID != "" && !isDigits(in.PersonalTaxID, 11)) || (in.BusinessTaxID != "" && !isDigits(in.BusinessTaxID, 14)) {
		writeJSON(w, http.StatusUnprocessableEntity, errBody(422, "Unprocessable Entity", "invalid tax id"))
		return
	}
	cb := in.ProductsCallbackURL
	if cb == nil {
		cb = in.ProductsCallbackUrl
	}
	if _, all := cb["all"]; all && len(cb) > 1 {
		business(w, 4006, "productsCallbackURL: all cannot be combined with other keys")
		return
	}
	l := &link{ID: uuid(), Token: "lt_" + randomHex(20), PersonalTaxID: in.PersonalTaxID, BusinessTaxID: in.BusinessTaxID, ExternalInfo: in.ExternalInfo, ProductsCallback: cb}
	s.mu.Lock()
	s.links[l.ID], s.linkToks[l.Token] = l, l
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"linkId": l.ID, "linkURL": "http://" + r.Host + "/link?v=" + l.Token, "linkToken": l.Token, "expireIn": int(TokenLifetime / time.Second),
	})
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

var institutions = []map[string]any{
	{"institutionCode": MockBank, "name": "Mock Bank", "avatar": "https://static.klavi.example/999.png", "isBeta": false, "isOutage": false,
		"institutionType": 1, "businessType": "BOTH", "availableResources": []string{"REGISTRATION", "ACCOUNTS", "CREDIT_CARDS"},
		"parentOrganizationName": "Mock Group", "parentOrganizationId": "7d8e3b4c-0000-4000-8000-000000000999",
		"organizationName": "Mock Bank S.A.", "organizationId": "1c2d3e4f-0000-4000-8000-000000000999"},
	{"institutionCode": OutageBank, "name": "Banco Fora do Ar", "avatar": "https://static.klavi.example/998.png", "isBeta": false, "isOutage": true,
		"institutionType": 1, "businessType": "natural", "availableResources": []string{"ACCOUNTS"},
		"parentOrganizationName": "Fora Group", "parentOrganizationId": "7d8e3b4c-0000-4000-8000-000000000998",
		"organizationName": "Banco Fora do Ar S.A.", "organizationId": "1c2d3e4f-0000-4000-8000-000000000998"},
}

func (s *Server) institutions(w http.ResponseWriter, r *http.Request, _ *link) {
	writeJSON(w, http.StatusOK, institutions)
}

func institution(code string) map[string]any {
	for _, in := range institutions {
		if in["institutionCode"] == code {
			return in
		}
	}
	return nil
}

func (s *Server) iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) createConsent(w http.ResponseWriter, r *http.Request, l *link) {
	var in struct {
		ExternalTrackID string          `json:"externalTrackId"`
		PersonalTaxID   string          `json:"personalTaxId"`
		BusinessTaxID   string          `json:"businessTaxId"`
		InstitutionCode string          `json:"institutionCode"`
		RedirectURL     string          `json:"redirectURL"`
		ValidityPeriod  *int            `json:"validityPeriod"`
		ClientMetadata  json.RawMessage `json:"clientMetadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "invalid body"))
		return
	}
	ru, err := url.Parse(in.RedirectURL)
	switch {
	case in.ExternalTrackID == "" || in.InstitutionCode == "" || err != nil || ru.Scheme == "" || ru.Host == "":
		writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "externalTrackId, institutionCode and redirectURL are required"))
		return
	case in.PersonalTaxID == "" && in.BusinessTaxID == "":
		writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "personalTaxId or businessTaxId is required"))
		return
	case (in.PersonalTaxID != "" && !isDigits(in.PersonalTaxID, 11)) || (in.BusinessTaxID != "" && !isDigits(in.BusinessTaxID, 14)):
		writeJSON(w, http.StatusUnprocessableEntity, errBody(422, "Unprocessable Entity", "invalid tax id"))
		return
	case in.ValidityPeriod == nil || (*in.ValidityPeriod != 0 && *in.ValidityPeriod != 12):
		writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "validityPeriod must be 0 or 12"))
		return
	}
	in2 := institution(in.InstitutionCode)
	if in2 == nil || in2["isOutage"] == true {
		business(w, 4004, "invalid institution: outage or no permission")
		return
	}
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracks[in.ExternalTrackID] {
		writeJSON(w, http.StatusConflict, errBody(409, "Conflict", "externalTrackId already used"))
		return
	}
	s.tracks[in.ExternalTrackID] = true
	c := &consent{
		ConsentID: uuid(), LinkID: l.ID, ExternalTrackID: in.ExternalTrackID, PersonalTaxID: in.PersonalTaxID, BusinessTaxID: in.BusinessTaxID,
		InstitutionCode: in.InstitutionCode, Status: "STARTED",
		PermissionsApply:   []string{"ACCOUNTS_ALL", "CREDIT_CARDS_ALL", "REGISTRATION_ALL"},
		PermissionsGranted: []string{}, ExpireAt: s.iso(now.AddDate(1, 0, 0)), CreatedAt: s.iso(now), UpdatedAt: s.iso(now),
		redirectURL: in.RedirectURL, externalInfo: l.ExternalInfo,
	}
	s.consents[c.ConsentID] = c
	t := randomHex(16)
	s.tickets[t] = ticket{consentID: c.ConsentID, expires: now.Add(RedirectLifetime)}
	writeJSON(w, http.StatusOK, map[string]any{
		"consentId": c.ConsentID, "consentRedirectURL": "http://" + r.Host + "/bank/authorize/" + c.ConsentID + "?ticket=" + t, "expireAt": c.ExpireAt,
	})
}

// view is a consent as the API shows it (locked).
func (s *Server) view(c *consent) consent {
	v := *c
	if s.o.LowerCaseStatus {
		v.Status = strings.ToLower(v.Status)
	}
	return v
}

func (s *Server) getConsent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.consents[r.PathValue("id")]
	var v consent
	if ok {
		v = s.view(c)
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, errBody(404, "Not Found", "consent not found"))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) listConsents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []consent{}
	s.mu.Lock()
	for _, c := range s.consents {
		if (q.Get("linkId") == "" || q.Get("linkId") == c.LinkID) && (q.Get("personalTaxId") == "" || q.Get("personalTaxId") == c.PersonalTaxID) &&
			(q.Get("businessTaxId") == "" || q.Get("businessTaxId") == c.BusinessTaxID) {
			out = append(out, s.view(c))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.consents[r.PathValue("id")]
	if ok && c.Status != "REVOKED" {
		s.setStatus(c, "REVOKED")
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, errBody(404, "Not Found", "consent not found"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "ok"})
}

var statusEvents = map[string]string{
	"AUTHORISED": "consent_authorised", "ERROR": "consent_error", "REJECTED": "consent_rejected", "EXPIRED": "consent_expired",
	"REVOKED": "consent_revoked", "DELETED_BY_USER": "consent_deleted_by_user",
}

// setStatus moves a consent and queues its event, if the status has one (locked).
func (s *Server) setStatus(c *consent, status string) {
	c.Status, c.UpdatedAt = status, s.iso(s.o.Now())
	if status == "AUTHORISED" {
		c.PermissionsGranted = c.PermissionsApply
	}
	if name, ok := statusEvents[status]; ok {
		s.event(name, map[string]any{"personalTaxId": c.PersonalTaxID, "businessTaxId": c.BusinessTaxID, "linkId": c.LinkID,
			"consents": map[string]any{"consentId": c.ConsentID, "externalTrackId": c.ExternalTrackID, "institutionCode": c.InstitutionCode}}, c.externalInfo)
	}
}

// authorize is the bank's page behind a consentRedirectURL: opened once within 60 s, it moves the
// consent to AWAITING_AUTHORISATION; ?action=approve walks the bank and LGPD steps to AUTHORISED
// and ?action=deny rejects it, and either way the browser goes back to the partner's redirectURL.
// Without an action it shows a page whose links carry a fresh ticket.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	id, t, action := r.PathValue("id"), r.URL.Query().Get("ticket"), r.URL.Query().Get("action")
	now := s.o.Now()
	s.mu.Lock()
	tk, ok := s.tickets[t]
	delete(s.tickets, t)
	c := s.consents[id]
	if !ok || tk.consentID != id || c == nil || now.After(tk.expires) {
		s.mu.Unlock()
		http.Error(w, "this authorisation link is invalid, expired or was already used", http.StatusGone)
		return
	}
	if c.Status == "STARTED" {
		c.Status, c.UpdatedAt = "AWAITING_AUTHORISATION", s.iso(now)
	}
	if action == "" {
		next := randomHex(16)
		s.tickets[next] = ticket{consentID: id, expires: now.Add(RedirectLifetime)}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Mock Bank</title><p>Share your data with the partner?</p>`+
			`<a href="?ticket=%[1]s&action=approve">Approve</a> <a href="?ticket=%[1]s&action=deny">Deny</a>`, next)
		return
	}
	back, _ := url.Parse(c.redirectURL)
	q := back.Query()
	q.Set("link_id", c.LinkID)
	q.Set("consent_id", c.ConsentID)
	q.Set("external_track_id", c.ExternalTrackID)
	if len(c.externalInfo) > 0 {
		q.Set("external_info", string(c.externalInfo))
	}
	switch {
	case action == "approve" && c.PersonalTaxID != RejectedCPF:
		c.Status = "AWAITING_LGPD_AUTHORISATION"
		s.setStatus(c, "AUTHORISED")
	default:
		s.setStatus(c, "REJECTED")
		q.Set("error", "access_denied")
		q.Set("error_description", "the user did not authorise the consent")
	}
	s.mu.Unlock()
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (s *Server) report(businessUser bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			TaxID               string            `json:"taxId"`
			LinkID              string            `json:"linkId"`
			ConsentIDs          []string          `json:"consentIds"`
			Products            []string          `json:"products"`
			ProductsCallbackURL map[string]string `json:"productsCallbackURL"`
			ProductsCallbackUrl map[string]string `json:"productsCallbackUrl"`
			ExternalInfo        json.RawMessage   `json:"externalInfo"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, errBody(400, "Bad Request", "invalid body"))
			return
		}
		prefix := "pf_"
		if businessUser {
			prefix = "pj_"
		}
		switch {
		case !businessUser && !isDigits(in.TaxID, 11), businessUser && !isDigits(in.TaxID, 14):
			business(w, 4001, "invalid authorisation info: taxId does not fit this endpoint")
			return
		case len(in.Products) == 0:
			business(w, 4005, "products empty")
			return
		}
		for _, p := range in.Products {
			if !strings.HasPrefix(p, prefix) {
				business(w, 4002, "invalid product info")
				return
			}
		}
		cb := in.ProductsCallbackURL
		if cb == nil {
			cb = in.ProductsCallbackUrl
		}
		if _, all := cb["all"]; all && len(cb) > 1 {
			business(w, 4006, "invalid productsCallbackURL")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var covered []*consent
		for _, c := range s.consents {
			tax := c.PersonalTaxID
			if businessUser {
				tax = c.BusinessTaxID
			}
			if tax != in.TaxID || c.Status != "AUTHORISED" || (in.LinkID != "" && c.LinkID != in.LinkID) ||
				(len(in.ConsentIDs) > 0 && !contains(in.ConsentIDs, c.ConsentID)) {
				continue
			}
			covered = append(covered, c)
		}
		if len(covered) == 0 {
			business(w, 4008, "no Open Finance consent")
			return
		}
		reqID := uuid()
		s.event("product_request_received", map[string]any{"linkId": covered[0].LinkID, "requestId": reqID}, in.ExternalInfo)
		for _, p := range in.Products {
			target := s.o.ProductWebhookURL
			if l := s.links[covered[0].LinkID]; l != nil && l.ProductsCallback != nil {
				target = pick(l.ProductsCallback, p, target)
			}
			target = pick(cb, p, target)
			body, code := s.reportBody(reqID, p, in.TaxID, businessUser, covered, in.ExternalInfo)
			if code != 200 {
				s.event("product_generated_failed", map[string]any{"linkId": covered[0].LinkID, "productName": p, "code": code, "message": "institution data unavailable"}, in.ExternalInfo)
			} else {
				s.event("product_generated_success", map[string]any{"linkId": covered[0].LinkID, "productName": p, "requestId": reqID}, in.ExternalInfo)
			}
			if target != "" {
				s.enqueue(Delivery{Kind: "report", Name: p, Body: body}, target)
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"requestId": reqID, "message": "ok"})
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func pick(cb map[string]string, product, fallback string) string {
	if u := cb[product]; u != "" {
		return u
	}
	if u := cb["all"]; u != "" {
		return u
	}
	if u := cb["other"]; u != "" {
		return u
	}
	return fallback
}

// reportBody builds a product report for taxID (locked): a checking account at Mock Bank with a
// salary, a card payment and a PIX, derived from the tax id so that the same user always has the
// same account.
func (s *Server) reportBody(reqID, product, taxID string, businessUser bool, covered []*consent, externalInfo json.RawMessage) ([]byte, int) {
	code, message := 200, "ok"
	if taxID == FailingReports {
		code, message = 5001, "institution data unavailable"
	}
	var links []map[string]any
	number := taxID[len(taxID)-6:]
	accountID := "acc-" + number
	for _, c := range covered {
		links = append(links, map[string]any{"linkId": c.LinkID, "institutionCode": c.InstitutionCode, "consents": []map[string]any{{
			"consentId": c.ConsentID, "permissions": map[string]any{"ACCOUNTS_ALL": map[string]any{"permissionsGranted": true, "accountIds": []string{accountID}}},
		}}})
	}
	rep := map[string]any{
		"code": code, "message": message, "requestId": reqID, "productName": product, "productVersion": "v1",
		"productReportId": uuid(), "productReportTime": s.o.Now().UTC().Format("2006-01-02T15:04:05"), "links": links,
	}
	if businessUser {
		rep["enquiryCnpj"] = taxID
	} else {
		rep["enquiryCpf"] = taxID
	}
	if len(externalInfo) > 0 {
		rep["externalInfo"] = externalInfo
	}
	if code == 200 && strings.HasSuffix(product, "_checking_account") {
		amount := func(v string) map[string]string { return map[string]string{"amount": v, "currency": "BRL"} }
		day := s.o.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02")
		earlier := s.o.Now().UTC().AddDate(0, 0, -3).Format("2006-01-02")
		txn := func(id, date, kind, value, name, typ string) map[string]any {
			return map[string]any{"transactionDate": date, "transactionDateTime": date + "T12:00:00.000Z", "transactionId": id,
				"completedAuthorisedPaymentType": "TRANSACAO_EFETIVADA", "creditDebitType": kind, "transactionAmount": amount(value),
				"transactionName": name, "partieCnpjCpf": "", "partiePersonType": "PESSOA_JURIDICA", "partieCompeCode": "001",
				"partieBranchCode": "0001", "partieNumber": "123456", "partieCheckDigit": "7", "postTransactionBalance": amount("0.0000"), "type": typ}
		}
		rep["checkingAccounts"] = []map[string]any{{
			"brandName": "Mock Bank", "bacenName": "MOCK BANK S.A.", "compeCode": "999", "companyCnpj": "99999999000199",
			"branchCode": "0001", "number": number, "checkDigit": "0", "subtype": "INDIVIDUAL", "civilName": "Titular " + number,
			"balances": map[string]any{"availableAmount": amount("1520.4550"), "blockedAmount": amount("0.0000"), "automaticallyInvestedAmount": amount("1000.0400")},
			"transactionDetails": []map[string]any{
				txn("tx-"+number+"-1", earlier, "CREDITO", "3500.0000", "SALARIO", "TRANSFERENCIA_MESMA_INSTITUICAO"),
				txn("tx-"+number+"-2", day, "DEBITO", "42.9050", "PADARIA PAO QUENTE", "CARTAO"),
				txn("tx-"+number+"-3", day, "DEBITO", "120.0000", "PIX ENVIADO", "PIX"),
			},
		}}
	}
	b, _ := json.Marshal(rep)
	return b, code
}

// event queues one API event (locked).
func (s *Server) event(name string, payload map[string]any, externalInfo json.RawMessage) {
	if s.o.EventWebhookURL == "" {
		return
	}
	s.seq++
	ev := map[string]any{"partnerAppId": "12345678", "eventId": uuid(), "eventType": "api", "eventName": name,
		"eventTime": s.iso(s.o.Now()), "payload": payload}
	if len(externalInfo) > 0 {
		ev["externalInfo"] = externalInfo
	}
	b, _ := json.Marshal([]any{ev})
	s.enqueue(Delivery{Kind: "event", Name: name, Body: b}, s.o.EventWebhookURL)
}

// enqueue queues a webhook for target (locked) and, unless held, starts the sender.
func (s *Server) enqueue(d Delivery, target string) {
	d.Body = append([]byte(target+"\n"), d.Body...) // the target rides with the body until sent
	s.pending = append(s.pending, d)
	if !s.o.HoldWebhooks && !s.running {
		s.running = true
		go func() {
			for {
				s.flush(context.Background())
				s.mu.Lock()
				if len(s.pending) == 0 {
					s.running = false
					s.mu.Unlock()
					return
				}
				s.mu.Unlock()
			}
		}()
	}
}

// Flush sends every queued webhook now, in order, and returns when they have been answered.
func (s *Server) Flush(ctx context.Context) { s.flush(ctx) }

func (s *Server) flush(ctx context.Context) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.mu.Unlock()
			return
		}
		d := s.pending[0]
		s.pending = s.pending[1:]
		s.mu.Unlock()
		target, body, _ := bytes.Cut(d.Body, []byte("\n"))
		d.Body = body
		d.Status = s.send(ctx, string(target), body)
		s.mu.Lock()
		s.delivered = append(s.delivered, d)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// Sign is the X-Klavi-Signature of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) send(ctx context.Context, target string, body []byte) int {
	select {
	case <-s.closed:
		return 0
	default:
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Klavi-Signature", Sign(s.o.SecretKey, body))
	req.Header.Set("X-Klavi-Timestamp", strconv.FormatInt(s.o.Now().Unix(), 10))
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Deliveries are the webhooks sent so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.delivered...)
}

// WaitDeliveries waits until cond holds of the webhooks sent so far, or ctx ends.
func (s *Server) WaitDeliveries(ctx context.Context, cond func([]Delivery) bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(s.delivered), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// SetWebhookURLs points the event and report webhooks somewhere else (a receiver that starts
// after the simulator).
func (s *Server) SetWebhookURLs(event, product string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.EventWebhookURL, s.o.ProductWebhookURL = event, product
}

// String names a fault.
func (f Fault) String() string {
	return [...]string{"none", "garbage", "wrong-shape", "hang", "drop", "unavailable", "too-many"}[f]
}
