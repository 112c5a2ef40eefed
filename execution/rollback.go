package execution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/pbftnode/pbftnode/storage"
)

// Rollback records. A replica serves peers the state at its stable
// checkpoint, but it usually executed past it, and the in-memory
// goleveldb snapshot TakeSnapshot took at the checkpoint dies with the
// process. With TrackRollback on, every Apply also writes, in the same
// atomic batch, the value each key it changes had before the batch (its
// "undo entry"), all of the batch's in one record:
//
//	e/u/<sequence, 8 bytes big-endian> = entries, each
//	    uvarint(len(key)) key 0            (the key was absent)
//	    uvarint(len(key)) key 1 uvarint(len(value)) value
//
// so that SnapshotAt can rebuild the state at any executed sequence above
// the last one TrackRollback was given, after a restart too. One record
// per batch rather than one per key: each goleveldb entry costs a
// memtable insert (a skip-list search) whatever its size, and the
// records were a third of a replica's entries. A replica that wrote
// records of the earlier form, one per key (e/u/<sequence><key> = 0 |
// 1 value), still reads them. With SetRollbackInterval(k) (the PBFT
// driver's checkpoint interval), only the multiples of k can be rebuilt,
// and a key's entry is written only at its first write in each interval
// of k sequences. The records are under storage.PrefixExecutor, so a
// state transfer's wipe deletes them, and they are never transferred
// (isExecutorTransferKey).
//
// Cost: one read (usually from the memtable or block cache) per distinct
// key a batch records, and on disk the previous values of the keys written
// by the batches above the stable checkpoint: at most WindowSize batches,
// deleted when the next checkpoint becomes stable; per interval, at most
// one entry per distinct key written in it.
const rollbackPrefix = storage.PrefixExecutor + "u/"

var (
	// ErrRollbackUnavailable is returned (wrapped) by SnapshotAt when the
	// undo records to reach the sequence asked for are not all there
	// (TrackRollback was off for some batch above it, or they were
	// deleted), or when the application cannot be rolled back (it is not
	// a BatchApplication and TransferableApplication).
	ErrRollbackUnavailable = errors.New("state at that sequence cannot be rebuilt")
)

// rollbackSequencePrefix returns the prefix of the undo records of
// sequence.
func rollbackSequencePrefix(sequence uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(rollbackPrefix), sequence)
}

// TrackRollback makes every later Apply record what it overwrites (see
// the rollback records above), and deletes the records of the sequences
// at or below stable: the state at stable or above is what SnapshotAt can
// rebuild. The PBFT driver calls it at recovery and at each stable
// checkpoint, on the executor's goroutine. It does nothing for an
// application that cannot be rolled back (SnapshotAt then always fails).
func (e *Executor) TrackRollback(stable uint64) error {
	e.settle()
	if e.batchApp == nil || e.transferApp == nil {
		return nil
	}
	e.trackRollback = true
	// The deletion may take records the set counts on (when stable is
	// not below the current interval); recording those keys again is
	// harmless, the earliest record of a key being the one used.
	e.forgetRollbackRecorded()
	if stable < e.rollbackFloor {
		return nil
	}
	// Start at the first sequence not yet trimmed: the deleted records
	// stay as tombstones until a compaction, and scanning them again at
	// every checkpoint would cost more and more.
	rng := &util.Range{Start: rollbackSequencePrefix(e.rollbackFloor), Limit: rollbackSequencePrefix(stable + 1)}
	if err := e.deleteRange(rng, &opt.WriteOptions{Sync: false}); err != nil {
		return fmt.Errorf("executor: delete rollback records at or below %d: %w", stable, err)
	}
	e.rollbackFloor = stable + 1
	return nil
}

// keyCollector gathers the distinct keys a batch writes, in first-write
// order, in one reused buffer; windows holds the encodings of the client
// windows the batch touched as they were before it (notePriorWindow).
type keyCollector struct {
	seen    map[string]struct{}
	arena   []byte
	ends    []int
	windows []byte
	prior   map[string][]byte
}

