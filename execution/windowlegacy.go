package execution

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math/bits"
	"slices"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// migrateLegacyWindows converts the whole-window records of the earlier
// layout (legacyReplyPrefix; see clientWindow.appendEncoded) into the
// per-entry layout of windowstore.go, after loadWindows: it loads and
// validates them like loadWindows, then in one write puts their headers
// and entries, deletes the old records and deletes every rollback record
// (they name the old keys, so a state rebuilt from them would mix both
// layouts; SnapshotAt fails with ErrRollbackUnavailable for the sequences
// below the next stable checkpoint instead). The logical state, hence the
// state digest, is unchanged. A database without old records costs one
// empty seek.
func (e *Executor) migrateLegacyWindows() error {
	iter := e.ldb.NewIterator(util.BytesPrefix([]byte(legacyReplyPrefix)), nil)
	defer iter.Release()
	batch := new(leveldb.Batch)
	migrated := 0
	for iter.Next() {
		clientID := string(iter.Key()[len(legacyReplyPrefix):])
		if len(clientID) == 0 || len(clientID) > MaxClientIDSize {
			return fmt.Errorf("executor: load reply cache: client ID of invalid length %d", len(clientID))
		}
		w, err := decodeClientWindow(clientID, iter.Value())
		if err != nil {
			return fmt.Errorf("executor: load reply cache of client %x: %w", clientID, err)
		}
		if w.lastSeq > e.lastExecuted {
			return fmt.Errorf("executor: load reply cache of client %x: %w: last active sequence %d above last executed %d", clientID, errCorruptWindow, w.lastSeq, e.lastExecuted)
		}
		if e.clients[clientID] != nil {
			return fmt.Errorf("executor: load reply cache of client %x: %w: stored in both layouts", clientID, errCorruptWindow)
		}
		e.clients[clientID] = w
		for _, entry := range w.entries {
			e.cacheAcc.add(entry.hash)
		}
		e.cacheAcc.add(w.seqHash)
		batch.Put(appendWindowKey(nil, clientID), appendWindowHeader(nil, w.high, w.lastSeq))
		for n, entry := range w.entries {
			batch.Put(appendEntryKey(nil, clientID, n), entry.result)
		}
		batch.Delete(bytes.Clone(iter.Key()))
		migrated++
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("executor: load reply cache: %w", err)
	}
	if migrated == 0 {
		return nil
	}
	undo := e.ldb.NewIterator(util.BytesPrefix([]byte(rollbackPrefix)), nil)
	defer undo.Release()
	for undo.Next() {
		batch.Delete(bytes.Clone(undo.Key()))
	}
	if err := undo.Error(); err != nil {
		return fmt.Errorf("executor: convert reply cache: read rollback records: %w", err)
	}
	if err := e.ldb.Write(batch, &opt.WriteOptions{Sync: false}); err != nil {
		return fmt.Errorf("executor: convert reply cache: %w", err)
	}
	e.logger.Info("executor: converted client windows to one key per entry", "windows", migrated)
	return nil
}

// encode returns the whole-window record of the earlier layout (before
// windowstore.go; the tests write such records to check their
// conversion): uvarint(high) || uvarint(count) ||
// count x (uvarint(n) || uvarint(len result) || result), n ascending,
// then uvarint(lastSeq) when lastSeq > 0 (a record without it has lastSeq
// 0; records written before lastSeq existed have none).
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
	out = binary.AppendUvarint(out, uint64(len(w.entries)))
	if !inOrder {
		for _, n := range slices.Sorted(maps.Keys(w.entries)) {
			result := w.entries[n].result
			out = binary.AppendUvarint(out, n)
			out = binary.AppendUvarint(out, uint64(len(result)))
			out = append(out, result...)
		}
	} else {
		for bitmap != 0 {
			d := uint64(63 - bits.LeadingZeros64(bitmap))
			bitmap &^= 1 << d
			out = binary.AppendUvarint(out, w.high-d)
			out = binary.AppendUvarint(out, uint64(len(results[d])))
			out = append(out, results[d]...)
		}
	}
	if w.lastSeq > 0 {
		out = binary.AppendUvarint(out, w.lastSeq)
	}
	return out
}

// decodeClientWindow parses and validates a record written by encode
// (with or without the lastSeq trailer; a trailer must be a minimal uvarint
// of a nonzero lastSeq, so each window has one encoding of its lastSeq).
// The results are copied out of b. The caller checks lastSeq against the
// last executed sequence.
func decodeClientWindow(clientID string, b []byte) (*clientWindow, error) {
	next := func(what string) (uint64, error) {
		v, size := binary.Uvarint(b)
		if size <= 0 {
			return 0, fmt.Errorf("%w: bad %s", errCorruptWindow, what)
		}
		b = b[size:]
		return v, nil
	}
	high, err := next("highest request number")
	if err != nil {
		return nil, err
	}
	count, err := next("entry count")
	if err != nil {
		return nil, err
	}
	if count == 0 || count > ClientWindow {
		return nil, fmt.Errorf("%w: %d entries, want 1..%d", errCorruptWindow, count, ClientWindow)
	}
	w := &clientWindow{high: high, entries: make(map[uint64]windowEntry, count)}
	var prev uint64
	for i := range count {
		n, err := next("request number")
		if err != nil {
			return nil, err
		}
		if (i > 0 && n <= prev) || n > high || w.tooOld(n) {
			return nil, fmt.Errorf("%w: request number %d out of order or outside the window of %d", errCorruptWindow, n, high)
		}
		size, err := next("result length")
		if err != nil {
			return nil, err
		}
		if size > uint64(len(b)) {
			return nil, fmt.Errorf("%w: result of %d bytes, %d left", errCorruptWindow, size, len(b))
		}
		result := slices.Clone(b[:size])
		b = b[size:]
		w.entries[n] = windowEntry{result: result, hash: replyHash(clientID, n, result)}
		prev = n
	}
	if prev != high {
		return nil, fmt.Errorf("%w: highest request number %d has no entry", errCorruptWindow, high)
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
