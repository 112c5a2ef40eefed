package execution

import (
	"cmp"
	"fmt"
	"strings"
)

const (
	// DefaultMaxClientWindows is the default bound on the number of client
	// windows an Executor keeps (see WithMaxClientWindows).
	DefaultMaxClientWindows = 65536
	// replyWindowDomain separates the per-window digest element (client ID
	// and last active sequence) from the per-entry elements.
	replyWindowDomain = "pbftnode/v1/reply-window"
	// evictHeapSlack is how many stale entries the eviction heap may hold
	// beyond twice the window count before it is compacted, so small
	// executors do not compact on every batch.
	evictHeapSlack = 64
)

// ExecutorOption configures an Executor; see NewExecutor.
type ExecutorOption func(*executorConfig) error

type executorConfig struct {
	maxClientWindows int
	maxWindowsPerKey int
	membership       *MembershipRules
}

// WithMaxClientWindows bounds the number of client windows (exactly-once
// state) the executor keeps to n >= 1 (default DefaultMaxClientWindows).
// After each batch, while more than n windows exist, the window with the
// smallest (last active sequence, client ID) that the batch did not touch
// is evicted; see Executor.Apply.
//
// The limit is part of the replicated state machine: every replica of a
// cluster must use the same value, and changing it must happen at the same
// executed sequence on all of them, or their states (and checkpoint
// digests) diverge at the next eviction.
func WithMaxClientWindows(n int) ExecutorOption {
	return func(c *executorConfig) error {
		if n < 1 {
			return fmt.Errorf("max client windows %d, want >= 1", n)
		}
		c.maxClientWindows = n
		return nil
	}
}

// windowRef names a client window by its eviction key: the sequence of the
// last batch that executed one of the client's requests, then the client
// ID. Refs are totally ordered (client IDs are unique among windows).
type windowRef struct {
	lastSeq uint64
	id      string
}

func (a windowRef) less(b windowRef) bool { return a.compare(b) < 0 }

// compare orders refs by (lastSeq, id), for slices.SortFunc.
func (a windowRef) compare(b windowRef) int {
	return cmp.Or(cmp.Compare(a.lastSeq, b.lastSeq), strings.Compare(a.id, b.id))
}

// windowHeap is a binary min-heap of windowRefs with lazy deletion: a ref
// is current when its window exists and has that lastSeq; other refs are
// stale and skipped when popped. Invariant between Applies: every window
// has exactly one current ref in the heap.
type windowHeap []windowRef

func (h *windowHeap) push(r windowRef) {
	*h = append(*h, r)
	h.up(len(*h) - 1)
}

// pop removes and returns the smallest ref; h must not be empty.
func (h *windowHeap) pop() windowRef {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = windowRef{} // drop the string reference
	*h = s[:last]
	h.down(0)
	return top
}

