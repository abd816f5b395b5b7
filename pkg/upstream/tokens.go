package upstream

import (
	"context"
	"sync"
	"time"
)

// Token is an upstream access token and when it stops working.
type Token struct {
	Value  string
	Expiry time.Time // zero: does not expire
}

// Tokens caches upstream tokens by key (one partner token under "", or one per upstream user) and
// fetches each at most once at a time: however many calls want a key's token while it is being
// fetched or refreshed, one request goes upstream and they all get its answer. A token is
// refreshed Early before it expires, so a call never leaves with one about to die.
//
// The cache is per process: N replicas fetch N tokens. That is what every provider allows (each
// fetch returns a fresh token without revoking the others).
type Tokens struct {
	// Fetch gets a new token for key; old is the token being replaced (zero on the first fetch),
	// for providers that refresh with the previous token.
	Fetch func(ctx context.Context, key string, old Token) (Token, error)
	// Early is how long before expiry a token is replaced (default 60 s).
	Early time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*tokenEntry
}

type tokenEntry struct {
	tok      Token
	inflight chan struct{} // closed when the fetch in flight ends
	err      error         // that fetch's error
}

// Get returns key's token, fetching it when there is none or it is about to expire.
func (t *Tokens) Get(ctx context.Context, key string) (string, error) {
	for {
		t.mu.Lock()
		if t.entries == nil {
			t.entries = map[string]*tokenEntry{}
		}
		e := t.entries[key]
		if e == nil {
			e = &tokenEntry{}
			t.entries[key] = e
		}
		if e.inflight == nil && e.tok.Value != "" && t.fresh(e.tok) {
			v := e.tok.Value
			t.mu.Unlock()
			return v, nil
		}
		if ch := e.inflight; ch != nil {
			t.mu.Unlock()
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-ch:
			}
			t.mu.Lock()
			err, tok := e.err, e.tok
			t.mu.Unlock()
			if err != nil {
				return "", err
			}
			if tok.Value != "" {
				return tok.Value, nil
			}
			continue
		}
		ch := make(chan struct{})
		e.inflight, e.err = ch, nil
		old := e.tok
		t.mu.Unlock()

		// The fetch outlives a caller that gives up: the others waiting on it still want it.
		tok, err := t.Fetch(context.WithoutCancel(ctx), key, old)
		t.mu.Lock()
		e.inflight, e.err = nil, err
		if err == nil {
			e.tok = tok
		}
		close(ch)
		t.mu.Unlock()
		if err != nil {
			return "", err
		}
		return tok.Value, nil
	}
}

// Invalidate drops key's token when it is still value, after the upstream refused it: the next
// Get fetches a new one, once, however many calls met the refusal.
func (t *Tokens) Invalidate(key, value string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[key]; e != nil && e.inflight == nil && e.tok.Value == value {
		e.tok = Token{}
	}
}

// Forget drops key entirely (a user deleted upstream).
func (t *Tokens) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[key]; e != nil && e.inflight == nil {
		delete(t.entries, key)
	}
}

func (t *Tokens) fresh(tok Token) bool {
	if tok.Expiry.IsZero() {
		return true
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	early := t.Early
	if early <= 0 {
		early = time.Minute
	}
	return now().Add(early).Before(tok.Expiry)
}
