package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/storage"
)

// raftEnv is one configuration the RaftLog tests run against: a backend
// (in-memory or on-disk database) and a cache size.
type raftEnv struct {
	t            *testing.T
	db           *storage.DB
	dir          string // "" for the in-memory database
	cacheEntries int    // -1: the default
	opts         storage.Options
}

// forEachRaftEnv runs f against the in-memory and the on-disk database, with
// the default cache, a tiny cache (so reads mix cache and database) and no
// cache.
func forEachRaftEnv(t *testing.T, f func(t *testing.T, env *raftEnv)) {
	for _, backend := range []string{"mem", "disk"} {
		for _, cache := range []int{-1, 2, 0} {
			t.Run(fmt.Sprintf("%s/cache=%d", backend, cache), func(t *testing.T) {
				f(t, newRaftEnv(t, backend == "disk", cache))
			})
		}
	}
}

func newRaftEnv(t *testing.T, disk bool, cacheEntries int) *raftEnv {
	t.Helper()
	// Reopening, not fsync, is what these tests check (TestRaftLogDurability
	// runs with Sync on).
	env := &raftEnv{t: t, cacheEntries: cacheEntries, opts: storage.Options{Sync: false}}
	if disk {
		env.dir = t.TempDir()
		env.db = env.openDisk()
	} else {
		db, err := storage.OpenMem(env.opts)
		if err != nil {
			t.Fatalf("OpenMem: %v", err)
		}
		env.db = db
	}
	t.Cleanup(func() { env.db.Close() })
	return env
}

// open opens the RaftLog of the current database.
func (env *raftEnv) open() *Log {
	env.t.Helper()
	l, err := Open(env.db)
	if err != nil {
		env.t.Fatalf("Open: %v", err)
	}
	if env.cacheEntries >= 0 {
		l.cacheMaxEntries = env.cacheEntries
	}
	return l
}

// reopen closes and reopens the on-disk database (the in-memory one is
// kept, as a simulated crash keeps it) and opens its RaftLog afresh.
func (env *raftEnv) reopen() *Log {
	env.t.Helper()
	if env.dir != "" {
		if err := env.db.Close(); err != nil {
			env.t.Fatalf("Close: %v", err)
		}
		env.db = env.openDisk()
	}
	return env.open()
}

func (env *raftEnv) openDisk() *storage.DB {
	env.t.Helper()
	db, err := storage.Open(env.dir, env.opts)
	if err != nil {
		env.t.Fatalf("Open(%s): %v", env.dir, err)
	}
	return db
}

// ents returns entries at consecutive indexes from index with the given
// terms (raft's index(i).terms(...)).
func ents(index uint64, terms ...uint64) []*raftpb.Entry {
	out := make([]*raftpb.Entry, 0, len(terms))
	for _, term := range terms {
		out = append(out, &raftpb.Entry{Term: new(term), Index: new(index)})
		index++
	}
	return out
}

// newRaftLogWith returns a RaftLog in the state of raft's
// MemoryStorage{ents: dummyAndEntries}: the first entry is the boundary
// (FirstIndex-1 and its term), the rest are the stored entries.
func newRaftLogWith(t *testing.T, env *raftEnv, dummyAndEntries []*raftpb.Entry) *Log {
	t.Helper()
	l := env.open()
	offset := dummyAndEntries[0].GetIndex()
	var all []*raftpb.Entry
	for i := uint64(1); i < offset; i++ {
		all = append(all, &raftpb.Entry{Term: new(uint64(1)), Index: new(i)})
	}
	if offset == 0 {
		all = append(all, dummyAndEntries[1:]...)
	} else {
		all = append(all, dummyAndEntries...)
	}
	if err := l.Save(nil, all, nil); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if offset > 0 {
		if err := l.Compact(offset); err != nil {
			t.Fatalf("Compact(%d): %v", offset, err)
		}
	}
	return l
}

// raftLogState is everything a RaftLog exposes, for comparisons.
type raftLogState struct {
	first, last uint64
	terms       []uint64 // Term(first-1) .. Term(last)
	entries     []*raftpb.Entry
	hs          *raftpb.HardState
	cs          *raftpb.ConfState
	snap        *raftpb.Snapshot
}

