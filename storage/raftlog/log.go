package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/storage"
)

// Raft log keys, all under PrefixRaft:
//
//	r/e/<index BE8>  an entry, proto-encoded raftpb.Entry
//	r/hs             the hard state, proto-encoded raftpb.HardState
//	r/snap           the latest snapshot (metadata and its small data), proto-encoded raftpb.Snapshot
//	r/first          the boundary ("dummy" entry): <index BE8><term BE8>; FirstIndex is index+1
//
// An entry key at or below the boundary index is garbage left by a cleanup
// that a crash interrupted; Open removes it.
const (
	raftEntryPrefix  = storage.PrefixRaft + "e/"
	raftHardStateKey = storage.PrefixRaft + "hs"
	raftSnapshotKey  = storage.PrefixRaft + "snap"
	raftFirstKey     = storage.PrefixRaft + "first"
	raftEntryKeyLen  = len(raftEntryPrefix) + 8

	// Bounds of the in-memory cache of the most recent entries.
	raftCacheMaxEntries = 4096
	raftCacheMaxBytes   = 16 << 20

	// deleteChunk bounds the number of deletions per unsynced batch when
	// removing entries below the boundary.
	deleteChunk = 4096
)

// ErrCorrupt is wrapped by the errors Log returns when stored
// Raft state does not decode or is inconsistent (an entry whose Index
// differs from its key, a missing entry inside the log, ...).
var ErrCorrupt = errors.New("storage: raft log is corrupt")

// Log is the Raft mode's durable log, hard state and snapshot metadata,
// stored in the replica's database under storage.PrefixRaft. It implements
// raft.Storage (go.etcd.io/raft/v3) with the semantics of
// raft.MemoryStorage, made durable: Save plays the role of
// MemoryStorage's ApplySnapshot, Append and SetHardState in one atomic
// write.
//
// All methods take an internal lock, so concurrent use is safe, but the
// intended use is the runtime's single event loop calling Save, then
// sending the Ready's messages, with raft's reads on the same goroutine.
//
// Entries returned by Entries are shared with the log's cache and must
// not be mutated; entries passed to Save must not be mutated afterwards
// (raft never does either).
type Log struct {
	mu     sync.Mutex
	ldb    *leveldb.DB  // the replica database's handle (storage.DB.LevelDB)
	sync   bool         // fsync Save, CreateSnapshot and Compact (storage.DB.Sync)
	logger *slog.Logger // storage.DB.Logger

	hs   *raftpb.HardState // never nil
	snap *raftpb.Snapshot  // never nil; metadata and conf state set
	// offset and offsetTerm are the boundary ("dummy") entry: FirstIndex is
	// offset+1 and Term(offset) is offsetTerm.
	offset, offsetTerm uint64
	last               uint64

	// cache holds the most recent entries, contiguous and ending at last
	// (or empty), all above offset. Its backing array is only ever
	// appended to in place: a truncation reallocates, so slices handed out
	// by Entries never change.
	cache      []*raftpb.Entry
	cacheBytes int
	// Cache bounds (tests shrink them).
	cacheMaxEntries, cacheMaxBytes int
	saves                          SaveCounts
}

// SaveCounts counts the Saves that wrote something, by whether they
// needed a sync (see Save).
type SaveCounts struct {
	Synced, Unsynced uint64
}

// Saves returns how many Saves wrote something, synced and not.
func (l *Log) Saves() SaveCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saves
}

