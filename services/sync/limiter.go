package syncs

import (
	"context"
	"sync"
)

// keyedSemaphore lets at most limit holders per key at once: here, refreshes per institution, so
// a batch of 5,000 users at one bank does not hit it with every worker at once.
//
// It bounds this process only: N replicas allow N×limit refreshes at once against one
// institution. A bound across the cluster would need shared state (a table, advisory locks) and a
// round trip per refresh; the per-process bound is what keeps one bank from being flooded by a
// batch today.
type keyedSemaphore struct {
	limit int
	mu    sync.Mutex
	slots map[string]*slots
}

// slots are one key's: a holder has sent into ch; refs counts holders and waiters, so that the
// key's entry is dropped when nobody uses it and the map does not grow with every key seen.
type slots struct {
	ch   chan struct{}
	refs int
}

func newKeyedSemaphore(limit int) *keyedSemaphore {
	return &keyedSemaphore{limit: limit, slots: map[string]*slots{}}
}

// acquire takes one of key's slots, waiting for one while ctx allows, and returns the function
// that gives it back. A free slot is taken even when ctx is already done.
func (k *keyedSemaphore) acquire(ctx context.Context, key string) (release func(), err error) {
	k.mu.Lock()
	s := k.slots[key]
	if s == nil {
		s = &slots{ch: make(chan struct{}, k.limit)}
		k.slots[key] = s
	}
	s.refs++
	k.mu.Unlock()

	select {
	case s.ch <- struct{}{}:
	default:
		select {
		case s.ch <- struct{}{}:
		case <-ctx.Done():
			k.unref(key, s)
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-s.ch
			k.unref(key, s)
		})
	}, nil
}

func (k *keyedSemaphore) unref(key string, s *slots) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(k.slots, key)
	}
}

// held reports how many slots of key are taken, for tests.
func (k *keyedSemaphore) held(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.slots[key]; s != nil {
		return len(s.ch)
	}
	return 0
}
