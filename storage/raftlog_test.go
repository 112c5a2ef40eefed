package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// raftEnv is one configuration the RaftLog tests run against: a backend
// (in-memory or on-disk database) and a cache size.
type raftEnv struct {
	t            *testing.T
	db           *DB
	dir          string // "" for the in-memory database
	cacheEntries int    // -1: the default
	opts         Options
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
	env := &raftEnv{t: t, cacheEntries: cacheEntries, opts: Options{Sync: false}}
	if disk {
		env.dir = t.TempDir()
		env.db = env.openDisk()
	} else {
		db, err := OpenMem(env.opts)
		if err != nil {
			t.Fatalf("OpenMem: %v", err)
		}
		env.db = db
	}
	t.Cleanup(func() { env.db.Close() })
	return env
}

// open opens the RaftLog of the current database.
func (env *raftEnv) open() *RaftLog {
	env.t.Helper()
	l, err := env.db.OpenRaftLog()
	if err != nil {
		env.t.Fatalf("OpenRaftLog: %v", err)
	}
	if env.cacheEntries >= 0 {
		l.cacheMaxEntries = env.cacheEntries
	}
	return l
}

// reopen closes and reopens the on-disk database (the in-memory one is
// kept, as a simulated crash keeps it) and opens its RaftLog afresh.
func (env *raftEnv) reopen() *RaftLog {
	env.t.Helper()
	if env.dir != "" {
		if err := env.db.Close(); err != nil {
			env.t.Fatalf("Close: %v", err)
		}
		env.db = env.openDisk()
	}
	return env.open()
}

