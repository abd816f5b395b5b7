package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"puente.dev/pkg/metrics"
)

func newTestClient(t *testing.T, h http.HandlerFunc, o Options) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	o.Provider, o.BaseURL = "test", srv.URL+"/api"
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = func(int) time.Duration { return time.Millisecond }
	return c
}

func TestSafeRequestsAreRetriedAndUnsafeOnesAreNot(t *testing.T) {
	var calls atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}, Options{})
	var out struct{ OK bool }
	if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/x", Safe: true}, &out); err != nil || !out.OK {
		t.Fatalf("safe GET after two 502s: %v %+v", err, out)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("calls = %d, want 3", n)
	}

	calls.Store(0)
	_, err := c.Do(context.Background(), Request{Method: "POST", Path: "/x"}, nil)
	e, ok := AsError(err)
	if !ok || e.Kind != Unavailable || e.Status != http.StatusBadGateway || !e.Temporary() {
		t.Fatalf("unsafe POST: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("an unsafe POST was sent %d times", n)
	}
}

func TestFailuresAreClassifiedWithoutLeakingTheURL(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/garbage":
			w.Write([]byte(`<html>not json`))
		case "/api/hang":
			<-r.Context().Done()
		case "/api/drop":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/api/401":
			w.WriteHeader(http.StatusUnauthorized)
		case "/api/429":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/api/422":
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(`{"code":"bad"}`))
		}
	}, Options{Timeout: 200 * time.Millisecond, MaxAttempts: 2})
	cases := []struct {
		path string
		want Kind
	}{
		{"/garbage", BadResponse}, {"/hang", Timeout}, {"/drop", Unavailable},
		{"/401", Unauthorized}, {"/429", RateLimited}, {"/422", Rejected},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			var out map[string]any
			_, err := c.Do(context.Background(), Request{Method: "GET", Path: tc.path + "?token=SECRET", Safe: true}, &out)
			e, ok := AsError(err)
			if !ok || e.Kind != tc.want {
				t.Fatalf("got %v, want kind %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error leaks the URL: %v", err)
			}
		})
	}
	_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/422"}, nil)
	if e, _ := AsError(err); e == nil || string(e.Body) != `{"code":"bad"}` || strings.Contains(err.Error(), "bad") {
		t.Errorf("a 422 keeps its body for the adapter and out of the message: %v", err)
	}
}

func TestAcceptedStatusesAndAbsoluteURLs(t *testing.T) {
	var got string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		w.WriteHeader(http.StatusGone)
	}, Options{})
	resp, err := c.Do(context.Background(), Request{Method: "GET", Path: c.URL("/jobs/1/status") + "?a=1", Query: map[string][]string{"b": {"2"}}, Accept: []int{http.StatusGone}}, nil)
	if err != nil || resp.Status != http.StatusGone {
		t.Fatalf("accepted 410: %v", err)
	}
	if got != "/api/jobs/1/status?a=1&b=2" {
		t.Errorf("request URI = %s", got)
	}
}

