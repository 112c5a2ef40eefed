package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/pbftnode/pbftnode/storage/wal"
)

// Log entry kinds.
const (
	KindPrePrepare byte = 'P'
	KindPrepare    byte = 'p'
	KindCommit     byte = 'c'
	KindCheckpoint byte = 'k'
	// KindPreparedCertificate: an encoded wire.PreparedCertificate this
	// replica assembled (it must survive a crash for view changes).
	KindPreparedCertificate byte = 'C'
)

const (
	logPrefix = PrefixProtocol + "log/"
	viewKey   = PrefixProtocol + "view"
	// logKeyLen is len(logPrefix) + sequence(8) + view(8) + kind(1) + hash(8).
	logKeyLen = len(logPrefix) + 8 + 8 + 1 + 8
	// deleteChunk bounds the number of deletions per batch in DeleteLogBelow.
	deleteChunk = 4096
)

// LogEntry is one protocol message the PBFT core asked to persist.
type LogEntry struct {
	View     uint64
	Sequence uint64
	// Kind is KindPrePrepare, KindPrepare, KindCommit or KindCheckpoint.
	Kind byte
	// Signed is the encoded wire.Signed message as sent or accepted.
	Signed []byte
}

func validKind(kind byte) bool {
	switch kind {
	case KindPrePrepare, KindPrepare, KindCommit, KindCheckpoint, KindPreparedCertificate:
		return true
	}
	return false
}

// logKey is p/log/<seq BE8><view BE8><kind><first 8 bytes of sha256(Signed)>,
// so entries sort by sequence, then view, then kind, and distinct messages
// at one (sequence, view, kind) (from different senders) do not overwrite
// each other while re-appending the same message is idempotent.
func logKey(e LogEntry) []byte {
	key := make([]byte, 0, logKeyLen)
	key = append(key, logPrefix...)
	key = binary.BigEndian.AppendUint64(key, e.Sequence)
	key = binary.BigEndian.AppendUint64(key, e.View)
	key = append(key, e.Kind)
	sum := sha256.Sum256(e.Signed)
	return append(key, sum[:8]...)
}

func logSeqKey(seq uint64) []byte {
	key := make([]byte, 0, len(logPrefix)+8)
	key = append(key, logPrefix...)
	return binary.BigEndian.AppendUint64(key, seq)
}

// AppendLog persists entries in one atomic write, fsynced when Sync is on.
// It returns only after the write is durable (per Options.Sync), with
// every entry WriteLog wrote before it, so the caller may then send
// messages that depend on them. Entries with an unknown Kind or empty
// Signed are rejected and nothing is written.
//
// A DB from Open appends to its write-ahead log (one write and one
// fdatasync of a preallocated segment, package wal); one from OpenMem
// writes under p/log/ in goleveldb.
func (d *DB) AppendLog(entries []LogEntry) error { return d.writeLog(entries, d.sync) }

// WriteLog stores entries in one atomic write as AppendLog does, but
// returns without waiting for them to be durable: a crash (a power loss)
// may lose them, and then every entry written after them too, never an
// earlier one; the next AppendLog makes them durable. For entries nothing
// sent so far depends on being durable.
func (d *DB) WriteLog(entries []LogEntry) error { return d.writeLog(entries, false) }

func (d *DB) writeLog(entries []LogEntry, sync bool) error {
	if len(entries) == 0 {
		return nil
	}
	for i, e := range entries {
		if !validKind(e.Kind) {
			return fmt.Errorf("append log: entry %d (seq %d): unknown kind %q", i, e.Sequence, e.Kind)
		}
		if len(e.Signed) == 0 {
			return fmt.Errorf("append log: entry %d (seq %d): empty signed message", i, e.Sequence)
		}
	}
	if d.wal != nil {
		recs := make([]wal.Record, len(entries))
		for i, e := range entries {
			recs[i] = wal.Record{Tag: e.Sequence, Data: encodeWALEntry(e)}
		}
		write := d.wal.Write
		if sync {
			write = d.wal.Append
		}
		if err := write(recs); err != nil {
			return fmt.Errorf("append log (%d entries): %w", len(entries), err)
		}
		return nil
	}
	batch := new(leveldb.Batch)
	for _, e := range entries {
		batch.Put(logKey(e), e.Signed)
	}
	if err := d.ldb.Write(batch, &opt.WriteOptions{Sync: sync}); err != nil {
		return fmt.Errorf("append log (%d entries): %w", len(entries), err)
	}
	return nil
}

