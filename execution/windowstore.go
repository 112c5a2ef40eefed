package execution

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/pbftnode/pbftnode/storage"
)

// The reply cache on disk, one key per window entry (issue 21: a batch
// writes what it changed, not every touched client's whole window):
//
//	e/w/<id16><id>            window header: uvarint(H) || uvarint(lastSeq)
//	e/w/<id16><id><n>         entry n of the window: its result bytes
//
// where <id16> is the client ID's length as 2 bytes big-endian and <n> the
// request number as 8 bytes big-endian, so a key names one window or one
// entry unambiguously, and a window's header sorts right before its
// entries, which sort by n. Both uvarints of a header are minimally
// encoded (one encoding per window state). Keys written by the earlier
// layout (legacyReplyPrefix, one whole-window record per client) are
// converted when the executor loads them (see migrateLegacyWindows).
const (
	windowPrefix = storage.PrefixExecutor + "w/"
	// windowIDLenSize and entryNumberSize are the fixed widths of the
	// client ID length and of the request number in window keys.
	windowIDLenSize = 2
	entryNumberSize = 8
)

var (
	errCorruptWindow    = errors.New("corrupt client window record")
	errCorruptWindowKey = errors.New("corrupt client window key")
)

// appendWindowKey appends the header key of the client's window to out.
func appendWindowKey[ID string | []byte](out []byte, clientID ID) []byte {
	out = append(out, windowPrefix...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(clientID)))
	return append(out, clientID...)
}

// appendEntryKey appends the key of the client's entry n to out.
func appendEntryKey[ID string | []byte](out []byte, clientID ID, n uint64) []byte {
	return binary.BigEndian.AppendUint64(appendWindowKey(out, clientID), n)
}

// parseWindowKey splits a key under windowPrefix into the client ID and,
// for an entry key, the request number. It refuses client IDs outside
// 1..MaxClientIDSize bytes and keys of any other length.
func parseWindowKey(key []byte) (clientID []byte, n uint64, isEntry bool, err error) {
	rest := key[len(windowPrefix):]
	if len(rest) < windowIDLenSize {
		return nil, 0, false, fmt.Errorf("%w: %d bytes after the prefix", errCorruptWindowKey, len(rest))
	}
	idLen := int(binary.BigEndian.Uint16(rest))
	rest = rest[windowIDLenSize:]
	if idLen == 0 || idLen > MaxClientIDSize {
		return nil, 0, false, fmt.Errorf("%w: client ID of length %d, want 1..%d", errCorruptWindowKey, idLen, MaxClientIDSize)
	}
	switch len(rest) {
	case idLen:
		return rest, 0, false, nil
	case idLen + entryNumberSize:
		return rest[:idLen], binary.BigEndian.Uint64(rest[idLen:]), true, nil
	}
	return nil, 0, false, fmt.Errorf("%w: %d bytes after a client ID of %d", errCorruptWindowKey, len(rest), idLen)
}

// appendWindowHeader appends the header record of a window with highest
// request number high and last active sequence lastSeq.
func appendWindowHeader(out []byte, high, lastSeq uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(out, high), lastSeq)
}

// decodeWindowHeader parses a header record (two minimal uvarints and
// nothing else).
func decodeWindowHeader(b []byte) (high, lastSeq uint64, err error) {
	high, size := binary.Uvarint(b)
	if size <= 0 || size != uvarintLen(high) {
		return 0, 0, fmt.Errorf("%w: bad highest request number", errCorruptWindow)
	}
	b = b[size:]
	lastSeq, size = binary.Uvarint(b)
	if size <= 0 || size != uvarintLen(lastSeq) {
		return 0, 0, fmt.Errorf("%w: bad last active sequence", errCorruptWindow)
	}
	if len(b) != size {
		return 0, 0, fmt.Errorf("%w: %d trailing bytes", errCorruptWindow, len(b)-size)
	}
	return high, lastSeq, nil
}