// Open opens the Raft log kept in db: it loads the hard state, conf state,
// latest snapshot and the first/last index. The log writes through db's
// goleveldb handle, fsyncs as db's Sync option says and logs to db's
// logger; db must stay open while the log is used. On a fresh database the log is empty
// like raft.NewMemoryStorage: FirstIndex 1, LastIndex 0, an empty hard
// state and conf state. It removes entries a crash left below the
// boundary, and fails with an error wrapping ErrCorrupt when the
// stored state does not decode or is inconsistent.
func Open(db *storage.DB) (*Log, error) {
	d := db.LevelDB()
	l := &Log{
		ldb:             d,
		sync:            db.Sync(),
		logger:          db.Logger(),
		hs:              &raftpb.HardState{},
		snap:            raftpb.EnsureSnapshot(nil),
		cacheMaxEntries: raftCacheMaxEntries,
		cacheMaxBytes:   raftCacheMaxBytes,
	}
	if value, found, err := getKey(d, raftHardStateKey); err != nil {
		return nil, err
	} else if found {
		if err := proto.Unmarshal(value, l.hs); err != nil {
			return nil, fmt.Errorf("open raft log: hard state: %w: %w", ErrCorrupt, err)
		}
	}
	if value, found, err := getKey(d, raftSnapshotKey); err != nil {
		return nil, err
	} else if found {
		snap := new(raftpb.Snapshot)
		if err := proto.Unmarshal(value, snap); err != nil {
			return nil, fmt.Errorf("open raft log: snapshot: %w: %w", ErrCorrupt, err)
		}
		l.snap = raftpb.EnsureSnapshot(snap)
	}
	if value, found, err := getKey(d, raftFirstKey); err != nil {
		return nil, err
	} else if found {
		if len(value) != 16 {
			return nil, fmt.Errorf("open raft log: boundary value of length %d, want 16: %w", len(value), ErrCorrupt)
		}
		l.offset = binary.BigEndian.Uint64(value[:8])
		l.offsetTerm = binary.BigEndian.Uint64(value[8:])
	}

	// The last index is the highest entry key (when above the boundary).
	l.last = l.offset
	iter := d.NewIterator(util.BytesPrefix([]byte(raftEntryPrefix)), nil)
	if iter.Last() {
		key := iter.Key()
		if len(key) != raftEntryKeyLen {
			iter.Release()
			return nil, fmt.Errorf("open raft log: entry key %x of length %d, want %d: %w", key, len(key), raftEntryKeyLen, ErrCorrupt)
		}
		if index := binary.BigEndian.Uint64(key[len(raftEntryPrefix):]); index > l.offset {
			if _, err := decodeRaftEntry(index, iter.Value()); err != nil {
				iter.Release()
				return nil, fmt.Errorf("open raft log: %w", err)
			}
			l.last = index
		}
	}
	iter.Release()
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	if l.last > l.offset {
		// The log must start right after the boundary.
		if _, err := l.loadEntry(l.offset + 1); err != nil {
			return nil, fmt.Errorf("open raft log: %w", err)
		}
	}
	if commit := l.hs.GetCommit(); commit > l.last {
		return nil, fmt.Errorf("open raft log: hard state commit %d is beyond the last index %d: %w", commit, l.last, ErrCorrupt)
	}
	if err := deleteBelow(d, l.offset); err != nil {
		return nil, fmt.Errorf("open raft log: remove entries below index %d: %w", l.offset+1, err)
	}
	return l, nil
}

// InitialState implements raft.Storage: the saved hard state (empty when
// none was saved) and the conf state of the latest snapshot (empty when
// none). The results are copies.
func (l *Log) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := proto.Clone(l.hs).(*raftpb.HardState)
	var cs *raftpb.ConfState
	if stored := l.snap.GetMetadata().GetConfState(); stored != nil {
		cs = proto.Clone(stored).(*raftpb.ConfState)
	}
	cs = raftpb.EnsureConfState(cs)
	return hs, cs, nil
}

