package raftlog

import (
	"fmt"
	"math"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/storage"
)

// TestRaftLogDurability saves, compacts, snapshots and reopens the
// database in between, on disk, checking everything reads back.
func TestRaftLogDurability(t *testing.T) {
	env := newRaftEnv(t, true, -1)
	env.db.Close()
	env.opts = storage.DefaultOptions(nil)
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

// TestRaftLogSyncsOnlyWhatRaftNeeds checks etcd raft's MustSync rule:
// entries, a snapshot, a new term or a new vote are synced; a hard state
// whose only change is the commit index is not, and still reads back after
// a reopen.
func TestRaftLogSyncsOnlyWhatRaftNeeds(t *testing.T) {
	env := newRaftEnv(t, true, -1)
	l := env.open()
	hs := func(term, vote, commit uint64) *raftpb.HardState {
		return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(3)), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}
	steps := []struct {
		name    string
		hs      *raftpb.HardState
		entries []*raftpb.Entry
		snap    *raftpb.Snapshot
		want    SaveCounts
	}{
		{"entries", hs(1, 1, 0), ents(1, 1, 1), nil, SaveCounts{Synced: 1}},
		{"commit only", hs(1, 1, 2), nil, nil, SaveCounts{Synced: 1, Unsynced: 1}},
		{"entries with commit", hs(1, 1, 3), ents(3, 1, 1), nil, SaveCounts{Synced: 2, Unsynced: 1}},
		{"new term", hs(2, 0, 3), nil, nil, SaveCounts{Synced: 3, Unsynced: 1}},
		{"new vote", hs(2, 2, 3), nil, nil, SaveCounts{Synced: 4, Unsynced: 1}},
		{"commit only again", hs(2, 2, 4), nil, nil, SaveCounts{Synced: 4, Unsynced: 2}},
	}
	for _, s := range steps {
		if err := l.Save(s.hs, s.entries, s.snap); err != nil {
			t.Fatalf("%s: Save: %v", s.name, err)
		}
		if got := l.Saves(); got != s.want {
			t.Fatalf("%s: saves %+v, want %+v", s.name, got, s.want)
		}
	}
	l = checkReload(t, env, l)
	if st := readRaftLogState(t, l); st.hs.GetCommit() != 4 {
		t.Fatalf("unsynced commit after reopen: %d, want 4", st.hs.GetCommit())
	}
	if err := l.Save(hs(3, 2, 9), nil, snap); err != nil {
		t.Fatalf("Save(snapshot): %v", err)
	}
	if err := l.Save(nil, nil, nil); err != nil {
		t.Fatalf("Save(nothing): %v", err)
	}
	if got, want := l.Saves(), (SaveCounts{Synced: 1}); got != want {
		t.Fatalf("snapshot, then nothing: saves %+v, want %+v", got, want)
	}
}