func (env *raftEnv) openDisk() *DB {
	env.t.Helper()
	db, err := Open(env.dir, env.opts)
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
func newRaftLogWith(t *testing.T, env *raftEnv, dummyAndEntries []*raftpb.Entry) *RaftLog {
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
func checkReload(t *testing.T, env *raftEnv, l *RaftLog) *RaftLog {
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

func countRaftEntryKeys(t *testing.T, db *DB) int {
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

// TestRaftLogDurability saves, compacts, snapshots and reopens the
// database in between, on disk, checking everything reads back.
func TestRaftLogDurability(t *testing.T) {
	env := newRaftEnv(t, true, -1)
	env.db.Close()
	env.opts = DefaultOptions(nil)
	env.db = env.openDisk()
	if !env.db.Sync() {
		t.Fatal("DefaultOptions must enable Sync")
	}
	l := env.open()
	hs := &raftpb.HardState{Term: new(uint64(2)), Vote: new(uint64(1)), Commit: new(uint64(3))}
	entries := ents(1, 1, 1, 2, 2, 2)
	for _, e := range entries {
		e.Data = fmt.Appendf(nil, "payload %d", e.GetIndex())
	}
	entries[2].Type = raftpb.EntryConfChange.Enum()
	if err := l.Save(hs, entries, nil); err != nil {
		t.Fatalf("Save: %v", err)
	}
	l = checkReload(t, env, l)
	st := readRaftLogState(t, l)
	if !equalEntries(st.entries, entries) || st.hs.GetTerm() != 2 || st.hs.GetVote() != 1 || st.hs.GetCommit() != 3 {
		t.Fatalf("after reopen: entries %v hard state %v", st.entries, st.hs)
	}
	if _, err := l.CreateSnapshot(3, &raftpb.ConfState{Voters: []uint64{1, 2}}, []byte("state@3")); err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	l = checkReload(t, env, l)
	if err := l.Compact(3); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	l = checkReload(t, env, l)
	if first, _ := l.FirstIndex(); first != 4 {
		t.Fatalf("FirstIndex after Compact(3) and reopen = %d, want 4", first)
	}
	if term, err := l.Term(3); err != nil || term != 2 {
		t.Fatalf("Term(3) after Compact(3) and reopen = %d, %v; want 2", term, err)
	}
	snap := &raftpb.Snapshot{Data: []byte("state@9"), Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(3)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
	hs = &raftpb.HardState{Term: new(uint64(3)), Commit: new(uint64(9))}
	if err := l.Save(hs, nil, snap); err != nil {
		t.Fatalf("Save(snapshot): %v", err)
	}
	l = checkReload(t, env, l)
	st = readRaftLogState(t, l)
	if st.first != 10 || st.last != 9 || !proto.Equal(st.snap, raftpb.EnsureSnapshot(snap)) || st.hs.GetCommit() != 9 {
		t.Fatalf("after snapshot and reopen: first %d last %d snapshot %v hard state %v", st.first, st.last, st.snap, st.hs)
	}
	if n := countRaftEntryKeys(t, env.db); n != 0 {
		t.Fatalf("%d entry keys left after the snapshot, want 0", n)
	}
}

// TestRaftLogCompactManyEntries compacts more entries than one delete
// batch holds, and checks that entries a crash left below the boundary
// are removed on open.
func TestRaftLogCompactManyEntries(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		l := env.open()
		const n = 2*deleteChunk + 10
		batch := make([]*raftpb.Entry, 0, 1000)
		for i := uint64(1); i <= n; i++ {
			batch = append(batch, &raftpb.Entry{Term: new(uint64(1)), Index: new(i), Data: []byte("x")})
			if len(batch) == cap(batch) || i == n {
				if err := l.Save(nil, batch, nil); err != nil {
					t.Fatalf("Save: %v", err)
				}
				batch = make([]*raftpb.Entry, 0, 1000)
			}
		}
		if err := l.Compact(n - 5); err != nil {
			t.Fatalf("Compact: %v", err)
		}
		if got := countRaftEntryKeys(t, env.db); got != 5 {
			t.Fatalf("%d entry keys after Compact(%d) of %d, want 5", got, n-5, n)
		}
		// Simulate a crash in the middle of deleting compacted entries.
		for _, i := range []uint64{1, 7, n - 5} {
			value, _ := proto.Marshal(&raftpb.Entry{Term: new(uint64(1)), Index: new(i)})
			if err := env.db.LevelDB().Put(raftEntryKey(i), value, nil); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		l = env.reopen()
		if got := countRaftEntryKeys(t, env.db); got != 5 {
			t.Fatalf("%d entry keys after reopen, want 5 (leftovers below the boundary removed)", got)
		}
		if first, _ := l.FirstIndex(); first != n-4 {
			t.Fatalf("FirstIndex = %d, want %d", first, n-4)
		}
	})
}

// TestRaftLogEntriesSliceIsSafe checks that appending to a slice returned
// by Entries (raft does) does not change the log.
func TestRaftLogEntriesSliceIsSafe(t *testing.T) {
	forEachRaftEnv(t, func(t *testing.T, env *raftEnv) {
		// Entries 1..4 with terms 1, 2, 2, 3.
		l := newRaftLogWith(t, env, ents(0, 0, 1, 2, 2, 3))
		got, err := l.Entries(2, 4, math.MaxUint64)
		if err != nil {
			t.Fatalf("Entries: %v", err)
		}
		_ = append(got, &raftpb.Entry{Term: new(uint64(99)), Index: new(uint64(4))})
		if term, _ := l.Term(4); term != 3 {
			t.Fatalf("Term(4) = %d after appending to a returned slice, want 3", term)
		}
		// A truncation must not change a slice returned before it.
		before, _ := l.Entries(3, 5, math.MaxUint64)
		if err := l.Save(nil, ents(4, 7, 7), nil); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if term, _ := l.Term(4); term != 7 {
			t.Fatalf("Term(4) = %d after the truncation, want 7", term)
		}
		if !equalEntries(before, ents(3, 2, 3)) {
			t.Fatalf("a slice returned before a truncation changed: %v", before)
		}
	})
}

// TestRaftLogMatchesMemoryStorage applies the same random operations to a
// RaftLog (with a tiny cache, reopened now and then) and to raft's
// MemoryStorage, comparing everything after each.
func TestRaftLogMatchesMemoryStorage(t *testing.T) {
	for _, disk := range []bool{false, true} {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("disk=%t/seed=%d", disk, seed), func(t *testing.T) {
				testRaftLogMatchesMemoryStorage(t, disk, seed)
			})
		}
	}
}

func testRaftLogMatchesMemoryStorage(t *testing.T, disk bool, seed uint64) {
	env := newRaftEnv(t, disk, 3)
	l := env.open()
	l.cacheMaxBytes = 200 // a few entries
	ms := raft.NewMemoryStorage()
	rng := rand.New(rand.NewPCG(seed, 99))
	// Like raft, never truncate at or below the commit index (OpenRaftLog
	// rejects a commit index beyond the last index).
	term, commit := uint64(1), uint64(0)
	steps := 400
	if disk {
		steps = 150
	}
	for step := 0; step < steps; step++ {
		first, _ := ms.FirstIndex()
		last, _ := ms.LastIndex()
		snap, _ := ms.Snapshot()
		snapIndex := snap.GetMetadata().GetIndex()
		var op string
		switch r := rng.IntN(100); {
		case r < 55: // append, possibly truncating or overlapping the boundary
			lo := max(first, commit+1)
			from := lo
			if last+1 > lo {
				from = lo + rng.Uint64N(last+2-lo)
			}
			if commit < first && from > 1 && rng.IntN(10) == 0 {
				from -= rng.Uint64N(min(from-1, 3)) // partly below the boundary
			}
			if rng.IntN(3) == 0 {
				term++
			}
			n := 1 + rng.IntN(6)
			var entries []*raftpb.Entry
			for k := 0; k < n; k++ {
				e := &raftpb.Entry{Term: new(term), Index: new(from + uint64(k))}
				if rng.IntN(4) > 0 {
					e.Data = make([]byte, rng.IntN(60))
					for j := range e.Data {
						e.Data[j] = byte(rng.Uint32())
					}
				}
				entries = append(entries, e)
			}
			op = fmt.Sprintf("append [%d, %d] term %d", from, from+uint64(n)-1, term)
			if err := ms.Append(entries); err != nil {
				t.Fatalf("step %d %s: MemoryStorage.Append: %v", step, op, err)
			}
			if err := l.Save(nil, entries, nil); err != nil {
				t.Fatalf("step %d %s: Save: %v", step, op, err)
			}
		case r < 70: // compact
			if last < first {
				continue
			}
			ci := first + rng.Uint64N(last+1-first)
			op = fmt.Sprintf("compact %d", ci)
			if err := ms.Compact(ci); err != nil {
				t.Fatalf("step %d %s: MemoryStorage.Compact: %v", step, op, err)
			}
			if err := l.Compact(ci); err != nil {
				t.Fatalf("step %d %s: Compact: %v", step, op, err)
			}
			if err := l.Compact(ci); err != raft.ErrCompacted {
				t.Fatalf("step %d %s again: %v, want ErrCompacted", step, op, err)
			}
		case r < 80: // create snapshot
			lo := max(snapIndex+1, first-1)
			if lo > last {
				continue
			}
			i := lo + rng.Uint64N(last+1-lo)
			var cs *raftpb.ConfState
			if rng.IntN(2) == 0 {
				cs = &raftpb.ConfState{Voters: []uint64{1, 2, uint64(3 + rng.IntN(3))}}
			}
			data := fmt.Appendf(nil, "snap %d", i)
			op = fmt.Sprintf("create snapshot %d", i)
			want, err := ms.CreateSnapshot(i, cs, data)
			if err != nil {
				t.Fatalf("step %d %s: MemoryStorage.CreateSnapshot: %v", step, op, err)
			}
			got, err := l.CreateSnapshot(i, cs, data)
			if err != nil || !proto.Equal(got, raftpb.EnsureSnapshot(want)) {
				t.Fatalf("step %d %s: CreateSnapshot = %v, %v; want %v", step, op, got, err, want)
			}
		case r < 87: // apply a snapshot, sometimes with entries after it
			si := snapIndex + 1 + rng.Uint64N(max(last, snapIndex)+5-snapIndex)
			term++
			s := &raftpb.Snapshot{Data: fmt.Appendf(nil, "received %d", si), Metadata: &raftpb.SnapshotMetadata{
				Index: new(si), Term: new(term), ConfState: &raftpb.ConfState{Voters: []uint64{uint64(1 + rng.IntN(3))}},
			}}
			var entries []*raftpb.Entry
			if rng.IntN(2) == 0 {
				entries = ents(si+1, term, term)
			}
			op = fmt.Sprintf("apply snapshot %d (+%d entries)", si, len(entries))
			if err := ms.ApplySnapshot(s); err != nil {
				t.Fatalf("step %d %s: MemoryStorage.ApplySnapshot: %v", step, op, err)
			}
			if err := ms.Append(entries); err != nil {
				t.Fatalf("step %d %s: MemoryStorage.Append: %v", step, op, err)
			}
			commit = si
			hs := &raftpb.HardState{Term: new(term), Commit: new(commit)}
			if err := ms.SetHardState(hs); err != nil {
				t.Fatalf("step %d %s: SetHardState: %v", step, op, err)
			}
			if err := l.Save(hs, entries, s); err != nil {
				t.Fatalf("step %d %s: Save: %v", step, op, err)
			}
			old := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(si), Term: new(term)}}
			if err := l.Save(nil, nil, old); err != raft.ErrSnapOutOfDate {
				t.Fatalf("step %d %s again: %v, want ErrSnapOutOfDate", step, op, err)
			}
		case r < 95: // hard state
			commit = max(commit, min(last, commit+rng.Uint64N(4)))
			hs := &raftpb.HardState{Term: new(term), Vote: new(uint64(rng.IntN(4))), Commit: new(commit)}
			op = fmt.Sprintf("hard state %v", hs)
			if err := ms.SetHardState(hs); err != nil {
				t.Fatalf("step %d %s: SetHardState: %v", step, op, err)
			}
			if err := l.Save(hs, nil, nil); err != nil {
				t.Fatalf("step %d %s: Save: %v", step, op, err)
			}
		default:
			op = "reopen"
			l = env.reopen()
			l.cacheMaxBytes = 200
		}
		compareWithMemoryStorage(t, fmt.Sprintf("step %d %s", step, op), l, ms, rng)
	}
}