func readRaftLogState(t *testing.T, s raft.Storage) raftLogState {
	t.Helper()
	var st raftLogState
	var err error
	if st.first, err = s.FirstIndex(); err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	if st.last, err = s.LastIndex(); err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	for i := st.first - 1; i <= st.last; i++ {
		term, err := s.Term(i)
		if err != nil {
			t.Fatalf("Term(%d): %v", i, err)
		}
		st.terms = append(st.terms, term)
	}
	if st.last >= st.first {
		if st.entries, err = s.Entries(st.first, st.last+1, math.MaxUint64); err != nil {
			t.Fatalf("Entries(%d, %d): %v", st.first, st.last+1, err)
		}
	}
	if st.hs, st.cs, err = s.InitialState(); err != nil {
		t.Fatalf("InitialState: %v", err)
	}
	st.cs = raftpb.EnsureConfState(proto.Clone(raftpb.EnsureConfState(st.cs)).(*raftpb.ConfState))
	if st.snap, err = s.Snapshot(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return st
}

func equalEntries(a, b []*raftpb.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y *raftpb.Entry) bool { return proto.Equal(x, y) })
}

func diffRaftLogState(a, b raftLogState) string {
	switch {
	case a.first != b.first || a.last != b.last:
		return fmt.Sprintf("first/last %d/%d vs %d/%d", a.first, a.last, b.first, b.last)
	case !slices.Equal(a.terms, b.terms):
		return fmt.Sprintf("terms %v vs %v", a.terms, b.terms)
	case !equalEntries(a.entries, b.entries):
		return fmt.Sprintf("entries %v vs %v", a.entries, b.entries)
	case !raft.IsEmptyHardState(a.hs) || !raft.IsEmptyHardState(b.hs):
		if a.hs.GetTerm() != b.hs.GetTerm() || a.hs.GetVote() != b.hs.GetVote() || a.hs.GetCommit() != b.hs.GetCommit() {
			return fmt.Sprintf("hard state %v vs %v", a.hs, b.hs)
		}
	}
	if !proto.Equal(a.cs, b.cs) {
		return fmt.Sprintf("conf state %v vs %v", a.cs, b.cs)
	}
	am, bm := a.snap.GetMetadata(), b.snap.GetMetadata()
	if am.GetIndex() != bm.GetIndex() || am.GetTerm() != bm.GetTerm() || !bytes.Equal(a.snap.GetData(), b.snap.GetData()) ||
		!proto.Equal(raftpb.EnsureConfState(proto.Clone(am.GetConfState()).(*raftpb.ConfState)), raftpb.EnsureConfState(proto.Clone(bm.GetConfState()).(*raftpb.ConfState))) {
		return fmt.Sprintf("snapshot %v vs %v", a.snap, b.snap)
	}
	return ""
}

// checkReload checks that a RaftLog opened afresh from the (reopened)
// database exposes the same state as l, and returns it.
func checkReload(t *testing.T, env *raftEnv, l *Log) *Log {
	t.Helper()
	before := readRaftLogState(t, l)
	reloaded := env.reopen()
	if diff := diffRaftLogState(before, readRaftLogState(t, reloaded)); diff != "" {
		t.Fatalf("state differs after reopen: %s", diff)
	}
	return reloaded
}

// Ported from go.etcd.io/raft/v3 storage_test.go: TestStorageTerm.
func TestRaftLogTerm(t *testing.T) {
	tests := []struct {
		i     uint64
		werr  error
		wterm uint64
	}{
		{2, raft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, raft.ErrUnavailable, 0},
	}
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
		for round := 0; round < 2; round++ {
			for _, tt := range tests {
				term, err := l.Term(tt.i)
				if err != tt.werr || term != tt.wterm {
					t.Errorf("round %d: Term(%d) = %d, %v; want %d, %v", round, tt.i, term, err, tt.wterm, tt.werr)
				}
			}
			l = checkReload(t, env, l)
		}
	})
}

