package raftlog

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

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
	// Like raft, never truncate at or below the commit index (Open
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

func compareWithMemoryStorage(t *testing.T, what string, l *Log, ms *raft.MemoryStorage, rng *rand.Rand) {
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
// wrapping ErrCorrupt, never panics.
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
			if _, err := l.Entries(1, 5, math.MaxUint64); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Entries: err = %v, want one wrapping ErrCorrupt", err)
			}
			if _, err := l.Term(tc.index); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Term(%d): err = %v, want one wrapping ErrCorrupt", tc.index, err)
			}
			if err := l.Compact(tc.index); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Compact(%d): err = %v, want one wrapping ErrCorrupt", tc.index, err)
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
			if _, err := Open(env.db); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: err = %v, want one wrapping ErrCorrupt", err)
			}
		})
	}
	t.Run("open/commit beyond last", func(t *testing.T) {
		env := setup(t)
		value, _ := proto.Marshal(&raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(9))})
		put(t, env, []byte(raftHardStateKey), value)
		if _, err := Open(env.db); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: err = %v, want one wrapping ErrCorrupt", err)
		}
	})
}
