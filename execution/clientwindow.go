package execution

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
)

// ClientWindow is the width of the per-client exactly-once window. The
// executor remembers, per client, the highest executed request number H
// and which numbers in (H-ClientWindow, H] were executed, with their
// results; a request numbered H-ClientWindow or lower is too old and is
// skipped. The client library keeps every outstanding request number above
// (highest issued number) - ClientWindow, so no request it still waits for
// can fall out of the window.
const ClientWindow = 64

// RequestStatus is what the executor knows about a client request number;
// see Executor.Status.
type RequestStatus int

const (
	// RequestNew: not executed and inside the window; it executes when
	// ordered.
	RequestNew RequestStatus = iota + 1
	// RequestExecuted: already executed; its cached reply is available
	// (Executor.CachedReply).
	RequestExecuted
	// RequestTooOld: below the window; it will never execute and no reply
	// is available.
	RequestTooOld
)

// String returns the status name.
func (s RequestStatus) String() string {
	switch s {
	case RequestNew:
		return "new"
	case RequestExecuted:
		return "executed"
	case RequestTooOld:
		return "too-old"
	default:
		return fmt.Sprintf("RequestStatus(%d)", int(s))
	}
}

// windowEntry is one executed request of the window: its result and its
// reply-cache digest element (kept so eviction needs no rehash).
type windowEntry struct {
	result []byte
	hash   [32]byte
}

// clientWindow is the exactly-once state of one client. Invariant: when
// entries is non-empty, high is its largest key and every key k satisfies
// !tooOld(k), so len(entries) <= ClientWindow. Entry results are never
// modified in place, so clones may share them.
type clientWindow struct {
	high    uint64
	entries map[uint64]windowEntry
	// lastSeq is the sequence of the last batch that executed one of the
	// client's requests (0 for a window loaded from a record written
	// before lastSeq existed); it orders evictions (see evictWindows).
	// seqHash is windowSeqHash(client ID, lastSeq), the window's element
	// of the reply-cache digest.
	lastSeq uint64
	seqHash [32]byte
	// touched is set while an Apply has changed the window (see
	// Executor.Apply); false between Applies.
	touched bool
}

func newClientWindow() *clientWindow {
	return &clientWindow{entries: make(map[uint64]windowEntry)}
}

// tooOld reports whether n is at or below high-ClientWindow.
func (w *clientWindow) tooOld(n uint64) bool { return belowWindow(w.high, n) }

// belowWindow reports whether request number n is at or below
// high-ClientWindow, high being a window's H.
func belowWindow(high, n uint64) bool {
	return high >= ClientWindow && n <= high-ClientWindow
}

// status classifies request number n.
func (w *clientWindow) status(n uint64) RequestStatus {
	if w.tooOld(n) {
		return RequestTooOld
	}
	if _, ok := w.entries[n]; ok {
		return RequestExecuted
	}
	return RequestNew
}

// windowChange is the undo record of one change to a window's entries:
// entry n was old (had) or absent (!had) before the change.
type windowChange struct {
	w   *clientWindow
	n   uint64
	old windowEntry
	had bool
}

// record caches the result of newly executed request n (which must have
// status RequestNew), advances high if n is above it, evicts the entries
// that fell out of the window, and updates acc accordingly.
func (w *clientWindow) record(clientID string, n uint64, result []byte, acc *adHash) {
	w.recordEntry(n, windowEntry{result: result, hash: replyHash(clientID, n, result)}, acc, nil)
}

// recordEntry is record with the entry's hash already computed. When undo
// is not nil, it appends to *undo a windowChange for every entry it adds
// or evicts (high is not logged: the caller saves it), so that undoing
// them in reverse order and restoring high restores the window.
func (w *clientWindow) recordEntry(n uint64, entry windowEntry, acc *adHash, undo *[]windowChange) {
	w.entries[n] = entry
	if undo != nil {
		*undo = append(*undo, windowChange{w: w, n: n})
	}
	acc.add(entry.hash)
	if n <= w.high {
		return
	}
	prevHigh := w.high
	w.high = n
	if n < ClientWindow {
		return
	}
	floor := n - ClientWindow
	evict := func(m uint64, old windowEntry) {
		delete(w.entries, m)
		acc.sub(old.hash)
		if undo != nil {
			*undo = append(*undo, windowChange{w: w, n: m, old: old, had: true})
		}
	}
	// Every other entry is above prevHigh-ClientWindow (the invariant), so
	// only the numbers in (prevHigh-ClientWindow, floor] can fall out. When
	// high advances by a few, as it does for a client with requests in
	// flight, look those up instead of scanning the window.
	low := uint64(0)
	if prevHigh >= ClientWindow {
		low = prevHigh - ClientWindow + 1
	}
	if floor-low < uint64(len(w.entries)) {
		for m := low; m <= floor; m++ {
			if old, ok := w.entries[m]; ok {
				evict(m, old)
			}
		}
		return
	}
	for m, old := range w.entries {
		if m <= floor {
			evict(m, old)
		}
	}
}