// Ported from storage_test.go: TestStorageEntries.
func TestRaftLogEntries(t *testing.T) {
	all := ents(3, 3, 4, 5, 6)
	size := func(i int) uint64 { return uint64(proto.Size(all[i])) }
	tests := []struct {
		lo, hi, maxsize uint64
		werr            error
		wentries        []*raftpb.Entry
	}{
		{2, 6, math.MaxUint64, raft.ErrCompacted, nil},
		{3, 4, math.MaxUint64, raft.ErrCompacted, nil},
		{4, 5, math.MaxUint64, nil, ents(4, 4)},
		{4, 6, math.MaxUint64, nil, ents(4, 4, 5)},
		{4, 7, math.MaxUint64, nil, ents(4, 4, 5, 6)},
		// even if maxsize is zero, the first entry should be returned
		{4, 7, 0, nil, ents(4, 4)},
		// limit to 2
		{4, 7, size(1) + size(2), nil, ents(4, 4, 5)},
		// limit to 2
		{4, 7, size(1) + size(2) + size(3)/2, nil, ents(4, 4, 5)},
		{4, 7, size(1) + size(2) + size(3) - 1, nil, ents(4, 4, 5)},
		// all
		{4, 7, size(1) + size(2) + size(3), nil, ents(4, 4, 5, 6)},
		// empty range
		{5, 5, math.MaxUint64, nil, nil},
	}
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := newRaftLogWith(t, env, all)
		for round := 0; round < 2; round++ {
			for _, tt := range tests {
				got, err := l.Entries(tt.lo, tt.hi, tt.maxsize)
				if err != tt.werr || !equalEntries(got, tt.wentries) {
					t.Errorf("round %d: Entries(%d, %d, %d) = %v, %v; want %v, %v", round, tt.lo, tt.hi, tt.maxsize, got, err, tt.wentries, tt.werr)
				}
			}
			if _, err := l.Entries(4, 8, math.MaxUint64); !errors.Is(err, raft.ErrUnavailable) {
				t.Errorf("Entries beyond the last index: err = %v, want one wrapping ErrUnavailable", err)
			}
			l = checkReload(t, env, l)
		}
	})
}

func TestRaftLogEntriesOfEmptyLog(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := env.open()
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		if first != 1 || last != 0 {
			t.Fatalf("fresh log: FirstIndex %d, LastIndex %d; want 1, 0", first, last)
		}
		if _, err := l.Entries(1, 1, math.MaxUint64); err != raft.ErrUnavailable {
			t.Errorf("Entries on an empty log: err = %v, want ErrUnavailable", err)
		}
		if term, err := l.Term(0); err != nil || term != 0 {
			t.Errorf("Term(0) = %d, %v; want 0, nil", term, err)
		}
		hs, cs, err := l.InitialState()
		if err != nil || !raft.IsEmptyHardState(hs) || len(cs.GetVoters()) != 0 {
			t.Errorf("InitialState = %v, %v, %v; want empty", hs, cs, err)
		}
		snap, err := l.Snapshot()
		if err != nil || !raft.IsEmptySnap(snap) {
			t.Errorf("Snapshot = %v, %v; want empty", snap, err)
		}
	})
}

// Ported from storage_test.go: TestStorageLastIndex.
func TestRaftLogLastIndex(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
		if last, err := l.LastIndex(); err != nil || last != 5 {
			t.Fatalf("LastIndex = %d, %v; want 5", last, err)
		}
		if err := l.Save(nil, ents(6, 5), nil); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if last, err := l.LastIndex(); err != nil || last != 6 {
			t.Fatalf("LastIndex = %d, %v; want 6", last, err)
		}
		checkReload(t, env, l)
	})
}

// Ported from storage_test.go: TestStorageFirstIndex.
func TestRaftLogFirstIndex(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
		if first, err := l.FirstIndex(); err != nil || first != 4 {
			t.Fatalf("FirstIndex = %d, %v; want 4", first, err)
		}
		if err := l.Compact(4); err != nil {
			t.Fatalf("Compact(4): %v", err)
		}
		if first, err := l.FirstIndex(); err != nil || first != 5 {
			t.Fatalf("FirstIndex = %d, %v; want 5", first, err)
		}
		checkReload(t, env, l)
	})
}

