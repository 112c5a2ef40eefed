package execution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

var (
	// ErrTransferUnsupported is returned (wrapped) by TakeSnapshot and
	// RestoreBegin when the application is not a TransferableApplication.
	ErrTransferUnsupported = errors.New("application does not support state transfer")
	// ErrSnapshotReleased is returned (wrapped) by StateSnapshot.Chunk
	// after Release.
	ErrSnapshotReleased = errors.New("state snapshot released")
	// ErrStateDigestMismatch is returned (wrapped) by RestoreFinishExpect
	// when the restored state does not have the expected digest.
	ErrStateDigestMismatch = errors.New("restored state digest mismatch")

	errRestoreInProgress = errors.New("state transfer restore in progress")
	errNoRestore         = errors.New("no state transfer restore in progress")
)

// transferPrefixes are the key ranges state transfer copies, in key order.
var transferPrefixes = [...]string{storage.PrefixApp, storage.PrefixExecutor}

// wipeBatchSize bounds the deletions per write when wiping the state.
const wipeBatchSize = 4096

// StateSnapshot is the state (application and executor) as of one
// executed sequence, read from a consistent goleveldb snapshot, so later
// Applies do not change it. Serve it to peers with Chunk; Release it when
// done. Its methods are safe for concurrent use by multiple goroutines,
// including concurrently with the Executor.
type StateSnapshot struct {
	sequence    uint64
	digest      [32]byte
	transferKey func(key []byte) bool

	mu       sync.RWMutex // Release waits for Chunk calls in flight
	snap     *leveldb.Snapshot
	released bool
	// overlay, when set, rolls snap back to sequence (SnapshotAt).
	overlay *rollbackOverlay
}

// TakeSnapshot captures the current state: call it between Applies, right
// after applying a checkpoint sequence. It fails with an error wrapping
// ErrTransferUnsupported when the application is not a
// TransferableApplication, and during a restore.
func (e *Executor) TakeSnapshot() (*StateSnapshot, error) {
	e.settle()
	if e.transferApp == nil {
		return nil, fmt.Errorf("executor: take snapshot: %w", ErrTransferUnsupported)
	}
	if e.restore != nil {
		return nil, fmt.Errorf("executor: take snapshot: %w", errRestoreInProgress)
	}
	snap, err := e.ldb.GetSnapshot()
	if err != nil {
		return nil, fmt.Errorf("executor: take snapshot: %w", err)
	}
	// The snapshot must hold exactly the state the digest describes.
	last, err := snap.Get([]byte(executorLastKey), nil)
	var stored uint64
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		snap.Release()
		return nil, fmt.Errorf("executor: take snapshot: read last executed: %w", err)
	case len(last) == 8:
		stored = binary.BigEndian.Uint64(last)
	default:
		snap.Release()
		return nil, fmt.Errorf("executor: take snapshot: corrupt last executed of length %d", len(last))
	}
	if stored != e.lastExecuted {
		snap.Release()
		return nil, fmt.Errorf("executor: take snapshot: stored last executed %d, in memory %d", stored, e.lastExecuted)
	}
	return &StateSnapshot{
		sequence:    e.lastExecuted,
		digest:      e.StateDigest(),
		transferKey: e.transferApp.TransferKey,
		snap:        snap,
	}, nil
}

// Sequence returns the last executed sequence the snapshot was taken at.
func (s *StateSnapshot) Sequence() uint64 { return s.sequence }

// Digest returns the executor's StateDigest at the snapshot's sequence.
func (s *StateSnapshot) Digest() [32]byte { return s.digest }