// windowLoader rebuilds client windows from the per-entry records, read
// in key order: a header, then its entries. It checks that every entry
// follows its own window's header and lies in the window, and that each
// window ends with an entry for its H; keys are unique, so no entry can
// appear twice.
type windowLoader struct {
	lastExecuted uint64
	id           string
	w            *clientWindow
	done         func(id string, w *clientWindow)
}

// add takes the next record under windowPrefix.
func (l *windowLoader) add(key, value []byte) error {
	clientID, n, isEntry, err := parseWindowKey(key)
	if err != nil {
		return err
	}
	if !isEntry {
		if err := l.finish(); err != nil {
			return err
		}
		high, lastSeq, err := decodeWindowHeader(value)
		if err != nil {
			return fmt.Errorf("client window of %x: %w", clientID, err)
		}
		if lastSeq > l.lastExecuted {
			return fmt.Errorf("client window of %x: %w: last active sequence %d above last executed %d", clientID, errCorruptWindow, lastSeq, l.lastExecuted)
		}
		l.id = string(clientID)
		l.w = &clientWindow{high: high, lastSeq: lastSeq, entries: make(map[uint64]windowEntry), seqHash: windowSeqHash(clientID, lastSeq)}
		return nil
	}
	if l.w == nil || l.id != string(clientID) {
		return fmt.Errorf("client window of %x: %w: entry %d without its window", clientID, errCorruptWindow, n)
	}
	if n > l.w.high || l.w.tooOld(n) {
		return fmt.Errorf("client window of %x: %w: request number %d outside the window of %d", clientID, errCorruptWindow, n, l.w.high)
	}
	result := append([]byte{}, value...)
	l.w.entries[n] = windowEntry{result: result, hash: replyHash(l.id, n, result)}
	return nil
}

// finish completes the window being read, if any.
func (l *windowLoader) finish() error {
	if l.w == nil {
		return nil
	}
	if _, ok := l.w.entries[l.w.high]; !ok {
		return fmt.Errorf("client window of %x: %w: highest request number %d has no entry", l.id, errCorruptWindow, l.w.high)
	}
	l.done(l.id, l.w)
	l.id, l.w = "", nil
	return nil
}

