package egress_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/webhook/egress"
)

// receiver is a test server on 127.0.0.1 that counts the requests reaching it.
type receiver struct {
	*httptest.Server
	hits atomic.Int32
}

func newReceiver(tb testing.TB, tlsServer bool, handler http.HandlerFunc) *receiver {
	tb.Helper()
	r := &receiver{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if handler != nil {
			handler(w, req)
		}
	}))
	if tlsServer {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	tb.Cleanup(srv.Close)
	r.Server = srv
	return r
}

// hang is a handler that never answers: it returns when the client hangs up or the test ends.
func hang(tb testing.TB) http.HandlerFunc {
	release := make(chan struct{})
	// Cleanups run last-registered first, so this runs before the server's Close waits on handlers.
	tb.Cleanup(func() { close(release) })
	return func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body has been read.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

func post(tb testing.TB, c *http.Client, target string) (*http.Response, error) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodPost, target, strings.NewReader(`{"type":"ping"}`))
	require.NoError(tb, err)
	resp, err := c.Do(req)
	if resp != nil {
		tb.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func requireRefusedAtDial(tb testing.TB, err error, addr string) {
	tb.Helper()
	require.ErrorIs(tb, err, egress.ErrForbiddenAddress)
	var ae *egress.AddressError
	require.ErrorAs(tb, err, &ae)
	require.Equal(tb, netip.MustParseAddr(addr), ae.Addr, "the address checked is the one dialed")
	require.Contains(tb, err.Error(), "dial tcp")
	require.Contains(tb, err.Error(), "egress: host "+addr+" is a loopback address")
}

// The production policy refuses a receiver on loopback at connect time: the URL here never went
// through CheckURL, as a URL from an older, laxer policy would not have.
func TestClientRefusesLoopbackWhenDialing(t *testing.T) {
	srv := newReceiver(t, true, nil)
	require.True(t, strings.HasPrefix(srv.URL, "https://127.0.0.1:"), srv.URL)

	resp, err := post(t, egress.Policy{}.Client(5*time.Second), srv.URL+"/hook")
	require.Nil(t, resp)
	requireRefusedAtDial(t, err, "127.0.0.1")
	require.Zero(t, srv.hits.Load(), "nothing reached the receiver")

	// Allowing plain http does not allow loopback.
	plain := newReceiver(t, false, nil)
	_, err = post(t, egress.Policy{AllowHTTP: true}.Client(5*time.Second), plain.URL)
	requireRefusedAtDial(t, err, "127.0.0.1")
	require.Zero(t, plain.hits.Load())
}

func TestClientReachesLoopbackWhenThePolicyAllowsIt(t *testing.T) {
	srv := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		w.Write(body)
	})
	resp, err := post(t, egress.Policy{AllowLoopback: true, AllowHTTP: true}.Client(5*time.Second), srv.URL+"/hook")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"ping"}`, string(body))
	require.EqualValues(t, 1, srv.hits.Load())
}

// localhost passes no URL check here: the name is dialed, resolves to 127.0.0.1, and the dialer
// refuses the address it resolved to, as it would for any name pointed at an internal address.
func TestClientRefusesANameThatResolvesToLoopback(t *testing.T) {
	srv := newReceiver(t, false, nil)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	byName := "http://localhost:" + u.Port() + "/hook"

	_, err = post(t, egress.Policy{AllowHTTP: true}.Client(5*time.Second), byName)
	require.ErrorIs(t, err, egress.ErrForbiddenAddress)
	var ae *egress.AddressError
	require.ErrorAs(t, err, &ae)
	require.True(t, ae.Addr.IsLoopback(), "refused %s", ae.Addr)
	require.Zero(t, srv.hits.Load())

	resp, err := post(t, egress.Policy{AllowLoopback: true, AllowHTTP: true}.Client(5*time.Second), byName)
	require.NoError(t, err, "the same name is reachable where loopback is allowed")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A receiver that answers with a redirect to an internal address gets its 3xx recorded; the
// client does not go there, even where the policy would allow the target.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	internal := newReceiver(t, false, nil)
	for _, location := range []string{"http://169.254.169.254/latest/meta-data/", internal.URL + "/admin"} {
		redirector := newReceiver(t, false, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, location, http.StatusFound)
		})
		resp, err := post(t, egress.Policy{AllowLoopback: true, AllowHTTP: true}.Client(5*time.Second), redirector.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, location, resp.Header.Get("Location"))
		require.EqualValues(t, 1, redirector.hits.Load())
	}
	require.Zero(t, internal.hits.Load(), "the redirect target was never requested")
}

func TestClientRefusesPlainHTTPUnlessAllowed(t *testing.T) {
	srv := newReceiver(t, false, nil)
	_, err := post(t, egress.Policy{AllowLoopback: true}.Client(5*time.Second), srv.URL)
	require.ErrorIs(t, err, egress.ErrInvalidURL)
	require.Contains(t, err.Error(), "scheme http is not allowed, use https")
	require.Zero(t, srv.hits.Load())
}

// A proxy from the environment would dial on the client's behalf, out of the dialer's sight.
func TestClientIgnoresProxiesFromTheEnvironment(t *testing.T) {
	proxy := newReceiver(t, false, nil)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("https_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	// Through the proxy (on loopback, which this policy allows) the request would succeed; without
	// it, the dialer refuses the documentation address itself before sending a packet.
	_, err := post(t, egress.Policy{AllowLoopback: true, AllowHTTP: true}.Client(5*time.Second), "http://192.0.2.1/hook")
	require.ErrorIs(t, err, egress.ErrForbiddenAddress)
	require.Contains(t, err.Error(), "host 192.0.2.1 is a documentation address")
	require.Zero(t, proxy.hits.Load())
}

func TestClientRefusesTLSBelow12(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)

	_, err := post(t, egress.Policy{AllowLoopback: true}.Client(5*time.Second), srv.URL)
	require.Error(t, err)
	require.NotErrorIs(t, err, egress.ErrForbiddenAddress)
	require.Contains(t, err.Error(), "protocol version")
}

func TestClientGivesUpOnAReceiverThatNeverAnswers(t *testing.T) {
	srv := newReceiver(t, false, hang(t))
	_, err := post(t, egress.Policy{AllowLoopback: true, AllowHTTP: true}.Client(100*time.Millisecond), srv.URL)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	require.True(t, ue.Timeout(), "want a timeout, got %v", err)
	require.NotErrorIs(t, err, egress.ErrForbiddenAddress)
}

// The caller's context still cancels a request; the client's timeout is an upper bound, not a floor.
func TestClientHonoursTheRequestContext(t *testing.T) {
	srv := newReceiver(t, false, hang(t))
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		resp, err := egress.Policy{AllowLoopback: true, AllowHTTP: true}.Client(time.Minute).Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Cancel once the request is being served, so the test is about an in-flight request.
	require.Eventually(t, func() bool { return srv.hits.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.True(t, errors.Is(<-done, context.Canceled))
}