func compareWithMemoryStorage(t *testing.T, what string, l *RaftLog, ms *raft.MemoryStorage, rng *rand.Rand) {
	t.Helper()
	want, got := readRaftLogState(t, ms), readRaftLogState(t, l)
	if raft.IsEmptyHardState(want.hs) {
		want.hs = nil // MemoryStorage never stores an empty one
	}
	if diff := diffRaftLogState(want, got); diff != "" {
		t.Fatalf("%s: MemoryStorage vs RaftLog: %s", what, diff)
	}
	// Terms and entries around the boundaries, with size limits.
	for i := want.first - min(want.first, 2); i <= want.last+2; i++ {
		wt, werr := ms.Term(i)
		gt, gerr := l.Term(i)
		if wt != gt || werr != gerr {
			t.Fatalf("%s: Term(%d) = %d, %v; MemoryStorage %d, %v", what, i, gt, gerr, wt, werr)
		}
	}
	for k := 0; k < 5; k++ {
		lo := want.first - min(want.first, 1) + rng.Uint64N(want.last-want.first+3)
		hi := min(lo+rng.Uint64N(8), want.last+1)
		if lo > hi || lo == 0 {
			continue
		}
		maxSize := rng.Uint64N(300)
		if lo == hi && want.last < want.first {
			continue // MemoryStorage answers ErrUnavailable only via its dummy check
		}
		wantEnts, werr := ms.Entries(lo, hi, maxSize)
		gotEnts, gerr := l.Entries(lo, hi, maxSize)
		if werr != gerr || !equalEntries(wantEnts, gotEnts) {
			t.Fatalf("%s: Entries(%d, %d, %d) = %v, %v; MemoryStorage %v, %v", what, lo, hi, maxSize, gotEnts, gerr, wantEnts, werr)
		}
	}
}