func TestTokensAreFetchedOnceUnderConcurrencyAndRefreshedEarly(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	var fetches atomic.Int32
	release := make(chan struct{})
	tokens := &Tokens{
		Early: time.Minute,
		Now:   func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Fetch: func(ctx context.Context, key string, old Token) (Token, error) {
			n := fetches.Add(1)
			<-release
			return Token{Value: key + "-" + string(rune('0'+n)), Expiry: now.Add(30 * time.Minute)}, nil
		},
	}
	var wg sync.WaitGroup
	got := make([]string, 50)
	for i := range got {
		wg.Go(func() {
			v, err := tokens.Get(context.Background(), "k")
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("50 concurrent Gets fetched %d times, want 1", n)
	}
	for _, v := range got {
		if v != "k-1" {
			t.Fatalf("got %q", v)
		}
	}
	mu.Lock()
	now = now.Add(29*time.Minute + 30*time.Second) // within Early of expiry
	mu.Unlock()
	if v, _ := tokens.Get(context.Background(), "k"); v != "k-2" || fetches.Load() != 2 {
		t.Errorf("a token about to expire was not refreshed: %q after %d fetches", v, fetches.Load())
	}
	tokens.Invalidate("k", "k-2")
	if v, _ := tokens.Get(context.Background(), "k"); v != "k-3" {
		t.Errorf("an invalidated token was reused: %q", v)
	}
}

func TestTokenFetchErrorsReachEveryWaiterAndAreNotCached(t *testing.T) {
	var fetches atomic.Int32
	tokens := &Tokens{Fetch: func(ctx context.Context, key string, old Token) (Token, error) {
		if fetches.Add(1) == 1 {
			return Token{}, errors.New("down")
		}
		return Token{Value: "ok"}, nil
	}}
	if _, err := tokens.Get(context.Background(), ""); err == nil {
		t.Fatal("the first fetch's error was swallowed")
	}
	if v, err := tokens.Get(context.Background(), ""); err != nil || v != "ok" {
		t.Fatalf("after an error the next Get fetches again: %q %v", v, err)
	}
}

// upstreamSeries reads puente_upstream_request_duration_seconds: observations by provider and
// outcome, and every label value seen.
func upstreamSeries(t *testing.T, m *metrics.Metrics) (counts map[[2]string]uint64, values []string) {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts = map[[2]string]uint64{}
	for _, f := range families {
		if f.GetName() != "puente_upstream_request_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				values = append(values, l.GetValue())
			}
			counts[[2]string{labels["provider"], labels["outcome"]}] += s.GetHistogram().GetSampleCount()
		}
	}
	return counts, values
}

func TestEveryAttemptIsTimedByOutcomeWithoutItsPath(t *testing.T) {
	m := metrics.New(metrics.Options{})
	var flaky atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/users/"):
			if flaky.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"ok":true}`))
		case r.URL.Path == "/api/garbage":
			w.Write([]byte(`<html>not json`))
		case r.URL.Path == "/api/401":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/api/429":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case r.URL.Path == "/api/422":
			w.WriteHeader(http.StatusUnprocessableEntity)
		case r.URL.Path == "/api/hang":
			<-r.Context().Done()
		}
	}, Options{Timeout: 200 * time.Millisecond, MaxAttempts: 2, Metrics: m})
	ctx := context.Background()
	var out struct{ OK bool }
	// A 503 and then a 200: two attempts, two observations.
	if _, err := c.Do(ctx, Request{Method: "GET", Path: "/users/usr_secret1?token=tok_secret", Safe: true}, &out); err != nil || !out.OK {
		t.Fatalf("GET after a 503: %v", err)
	}
	for _, path := range []string{"/garbage", "/401", "/422"} {
		if _, err := c.Do(ctx, Request{Method: "GET", Path: path, Safe: true}, &out); err == nil {
			t.Fatalf("%s: no error", path)
		}
	}
	// Retried: both attempts count.
	if _, err := c.Do(ctx, Request{Method: "GET", Path: "/429", Safe: true}, nil); err == nil {
		t.Fatal("429: no error")
	}
	if _, err := c.Do(ctx, Request{Method: "POST", Path: "/hang"}, nil); err == nil {
		t.Fatal("hang: no error")
	}
	// A call its caller cancelled before sending says nothing about the upstream.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Do(cancelled, Request{Method: "GET", Path: "/users/usr_x"}, nil); err == nil {
		t.Fatal("cancelled: no error")
	}

	counts, values := upstreamSeries(t, m)
	want := map[[2]string]uint64{
		{"test", metrics.UpstreamOK}: 1,
		{"test", "unavailable"}:      1,
		{"test", "bad_response"}:     1,
		{"test", "unauthorized"}:     1,
		{"test", "rejected"}:         1,
		{"test", "rate_limited"}:     2,
		{"test", "timeout"}:          1,
	}
	if len(counts) != len(want) {
		t.Errorf("series = %v, want %v", counts, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%v: %d observations, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	for _, v := range values {
		if strings.ContainsAny(v, "/?") || strings.Contains(v, "secret") {
			t.Errorf("label value %q holds a path or a query", v)
		}
	}
}
