// Package demo is an integrator's web app in miniature, for `make run` and the browser tests: a
// page that embeds the Connect widget with Puente's embed script and prints every message it
// receives, and the backend route a real integrator would write, which creates a user and a link
// token with the client's credentials (they never reach the browser).
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

var page = template.Must(template.ParseFS(static, "static/index.html"))

// Config says where Puente is and which client the demo acts for.
type Config struct {
	// PuenteURL is the gateway as browsers reach it (the embed script comes from there).
	PuenteURL string
	// APIURL is the gateway as this server reaches it; PuenteURL when empty.
	APIURL       string
	ClientID     string
	ClientSecret string
	// HTTP calls Puente; http.DefaultClient when nil.
	HTTP *http.Client
	// FrameOrigins may also be framed by the page, beside Puente (the tests' hostile origin plays
	// a third-party frame, such as an advert, on the integrator's page).
	FrameOrigins []string
}

// Handler serves the demo page and its backend.
func Handler(cfg Config) http.Handler {
	if cfg.APIURL == "" {
		cfg.APIURL = cfg.PuenteURL
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	d := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.index)
	mux.HandleFunc("GET /demo.js", d.file("static/demo.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /demo.css", d.file("static/demo.css", "text/css; charset=utf-8"))
	mux.HandleFunc("POST /api/link-token", d.linkToken)
	mux.HandleFunc("GET /callback", d.index)
	return mux
}

type server struct {
	cfg Config

	mu      sync.Mutex
	token   string
	expires time.Time
}

func (d *server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page allows scripts only from itself and Puente, and frames only from Puente: what an
	// integrator's page would allow.
	frames := strings.Join(append([]string{origin(d.cfg.PuenteURL)}, d.cfg.FrameOrigins...), " ")
	w.Header().Set("Content-Security-Policy", fmt.Sprintf("default-src 'self'; script-src 'self' %s; frame-src %s; style-src 'self'", origin(d.cfg.PuenteURL), frames))
	var buf bytes.Buffer
	if err := page.Execute(&buf, map[string]string{"EmbedScript": strings.TrimSuffix(d.cfg.PuenteURL, "/") + "/connect/embed.js"}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(buf.Bytes())
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

func (d *server) file(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := static.ReadFile(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	}
}

// linkRequest is what the demo page may choose; everything else is the backend's.
type linkRequest struct {
	Language  string   `json:"language"`
	Country   string   `json:"country"`
	Products  []string `json:"products"`
	ConsentID string   `json:"consent_id"`
}

// linkToken creates a user and a link token for it, as an integrator's backend does when its
// user asks to connect a bank.
func (d *server) linkToken(w http.ResponseWriter, r *http.Request) {
	var in linkRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	if len(in.Products) == 0 {
		in.Products = []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}
	}
	if in.Country == "" {
		in.Country = "CL"
	}
	ctx := r.Context()
	token, err := d.accessToken(ctx)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	var user struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := d.post(ctx, token, "/v1/users", map[string]any{"external_ref": "demo-" + rand.Text()[:12], "kind": "USER_KIND_NATURAL"}, &user); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	var link struct {
		LinkToken  string `json:"link_token"`
		ExpireTime string `json:"expire_time"`
	}
	body := map[string]any{"user_id": user.User.ID, "products": in.Products, "country": in.Country, "language": in.Language, "consent_id": in.ConsentID}
	if err := d.post(ctx, token, "/v1/link-tokens", body, &link); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"link_token": link.LinkToken, "expire_time": link.ExpireTime, "user_id": user.User.ID})
}

// accessToken is the client's access token, fetched again a minute before it expires.
func (d *server) accessToken(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.token != "" && time.Now().Before(d.expires) {
		return d.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.APIURL+"/v1/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(d.cfg.ClientID), url.QueryEscape(d.cfg.ClientSecret))
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := d.do(req, &tok); err != nil {
		return "", fmt.Errorf("client credentials: %w", err)
	}
	d.token, d.expires = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second-time.Minute)
	return d.token, nil
}

func (d *server) post(ctx context.Context, token, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.APIURL+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if err := d.do(req, out); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return nil
}

func (d *server) do(req *http.Request, out any) error {
	resp, err := d.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(raw, &e)
		return fmt.Errorf("%s: %s", resp.Status, e.Message)
	}
	return json.Unmarshal(raw, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