// undoChanges reverts changes, which recordEntry logged, newest first.
func undoChanges(changes []windowChange) {
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.had {
			c.w.entries[c.n] = c.old
		} else {
			delete(c.w.entries, c.n)
		}
	}
}

// digest returns the window's contribution to the reply-cache digest,
// recomputed from the results and lastSeq (for verification; Apply keeps
// the running sum incrementally).
func (w *clientWindow) digest(clientID string) adHash {
	var acc adHash
	for n, entry := range w.entries {
		acc.add(replyHash(clientID, n, entry.result))
	}
	acc.add(windowSeqHash(clientID, w.lastSeq))
	return acc
}

// encode returns the persisted record: the compact form (windowrecord.go)
// for a window that keeps the invariant, else (windows built by hand in
// tests, records of earlier versions) the listed form: uvarint(high) ||
// uvarint(count) || count x (uvarint(n) || uvarint(len result) || result),
// n ascending. Either ends with uvarint(lastSeq) when lastSeq > 0 (a
// record without it has lastSeq 0; records written before lastSeq existed
// have none). decodeClientWindow reads both forms.
func (w *clientWindow) encode() []byte { return w.appendEncoded(nil) }

// appendEncoded appends the record encode returns to out and returns the
// extended slice.
func (w *clientWindow) appendEncoded(out []byte) []byte {
	// Under the invariant every number is in [high-ClientWindow+1, high]:
	// mark each by its distance below high in a bitmap, which lists them
	// in order without sorting. Windows built by hand (tests of corrupt
	// records) may break the invariant; those take the sorting path.
	var (
		bitmap  uint64
		results [ClientWindow][]byte
		size    = 2 * binary.MaxVarintLen64
	)
	inOrder := true
	for n, entry := range w.entries {
		size += 2*binary.MaxVarintLen64 + len(entry.result)
		if n > w.high || w.high-n >= ClientWindow {
			inOrder = false
			continue
		}
		d := w.high - n
		bitmap |= 1 << d
		results[d] = entry.result
	}
	out = slices.Grow(out, size+binary.MaxVarintLen64)
	out = binary.AppendUvarint(out, w.high)
	if inOrder {
		out = appendCompactEntries(out, bitmap, &results)
	} else {
		out = binary.AppendUvarint(out, uint64(len(w.entries)))
		for _, n := range slices.Sorted(maps.Keys(w.entries)) {
			result := w.entries[n].result
			out = binary.AppendUvarint(out, n)
			out = binary.AppendUvarint(out, uint64(len(result)))
			out = append(out, result...)
		}
	}
	if w.lastSeq > 0 {
		out = binary.AppendUvarint(out, w.lastSeq)
	}
	return out
}

var errCorruptWindow = errors.New("corrupt client window record")

// decodeClientWindow parses and validates a record written by encode
// (with or without the lastSeq trailer; a trailer must be a minimal uvarint
// of a nonzero lastSeq, so each window has one encoding of its lastSeq).
// The results are copied out of b. The caller checks lastSeq against the
// last executed sequence.
func decodeClientWindow(clientID string, b []byte) (*clientWindow, error) {
	record := b
	next := func(what string) (uint64, error) { return nextUvarint(&b, what) }
	high, err := next("highest request number")
	if err != nil {
		return nil, err
	}
	count, err := next("entry count")
	if err != nil {
		return nil, err
	}
	var w *clientWindow
	if count == 0 {
		if header := record[:len(record)-len(b)]; len(header) != uvarintLen(high)+1 {
			return nil, fmt.Errorf("%w: compact record header not minimally encoded", errCorruptWindow)
		}
		w, b, err = decodeCompactWindow(clientID, high, b)
	} else {
		w, b, err = decodeListedWindow(clientID, high, count, b)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != 0 {
		lastSeq, size := binary.Uvarint(b)
		switch {
		case size <= 0:
			return nil, fmt.Errorf("%w: bad last active sequence", errCorruptWindow)
		case size != uvarintLen(lastSeq):
			return nil, fmt.Errorf("%w: last active sequence %d not minimally encoded", errCorruptWindow, lastSeq)
		case lastSeq == 0:
			return nil, fmt.Errorf("%w: explicit last active sequence 0", errCorruptWindow)
		}
		w.lastSeq = lastSeq
		b = b[size:]
	}
	w.seqHash = windowSeqHash(clientID, w.lastSeq)
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorruptWindow, len(b))
	}
	return w, nil
}