// TestRaftLogCorruption checks that corrupt stored bytes produce errors
// wrapping ErrRaftLogCorrupt, never panics.
func TestRaftLogCorruption(t *testing.T) {
	setup := func(t *testing.T) *raftEnv {
		env := newRaftEnv(t, true, 0)
		l := env.open()
		hs := &raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(2))}
		if err := l.Save(hs, ents(1, 1, 1, 1, 1), nil); err != nil {
			t.Fatalf("Save: %v", err)
		}
		return env
	}
	put := func(t *testing.T, env *raftEnv, key, value []byte) {
		if err := env.db.LevelDB().Put(key, value, nil); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	wrongIndex, _ := proto.Marshal(&raftpb.Entry{Term: new(uint64(1)), Index: new(uint64(7))})
	for _, tc := range []struct {
		name  string
		index uint64
		value []byte
	}{
		{"undecodable", 2, []byte{0xff, 0xff, 0xff}},
		{"wrong index", 2, wrongIndex},
		{"missing", 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := setup(t)
			if tc.value == nil {
				if err := env.db.LevelDB().Delete(raftEntryKey(tc.index), nil); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			} else {
				put(t, env, raftEntryKey(tc.index), tc.value)
			}
			l := env.open()
			if _, err := l.Entries(1, 5, math.MaxUint64); !errors.Is(err, ErrRaftLogCorrupt) {
				t.Errorf("Entries: err = %v, want one wrapping ErrRaftLogCorrupt", err)
			}
			if _, err := l.Term(tc.index); !errors.Is(err, ErrRaftLogCorrupt) {
				t.Errorf("Term(%d): err = %v, want one wrapping ErrRaftLogCorrupt", tc.index, err)
			}
			if err := l.Compact(tc.index); !errors.Is(err, ErrRaftLogCorrupt) {
				t.Errorf("Compact(%d): err = %v, want one wrapping ErrRaftLogCorrupt", tc.index, err)
			}
		})
	}
	for _, tc := range []struct {
		name       string
		key, value []byte
	}{
		{"last entry", raftEntryKey(4), []byte{0xff, 0xff}},
		{"first entry", raftEntryKey(1), wrongIndex},
		{"hard state", []byte(raftHardStateKey), []byte{0xff, 0xff}},
		{"snapshot", []byte(raftSnapshotKey), []byte{0xff, 0xff}},
		{"boundary", []byte(raftFirstKey), []byte{1, 2, 3}},
		{"entry key", []byte(raftEntryPrefix + "zzzzzzzzzz"), []byte{}},
	} {
		t.Run("open/"+tc.name, func(t *testing.T) {
			env := setup(t)
			put(t, env, tc.key, tc.value)
			if _, err := env.db.OpenRaftLog(); !errors.Is(err, ErrRaftLogCorrupt) {
				t.Fatalf("OpenRaftLog: err = %v, want one wrapping ErrRaftLogCorrupt", err)
			}
		})
	}
	t.Run("open/commit beyond last", func(t *testing.T) {
		env := setup(t)
		value, _ := proto.Marshal(&raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(9))})
		put(t, env, []byte(raftHardStateKey), value)
		if _, err := env.db.OpenRaftLog(); !errors.Is(err, ErrRaftLogCorrupt) {
			t.Fatalf("OpenRaftLog: err = %v, want one wrapping ErrRaftLogCorrupt", err)
		}
	})
}