// Chunk returns the snapshot's transferred entries (application entries
// under storage.PrefixApp that the application transfers, then the
// executor's last executed sequence and client windows) in key order,
// starting at startKey inclusive. It stops before the keys and values
// returned would exceed maxBytes, but returns at least one entry when any
// is left. nextKey is the key to ask for next, empty when no entry is
// left. startKey may be any bytes (it comes from the network).
func (s *StateSnapshot) Chunk(startKey []byte, maxBytes int) (entries []*wire.KeyValue, nextKey []byte, err error) {
	if maxBytes <= 0 {
		return nil, nil, fmt.Errorf("snapshot chunk: maxBytes %d, want > 0", maxBytes)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.released {
		return nil, nil, fmt.Errorf("snapshot chunk at sequence %d: %w", s.sequence, ErrSnapshotReleased)
	}
	size := 0
	for _, prefix := range transferPrefixes {
		rng := util.BytesPrefix([]byte(prefix))
		if bytes.Compare(startKey, rng.Limit) >= 0 {
			continue
		}
		if bytes.Compare(startKey, rng.Start) > 0 {
			rng.Start = startKey
		}
		err := s.scan(rng, func(key, value []byte) bool {
			if !s.transfers(key) {
				return true
			}
			n := len(key) + len(value)
			if len(entries) > 0 && size+n > maxBytes {
				nextKey = bytes.Clone(key)
				return false
			}
			entries = append(entries, &wire.KeyValue{Key: bytes.Clone(key), Value: bytes.Clone(value)})
			size += n
			return true
		})
		if err != nil {
			return nil, nil, fmt.Errorf("snapshot chunk at sequence %d: %w", s.sequence, err)
		}
		if nextKey != nil {
			return entries, nextKey, nil
		}
	}
	return entries, nil, nil
}

// scan calls visit with the snapshot's entries in rng in key order (the
// rollback overlay's values replacing the goleveldb snapshot's, see
// SnapshotAt) until visit returns false.
func (s *StateSnapshot) scan(rng *util.Range, visit func(key, value []byte) bool) error {
	iter := s.snap.NewIterator(rng, nil)
	defer iter.Release()
	var over [][]byte
	if s.overlay != nil {
		lo, _ := slices.BinarySearchFunc(s.overlay.keys, rng.Start, bytes.Compare)
		hi, _ := slices.BinarySearchFunc(s.overlay.keys, rng.Limit, bytes.Compare)
		over = s.overlay.keys[lo:hi]
	}
	var records undoRecordCache
	valid := iter.Next()
	for valid || len(over) > 0 {
		if len(over) == 0 || valid && bytes.Compare(iter.Key(), over[0]) < 0 {
			if !visit(iter.Key(), iter.Value()) {
				return nil
			}
			valid = iter.Next()
			continue
		}
		key := over[0]
		over = over[1:]
		if valid && bytes.Equal(iter.Key(), key) {
			valid = iter.Next()
		}
		value, ok, err := s.overlay.value(s.snap, key, &records)
		if err != nil {
			return err
		}
		if ok && !visit(key, value) {
			return nil
		}
	}
	return iter.Error()
}

func (s *StateSnapshot) transfers(key []byte) bool {
	if bytes.HasPrefix(key, []byte(storage.PrefixApp)) {
		return s.transferKey(key)
	}
	return isExecutorTransferKey(key)
}

// Release releases the goleveldb snapshot, waiting for Chunk calls in
// flight. Later Chunk calls fail. Release is idempotent.
func (s *StateSnapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		s.released = true
		s.snap.Release()
	}
}

// isExecutorTransferKey reports whether key is one of the executor's
// records (e/last or e/reply/<id>).
func isExecutorTransferKey(key []byte) bool {
	return string(key) == executorLastKey || string(key) == executorMembershipKey || bytes.HasPrefix(key, []byte(executorReplyPrefix))
}

// restoreState tracks a restore between RestoreBegin and its end.
type restoreState struct {
	// lastKey is the last key written, nil before the first.
	lastKey []byte
	// lastExecuted is the value of the e/last entry accepted, 0 before it
	// (e/last sorts before every e/reply/ key, so windows are checked
	// against the final value).
	lastExecuted uint64
	// failed is the first error of the restore; once set, only
	// RestoreAbort (or RestoreBegin) can follow.
	failed error
	// tag names a resumable restore (RestoreBeginTagged), nil otherwise;
	// recovered: a crash interrupted it and RestoreResume has not yet
	// continued it (resume.go).
	tag       []byte
	recovered bool
}

// RestoreBegin starts replacing the state with a snapshot served by peers:
// it durably sets the transfer marker (see storage.DB.SetTransferInProgress),
// deletes the executor's state (storage.PrefixExecutor) from the database
// and forgets the state held in memory, and expects the snapshot's entries
// through RestoreChunk, then RestoreFinish (or RestoreFinishExpect). The
// application's entries (storage.PrefixApp) are not wiped up front:
// RestoreChunk merges each chunk into them, deleting the local entries
// the snapshot does not hold, and the finish deletes those after its last
// key, so a replica that restores over a state it already holds (a second
// transfer, after the cluster moved past the first one's checkpoint)
// rewrites it once instead of deleting every entry first. Called on the
// runtime's goroutine; Apply, TakeSnapshot and Read fail until the
// restore ends. Calling it during a restore starts over.
func (e *Executor) RestoreBegin() error {
	e.settle()
	if e.transferApp == nil {
		return fmt.Errorf("executor: restore begin: %w", ErrTransferUnsupported)
	}
	if err := e.db.SetTransferInProgress(true); err != nil {
		return fmt.Errorf("executor: restore begin: %w", err)
	}
	e.restore = &restoreState{}
	if err := e.forgetState(); err != nil {
		err = fmt.Errorf("executor: restore begin: %w", err)
		e.restore.failed = err
		return err
	}
	e.logger.Info("executor: state transfer restore started")
	return nil
}