// Ported from storage_test.go: TestStorageCompact.
func TestRaftLogCompact(t *testing.T) {
	tests := []struct {
		i      uint64
		werr   error
		windex uint64
		wterm  uint64
		wlen   int
	}{
		{2, raft.ErrCompacted, 3, 3, 3},
		{3, raft.ErrCompacted, 3, 3, 3},
		{4, nil, 4, 4, 2},
		{5, nil, 5, 5, 1},
	}
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		for _, tt := range tests {
			t.Run(fmt.Sprint(tt.i), func(t *testing.T) {
				env := newRaftEnv(t, env.dir != "", env.cacheEntries)
				l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
				if err := l.Compact(tt.i); err != tt.werr {
					t.Fatalf("Compact(%d) = %v, want %v", tt.i, err, tt.werr)
				}
				for round := 0; round < 2; round++ {
					first, _ := l.FirstIndex()
					last, _ := l.LastIndex()
					term, err := l.Term(first - 1)
					if first-1 != tt.windex || err != nil || term != tt.wterm || int(last-first+2) != tt.wlen {
						t.Fatalf("round %d: boundary %d term %d (%v), len %d; want %d, %d, %d", round, first-1, term, err, last-first+2, tt.windex, tt.wterm, tt.wlen)
					}
					if _, err := l.Entries(first-1, last+1, math.MaxUint64); err != raft.ErrCompacted {
						t.Fatalf("Entries at the boundary: err = %v, want ErrCompacted", err)
					}
					l = checkReload(t, env, l)
				}
			})
		}
	})
}

func TestRaftLogCompactBeyondLastIndexFails(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
		if err := l.Compact(6); err == nil {
			t.Fatal("Compact(6) beyond last index 5 succeeded")
		}
		checkReload(t, env, l)
	})
}

// Ported from storage_test.go: TestStorageCreateSnapshot.
func TestRaftLogCreateSnapshot(t *testing.T) {
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("data")
	tests := []struct {
		i     uint64
		wsnap *raftpb.Snapshot
	}{
		{4, &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(4)), Term: new(uint64(4)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}},
		{5, &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(5)), Term: new(uint64(5)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}},
	}
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		for _, tt := range tests {
			t.Run(fmt.Sprint(tt.i), func(t *testing.T) {
				env := newRaftEnv(t, env.dir != "", env.cacheEntries)
				l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
				// RaftLog normalizes snapshots with raftpb.EnsureSnapshot
				// (AutoLeave present), so they read back identically.
				tt.wsnap = raftpb.EnsureSnapshot(tt.wsnap)
				snap, err := l.CreateSnapshot(tt.i, cs, data)
				if err != nil || !proto.Equal(snap, tt.wsnap) {
					t.Fatalf("CreateSnapshot(%d) = %v, %v; want %v", tt.i, snap, err, tt.wsnap)
				}
				l = checkReload(t, env, l)
				if got, _ := l.Snapshot(); !proto.Equal(got, tt.wsnap) {
					t.Fatalf("Snapshot after reopen = %v, want %v", got, tt.wsnap)
				}
				if _, gotCS, _ := l.InitialState(); !slices.Equal(gotCS.GetVoters(), cs.GetVoters()) {
					t.Fatalf("InitialState conf state = %v, want %v", gotCS, cs)
				}
				if _, err := l.CreateSnapshot(tt.i, cs, data); err != raft.ErrSnapOutOfDate {
					t.Fatalf("CreateSnapshot(%d) again: err = %v, want ErrSnapOutOfDate", tt.i, err)
				}
				if _, err := l.CreateSnapshot(6, cs, data); err == nil || err == raft.ErrSnapOutOfDate {
					t.Fatalf("CreateSnapshot(6) beyond last index 5: err = %v, want an out-of-bound error", err)
				}
				// A nil conf state keeps the previous one.
				if tt.i == 4 {
					snap, err := l.CreateSnapshot(5, nil, []byte("more"))
					if err != nil || !slices.Equal(snap.GetMetadata().GetConfState().GetVoters(), cs.GetVoters()) || string(snap.GetData()) != "more" {
						t.Fatalf("CreateSnapshot(5, nil) = %v, %v", snap, err)
					}
					checkReload(t, env, l)
				}
			})
		}
	})
}