// Entries implements raft.Storage: the entries in [lo, hi), at least one
// and then as many as fit in maxSize bytes (proto size, like
// raft.MemoryStorage). It returns raft.ErrCompacted when lo <= the
// boundary index and raft.ErrUnavailable when the log holds no entries;
// hi > LastIndex+1 is an error wrapping raft.ErrUnavailable (MemoryStorage
// panics). The caller may append to the returned slice but must not
// mutate the entries.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lo <= l.offset {
		return nil, raft.ErrCompacted
	}
	if hi > l.last+1 {
		return nil, fmt.Errorf("raft log: entries [%d, %d) beyond last index %d: %w", lo, hi, l.last, raft.ErrUnavailable)
	}
	if l.last == l.offset {
		return nil, raft.ErrUnavailable
	}
	if lo > hi {
		return nil, fmt.Errorf("raft log: invalid entries range [%d, %d)", lo, hi)
	}
	cacheFirst := l.cacheFirst()
	if lo >= cacheFirst {
		ents := limitEntries(l.cache[lo-cacheFirst:hi-cacheFirst], maxSize)
		return ents[:len(ents):len(ents)], nil
	}

	// Read [lo, min(hi, cacheFirst)) from the database, then continue with
	// the cache.
	dbHi := min(hi, cacheFirst)
	ents := make([]*raftpb.Entry, 0, min(hi-lo, 256))
	var size uint64
	full := false
	iter := l.ldb.NewIterator(&util.Range{Start: raftEntryKey(lo), Limit: raftEntryKey(dbHi)}, nil)
	next := lo
	for iter.Next() {
		key := iter.Key()
		if len(key) != raftEntryKeyLen || binary.BigEndian.Uint64(key[len(raftEntryPrefix):]) != next {
			iter.Release()
			return nil, fmt.Errorf("raft log: entry %d missing (found key %x): %w", next, key, ErrCorrupt)
		}
		e, err := decodeRaftEntry(next, iter.Value())
		if err != nil {
			iter.Release()
			return nil, err
		}
		s := uint64(proto.Size(e))
		if len(ents) > 0 && size+s > maxSize {
			full = true
			break
		}
		ents = append(ents, e)
		size += s
		next++
	}
	iter.Release()
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("raft log: read entries [%d, %d): %w", lo, dbHi, err)
	}
	if full {
		return ents, nil
	}
	if next != dbHi {
		return nil, fmt.Errorf("raft log: entry %d missing: %w", next, ErrCorrupt)
	}
	if hi > cacheFirst {
		for _, e := range l.cache[:hi-cacheFirst] {
			s := uint64(proto.Size(e))
			if len(ents) > 0 && size+s > maxSize {
				break
			}
			ents = append(ents, e)
			size += s
		}
	}
	return ents, nil
}

// Term implements raft.Storage: the term of entry i for i in
// [FirstIndex-1, LastIndex]; raft.ErrCompacted below, raft.ErrUnavailable
// above.
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term(i)
}

func (l *Log) term(i uint64) (uint64, error) {
	switch {
	case i < l.offset:
		return 0, raft.ErrCompacted
	case i == l.offset:
		return l.offsetTerm, nil
	case i > l.last:
		return 0, raft.ErrUnavailable
	}
	if cacheFirst := l.cacheFirst(); i >= cacheFirst {
		return l.cache[i-cacheFirst].GetTerm(), nil
	}
	e, err := l.loadEntry(i)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last, nil
}

// FirstIndex implements raft.Storage.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offset + 1, nil
}

// Snapshot implements raft.Storage: a copy of the latest snapshot (from
// Save or CreateSnapshot), with Index 0 when there is none.
func (l *Log) Snapshot() (*raftpb.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return proto.Clone(l.snap).(*raftpb.Snapshot), nil
}