// RestoreChunk validates entries received from a peer and writes them in
// one batch (fsynced per storage.Options.Sync, so the state is durable
// before RestoreFinish clears the marker). Every key must be strictly
// greater than all keys of earlier chunks of this restore; application
// keys (storage.PrefixApp) must pass the application's CheckTransferEntry;
// executor keys must be e/last with an 8-byte value or e/reply/<client ID>
// (1 to MaxClientIDSize bytes) with a valid client window record whose
// last active sequence is at most e/last (0 when no e/last came). On any
// error nothing of the chunk is written and the restore is failed: only
// RestoreAbort or RestoreBegin may follow.
func (e *Executor) RestoreChunk(entries []*wire.KeyValue) error {
	e.settle()
	if e.restore == nil {
		return fmt.Errorf("executor: restore chunk: %w", errNoRestore)
	}
	if e.restore.failed != nil {
		return fmt.Errorf("executor: restore chunk: restore already failed: %w", e.restore.failed)
	}
	prev := e.restore.lastKey
	e.dropAppCache()
	batch := new(leveldb.Batch)
	for i, entry := range entries {
		if err := e.checkRestoreEntry(entry, prev); err != nil {
			err = fmt.Errorf("executor: restore chunk: entry %d: %w", i, err)
			e.restore.failed = err
			return err
		}
		prev = entry.GetKey()
	}
	if len(entries) == 0 {
		return nil
	}
	if err := e.deleteStaleAppEntries(batch, e.restore.lastKey, prev, entries); err != nil {
		err = fmt.Errorf("executor: restore chunk: %w", err)
		e.restore.failed = err
		return err
	}
	for _, entry := range entries {
		batch.Put(entry.GetKey(), entry.GetValue())
	}
	if e.restore.tag != nil {
		batch.Put([]byte(restoreProgressKey), encodeRestoreProgress(e.restore.tag, prev))
	}
	if err := e.ldb.Write(batch, &opt.WriteOptions{Sync: e.db.Sync()}); err != nil {
		err = fmt.Errorf("executor: restore chunk: write: %w", err)
		e.restore.failed = err
		return err
	}
	e.restore.lastKey = bytes.Clone(prev)
	return nil
}

func (e *Executor) checkRestoreEntry(entry *wire.KeyValue, prev []byte) error {
	if entry == nil {
		return errors.New("nil entry")
	}
	key, value := entry.GetKey(), entry.GetValue()
	if prev != nil && bytes.Compare(key, prev) <= 0 {
		return fmt.Errorf("key %q not strictly increasing", truncateKey(key))
	}
	switch {
	case bytes.HasPrefix(key, []byte(storage.PrefixApp)):
		return e.transferApp.CheckTransferEntry(key, value)
	case string(key) == executorLastKey:
		if len(value) != 8 {
			return fmt.Errorf("last executed value of length %d, want 8", len(value))
		}
		// A later entry of this chunk may still fail it; then the whole
		// restore is failed, so the value is never used.
		e.restore.lastExecuted = binary.BigEndian.Uint64(value)
		return nil
	case string(key) == executorMembershipKey:
		return e.checkMembershipEntry(value)
	case bytes.HasPrefix(key, []byte(executorReplyPrefix)):
		clientID := key[len(executorReplyPrefix):]
		if len(clientID) == 0 || len(clientID) > MaxClientIDSize {
			return fmt.Errorf("client window key with client ID of length %d, want 1..%d", len(clientID), MaxClientIDSize)
		}
		w, err := decodeClientWindow(string(clientID), value)
		if err != nil {
			return fmt.Errorf("client window of %x: %w", clientID, err)
		}
		if w.lastSeq > e.restore.lastExecuted {
			return fmt.Errorf("client window of %x: %w: last active sequence %d above last executed %d", clientID, errCorruptWindow, w.lastSeq, e.restore.lastExecuted)
		}
		return nil
	default:
		return fmt.Errorf("key %q outside the transferred state", truncateKey(key))
	}
}

