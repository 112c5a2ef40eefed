package replica

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
)

// MemoryStorage is a Storage in memory, with storage.DB's semantics: what
// a call stored survives a "crash" (a new Driver over the same
// MemoryStorage) and nothing else does. The simulator and the golden
// tests use it. Not safe for concurrent use.
type MemoryStorage struct {
	view       uint64
	viewActive bool
	viewFound  bool
	// log maps storage.DB's key order (sequence, view, kind, hash) to the
	// entry, so that LoadLog returns what DB.LoadLog would.
	log map[string]storage.LogEntry
	// unsynced are the entries WriteLog stored since the last AppendLog,
	// in order: what a crash may lose (LoseUnsynced).
	unsynced []storage.LogEntry
	stable   []byte
	// epochs are the configuration certificates saved (memory_epoch.go).
	epochs [][]byte

	// BeforeAppend, when set, is called at the start of every AppendLog
	// and WriteLog; an error it returns fails the call (wrapped), and
	// nothing is stored. The simulator uses it to crash a replica between
	// its early sends and its persist.
	BeforeAppend func() error
}

// NewMemoryStorage returns an empty MemoryStorage (a first start).
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{log: make(map[string]storage.LogEntry)}
}

// SaveViewState implements Storage.
func (m *MemoryStorage) SaveViewState(view uint64, active bool) error {
	m.view, m.viewActive, m.viewFound = view, active, true
	return nil
}

// LoadViewState implements Storage; like storage.DB it reports an active
// view 0 when none was saved.
func (m *MemoryStorage) LoadViewState() (view uint64, active, found bool, err error) {
	if !m.viewFound {
		return 0, true, false, nil
	}
	return m.view, m.viewActive, true, nil
}

// AppendLog implements Storage: entries, and those WriteLog stored before
// them, survive a crash.
func (m *MemoryStorage) AppendLog(entries []storage.LogEntry) error {
	if err := m.check(entries); err != nil {
		return err
	}
	for _, e := range m.unsynced {
		m.log[memoryLogKey(e)] = e
	}
	m.unsynced = nil
	for _, e := range entries {
		e.Signed = slices.Clone(e.Signed)
		m.log[memoryLogKey(e)] = e
	}
	return nil
}

// WriteLog implements Storage: the entries are loaded as appended ones
// unless a crash loses them first (LoseUnsynced).
func (m *MemoryStorage) WriteLog(entries []storage.LogEntry) error {
	if err := m.check(entries); err != nil {
		return err
	}
	for _, e := range entries {
		e.Signed = slices.Clone(e.Signed)
		m.unsynced = append(m.unsynced, e)
	}
	return nil
}

func (m *MemoryStorage) check(entries []storage.LogEntry) error {
	if m.BeforeAppend != nil {
		if err := m.BeforeAppend(); err != nil {
			return fmt.Errorf("append log: %w", err)
		}
	}
	for i, e := range entries {
		if len(e.Signed) == 0 {
			return fmt.Errorf("append log: entry %d (seq %d): empty signed message", i, e.Sequence)
		}
	}
	return nil
}

// Unsynced is how many entries WriteLog stored since the last AppendLog.
func (m *MemoryStorage) Unsynced() int { return len(m.unsynced) }

// LoseUnsynced is what a power loss does: of the entries WriteLog stored
// since the last AppendLog, only the first keep survive (all of them when
// keep is larger). It returns how many were lost.
func (m *MemoryStorage) LoseUnsynced(keep int) int {
	if keep >= len(m.unsynced) {
		return 0
	}
	lost := len(m.unsynced) - keep
	m.unsynced = m.unsynced[:keep]
	return lost
}