func (c *keyCollector) add(key []byte) {
	if _, ok := c.seen[string(key)]; ok {
		return
	}
	c.seen[string(key)] = struct{}{}
	c.arena = append(c.arena, key...)
	c.ends = append(c.ends, len(c.arena))
}

func (c *keyCollector) Put(key, _ []byte) { c.add(key) }
func (c *keyCollector) Delete(key []byte) { c.add(key) }

func (c *keyCollector) reset() {
	clear(c.seen)
	clear(c.prior)
	c.arena, c.ends, c.windows = c.arena[:0], c.ends[:0], c.windows[:0]
	if cap(c.arena)+cap(c.windows) > maxKeptBufferSize {
		c.arena, c.windows = nil, nil
	}
}

// notePriorWindow records w's encoding before the batch changes it (it
// is the last one touched), sparing stageRollback a database read.
func (e *Executor) notePriorWindow(w *clientWindow) {
	if !e.trackRollback {
		return
	}
	c := &e.rollbackKeys
	c.windows = w.appendEncoded(c.windows)
	e.touched[len(e.touched)-1].prevEnd = len(c.windows)
}

// CommittedValueCache is an optional side of an application: the value
// key (a full database key) had after the last committed batch, when the
// application knows it without reading the database (ok false
// otherwise). KV implements it from its read cache, which holds the old
// value of every key a batch writes (the write needs it for the digest).
type CommittedValueCache interface {
	CachedCommittedValue(key []byte) (value []byte, present, ok bool)
}

// priorValues fills c.prior with the values before the batch at sequence
// that the executor knows without reading: e/last and the client windows
// the batch writes or deletes (nil: absent).
func (e *Executor) priorValues(sequence uint64) {
	c := &e.rollbackKeys
	if c.prior == nil {
		c.prior = make(map[string][]byte)
	}
	if sequence > 1 {
		c.prior[executorLastKey] = binary.BigEndian.AppendUint64(nil, sequence-1)
	}
	start := 0
	for _, t := range e.touched {
		key := executorReplyPrefix + t.id
		if t.created {
			c.prior[key] = nil
			continue
		}
		c.prior[key] = c.windows[start:t.prevEnd]
		start = t.prevEnd
	}
	for _, ev := range e.evicted {
		c.prior[executorReplyPrefix+ev.id] = ev.w.appendEncoded(nil)
	}
}

// stageRollback adds to batch, about to be written for sequence, the
// record of the undo entry of every key it writes: that key's value now.
func (e *Executor) stageRollback(sequence uint64, batch *leveldb.Batch) error {
	c := &e.rollbackKeys
	if c.seen == nil {
		c.seen = make(map[string]struct{})
	}
	if err := batch.Replay(c); err != nil {
		return fmt.Errorf("rollback record: %w", err)
	}
	e.priorValues(sequence)
	e.enterRollbackSpan(sequence)
	appCache, _ := e.app.(CommittedValueCache)
	record := e.rollbackBuf[:0]
	start := 0
	for _, end := range c.ends {
		key := c.arena[start:end]
		start = end
		if !e.transfers(key) {
			continue // never served, so never rolled back (a/m/digest)
		}
		if e.rollbackInterval > 0 {
			if _, ok := e.rollbackRecorded[string(key)]; ok {
				continue // its value at this interval's start is recorded
			}
			e.rollbackPending = append(e.rollbackPending, string(key))
		}
		old, present, err := e.valueBefore(c, appCache, key)
		if err != nil {
			return fmt.Errorf("rollback record of %q: %w", key, err)
		}
		record = appendUndoEntry(record, key, old, present)
	}
	if len(record) > 0 {
		batch.Put(rollbackSequencePrefix(sequence), record)
	}
	e.rollbackBuf = record
	if cap(e.rollbackBuf) > maxKeptBufferSize {
		e.rollbackBuf = nil
	}
	return nil
}

// appendUndoEntry appends to record the undo entry of key: absent, or
// present with value.
func appendUndoEntry(record, key, value []byte, present bool) []byte {
	record = binary.AppendUvarint(record, uint64(len(key)))
	record = append(record, key...)
	if !present {
		return append(record, 0)
	}
	record = append(record, 1)
	record = binary.AppendUvarint(record, uint64(len(value)))
	return append(record, value...)
}

