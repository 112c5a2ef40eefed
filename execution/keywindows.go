package execution

import "fmt"

// Windows per client key. A client ID is a key (its first clientKeySize
// bytes: the client's public key) followed by an optional session name,
// and every session that executes a request gets a window of its own. The
// executor's global bound (WithMaxClientWindows) evicts the least recently
// active windows, whoever owns them: without a bound per key, one key
// opening sessions as fast as its requests are ordered could push every
// other client's window out of the executor, after which those clients'
// retransmitted requests would no longer be recognised as executed. With
// it, a key that opens more than WithMaxWindowsPerKey sessions evicts its
// own least recently active windows first, and other keys' windows go only
// under the global bound, to keys that are themselves numerous.

const (
	// DefaultMaxWindowsPerKey is the default bound on the windows of one
	// client key (see WithMaxWindowsPerKey).
	DefaultMaxWindowsPerKey = 1024
	// clientKeySize is how many leading bytes of a client ID are its key
	// (protocol.ClientKeySize: the replicas' admission control counts
	// requests per key the same way).
	clientKeySize = 32
)

// WithMaxWindowsPerKey bounds the windows of one client key to n >= 1
// (default DefaultMaxWindowsPerKey): after each batch, while a key the
// batch gave a new window has more than n, its window with the smallest
// (last active sequence, client ID) that the batch did not touch is
// evicted, before the global bound (WithMaxClientWindows) is applied.
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

// windowKey returns the key part of a client ID.
func windowKey(id string) string { return id[:min(len(id), clientKeySize)] }

// keyWindows indexes the windows by client key: key -> client ID -> window.
type keyWindows map[string]map[string]*clientWindow

func (k keyWindows) add(id string, w *clientWindow) {
	key := windowKey(id)
	m := k[key]
	if m == nil {
		m = make(map[string]*clientWindow)
		k[key] = m
	}
	m[id] = w
}

func (k keyWindows) remove(id string) {
	key := windowKey(id)
	if m := k[key]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(k, key)
		}
	}
}

// oldestUntouched returns the window of key with the smallest (last
// active sequence, client ID) that the current Apply did not touch, or
// ok false when every window of key was touched.
func (k keyWindows) oldestUntouched(key string) (id string, w *clientWindow, ok bool) {
	var best windowRef
	for cid, cw := range k[key] {
		r := windowRef{lastSeq: cw.lastSeq, id: cid}
		if cw.touched || (ok && !r.less(best)) {
			continue
		}
		best, id, w, ok = r, cid, cw, true
	}
	return id, w, ok
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
// batch gave a new window, in the order the batch touched them, while the
// key has more than maxWindowsPerKey windows, it evicts the key's oldest
// window the batch did not touch (a key whose windows were all touched
// stays above the bound until a later batch).
func (e *Executor) evictKeyWindows(acc *adHash) {
	for _, t := range e.touched {
		if !t.created {
			continue
		}
		key := windowKey(t.id)
		for len(e.byKey[key]) > e.maxWindowsPerKey {
			id, w, ok := e.byKey.oldestUntouched(key)
			if !ok {
				break
			}
			e.evictWindow(id, w, acc)
		}
	}
}