// loadWindows reads every window record into e.clients and the reply-cache
// digest (e.lastExecuted must be loaded).
func (e *Executor) loadWindows() error {
	l := windowLoader{lastExecuted: e.lastExecuted, done: func(id string, w *clientWindow) {
		e.clients[id] = w
		for _, entry := range w.entries {
			e.cacheAcc.add(entry.hash)
		}
		e.cacheAcc.add(w.seqHash)
	}}
	iter := e.ldb.NewIterator(util.BytesPrefix([]byte(windowPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		if err := l.add(iter.Key(), iter.Value()); err != nil {
			return fmt.Errorf("executor: load reply cache: %w", err)
		}
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("executor: load reply cache: %w", err)
	}
	if err := l.finish(); err != nil {
		return fmt.Errorf("executor: load reply cache: %w", err)
	}
	return nil
}

// priorValue is a key's value before the batch being staged, for its
// rollback record; present is false when the key did not exist.
type priorValue struct {
	value   []byte
	present bool
}

// stageWindows adds to batch the reply-cache writes of the Apply in
// progress: the header of every window it touched, each entry it added
// that is still in its window (an entry added and evicted by the same
// batch is never written), the deletion of each entry it evicted that
// existed before it, and the header and entries of every window it
// evicted whole. With rollback tracking on, it notes each written key's
// value before the batch in e.rollbackKeys.prior. Everything is in the
// order of e.touched, e.undo and e.evicted (and entry numbers within an
// evicted window), none of them a map order.
func (e *Executor) stageWindows(batch *leveldb.Batch) {
	track := e.trackRollback
	c := &e.rollbackKeys
	if track && c.prior == nil {
		c.prior = make(map[string]priorValue)
	}
	for _, t := range e.touched {
		e.keyBuf = appendWindowKey(e.keyBuf[:0], t.id)
		e.valueBuf = appendWindowHeader(e.valueBuf[:0], t.w.high, t.w.lastSeq)
		batch.Put(e.keyBuf, e.valueBuf)
		if track {
			prior := priorValue{}
			if !t.created {
				prior = priorValue{value: appendWindowHeader(nil, t.prevHigh, t.prevLastSeq), present: true}
			}
			c.prior[string(e.keyBuf)] = prior
		}
	}
	if e.added == nil {
		e.added = make(map[windowEntryRef]struct{})
		e.windowIDs = make(map[*clientWindow]string)
	}
	for _, t := range e.touched {
		e.windowIDs[t.w] = t.id
	}
	for _, ch := range e.undo {
		if !ch.had {
			e.added[windowEntryRef{ch.w, ch.n}] = struct{}{}
		}
	}
	for _, ch := range e.undo {
		id := e.windowIDs[ch.w]
		switch _, addedHere := e.added[windowEntryRef{ch.w, ch.n}]; {
		case !ch.had:
			entry, kept := ch.w.entries[ch.n]
			if !kept {
				continue // added and evicted by this batch
			}
			e.keyBuf = appendEntryKey(e.keyBuf[:0], id, ch.n)
			batch.Put(e.keyBuf, entry.result)
			if track {
				c.prior[string(e.keyBuf)] = priorValue{}
			}
		case !addedHere:
			e.keyBuf = appendEntryKey(e.keyBuf[:0], id, ch.n)
			batch.Delete(e.keyBuf)
			if track {
				c.prior[string(e.keyBuf)] = priorValue{value: ch.old.result, present: true}
			}
		}
	}
	for _, ev := range e.evicted {
		e.stageEvictedWindow(batch, ev)
	}
}

// stageEvictedWindow adds the deletion of a window evicted whole (its
// header, then its entries by number) to batch, noting their values for
// the rollback record when tracking.
func (e *Executor) stageEvictedWindow(batch *leveldb.Batch, ev evictedWindow) {
	track := e.trackRollback
	c := &e.rollbackKeys
	e.keyBuf = appendWindowKey(e.keyBuf[:0], ev.id)
	batch.Delete(e.keyBuf)
	if track {
		c.prior[string(e.keyBuf)] = priorValue{value: appendWindowHeader(nil, ev.w.high, ev.w.lastSeq), present: true}
	}
	low := uint64(0)
	if ev.w.high >= ClientWindow {
		low = ev.w.high - ClientWindow + 1
	}
	for n := low; n <= ev.w.high; n++ {
		entry, ok := ev.w.entries[n]
		if !ok {
			continue
		}
		e.keyBuf = appendEntryKey(e.keyBuf[:0], ev.id, n)
		batch.Delete(e.keyBuf)
		if track {
			c.prior[string(e.keyBuf)] = priorValue{value: entry.result, present: true}
		}
	}
}

// windowEntryRef names one entry of one window during an Apply.
type windowEntryRef struct {
	w *clientWindow
	n uint64
}

// checkRestoreWindowRecord validates one window record received in a
// state transfer on its own: a well-formed key, and for a header a
// well-formed record whose last active sequence is at most the e/last
// received (e/last sorts before every window key). Whether the entries
// fit their windows is checked by loadWindows when the restore finishes.
func (e *Executor) checkRestoreWindowRecord(key, value []byte) error {
	clientID, _, isEntry, err := parseWindowKey(key)
	if err != nil || isEntry {
		return err
	}
	_, lastSeq, err := decodeWindowHeader(value)
	if err != nil {
		return fmt.Errorf("client window of %x: %w", clientID, err)
	}
	if lastSeq > e.restore.lastExecuted {
		return fmt.Errorf("client window of %x: %w: last active sequence %d above last executed %d", clientID, errCorruptWindow, lastSeq, e.restore.lastExecuted)
	}
	return nil
}