// Save persists one raft Ready: the snapshot (unless raft.IsEmptySnap),
// then the entries, then the hard state (unless raft.IsEmptyHardState), in
// one goleveldb batch, so a Ready costs at most one fsync. The runtime
// must call it BEFORE sending the Ready's messages. Any argument may be
// nil.
//
// The batch is synced (when the database's Sync option is on) only when
// raft needs it durable before the messages go out: etcd raft's MustSync
// rule, a snapshot, entries, or a term or vote that changed. A Ready whose
// only change is the hard state's commit index (a follower learning the
// commit from a heartbeat, the leader advancing it) is written unsynced:
// the commit index is only a lower bound raft may lose (after a crash it
// restarts from an older one, at or above an earlier synced one, and
// learns the rest from the leader again; entries are never applied twice,
// the Core skips those the executor already applied), and a later synced
// write makes it durable too (goleveldb's journal is written in order;
// CreateSnapshot rewrites the hard state, so the stored commit index is
// never below the stored snapshot's, which etcd raft refuses).
// Saves counts both kinds.
//
// Applying a snapshot replaces the whole log, like
// raft.MemoryStorage.ApplySnapshot: every stored entry is discarded, the
// boundary becomes (snapshot index, snapshot term) and the conf state
// becomes the snapshot's. A snapshot whose index is not above the current
// snapshot's fails with raft.ErrSnapOutOfDate and writes nothing.
//
// Entries follow raft.MemoryStorage.Append: they must be contiguous; those
// at or below the boundary are ignored; an entry at index i replaces every
// stored entry at >= i (raft's conflicting-suffix truncation); the first
// new entry must be at most LastIndex+1 (a gap is an error).
//
// On error nothing is written and the in-memory state is unchanged.
func (l *Log) Save(hs *raftpb.HardState, entries []*raftpb.Entry, snap *raftpb.Snapshot) error {
	l.mu.Lock()
	defer l.mu.Unlock()

	batch := new(leveldb.Batch)
	offset, offsetTerm, last := l.offset, l.offsetTerm, l.last
	var newSnap *raftpb.Snapshot
	// Entries in [garbageLo, garbageHi] end up below the new boundary and
	// are deleted after the batch is written (none unless a snapshot).
	garbageLo, garbageHi := uint64(1), uint64(0)
	if !raft.IsEmptySnap(snap) {
		si := snap.GetMetadata().GetIndex()
		if si <= l.snap.GetMetadata().GetIndex() {
			return raft.ErrSnapOutOfDate
		}
		newSnap = raftpb.EnsureSnapshot(proto.Clone(snap).(*raftpb.Snapshot))
		value, err := proto.Marshal(newSnap)
		if err != nil {
			return fmt.Errorf("raft log: save snapshot %d: %w", si, err)
		}
		batch.Put([]byte(raftSnapshotKey), value)
		// Entries above the snapshot must go in this batch; those at or
		// below it are unreachable once the boundary is written.
		for i := max(si, offset) + 1; i <= last; i++ {
			batch.Delete(raftEntryKey(i))
		}
		garbageLo, garbageHi = offset+1, min(si, last)
		offset, offsetTerm, last = si, newSnap.GetMetadata().GetTerm(), si
		batch.Put([]byte(raftFirstKey), raftBoundaryValue(offset, offsetTerm))
	}

	var appended []*raftpb.Entry
	if len(entries) > 0 {
		first := entries[0].GetIndex()
		for k, e := range entries {
			if e.GetIndex() != first+uint64(k) {
				return fmt.Errorf("raft log: save: entry %d has index %d, want %d (entries must be contiguous)", k, e.GetIndex(), first+uint64(k))
			}
		}
		newLast := first + uint64(len(entries)) - 1
		if newLast > offset {
			if first <= offset {
				entries = entries[offset+1-first:]
				first = offset + 1
			}
			if first > last+1 {
				return fmt.Errorf("raft log: save: missing entries: last index %d, append at %d", last, first)
			}
			for i := newLast + 1; i <= last; i++ {
				batch.Delete(raftEntryKey(i))
			}
			for _, e := range entries {
				value, err := proto.Marshal(e)
				if err != nil {
					return fmt.Errorf("raft log: save entry %d: %w", e.GetIndex(), err)
				}
				batch.Put(raftEntryKey(e.GetIndex()), value)
			}
			last = newLast
			appended = entries
		}
	}

	var newHS *raftpb.HardState
	if !raft.IsEmptyHardState(hs) {
		newHS = proto.Clone(hs).(*raftpb.HardState)
		value, err := proto.Marshal(newHS)
		if err != nil {
			return fmt.Errorf("raft log: save hard state: %w", err)
		}
		batch.Put([]byte(raftHardStateKey), value)
	}

	if batch.Len() == 0 {
		return nil
	}
	mustSync := newSnap != nil || len(entries) > 0 ||
		(newHS != nil && (newHS.GetTerm() != l.hs.GetTerm() || newHS.GetVote() != l.hs.GetVote()))
	if err := l.ldb.Write(batch, &opt.WriteOptions{Sync: l.sync && mustSync}); err != nil {
		return fmt.Errorf("raft log: save (%d entries): %w", len(appended), err)
	}
	if mustSync {
		l.saves.Synced++
	} else {
		l.saves.Unsynced++
	}

	// The write is durable: update the in-memory state.
	if newSnap != nil {
		l.snap = newSnap
		l.clearCache()
	}
	l.offset, l.offsetTerm, l.last = offset, offsetTerm, last
	if appended != nil {
		l.cacheAppend(appended)
	}
	if newHS != nil {
		l.hs = newHS
	}
	if garbageLo <= garbageHi {
		l.deleteGarbage(garbageLo, garbageHi)
	}
	return nil
}