// nextUvarint reads a uvarint off the front of *b (what names it in the
// error: errCorruptWindow when it is truncated or overflows).
func nextUvarint(b *[]byte, what string) (uint64, error) {
	v, size := binary.Uvarint(*b)
	if size <= 0 {
		return 0, fmt.Errorf("%w: bad %s", errCorruptWindow, what)
	}
	*b = (*b)[size:]
	return v, nil
}

// decodeListedWindow parses the entries of a record in the listed form
// (count > 0; see encode) and returns the window and the bytes after them.
func decodeListedWindow(clientID string, high, count uint64, b []byte) (*clientWindow, []byte, error) {
	next := func(what string) (uint64, error) { return nextUvarint(&b, what) }
	if count > ClientWindow {
		return nil, nil, fmt.Errorf("%w: %d entries, want 1..%d", errCorruptWindow, count, ClientWindow)
	}
	w := &clientWindow{high: high, entries: make(map[uint64]windowEntry, count)}
	var prev uint64
	for i := range count {
		n, err := next("request number")
		if err != nil {
			return nil, nil, err
		}
		if (i > 0 && n <= prev) || n > high || w.tooOld(n) {
			return nil, nil, fmt.Errorf("%w: request number %d out of order or outside the window of %d", errCorruptWindow, n, high)
		}
		size, err := next("result length")
		if err != nil {
			return nil, nil, err
		}
		if size > uint64(len(b)) {
			return nil, nil, fmt.Errorf("%w: result of %d bytes, %d left", errCorruptWindow, size, len(b))
		}
		result := slices.Clone(b[:size])
		b = b[size:]
		w.entries[n] = windowEntry{result: result, hash: replyHash(clientID, n, result)}
		prev = n
	}
	if prev != high {
		return nil, nil, fmt.Errorf("%w: highest request number %d has no entry", errCorruptWindow, high)
	}
	return w, b, nil
}

// uvarintLen returns the length of the minimal uvarint encoding of v.
func uvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// replyHash returns the reply-cache digest element of request n of the
// client: SHA-256("pbftnode/v1/reply-entry" || uvarint(len id) || id ||
// uvarint(n) || result).
func replyHash(clientID string, n uint64, result []byte) [32]byte {
	return replyHashOf(clientID, n, result)
}

// replyHashOf is replyHash for a client ID given as a string or as bytes.
func replyHashOf[ID string | []byte](clientID ID, n uint64, result []byte) [32]byte {
	return clientNumberHash(replyEntryDomain, clientID, n, result)
}

// clientNumberHash returns SHA-256(domain || uvarint(len id) || id ||
// uvarint(n) || tail), the shape of the reply-cache digest elements
// (replyHashOf, windowSeqHash). Inputs that fit hashScratchSize are hashed
// from a stack buffer in one call (no allocation); larger ones are
// streamed. Both ways hash the same bytes.
func clientNumberHash[ID string | []byte](domain string, clientID ID, n uint64, tail []byte) [32]byte {
	var buf [hashScratchSize]byte
	if len(domain)+2*binary.MaxVarintLen64+len(clientID)+len(tail) > len(buf) {
		h := sha256.New()
		h.Write([]byte(domain))
		h.Write(binary.AppendUvarint(nil, uint64(len(clientID))))
		h.Write([]byte(clientID))
		h.Write(binary.AppendUvarint(nil, n))
		h.Write(tail)
		var out [32]byte
		h.Sum(out[:0])
		return out
	}
	b := append(buf[:0], domain...)
	b = binary.AppendUvarint(b, uint64(len(clientID)))
	b = append(b, clientID...)
	b = binary.AppendUvarint(b, n)
	b = append(b, tail...)
	return sha256.Sum256(b)
}