// Ported from storage_test.go: TestStorageAppend (MemoryStorage.Append is
// Save's entries argument).
func TestRaftLogSaveEntries(t *testing.T) {
	tests := []struct {
		entries  []*raftpb.Entry
		wentries []*raftpb.Entry
	}{
		{ents(1, 1, 2), ents(3, 3, 4, 5)},
		{ents(3, 3, 4, 5), ents(3, 3, 4, 5)},
		{ents(3, 3, 6, 6), ents(3, 3, 6, 6)},
		{ents(3, 3, 4, 5, 5), ents(3, 3, 4, 5, 5)},
		// Truncate incoming entries, truncate the existing entries and append.
		{ents(2, 3, 3, 5), ents(3, 3, 5)},
		// Truncate the existing entries and append.
		{ents(4, 5), ents(3, 3, 5)},
		// Direct append.
		{ents(6, 5), ents(3, 3, 4, 5, 5)},
	}
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		for i, tt := range tests {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				env := newRaftEnv(t, env.dir != "", env.cacheEntries)
				l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
				// Read through the cache first so truncation must keep it
				// coherent.
				readRaftLogState(t, l)
				if err := l.Save(nil, tt.entries, nil); err != nil {
					t.Fatalf("Save: %v", err)
				}
				for round := 0; round < 2; round++ {
					st := readRaftLogState(t, l)
					want := tt.wentries
					var wantTerms []uint64
					for _, e := range want {
						wantTerms = append(wantTerms, e.GetTerm())
					}
					if st.first != want[0].GetIndex()+1 || st.last != want[len(want)-1].GetIndex() || !slices.Equal(st.terms, wantTerms) || !equalEntries(st.entries, want[1:]) {
						t.Fatalf("round %d: log = first %d last %d terms %v entries %v; want %v", round, st.first, st.last, st.terms, st.entries, want)
					}
					l = checkReload(t, env, l)
				}
			})
		}
	})
}

func TestRaftLogSaveRejectsBadEntries(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := newRaftLogWith(t, env, ents(3, 3, 4, 5))
		before := readRaftLogState(t, l)
		hs := &raftpb.HardState{Term: new(uint64(9)), Commit: new(uint64(5))}
		// A gap after the last index.
		if err := l.Save(hs, ents(7, 5), nil); err == nil {
			t.Error("Save with a gap succeeded")
		}
		// Non-contiguous entries.
		if err := l.Save(hs, append(ents(4, 4), ents(6, 5)...), nil); err == nil {
			t.Error("Save with non-contiguous entries succeeded")
		}
		if diff := diffRaftLogState(before, readRaftLogState(t, l)); diff != "" {
			t.Fatalf("a rejected Save changed the log: %s", diff)
		}
		checkReload(t, env, l)
	})
}