// walEntryHeader is a log entry's record in the WAL before its Signed
// bytes: view BE8, kind (the sequence is the record's tag).
const walEntryHeader = 8 + 1

func encodeWALEntry(e LogEntry) []byte {
	b := make([]byte, 0, walEntryHeader+len(e.Signed))
	b = binary.BigEndian.AppendUint64(b, e.View)
	b = append(b, e.Kind)
	return append(b, e.Signed...)
}

func decodeWALEntry(seq uint64, data []byte) (LogEntry, error) {
	if len(data) <= walEntryHeader {
		return LogEntry{}, fmt.Errorf("log record at seq %d: %d bytes, too short", seq, len(data))
	}
	e := LogEntry{
		Sequence: seq,
		View:     binary.BigEndian.Uint64(data[0:8]),
		Kind:     data[8],
		Signed:   append([]byte(nil), data[walEntryHeader:]...),
	}
	if !validKind(e.Kind) {
		return LogEntry{}, fmt.Errorf("log record at seq %d: unknown kind %q", seq, e.Kind)
	}
	return e, nil
}

// LoadLog returns the entries with Sequence >= fromSeq (and not below
// what DeleteLogBelow deleted in this process) in key order (sequence,
// view, kind, then a hash of the message), each distinct message once. It
// reads the write-ahead log and the entries under p/log/ in goleveldb
// (where OpenMem keeps them, and where databases written before the WAL
// kept them). A malformed key or record is reported as corruption.
func (d *DB) LoadLog(fromSeq uint64) ([]LogEntry, error) {
	fromSeq = max(fromSeq, d.logFloor.Load())
	entries, err := d.loadLevelDBLog(fromSeq)
	if err != nil || d.wal == nil {
		return entries, err
	}
	// Each entry by its key, computed once: it deduplicates and orders.
	byKey := make(map[string]LogEntry, len(entries))
	for _, e := range entries {
		byKey[string(logKey(e))] = e
	}
	err = d.wal.Scan(func(seq uint64, data []byte) error {
		if seq < fromSeq {
			return nil
		}
		e, err := decodeWALEntry(seq, data)
		if err != nil {
			return err
		}
		key := string(logKey(e))
		if _, dup := byKey[key]; !dup {
			byKey[key] = e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load log from seq %d: %w", fromSeq, err)
	}
	keys := slices.Sorted(maps.Keys(byKey))
	entries = entries[:0]
	for _, k := range keys {
		entries = append(entries, byKey[k])
	}
	return entries, nil
}

// loadLevelDBLog returns the entries under p/log/ from fromSeq on.
func (d *DB) loadLevelDBLog(fromSeq uint64) ([]LogEntry, error) {
	iter := d.ldb.NewIterator(&util.Range{Start: logSeqKey(fromSeq), Limit: util.BytesPrefix([]byte(logPrefix)).Limit}, nil)
	defer iter.Release()
	var entries []LogEntry
	for iter.Next() {
		key := iter.Key()
		if len(key) != logKeyLen {
			return nil, fmt.Errorf("load log: corrupt key %x: length %d, want %d", key, len(key), logKeyLen)
		}
		rest := key[len(logPrefix):]
		e := LogEntry{
			Sequence: binary.BigEndian.Uint64(rest[0:8]),
			View:     binary.BigEndian.Uint64(rest[8:16]),
			Kind:     rest[16],
			Signed:   append([]byte(nil), iter.Value()...),
		}
		if !validKind(e.Kind) {
			return nil, fmt.Errorf("load log: corrupt key %x: unknown kind %q", key, e.Kind)
		}
		entries = append(entries, e)
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("load log from seq %d: %w", fromSeq, err)
	}
	return entries, nil
}

// DeleteLogBelow deletes the entries with Sequence < seq (garbage
// collection after a stable checkpoint): LoadLog no longer returns them,
// the write-ahead log's segments that hold only such entries are removed
// (an entry in a segment that also holds later ones stays on disk until
// that segment goes; after a restart LoadLog can return it again, below
// the stable checkpoint that recovery starts above), and those under
// p/log/ are deleted in bounded batches. It does not wait for fsync: the caller must first have saved (durably) a
// stable checkpoint at seq-1 or above, so that recovery never reads the
// entries below it (LoadLog starts above the stable checkpoint), and a
// deletion a crash loses costs only space until the next call, which
// deletes everything below its own seq. Entries at or above seq are never
// touched. Safe to call from another goroutine than the one appending.
func (d *DB) DeleteLogBelow(seq uint64) error {
	if d.wal != nil {
		if _, err := d.wal.RemoveBelow(seq); err != nil {
			return fmt.Errorf("delete log below seq %d: %w", seq, err)
		}
	}
	start := logSeqKey(min(d.logFloor.Load(), seq))
	rng := &util.Range{Start: start, Limit: logSeqKey(seq)}
	for {
		done, err := d.deleteChunk(rng)
		if err != nil {
			return fmt.Errorf("delete log below seq %d: %w", seq, err)
		}
		if done {
			// Later calls start here, not at the first tombstone.
			for {
				floor := d.logFloor.Load()
				if floor >= seq || d.logFloor.CompareAndSwap(floor, seq) {
					return nil
				}
			}
		}
	}
}

// deleteChunk deletes up to deleteChunk keys in rng and reports whether the
// range is now empty.
func (d *DB) deleteChunk(rng *util.Range) (bool, error) {
	iter := d.ldb.NewIterator(rng, nil)
	batch := new(leveldb.Batch)
	for batch.Len() < deleteChunk && iter.Next() {
		batch.Delete(append([]byte(nil), iter.Key()...))
	}
	more := batch.Len() == deleteChunk
	iter.Release()
	if err := iter.Error(); err != nil {
		return false, err
	}
	if batch.Len() == 0 {
		return true, nil
	}
	if err := d.ldb.Write(batch, nil); err != nil {
		return false, err
	}
	return !more, nil
}

// SaveView durably records the replica's current view.
func (d *DB) SaveView(view uint64) error { return d.SaveViewState(view, true) }

// SaveViewState saves the view and whether the replica had entered it
// (false while it was still changing to it).
func (d *DB) SaveViewState(view uint64, active bool) error {
	value := binary.BigEndian.AppendUint64(nil, view)
	if !active {
		value = append(value, 0)
	}
	if err := d.ldb.Put([]byte(viewKey), value, d.writeOptions()); err != nil {
		return fmt.Errorf("save view %d: %w", view, err)
	}
	return nil
}

// LoadViewState returns the saved view and whether it was active.
func (d *DB) LoadViewState() (view uint64, active, found bool, err error) {
	value, err := d.ldb.Get([]byte(viewKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, true, false, nil
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("load view: %w", err)
	}
	switch {
	case len(value) == 8:
		return binary.BigEndian.Uint64(value), true, true, nil
	case len(value) == 9 && value[8] == 0:
		return binary.BigEndian.Uint64(value), false, true, nil
	}
	return 0, false, false, fmt.Errorf("load view: corrupt value of length %d", len(value))
}

// LoadView returns the saved view; found is false when none was saved.
func (d *DB) LoadView() (view uint64, found bool, err error) {
	value, err := d.ldb.Get([]byte(viewKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load view: %w", err)
	}
	if len(value) != 8 && len(value) != 9 {
		return 0, false, fmt.Errorf("load view: corrupt value of length %d", len(value))
	}
	return binary.BigEndian.Uint64(value[:8]), true, nil
}