// errCorruptUndoRecord: a rollback record does not decode.
var errCorruptUndoRecord = errors.New("corrupt rollback record")

// walkUndoRecord calls visit with the key of each undo entry of a batch's
// record and the offset of the entry's value part (its 0 or 1 byte).
func walkUndoRecord(record []byte, visit func(key []byte, at int)) error {
	for i := 0; i < len(record); {
		n, w := binary.Uvarint(record[i:])
		if w <= 0 || n > uint64(len(record)-i-w) {
			return errCorruptUndoRecord
		}
		key := record[i+w : i+w+int(n)]
		at := i + w + int(n)
		end, err := undoEntryEnd(record, at)
		if err != nil {
			return err
		}
		visit(key, at)
		i = end
	}
	return nil
}

// undoEntryEnd returns the end of the value part of an undo entry that
// starts at at in record.
func undoEntryEnd(record []byte, at int) (int, error) {
	switch {
	case at >= len(record):
		return 0, errCorruptUndoRecord
	case record[at] == 0:
		return at + 1, nil
	case record[at] != 1:
		return 0, errCorruptUndoRecord
	}
	n, w := binary.Uvarint(record[at+1:])
	if w <= 0 || n > uint64(len(record)-at-1-w) {
		return 0, errCorruptUndoRecord
	}
	return at + 1 + w + int(n), nil
}

// undoValue decodes the value part of an undo entry at at in record.
func undoValue(record []byte, at int) (value []byte, present bool, err error) {
	end, err := undoEntryEnd(record, at)
	if err != nil {
		return nil, false, err
	}
	if record[at] == 0 {
		return nil, false, nil
	}
	_, w := binary.Uvarint(record[at+1:])
	return record[at+1+w : end], true, nil
}