func (h windowHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (h windowHeap) down(i int) {
	n := len(h)
	for {
		smallest := i
		if l := 2*i + 1; l < n && h[l].less(h[smallest]) {
			smallest = l
		}
		if r := 2*i + 2; r < n && h[r].less(h[smallest]) {
			smallest = r
		}
		if smallest == i {
			return
		}
		h[i], h[smallest] = h[smallest], h[i]
		i = smallest
	}
}

// init establishes the heap order over arbitrary contents.
func (h windowHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// evictedWindow is a window the current Apply evicted (see evictWindows).
type evictedWindow struct {
	id string
	w  *clientWindow
}

// isCurrent reports whether r names a window as it is now.
func (e *Executor) isCurrent(r windowRef) bool {
	w := e.clients[r.id]
	return w != nil && w.lastSeq == r.lastSeq
}

// rebuildEvictHeap replaces the eviction heap with one current ref per
// window (after loading the windows).
func (e *Executor) rebuildEvictHeap() {
	clear(e.evictHeap)
	e.evictHeap = e.evictHeap[:0]
	for id, w := range e.clients {
		e.evictHeap = append(e.evictHeap, windowRef{lastSeq: w.lastSeq, id: id})
	}
	e.evictHeap.init()
}

// evictWindows is the eviction step of Apply, after the batch's requests
// ran: while more than maxClientWindows windows exist, it evicts the window
// with the smallest (lastSeq, client ID) among those the batch did not
// touch, subtracting its digest elements (entries and window element) from
// acc. When every remaining window was touched by the batch, the limit is
// exceeded until a later batch. Evicted windows and popped heap refs are
// logged in e.evicted and e.popped so revertEvictions can undo it.
//
// The windows touched by the batch have lastSeq = the batch's sequence,
// above the lastSeq of every ref in the heap (refs are pushed when a batch
// is written), so their refs are all stale: the heap never offers them.
func (e *Executor) evictWindows(acc *adHash) {
	for len(e.clients) > e.maxClientWindows && len(e.evictHeap) > 0 {
		r := e.evictHeap.pop()
		e.popped = append(e.popped, r)
		w := e.clients[r.id]
		if w == nil || w.lastSeq != r.lastSeq || w.touched {
			continue
		}
		e.evictWindow(r.id, w, acc)
	}
}

// evictWindow removes window w of client id, takes its elements out of
// acc and logs it in e.evicted (for revertEvictions and the batch's
// deletes). Its refs in the eviction heap go stale.
func (e *Executor) evictWindow(id string, w *clientWindow, acc *adHash) {
	for _, entry := range w.entries {
		acc.sub(entry.hash)
	}
	acc.sub(w.seqHash)
	e.dropWindow(id)
	e.evicted = append(e.evicted, evictedWindow{id: id, w: w})
}

// revertEvictions undoes evictWindows: the evicted windows (unchanged
// while evicted) return to the map and the popped refs to the heap, so the
// heap again holds one current ref per window once the touched windows are
// reverted too.
func (e *Executor) revertEvictions() {
	for _, ev := range e.evicted {
		e.putWindow(ev.id, ev.w)
	}
	for _, r := range e.popped {
		e.evictHeap.push(r)
	}
}

// commitEvictHeap runs once a batch is written: it pushes a current ref for
// every window the batch touched (their old refs went stale when their
// lastSeq changed) and compacts the heap when stale refs make it larger
// than twice the window count plus evictHeapSlack, which amortizes to O(1)
// per push.
func (e *Executor) commitEvictHeap(sequence uint64) {
	for _, t := range e.touched {
		e.evictHeap.push(windowRef{lastSeq: sequence, id: t.id})
	}
	if len(e.evictHeap) <= 2*len(e.clients)+evictHeapSlack {
		return
	}
	kept := e.evictHeap[:0]
	for _, r := range e.evictHeap {
		if e.isCurrent(r) {
			kept = append(kept, r)
		}
	}
	clear(e.evictHeap[len(kept):])
	e.evictHeap = kept
	e.evictHeap.init()
}

// stamp records that the batch at sequence executed a request of the
// client (the first in this batch): it sets lastSeq and replaces the
// window's digest element in acc. A new window (fresh) has no element yet.
func (w *clientWindow) stamp(clientID []byte, sequence uint64, fresh bool, acc *adHash) {
	if !fresh {
		acc.sub(w.seqHash)
	}
	w.lastSeq = sequence
	w.seqHash = windowSeqHash(clientID, sequence)
	acc.add(w.seqHash)
}

// windowSeqHash returns the reply-cache digest element of a client's
// window: SHA-256("pbftnode/v1/reply-window" || uvarint(len id) || id ||
// uvarint(lastSeq)). It makes the digest cover lastSeq, which decides
// future evictions.
func windowSeqHash[ID string | []byte](clientID ID, lastSeq uint64) [32]byte {
	return clientNumberHash(replyWindowDomain, clientID, lastSeq, nil)
}
