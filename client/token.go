package client

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
)

const (
	// refreshAhead is how long before expiry a token is replaced, at least: a call made with it
	// must still be accepted when it reaches the server.
	refreshAhead = time.Minute
	// expiryMargin is how close to expiry a token is no longer sent at all, since clocks drift
	// and calls take time.
	expiryMargin = 5 * time.Second
)

// accessToken is one token and the times (on our clock) it was asked for and expires.
type accessToken struct {
	value   string
	fetched time.Time
	expires time.Time
}

// refreshAt is when the token should be replaced: with a minute or a tenth of its life left,
// whichever is longer, but never before half its life.
func (t accessToken) refreshAt() time.Time {
	life := t.expires.Sub(t.fetched)
	ahead := min(max(refreshAhead, life/10), life/2)
	return t.expires.Add(-ahead)
}

// fetch is one CreateToken call in flight; done closes when tok or err is set.
type fetch struct {
	done chan struct{}
	tok  accessToken
	err  error
}

// tokenSource hands out the client's access token: cached, refreshed ahead of expiry, fetched
// by one caller at a time however many need it.
type tokenSource struct {
	tokens   authtokenv1.TokenServiceClient
	clientID string
	secret   string
	now      func() time.Time
	timeout  time.Duration

	mu       sync.Mutex
	current  accessToken
	inflight *fetch
}

// Token returns a token valid for at least expiryMargin. A caller that finds the token due for
// refresh but still valid starts the refresh and waits for it, while callers after it keep
// using the current token; if that refresh fails, the current token is used and the next call
// tries again.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	now := s.now()
	cur := s.current
	usable := cur.value != "" && now.Before(cur.expires.Add(-expiryMargin))
	if usable && now.Before(cur.refreshAt()) {
		s.mu.Unlock()
		return cur.value, nil
	}
	f := s.inflight
	if f != nil && usable {
		// Someone is refreshing already; this token is still good.
		s.mu.Unlock()
		return cur.value, nil
	}
	if f == nil {
		f = &fetch{done: make(chan struct{})}
		s.inflight = f
		// Not under ctx: the waiters share this fetch, so one caller giving up must not fail
		// it for the others, and the caller's outgoing metadata has no place on it. The
		// timeout bounds it instead.
		go s.run(f)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return "", status.FromContextError(ctx.Err()).Err()
	}
	if f.err != nil {
		if usable {
			return cur.value, nil
		}
		return "", f.err
	}
	return f.tok.value, nil
}

func (s *tokenSource) run(f *fetch) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	started := s.now()
	resp, err := s.tokens.CreateToken(ctx, &authtokenv1.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: s.clientID, ClientSecret: s.secret,
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		f.err = s.fetchError(err)
	case resp.GetAccessToken() == "" || resp.GetExpiresIn() <= 0:
		f.err = status.Errorf(codes.Unauthenticated, "puente client: the token service answered client %s without a usable token", s.clientID)
	default:
		// Expiry is counted from before the request: our copy never outlives the server's.
		f.tok = accessToken{value: resp.GetAccessToken(), fetched: started,
			expires: started.Add(time.Duration(resp.GetExpiresIn()) * time.Second)}
		s.current = f.tok
	}
	s.inflight = nil
	close(f.done)
}

// fetchError turns a failed CreateToken into the error of the call that needed the token:
// Unauthenticated when the credentials were refused (retrying will not help), Unavailable
// otherwise (the retry policy and the next call try again).
func (s *tokenSource) fetchError(err error) error {
	st, _ := status.FromError(err)
	msg := st.Message()
	if s.secret != "" {
		msg = strings.ReplaceAll(msg, s.secret, "[redacted]")
	}
	code := codes.Unavailable
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		code = codes.Unauthenticated
	}
	return status.Errorf(code, "puente client: getting an access token for client %s: %s: %s", s.clientID, st.Code(), msg)
}

// String names the client and nothing secret.
func (s *tokenSource) String() string { return fmt.Sprintf("puente token source for %s", s.clientID) }

// bearer adds the token to every call as per-RPC credentials.
type bearer struct {
	source   *tokenSource
	insecure bool
}

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if !b.insecure {
		ri, _ := credentials.RequestInfoFromContext(ctx)
		if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "puente client: not sending a bearer token over this connection: %v", err)
		}
	}
	tok, err := b.source.Token(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity makes gRPC refuse the token over plaintext unless Insecure was chosen.
func (b bearer) RequireTransportSecurity() bool { return !b.insecure }