// Ported from storage_test.go: TestStorageApplySnapshot (MemoryStorage's
// ApplySnapshot is Save's snapshot argument).
func TestRaftLogSaveSnapshot(t *testing.T) {
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("data")
	snapAt := func(index, term uint64) *raftpb.Snapshot {
		return &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: cs}}
	}
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		t.Run("normal case", func(t *testing.T) {
			env := newRaftEnv(t, env.dir != "", env.cacheEntries)
			l := env.open()
			if err := l.Save(nil, nil, snapAt(4, 4)); err != nil {
				t.Fatalf("Save(snapshot 4): %v", err)
			}
			for round := 0; round < 2; round++ {
				first, _ := l.FirstIndex()
				last, _ := l.LastIndex()
				term, _ := l.Term(4)
				_, gotCS, _ := l.InitialState()
				if first != 5 || last != 4 || term != 4 || !slices.Equal(gotCS.GetVoters(), cs.GetVoters()) {
					t.Fatalf("round %d: first %d last %d term(4) %d cs %v", round, first, last, term, gotCS)
				}
				if _, err := l.Entries(5, 5, math.MaxUint64); err != raft.ErrUnavailable {
					t.Fatalf("Entries on a snapshot-only log: err = %v, want ErrUnavailable", err)
				}
				l = checkReload(t, env, l)
			}
		})
		t.Run("snapshot out of date", func(t *testing.T) {
			env := newRaftEnv(t, env.dir != "", env.cacheEntries)
			l := env.open()
			if err := l.Save(nil, nil, snapAt(4, 4)); err != nil {
				t.Fatalf("Save(snapshot 4): %v", err)
			}
			before := readRaftLogState(t, l)
			for _, index := range []uint64{3, 4} {
				hs := &raftpb.HardState{Term: new(uint64(7)), Commit: new(index)}
				if err := l.Save(hs, nil, snapAt(index, index)); err != raft.ErrSnapOutOfDate {
					t.Fatalf("Save(snapshot %d) = %v, want ErrSnapOutOfDate", index, err)
				}
			}
			if diff := diffRaftLogState(before, readRaftLogState(t, l)); diff != "" {
				t.Fatalf("an out-of-date snapshot changed the log: %s", diff)
			}
			checkReload(t, env, l)
		})
		t.Run("empty snapshot is ignored", func(t *testing.T) {
			// MemoryStorage.ApplySnapshot accepts an index-0 snapshot carrying
			// only a conf state (bootstrap); Save ignores any snapshot for
			// which raft.IsEmptySnap holds, as raft never emits one.
			env := newRaftEnv(t, env.dir != "", env.cacheEntries)
			l := env.open()
			if err := l.Save(nil, nil, &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{ConfState: cs}}); err != nil {
				t.Fatalf("Save(index-0 snapshot): %v", err)
			}
			if snap, _ := l.Snapshot(); !raft.IsEmptySnap(snap) {
				t.Fatalf("Snapshot = %v, want empty", snap)
			}
		})
		t.Run("replaces a longer log, with entries and hard state", func(t *testing.T) {
			env := newRaftEnv(t, env.dir != "", env.cacheEntries)
			l := newRaftLogWith(t, env, ents(0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3))
			readRaftLogState(t, l) // warm the cache
			hs := &raftpb.HardState{Term: new(uint64(5)), Vote: new(uint64(2)), Commit: new(uint64(6))}
			if err := l.Save(hs, ents(7, 5, 5), snapAt(6, 4)); err != nil {
				t.Fatalf("Save(snapshot 6 + entries 7..8): %v", err)
			}
			for round := 0; round < 2; round++ {
				st := readRaftLogState(t, l)
				if st.first != 7 || st.last != 8 || !slices.Equal(st.terms, []uint64{4, 5, 5}) || !equalEntries(st.entries, ents(7, 5, 5)) {
					t.Fatalf("round %d: first %d last %d terms %v entries %v", round, st.first, st.last, st.terms, st.entries)
				}
				if st.hs.GetTerm() != 5 || st.hs.GetVote() != 2 || st.hs.GetCommit() != 6 {
					t.Fatalf("round %d: hard state %v", round, st.hs)
				}
				if !slices.Equal(st.cs.GetVoters(), cs.GetVoters()) || st.snap.GetMetadata().GetIndex() != 6 || !bytes.Equal(st.snap.GetData(), data) {
					t.Fatalf("round %d: cs %v snapshot %v", round, st.cs, st.snap)
				}
				l = checkReload(t, env, l)
			}
			if n := countRaftEntryKeys(t, env.db); n != 2 {
				t.Fatalf("%d entry keys stored, want 2 (entries at or below the snapshot are deleted)", n)
			}
		})
	})
}

func countRaftEntryKeys(t *testing.T, db *storage.DB) int {
	t.Helper()
	iter := db.LevelDB().NewIterator(util.BytesPrefix([]byte(raftEntryPrefix)), nil)
	defer iter.Release()
	n := 0
	for iter.Next() {
		n++
	}
	if err := iter.Error(); err != nil {
		t.Fatalf("iterate entry keys: %v", err)
	}
	return n
}
