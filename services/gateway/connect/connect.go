// Package connect serves the Connect widget: the page the embed script frames (/connect), its
// script and styles, the embed script itself (/connect/embed.js), the page a redirect
// institution sends the user back to (/connect/return), and the Sandbox's hosted bank consent
// page (/connect/sandbox/authorize). The files are plain HTML, CSS and JavaScript, embedded in
// the binary: nothing to build, for Puente or for the integrator.
package connect

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed static
var embedded embed.FS

// Paths of the pages and files, for those who link to them.
const (
	WidgetPath    = "/connect"
	EmbedPath     = "/connect/embed.js"
	ReturnPath    = "/connect/return"
	AuthorizePath = "/connect/sandbox/authorize"
)

// widgetCSP keeps the widget to its own files: no inline script or style, API calls to its own
// origin only, images from anywhere secure (institution logos) or inline (challenge images). Any
// page may frame it; the widget itself refuses to run for a page its client did not register.
const widgetCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors *"

// pageCSP is widgetCSP for pages that must never be framed (the bank's side of a redirect).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the widget's files from dir, or from those embedded when dir is empty (dir is
// for front-end work: edit a file, reload the page).
func Handler(dir string) http.Handler {
	var files fs.FS
	if dir != "" {
		files = os.DirFS(dir)
	} else {
		files, _ = fs.Sub(embedded, "static")
	}
	a := &assets{files: files, cache: dir == ""}
	mux := http.NewServeMux()
	page := func(name, csp string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Referrer-Policy", "no-referrer")
			a.serve(w, r, name, "no-store")
		}
	}
	mux.HandleFunc("GET "+WidgetPath, page("index.html", widgetCSP))
	mux.HandleFunc("GET "+ReturnPath, page("return.html", pageCSP))
	mux.HandleFunc("GET "+AuthorizePath, page("authorize.html", pageCSP))
	mux.HandleFunc("GET /connect/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		switch path.Ext(name) {
		case ".js", ".css", ".svg":
		default:
			http.NotFound(w, r)
			return
		}
		// Short, and revalidated by ETag: a deploy changes them under the same name.
		a.serve(w, r, name, "public, max-age=300")
	})
	return mux
}

// assets reads files once (when cache is set) with their gzip form and ETag.
type assets struct {
	files  fs.FS
	cache  bool
	mu     sync.Mutex
	byName map[string]*asset
}

type asset struct {
	raw, gz []byte
	etag    string
}

func (a *assets) get(name string) (*asset, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.byName[name]; ok {
		return f, nil
	}
	raw, err := fs.ReadFile(a.files, name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(raw)
	zw.Close()
	sum := sha256.Sum256(raw)
	f := &asset{raw: raw, gz: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if a.cache {
		if a.byName == nil {
			a.byName = map[string]*asset{}
		}
		a.byName[name] = f
	}
	return f, nil
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request, name, cacheControl string) {
	f, err := a.get(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	h.Set("ETag", f.etag)
	h.Add("Vary", "Accept-Encoding")
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.raw
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && len(f.gz) < len(f.raw) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