// valueBefore returns key's committed value before the batch: known to
// the executor, cached by the application, or read from the database.
func (e *Executor) valueBefore(c *keyCollector, appCache CommittedValueCache, key []byte) (value []byte, present bool, err error) {
	if v, ok := c.prior[string(key)]; ok {
		return v, v != nil, nil
	}
	if appCache != nil {
		if v, present, ok := appCache.CachedCommittedValue(key); ok {
			return v, present, nil
		}
	}
	v, err := e.ldb.Get(key, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

// rollbackOverlay is what a StateSnapshot built by SnapshotAt changes in
// its goleveldb snapshot: for each key a later batch wrote (sorted), where
// its undo entry holding its value at the snapshot's sequence is. Values
// are read from the snapshot when served, so memory holds only keys.
type rollbackOverlay struct {
	keys  [][]byte
	undos map[string]undoLocation
}

// undoLocation is where an undo entry is: in the record under record, at
// offset at (a batch's record), or the whole record (at < 0: one record
// per key, the earlier form).
type undoLocation struct {
	record []byte
	at     int
}

// SnapshotAt returns the state as of executed sequence seq, which must be
// at most LastExecuted: the current state with the undo records of the
// batches after seq applied in reverse. Its Digest is the zero value (it
// is not recomputed: a replica fetching it checks the whole state against
// a certified digest). It fails with ErrRollbackUnavailable when a
// record is missing (TrackRollback was off, or its records were deleted).
// Call it between Applies; the snapshot is independent of later ones.
func (e *Executor) SnapshotAt(seq uint64) (*StateSnapshot, error) {
	e.settle()
	if seq == e.lastExecuted {
		return e.TakeSnapshot()
	}
	if e.batchApp == nil || e.transferApp == nil {
		return nil, fmt.Errorf("executor: snapshot at %d: %w", seq, ErrRollbackUnavailable)
	}
	if e.restore != nil || seq > e.lastExecuted {
		return nil, fmt.Errorf("executor: snapshot at %d (executed %d, restoring %v): %w", seq, e.lastExecuted, e.restore != nil, ErrRollbackUnavailable)
	}
	if k := e.rollbackInterval; k > 0 && seq%k != 0 {
		return nil, fmt.Errorf("executor: snapshot at %d, not a multiple of the rollback interval %d: %w", seq, k, ErrRollbackUnavailable)
	}
	snap, err := e.TakeSnapshot()
	if err != nil {
		return nil, err
	}
	overlay, err := loadRollbackOverlay(snap.snap, seq, e.lastExecuted, e.rollbackInterval)
	if err != nil {
		snap.Release()
		return nil, fmt.Errorf("executor: snapshot at %d: %w", seq, err)
	}
	snap.sequence, snap.digest, snap.overlay = seq, [32]byte{}, overlay
	return snap, nil
}

// loadRollbackOverlay reads the undo records of the sequences in
// (seq, last] from snap, keeping for each key the earliest one (its value
// at seq), and checks that the batches after seq were tracked: every
// tracked Apply writes a record of e/last, at every sequence when
// interval is 0, else at least at the first sequence of each interval
// (seq+1, seq+1+interval, ...; seq is then a multiple of interval).
func loadRollbackOverlay(snap *leveldb.Snapshot, seq, last, interval uint64) (*rollbackOverlay, error) {
	o := &rollbackOverlay{undos: make(map[string]undoLocation)}
	note := func(key []byte, loc undoLocation) {
		if _, ok := o.undos[string(key)]; !ok {
			o.undos[string(key)] = loc
			o.keys = append(o.keys, bytes.Clone(key))
		}
	}
	rng := &util.Range{Start: rollbackSequencePrefix(seq + 1), Limit: rollbackSequencePrefix(last + 1)}
	iter := snap.NewIterator(rng, nil)
	defer iter.Release()
	step := max(interval, 1)
	want := seq + 1 // the next sequence that must have records
	for iter.Next() {
		k := iter.Key()
		if len(k) < len(rollbackPrefix)+8 {
			return nil, fmt.Errorf("corrupt rollback record key %q", k)
		}
		s := binary.BigEndian.Uint64(k[len(rollbackPrefix):])
		switch {
		case s == want:
			want += step
		case s > want:
			return nil, fmt.Errorf("no rollback record of sequence %d: %w", want, ErrRollbackUnavailable)
		}
		if len(k) > len(rollbackPrefix)+8 { // one key's record, the earlier form
			note(k[len(rollbackPrefix)+8:], undoLocation{record: bytes.Clone(k), at: -1})
			continue
		}
		record := bytes.Clone(k)
		if err := walkUndoRecord(iter.Value(), func(key []byte, at int) {
			note(key, undoLocation{record: record, at: at})
		}); err != nil {
			return nil, fmt.Errorf("rollback record of sequence %d: %w", s, err)
		}
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("read rollback records: %w", err)
	}
	if want <= last {
		return nil, fmt.Errorf("no rollback record of sequence %d: %w", want, ErrRollbackUnavailable)
	}
	slices.SortFunc(o.keys, bytes.Compare)
	return o, nil
}

// maxUndoRecordCacheBytes bounds the rollback records one scan keeps.
const maxUndoRecordCacheBytes = 16 << 20

// undoRecordCache holds the rollback records one scan of a snapshot read:
// a batch's record holds the undo entries of all its keys, which a scan
// in key order meets far apart, so each record is read once rather than
// once per key (at most maxUndoRecordCacheBytes; past it, it starts
// over). The zero value is ready; it is not safe for concurrent use.
type undoRecordCache struct {
	records map[string][]byte
	bytes   int
}

// get returns the record under key in snap.
func (c *undoRecordCache) get(snap *leveldb.Snapshot, key []byte) ([]byte, error) {
	if rec, ok := c.records[string(key)]; ok {
		return rec, nil
	}
	rec, err := snap.Get(key, nil)
	if err != nil {
		return nil, err
	}
	if c.records == nil || c.bytes+len(rec) > maxUndoRecordCacheBytes {
		c.records, c.bytes = make(map[string][]byte), 0
	}
	c.records[string(key)] = rec
	c.bytes += len(key) + len(rec)
	return rec, nil
}

// value returns key's value at the snapshot's sequence from its
// undo entry, reading its record through records; ok is false when the
// key did not exist then.
func (o *rollbackOverlay) value(snap *leveldb.Snapshot, key []byte, records *undoRecordCache) (value []byte, ok bool, err error) {
	loc := o.undos[string(key)]
	rec, err := records.get(snap, loc.record)
	if err != nil {
		return nil, false, fmt.Errorf("read rollback record of %q: %w", key, err)
	}
	if loc.at >= 0 {
		value, ok, err = undoValue(rec, loc.at)
		if err != nil {
			return nil, false, fmt.Errorf("rollback record of %q: %w", key, err)
		}
		return value, ok, nil
	}
	switch {
	case len(rec) == 1 && rec[0] == 0:
		return nil, false, nil
	case len(rec) >= 1 && rec[0] == 1:
		return rec[1:], true, nil
	}
	return nil, false, fmt.Errorf("corrupt rollback record of %q", key)
}

// transfers reports whether key is part of the state a snapshot serves.
func (e *Executor) transfers(key []byte) bool {
	if bytes.HasPrefix(key, []byte(storage.PrefixApp)) {
		return e.transferApp.TransferKey(key)
	}
	return isExecutorTransferKey(key)
}

// maxRollbackRecorded bounds the keys SetRollbackInterval's set holds in
// one interval; past it, keys are recorded at every write again until the
// next interval (more records, never fewer).
const maxRollbackRecorded = 1 << 20

// SetRollbackInterval makes the rollback records serve SnapshotAt only at
// multiples of k (the checkpoint interval; 0: at every sequence, the
// default): within each interval of sequences (c, c+k], c a multiple of
// k, a key's undo record is written at its first write only, since the
// state at c needs only the value before that write. A key written at
// every batch (a busy client's window, e/last) then costs one record per
// interval instead of one per batch. SnapshotAt then fails with
// ErrRollbackUnavailable for a sequence that is not a multiple of k
// (other than LastExecuted). The PBFT driver sets it to its checkpoint
// interval at recovery, before TrackRollback: SnapshotAt serves only
// checkpoints. k must stay the same for as long as the records kept: the
// interval is part of how they were written. Call it between Applies.
//
// Safe: the set of keys recorded in the current interval is forgotten at
// each interval's start, at every TrackRollback (which may delete
// records) and whenever the state is reloaded or wiped (a state transfer
// deletes every record), and it lives only in memory, so a restarted
// replica records again; a key is added to it only once the batch holding
// its record is written. A key can thus be recorded twice in an interval
// (harmless: the earliest record is the one used), never not at all
// before its first write of the interval. A state SnapshotAt rebuilds
// wrong would still be refused by the replica fetching it, which checks
// it against the certified digest.
func (e *Executor) SetRollbackInterval(k uint64) {
	e.settle()
	if k != e.rollbackInterval {
		e.rollbackInterval = k
		e.forgetRollbackRecorded()
	}
}

// enterRollbackSpan starts a new set of recorded keys when sequence is in
// another interval than the keys recorded so far.
func (e *Executor) enterRollbackSpan(sequence uint64) {
	if e.rollbackInterval == 0 {
		return
	}
	if span := (sequence - 1) / e.rollbackInterval; span != e.rollbackSpan {
		e.forgetRollbackRecorded()
		e.rollbackSpan = span
	}
}

// commitRollbackRecorded adds the keys the written batch recorded to the
// current interval's set (while it is under maxRollbackRecorded).
func (e *Executor) commitRollbackRecorded() {
	if len(e.rollbackPending) == 0 {
		return
	}
	if e.rollbackRecorded == nil {
		e.rollbackRecorded = make(map[string]struct{})
	}
	for _, key := range e.rollbackPending {
		if len(e.rollbackRecorded) >= maxRollbackRecorded {
			return
		}
		e.rollbackRecorded[key] = struct{}{}
	}
}

// forgetRollbackRecorded empties the set of keys recorded in the current
// interval, so that their next writes are recorded again.
func (e *Executor) forgetRollbackRecorded() {
	clear(e.rollbackRecorded)
}