// raftTestNode is one replica of the in-memory RawNode cluster.
type raftTestNode struct {
	id      uint64
	dir     string
	db      *DB
	log     *RaftLog
	rn      *raft.RawNode
	applied uint64
	state   []string // applied proposals, in order (the "application")
	down    bool
}

type raftTestCluster struct {
	t     *testing.T
	nodes map[uint64]*raftTestNode
	msgs  []*raftpb.Message
}

var raftTestLogger = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}

func (c *raftTestCluster) start(n *raftTestNode) {
	c.t.Helper()
	db, err := Open(n.dir, Options{Sync: false})
	if err != nil {
		c.t.Fatalf("node %d: Open: %v", n.id, err)
	}
	l, err := db.OpenRaftLog()
	if err != nil {
		c.t.Fatalf("node %d: OpenRaftLog: %v", n.id, err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              n.id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         l,
		Applied:         n.applied,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		Logger:          raftTestLogger,
	})
	if err != nil {
		c.t.Fatalf("node %d: NewRawNode: %v", n.id, err)
	}
	n.db, n.log, n.rn, n.down = db, l, rn, false
}

func (c *raftTestCluster) stop(n *raftTestNode) {
	c.t.Helper()
	n.down = true
	n.rn, n.log = nil, nil
	if err := n.db.Close(); err != nil {
		c.t.Fatalf("node %d: Close: %v", n.id, err)
	}
}