// RestoreFinish ends a restore: it reloads the application (which
// recomputes its digest from the entries, trusting no digest from the
// peer), reloads and validates the executor's state (last executed
// sequence, client windows, reply-cache digest), durably clears the
// transfer marker and returns the new StateDigest. On error the marker
// stays set and the restore is failed (call RestoreAbort).
//
// The caller must compare the returned digest with the certified one and
// call RestoreAbort on a mismatch; RestoreFinishExpect does that before
// clearing the marker, so a crash can never leave an unverified state
// behind, and is preferred.
func (e *Executor) RestoreFinish() ([32]byte, error) {
	e.settle()
	return e.finishRestore(nil)
}

// RestoreFinishExpect is RestoreFinish that fails, with an error wrapping
// ErrStateDigestMismatch and the marker still set, unless the restored
// state's digest equals want (the 2f+1-certified checkpoint digest).
func (e *Executor) RestoreFinishExpect(want [32]byte) ([32]byte, error) {
	e.settle()
	return e.finishRestore(&want)
}

func (e *Executor) finishRestore(want *[32]byte) ([32]byte, error) {
	if e.restore == nil {
		return [32]byte{}, fmt.Errorf("executor: restore finish: %w", errNoRestore)
	}
	if e.restore.failed != nil {
		return [32]byte{}, fmt.Errorf("executor: restore finish: restore already failed: %w", e.restore.failed)
	}
	fail := func(err error) ([32]byte, error) {
		err = fmt.Errorf("executor: restore finish: %w", err)
		e.restore.failed = err
		return [32]byte{}, err
	}
	if err := e.deleteAppEntriesAfter(e.restore.lastKey); err != nil {
		return fail(err)
	}
	if err := e.transferApp.Reload(); err != nil {
		return fail(err)
	}
	if err := e.loadState(); err != nil {
		return fail(err)
	}
	digest := e.StateDigest()
	if want != nil && digest != *want {
		return fail(fmt.Errorf("%w: got %x, want %x", ErrStateDigestMismatch, digest, *want))
	}
	if e.restore.tag != nil {
		if err := e.ldb.Delete([]byte(restoreProgressKey), &opt.WriteOptions{Sync: e.db.Sync()}); err != nil {
			return fail(err)
		}
	}
	if err := e.db.SetTransferInProgress(false); err != nil {
		return fail(err)
	}
	e.restore = nil
	e.logger.Info("executor: state transfer restore finished", "last_executed", e.lastExecuted, "cached_clients", len(e.clients))
	return digest, nil
}

// RestoreAbort ends a restore (failed or not) by deleting whatever it
// wrote, leaving an empty state (LastExecuted 0), and durably clearing the
// marker. To retry, with another peer, call RestoreBegin again. If it
// fails, the marker stays set.
func (e *Executor) RestoreAbort() error {
	e.settle()
	if e.restore == nil {
		return fmt.Errorf("executor: restore abort: %w", errNoRestore)
	}
	if err := e.wipeState(); err != nil {
		err = fmt.Errorf("executor: restore abort: %w", err)
		e.restore.failed = err
		return err
	}
	if err := e.db.SetTransferInProgress(false); err != nil {
		err = fmt.Errorf("executor: restore abort: %w", err)
		e.restore.failed = err
		return err
	}
	e.restore = nil
	e.logger.Info("executor: state transfer restore aborted")
	return nil
}

// recoverInterruptedTransfer wipes the partial state a crash during a
// restore left behind (see NewExecutor), unless the restore was tagged
// (resume.go): then it keeps it and reports true.
func (e *Executor) recoverInterruptedTransfer() (kept bool, err error) {
	on, err := e.db.TransferInProgress()
	if err != nil {
		return false, fmt.Errorf("executor: %w", err)
	}
	if !on {
		return false, nil
	}
	if e.transferApp == nil {
		return false, fmt.Errorf("executor: state transfer marker set: %w", ErrTransferUnsupported)
	}
	if kept, err := e.recoverTaggedRestore(); kept || err != nil {
		return kept, err
	}
	e.logger.Warn("executor: a state transfer was interrupted; discarding the partial state and starting empty")
	if err := e.wipeState(); err != nil {
		return false, fmt.Errorf("executor: discard interrupted state transfer: %w", err)
	}
	if err := e.db.SetTransferInProgress(false); err != nil {
		return false, fmt.Errorf("executor: discard interrupted state transfer: %w", err)
	}
	return false, nil
}

