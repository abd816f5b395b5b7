package connect_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"puente.dev/services/gateway/connect"
)

func get(t *testing.T, h http.Handler, path string, headers ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestPagesCarryTheirSecurityHeaders(t *testing.T) {
	h := connect.Handler("")
	for path, frame := range map[string]string{
		connect.WidgetPath:    "frame-ancestors *",
		connect.ReturnPath:    "frame-ancestors 'none'",
		connect.AuthorizePath: "frame-ancestors 'none'",
	} {
		resp := get(t, h, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, frame) || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
			t.Errorf("%s: Content-Type %q", path, got)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: a page is not cached: %q", path, resp.Header.Get("Cache-Control"))
		}
	}
}

func TestFilesAreCompressedAndRevalidated(t *testing.T) {
	h := connect.Handler("")
	plain := get(t, h, connect.EmbedPath)
	raw, _ := io.ReadAll(plain.Body)
	if plain.StatusCode != http.StatusOK || !strings.Contains(string(raw), "PuenteConnect") {
		t.Fatalf("embed.js: %d", plain.StatusCode)
	}
	if ct := plain.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q", ct)
	}

	zipped := get(t, h, connect.EmbedPath, "Accept-Encoding", "gzip, br")
	if zipped.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("not compressed: %v", zipped.Header)
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if string(unzipped) != string(raw) {
		t.Error("the gzip form differs from the file")
	}

	again := get(t, h, connect.EmbedPath, "If-None-Match", plain.Header.Get("ETag"))
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("a known ETag answers %d, want 304", again.StatusCode)
	}
}

func TestOnlyTheWidgetsFilesAreServed(t *testing.T) {
	h := connect.Handler("")
	for _, path := range []string{"/connect/index.html", "/connect/connect.go", "/connect/missing.js", "/connect/../connect.go", "/connect/static/widget.js"} {
		if resp := get(t, h, path); resp.StatusCode == http.StatusOK {
			t.Errorf("%s is served", path)
		}
	}
}