// stabilize runs every live node's Ready loop and delivers messages until
// nothing is left to do.
func (c *raftTestCluster) stabilize() {
	c.t.Helper()
	for round := 0; round < 1000; round++ {
		busy := false
		for id := uint64(1); id <= 3; id++ {
			n := c.nodes[id]
			for !n.down && n.rn.HasReady() {
				busy = true
				rd := n.rn.Ready()
				if err := n.log.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
					c.t.Fatalf("node %d: Save: %v", id, err)
				}
				if !raft.IsEmptySnap(rd.Snapshot) {
					n.state = nil
					if d := string(rd.Snapshot.GetData()); d != "" {
						n.state = strings.Split(d, ",")
					}
					n.applied = rd.Snapshot.GetMetadata().GetIndex()
				}
				for _, e := range rd.CommittedEntries {
					if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
						n.state = append(n.state, string(e.GetData()))
					}
					n.applied = e.GetIndex()
				}
				c.msgs = append(c.msgs, rd.Messages...)
				n.rn.Advance(rd)
			}
		}
		msgs := c.msgs
		c.msgs = nil
		for _, m := range msgs {
			busy = true
			to, from := c.nodes[m.GetTo()], c.nodes[m.GetFrom()]
			if to.down || from.down {
				continue
			}
			_ = to.rn.Step(m)
			if m.GetType() == raftpb.MsgSnap {
				from.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
			}
		}
		if !busy {
			return
		}
	}
	c.t.Fatal("the cluster did not stabilize in 1000 rounds")
}

// catchUp ticks the leader until node n has applied what the leader has.
func (c *raftTestCluster) catchUp(leader, n *raftTestNode) {
	c.t.Helper()
	for tick := 0; tick < 50; tick++ {
		if slices.Equal(n.state, leader.state) && n.applied == leader.applied {
			return
		}
		leader.rn.Tick()
		c.stabilize()
	}
	c.t.Fatalf("node %d did not catch up: state %v applied %d, leader %v applied %d", n.id, n.state, n.applied, leader.state, leader.applied)
}

func (c *raftTestCluster) propose(leader *raftTestNode, values ...string) {
	c.t.Helper()
	for _, v := range values {
		if err := leader.rn.Propose([]byte(v)); err != nil {
			c.t.Fatalf("Propose(%s): %v", v, err)
		}
	}
	c.stabilize()
}

func (c *raftTestCluster) checkStates(want []string) {
	c.t.Helper()
	for id := uint64(1); id <= 3; id++ {
		if n := c.nodes[id]; !n.down && !slices.Equal(n.state, want) {
			c.t.Fatalf("node %d state = %v, want %v", id, n.state, want)
		}
	}
}

