package execution

import (
	"fmt"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
)

// Windows per client key. A client ID is a key (crypto.ClientKeyOf: the
// client's public key, as the replicas' admission control counts requests
// per key) followed by an optional session name,
// and every session that executes a request gets a window of its own. The
// executor's global bound (WithMaxClientWindows) evicts the least recently
// active windows, whoever owns them: without a bound per key, one key
// opening sessions as fast as its requests are ordered could push every
// other client's window out of the executor, after which those clients'
// retransmitted requests would no longer be recognised as executed. With
// it, a key that opens more than WithMaxWindowsPerKey sessions evicts its
// own least recently active windows, and other keys' windows go only
// under the global bound, to keys that are themselves numerous.

const (
	// DefaultMaxWindowsPerKey is the default bound on the windows of one
	// client key (see WithMaxWindowsPerKey).
	DefaultMaxWindowsPerKey = 1024
)

// WithMaxWindowsPerKey bounds the windows of one client key to n >= 1
// (default DefaultMaxWindowsPerKey): after each batch, a key the batch
// gave a new window and that has more than n loses its least recently
// active windows the batch did not touch (smallest (last active sequence,
// client ID) first) until it has three quarters of n (see
// evictKeyWindows), before the global bound (WithMaxClientWindows) is
// applied.
//
// Like the global bound, it is part of the replicated state machine:
// every replica must use the same value, changed at the same executed
// sequence.
func WithMaxWindowsPerKey(n int) ExecutorOption {
	return func(c *executorConfig) error {
		if n < 1 {
			return fmt.Errorf("max windows per key %d, want >= 1", n)
		}
		c.maxWindowsPerKey = n
		return nil
	}
}

// keyWindows indexes the windows by client key: key -> client ID -> window.
type keyWindows map[string]map[string]*clientWindow

func (k keyWindows) add(id string, w *clientWindow) {
	key := crypto.ClientKeyOf(id)
	m := k[key]
	if m == nil {
		m = make(map[string]*clientWindow)
		k[key] = m
	}
	m[id] = w
}

func (k keyWindows) remove(id string) {
	key := crypto.ClientKeyOf(id)
	if m := k[key]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(k, key)
		}
	}
}

// untouchedByAge returns the windows of key the current Apply did not
// touch, by (last active sequence, client ID) ascending.
func (k keyWindows) untouchedByAge(key string) []windowRef {
	var refs []windowRef
	for id, w := range k[key] {
		if !w.touched {
			refs = append(refs, windowRef{lastSeq: w.lastSeq, id: id})
		}
	}
	slices.SortFunc(refs, windowRef.compare)
	return refs
}

// putWindow adds a window to the executor's map and the key index.
func (e *Executor) putWindow(id string, w *clientWindow) {
	e.clients[id] = w
	e.byKey.add(id, w)
}

// dropWindow removes a window from the executor's map and the key index.
func (e *Executor) dropWindow(id string) {
	delete(e.clients, id)
	e.byKey.remove(id)
}

// evictKeyWindows is the first eviction step of Apply: for each key the
// batch gave a new window, in the order the batch touched them, when the
// key has more than maxWindowsPerKey windows, it evicts the key's
// untouched windows by (last active sequence, client ID), oldest first,
// until the key is down to keyEvictionTarget of them (a key whose windows
// were all touched stays above the bound until a later batch). Going down
// to three quarters of the bound, not to the bound, makes a key that
// opens a session per request cost one scan of its windows per quarter of
// the bound, not one per request.
func (e *Executor) evictKeyWindows(acc *adHash) {
	for _, t := range e.touched {
		if !t.created {
			continue
		}
		key := crypto.ClientKeyOf(t.id)
		if len(e.byKey[key]) <= e.maxWindowsPerKey {
			continue
		}
		target := keyEvictionTarget(e.maxWindowsPerKey)
		for _, r := range e.byKey.untouchedByAge(key) {
			if len(e.byKey[key]) <= target {
				break
			}
			e.evictWindow(r.id, e.clients[r.id], acc)
		}
	}
}

// keyEvictionTarget is how many windows a key over the bound keeps:
// three quarters of the bound, at least one.
func keyEvictionTarget(bound int) int { return max(1, bound-bound/4) }