// CreateSnapshot records the latest snapshot durably, like
// raft.MemoryStorage.CreateSnapshot: index i and its term, cs (when nil,
// the previous snapshot's conf state is kept) and data (the small
// snapshot payload, stored with the metadata). It fails with
// raft.ErrSnapOutOfDate when i is not above the current snapshot index,
// with raft.ErrCompacted when i is below FirstIndex-1, and with an error
// when i > LastIndex. It does not compact the log (call Compact). It
// rewrites the hard state in the same synced batch. It returns a copy of
// the new snapshot.
func (l *Log) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i <= l.snap.GetMetadata().GetIndex() {
		return nil, raft.ErrSnapOutOfDate
	}
	if i > l.last {
		return nil, fmt.Errorf("raft log: snapshot index %d is beyond the last index %d", i, l.last)
	}
	term, err := l.term(i)
	if err != nil {
		return nil, err
	}
	snap := proto.Clone(l.snap).(*raftpb.Snapshot)
	snap.Metadata.Index = new(i)
	snap.Metadata.Term = new(term)
	if cs != nil {
		snap.Metadata.ConfState = raftpb.EnsureConfState(proto.Clone(cs).(*raftpb.ConfState))
	}
	snap.Data = append([]byte(nil), data...)
	value, err := proto.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("raft log: create snapshot %d: %w", i, err)
	}
	// The hard state goes in the same synced batch: its commit index may
	// have been written unsynced (see Save), and raft refuses to start
	// from a stored commit index below the stored snapshot's.
	hs, err := proto.Marshal(l.hs)
	if err != nil {
		return nil, fmt.Errorf("raft log: create snapshot %d: hard state: %w", i, err)
	}
	batch := new(leveldb.Batch)
	batch.Put([]byte(raftSnapshotKey), value)
	batch.Put([]byte(raftHardStateKey), hs)
	if err := l.ldb.Write(batch, l.writeOptions()); err != nil {
		return nil, fmt.Errorf("raft log: create snapshot %d: %w", i, err)
	}
	l.snap = snap
	return proto.Clone(snap).(*raftpb.Snapshot), nil
}

// Compact discards the entries up to and including compactIndex, like
// raft.MemoryStorage.Compact: compactIndex becomes the boundary, so
// FirstIndex becomes compactIndex+1 and Term(compactIndex) stays
// answerable. It fails with raft.ErrCompacted when compactIndex <=
// FirstIndex-1 and with an error when compactIndex > LastIndex. The
// caller must not compact above its applied index. The new boundary is
// written durably first; the entries are then deleted in bounded,
// unsynced batches (a failure there is logged: Open finishes the
// job).
func (l *Log) Compact(compactIndex uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if compactIndex <= l.offset {
		return raft.ErrCompacted
	}
	if compactIndex > l.last {
		return fmt.Errorf("raft log: compact index %d is beyond the last index %d", compactIndex, l.last)
	}
	term, err := l.term(compactIndex)
	if err != nil {
		return err
	}
	if err := l.ldb.Put([]byte(raftFirstKey), raftBoundaryValue(compactIndex, term), l.writeOptions()); err != nil {
		return fmt.Errorf("raft log: compact to %d: %w", compactIndex, err)
	}
	oldOffset := l.offset
	l.offset, l.offsetTerm = compactIndex, term
	if cacheFirst := l.cacheFirst(); cacheFirst <= compactIndex {
		for _, e := range l.cache[:compactIndex+1-cacheFirst] {
			l.cacheBytes -= proto.Size(e)
		}
		l.cache = l.cache[compactIndex+1-cacheFirst:]
	}
	l.deleteGarbage(oldOffset+1, compactIndex)
	return nil
}

// cacheFirst returns the index of the first cached entry, last+1 when the
// cache is empty.
func (l *Log) cacheFirst() uint64 {
	if len(l.cache) == 0 {
		return l.last + 1
	}
	return l.cache[0].GetIndex()
}

func (l *Log) clearCache() {
	l.cache = nil
	l.cacheBytes = 0
}

// cacheAppend records entries just saved; they end at l.last (already
// updated) and start at most one past the previously cached ones.
func (l *Log) cacheAppend(entries []*raftpb.Entry) {
	first := entries[0].GetIndex()
	switch {
	case len(l.cache) == 0 || first < l.cache[0].GetIndex():
		l.clearCache()
		l.cache = make([]*raftpb.Entry, 0, len(entries))
	case first <= l.cache[len(l.cache)-1].GetIndex():
		// Truncation: reallocate so slices returned by Entries keep their
		// entries.
		keep := first - l.cache[0].GetIndex()
		for _, e := range l.cache[keep:] {
			l.cacheBytes -= proto.Size(e)
		}
		l.cache = l.cache[:keep:keep]
	}
	// Otherwise first is right after the cached entries: append in place.
	for _, e := range entries {
		l.cacheBytes += proto.Size(e)
	}
	l.cache = append(l.cache, entries...)
	drop := 0
	for drop < len(l.cache) && (len(l.cache)-drop > l.cacheMaxEntries || l.cacheBytes > l.cacheMaxBytes) {
		l.cacheBytes -= proto.Size(l.cache[drop])
		drop++
	}
	l.cache = l.cache[drop:]
	if len(l.cache) == 0 {
		l.clearCache()
	}
}