// TestRaftLogRawNodeCluster runs three raft.RawNodes on RaftLogs, elects a
// leader, commits proposals, restarts a follower from its reopened
// database twice (catching up by log entries, then by snapshot) and checks
// it rejoins.
func TestRaftLogRawNodeCluster(t *testing.T) {
	c := &raftTestCluster{t: t, nodes: map[uint64]*raftTestNode{}}
	voters := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	for id := uint64(1); id <= 3; id++ {
		n := &raftTestNode{id: id, dir: t.TempDir()}
		c.nodes[id] = n
		// Bootstrap as raft recommends: a log starting after a snapshot
		// at index 1 holding the membership.
		db, err := Open(n.dir, Options{Sync: false})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		l, err := db.OpenRaftLog()
		if err != nil {
			t.Fatalf("OpenRaftLog: %v", err)
		}
		boot := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1)), ConfState: voters}}
		if err := l.Save(nil, nil, boot); err != nil {
			t.Fatalf("Save(bootstrap snapshot): %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		n.applied = 1
		c.start(n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if !n.down {
				n.db.Close()
			}
		}
	})
	leader, follower := c.nodes[1], c.nodes[3]

	if err := leader.rn.Campaign(); err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	c.stabilize()
	for id := uint64(1); id <= 3; id++ {
		if lead := c.nodes[id].rn.BasicStatus().Lead; lead != 1 {
			t.Fatalf("node %d sees leader %d, want 1", id, lead)
		}
	}
	var want []string
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf("v%d", i))
	}
	c.propose(leader, want...)
	c.checkStates(want)

	// Restart the follower; it catches up from the leader's log.
	c.stop(follower)
	c.propose(leader, "v6", "v7")
	want = append(want, "v6", "v7")
	c.checkStates(want)
	c.start(follower)
	if last, _ := follower.log.LastIndex(); last < follower.applied {
		t.Fatalf("restarted follower: LastIndex %d below its applied index %d", last, follower.applied)
	}
	c.catchUp(leader, follower)
	c.checkStates(want)
	if snap, _ := follower.log.Snapshot(); snap.GetMetadata().GetIndex() != 1 {
		t.Fatalf("follower snapshot index %d, want 1 (it should have caught up by log entries)", snap.GetMetadata().GetIndex())
	}

	// Restart it again after the others compacted their logs past it; it
	// catches up from a snapshot.
	c.stop(follower)
	c.propose(leader, "v8", "v9", "v10")
	want = append(want, "v8", "v9", "v10")
	c.checkStates(want)
	for _, id := range []uint64{1, 2} {
		n := c.nodes[id]
		if _, err := n.log.CreateSnapshot(n.applied, voters, []byte(strings.Join(n.state, ","))); err != nil {
			t.Fatalf("node %d: CreateSnapshot(%d): %v", id, n.applied, err)
		}
		if err := n.log.Compact(n.applied); err != nil {
			t.Fatalf("node %d: Compact(%d): %v", id, n.applied, err)
		}
	}
	c.start(follower)
	c.catchUp(leader, follower)
	c.checkStates(want)
	snap, _ := follower.log.Snapshot()
	if leaderSnap, _ := leader.log.Snapshot(); snap.GetMetadata().GetIndex() != leaderSnap.GetMetadata().GetIndex() {
		t.Fatalf("follower snapshot index %d, want the leader's %d (it should have caught up by snapshot)", snap.GetMetadata().GetIndex(), leaderSnap.GetMetadata().GetIndex())
	}

	// The cluster keeps working, and the follower's log reads back after a
	// restart.
	c.propose(leader, "v11")
	want = append(want, "v11")
	c.checkStates(want)
	before := readRaftLogState(t, follower.log)
	c.stop(follower)
	c.start(follower)
	if diff := diffRaftLogState(before, readRaftLogState(t, follower.log)); diff != "" {
		t.Fatalf("follower log differs after restart: %s", diff)
	}
	c.catchUp(leader, follower)
	c.checkStates(want)
}
