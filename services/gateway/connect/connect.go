// Package connect serves the Connect widget: the page the embed script frames (/connect), its
// script and styles, the embed script itself (/connect/embed.js), the page a redirect
// institution sends the user back to (/connect/return), and the Sandbox's hosted bank consent
// page (/connect/sandbox/authorize). The files are plain HTML, CSS and JavaScript, embedded in
// the binary: nothing to build, for Puente or for the integrator.
package connect

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"os"
	"path"
	"time"
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
	mux := http.NewServeMux()
	page := func(name, csp string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Referrer-Policy", "no-referrer")
			serve(w, r, files, name, "no-store")
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
		// Short: a deploy changes them under the same name.
		serve(w, r, files, name, "public, max-age=300")
	})
	return mux
}

func serve(w http.ResponseWriter, r *http.Request, files fs.FS, name, cacheControl string) {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}