// deleteGarbage deletes the entries in [lo, hi], which are below the
// durable boundary, in bounded unsynced batches. Losing these deletes is
// harmless (Open removes leftovers), so a failure is only logged.
func (l *Log) deleteGarbage(lo, hi uint64) {
	for lo <= hi {
		end := min(hi, lo+deleteChunk-1)
		batch := new(leveldb.Batch)
		for i := lo; i <= end; i++ {
			batch.Delete(raftEntryKey(i))
		}
		if err := l.ldb.Write(batch, &opt.WriteOptions{}); err != nil {
			l.logger.Warn("raft log: deleting compacted entries failed; they are removed at the next open", "from", lo, "to", hi, "err", err)
			return
		}
		if end == hi {
			return
		}
		lo = end + 1
	}
}

// deleteBelow deletes every entry key at or below offset, in bounded
// unsynced batches.
func deleteBelow(d *leveldb.DB, offset uint64) error {
	start := []byte(raftEntryPrefix)
	limit := raftEntryKey(offset + 1)
	for {
		iter := d.NewIterator(&util.Range{Start: start, Limit: limit}, nil)
		batch := new(leveldb.Batch)
		var lastKey []byte
		for batch.Len() < deleteChunk && iter.Next() {
			lastKey = append([]byte(nil), iter.Key()...)
			batch.Delete(lastKey)
		}
		iter.Release()
		if err := iter.Error(); err != nil {
			return err
		}
		if batch.Len() == 0 {
			return nil
		}
		if err := d.Write(batch, &opt.WriteOptions{}); err != nil {
			return err
		}
		if batch.Len() < deleteChunk {
			return nil
		}
		start = append(lastKey, 0)
	}
}

// writeOptions are those of the writes that must be durable: fsynced when
// the database's Sync option is on.
func (l *Log) writeOptions() *opt.WriteOptions {
	return &opt.WriteOptions{Sync: l.sync}
}

// loadEntry reads entry i from the database.
func (l *Log) loadEntry(i uint64) (*raftpb.Entry, error) {
	value, err := l.ldb.Get(raftEntryKey(i), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, fmt.Errorf("raft log: entry %d missing: %w", i, ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("raft log: read entry %d: %w", i, err)
	}
	return decodeRaftEntry(i, value)
}

// decodeRaftEntry decodes the value stored under entry key i.
func decodeRaftEntry(i uint64, value []byte) (*raftpb.Entry, error) {
	e := new(raftpb.Entry)
	if err := proto.Unmarshal(value, e); err != nil {
		return nil, fmt.Errorf("raft log: entry %d: %w: %w", i, ErrCorrupt, err)
	}
	if e.GetIndex() != i {
		return nil, fmt.Errorf("raft log: entry stored at index %d has index %d: %w", i, e.GetIndex(), ErrCorrupt)
	}
	return e, nil
}

func getKey(d *leveldb.DB, key string) ([]byte, bool, error) {
	value, err := d.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open raft log: read %s: %w", key, err)
	}
	return value, true, nil
}

func raftEntryKey(i uint64) []byte {
	key := make([]byte, 0, raftEntryKeyLen)
	key = append(key, raftEntryPrefix...)
	return binary.BigEndian.AppendUint64(key, i)
}

func raftBoundaryValue(index, term uint64) []byte {
	value := binary.BigEndian.AppendUint64(make([]byte, 0, 16), index)
	return binary.BigEndian.AppendUint64(value, term)
}

// limitEntries returns the longest prefix of ents whose total proto size
// does not exceed maxSize, but at least one entry (raft's limitSize).
func limitEntries(ents []*raftpb.Entry, maxSize uint64) []*raftpb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(proto.Size(ents[0]))
	for n := 1; n < len(ents); n++ {
		size += uint64(proto.Size(ents[n]))
		if size > maxSize {
			return ents[:n]
		}
	}
	return ents
}