// wipeState deletes every key under storage.PrefixApp and
// storage.PrefixExecutor (in bounded batches, fsynced per
// storage.Options.Sync), empties the executor's memory and reloads the
// application.
func (e *Executor) wipeState() error {
	e.dropAppCache()
	wo := &opt.WriteOptions{Sync: e.db.Sync()}
	for _, prefix := range transferPrefixes {
		if err := e.deleteRange(util.BytesPrefix([]byte(prefix)), wo); err != nil {
			return fmt.Errorf("wipe %s: %w", prefix, err)
		}
	}
	e.resetState()
	if err := e.transferApp.Reload(); err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	return nil
}

// forgetState starts a restore: it deletes the executor's records
// (storage.PrefixExecutor: client windows, rollback records, the last
// executed sequence; a few per client and per recently written key) and
// forgets the state held in memory, keeping the application's entries for
// RestoreChunk to merge into.
func (e *Executor) forgetState() error {
	e.dropAppCache()
	wo := &opt.WriteOptions{Sync: e.db.Sync()}
	if err := e.deleteRange(util.BytesPrefix([]byte(storage.PrefixExecutor)), wo); err != nil {
		return fmt.Errorf("wipe %s: %w", storage.PrefixExecutor, err)
	}
	e.resetState()
	return nil
}

// appRange is the key range of the application's entries.
var appRange = util.BytesPrefix([]byte(storage.PrefixApp))

// appRangeAfter returns the part of the application's key range after
// after (all of it when nil), and false when none is left.
func appRangeAfter(after []byte) (*util.Range, bool) {
	rng := &util.Range{Start: appRange.Start, Limit: appRange.Limit}
	if after == nil || bytes.Compare(after, rng.Start) < 0 {
		return rng, true
	}
	if bytes.Compare(after, rng.Limit) >= 0 {
		return nil, false
	}
	rng.Start = append(bytes.Clone(after), 0)
	return rng, true
}

// deleteStaleAppEntries adds to batch the deletion of every application
// entry in the database after after (from the range's start when nil) up
// to and including last that entries (sorted, strictly increasing, the
// chunk ending at last) does not hold: what the snapshot does not have
// there. A chunk reaching past the application's range covers the rest of
// it.
func (e *Executor) deleteStaleAppEntries(batch *leveldb.Batch, after, last []byte, entries []*wire.KeyValue) error {
	rng, ok := appRangeAfter(after)
	if !ok {
		return nil
	}
	if bytes.Compare(last, rng.Limit) < 0 {
		rng.Limit = append(bytes.Clone(last), 0)
	}
	iter := e.ldb.NewIterator(rng, nil)
	defer iter.Release()
	i := 0
	for iter.Next() {
		key := iter.Key()
		for i < len(entries) && bytes.Compare(entries[i].GetKey(), key) < 0 {
			i++
		}
		if i < len(entries) && bytes.Equal(entries[i].GetKey(), key) {
			continue
		}
		batch.Delete(bytes.Clone(key))
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("merge application entries: %w", err)
	}
	return nil
}

// deleteAppEntriesAfter deletes every application entry after after (all
// of them when nil): those the restored snapshot does not hold past its
// last chunk.
func (e *Executor) deleteAppEntriesAfter(after []byte) error {
	rng, ok := appRangeAfter(after)
	if !ok {
		return nil
	}
	if err := e.deleteRange(rng, &opt.WriteOptions{Sync: e.db.Sync()}); err != nil {
		return fmt.Errorf("delete application entries after the snapshot's: %w", err)
	}
	return nil
}

// deleteRange deletes every key in rng, in writes of at most
// wipeBatchSize deletions.
func (e *Executor) deleteRange(rng *util.Range, wo *opt.WriteOptions) error {
	iter := e.ldb.NewIterator(rng, nil)
	defer iter.Release()
	batch := new(leveldb.Batch)
	for iter.Next() {
		batch.Delete(bytes.Clone(iter.Key()))
		if batch.Len() == wipeBatchSize {
			if err := e.ldb.Write(batch, wo); err != nil {
				return err
			}
			batch.Reset()
		}
	}
	if err := iter.Error(); err != nil {
		return err
	}
	if batch.Len() > 0 {
		return e.ldb.Write(batch, wo)
	}
	return nil
}

// cachingApplication is an application that caches its committed state in
// memory (KV does, and applications built on a KV forward it) and must drop
// that cache when the executor writes the application's entries directly.
type cachingApplication interface {
	DropCache()
}

// dropAppCache empties the application's read cache, if it has one,
// before state transfer changes its entries in the database (Reload drops
// it too; this covers failures before Reload runs).
func (e *Executor) dropAppCache() {
	if c, ok := e.app.(cachingApplication); ok {
		c.DropCache()
	}
}