// LoadLog implements Storage.
func (m *MemoryStorage) LoadLog(fromSeq uint64) ([]storage.LogEntry, error) {
	all := m.log
	if len(m.unsynced) > 0 {
		all = maps.Clone(m.log)
		for _, e := range m.unsynced {
			all[memoryLogKey(e)] = e
		}
	}
	keys := make([]string, 0, len(all))
	for k, e := range all {
		if e.Sequence >= fromSeq {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, strings.Compare)
	entries := make([]storage.LogEntry, len(keys))
	for i, k := range keys {
		e := all[k]
		e.Signed = slices.Clone(e.Signed)
		entries[i] = e
	}
	return entries, nil
}

// DeleteLogBelow deletes the entries with Sequence < seq, as
// storage.DB.DeleteLogBelow does.
func (m *MemoryStorage) DeleteLogBelow(seq uint64) {
	for k, e := range m.log {
		if e.Sequence < seq {
			delete(m.log, k)
		}
	}
	m.unsynced = slices.DeleteFunc(m.unsynced, func(e storage.LogEntry) bool { return e.Sequence < seq })
}

// LogEntries returns how many log entries are stored.
func (m *MemoryStorage) LogEntries() int { return len(m.log) + len(m.unsynced) }

// SaveStableCheckpoint implements Storage.
func (m *MemoryStorage) SaveStableCheckpoint(encodedCert []byte) error {
	m.stable = slices.Clone(encodedCert)
	return nil
}

// LoadStableCheckpoint implements Storage.
func (m *MemoryStorage) LoadStableCheckpoint() (encodedCert []byte, found bool, err error) {
	if m.stable == nil {
		return nil, false, nil
	}
	return slices.Clone(m.stable), true, nil
}

// memoryLogKey orders entries as storage.DB's log keys do.
func memoryLogKey(e storage.LogEntry) string {
	key := binary.BigEndian.AppendUint64(nil, e.Sequence)
	key = binary.BigEndian.AppendUint64(key, e.View)
	key = append(key, e.Kind)
	sum := sha256.Sum256(e.Signed)
	return string(append(key, sum[:8]...))
}

// MemorySnapshots is a Snapshots in memory, for the simulator and the
// tests: it keeps the snapshot of each checkpoint until the second
// stable checkpoint above it (so a transfer of the previous stable
// checkpoint, which keeps its target while it is served, can finish, as
// the runtime keeps a snapshot being read), and deletes Store's log at or
// below the stable checkpoint, as the runtime does with its database. Taken serves state transfers
// (statetransfer.At(s.Taken, seq)). Not safe for concurrent use.
type MemorySnapshots struct {
	Store *MemoryStorage
	// Taken maps a checkpoint's sequence to its snapshot.
	Taken map[uint64]*execution.StateSnapshot
	// stable and previous are the last two stable checkpoints.
	stable, previous uint64
}

// NewMemorySnapshots returns a MemorySnapshots over store's log.
func NewMemorySnapshots(store *MemoryStorage) *MemorySnapshots {
	return &MemorySnapshots{Store: store, Taken: make(map[uint64]*execution.StateSnapshot)}
}

// Checkpointed implements Snapshots: it keeps snap, releasing one it
// replaces.
func (s *MemorySnapshots) Checkpointed(snap *execution.StateSnapshot) {
	if old := s.Taken[snap.Sequence()]; old != nil {
		old.Release()
	}
	s.Taken[snap.Sequence()] = snap
}

// Stable implements Snapshots: it releases the snapshots below the
// stable checkpoint before seq and deletes the log at or below seq.
func (s *MemorySnapshots) Stable(seq uint64) {
	if seq > s.stable {
		s.previous, s.stable = s.stable, seq
	}
	for q, snap := range s.Taken {
		if q < s.previous {
			snap.Release()
			delete(s.Taken, q)
		}
	}
	s.Store.DeleteLogBelow(seq + 1)
}

// ReleaseAll releases every snapshot kept, as a crash loses them.
func (s *MemorySnapshots) ReleaseAll() {
	for q, snap := range s.Taken {
		snap.Release()
		delete(s.Taken, q)
	}
}
