package statetransfer

import (
	"errors"
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

type brokenSnap struct{ snap }

func (*brokenSnap) Chunk([]byte, int) ([]*wire.KeyValue, []byte, error) {
	return nil, nil, errors.New("released")
}

func TestServe(t *testing.T) {
	req := &wire.StateRequest{Sequence: 7, StartKey: []byte("k001")}
	if c := Serve(nil, req, 100); !c.Unavailable || c.Sequence != 7 || string(c.StartKey) != "k001" {
		t.Fatalf("nil snapshot: %v", c)
	}
	c, err := ServeChunk(&brokenSnap{snap{seq: 7}}, req, 100)
	if !c.Unavailable || err == nil {
		t.Fatalf("unreadable snapshot: %v, %v", c, err)
	}
	s := state(9, 5, "")
	c = Serve(s, req, 10)
	if c.Unavailable || c.Sequence != 9 || string(c.StartKey) != "k001" || string(c.Entries[0].Key) != "k001" || len(c.NextKey) == 0 {
		t.Fatalf("chunk %v", c)
	}
}

func TestPickAtOrAboveNeed(t *testing.T) {
	snaps := []*snap{{seq: 2}, {seq: 3}}
	for need, want := range map[uint64]uint64{1: 3, 2: 2, 3: 3, 4: 0} {
		got := Pick(snaps, need)
		if (got == nil) != (want == 0) || (got != nil && got.Sequence() != want) {
			t.Errorf("need %d: got %v, want snapshot %d", need, got, want)
		}
	}
	if Pick([]*snap(nil), 1) != nil {
		t.Error("no snapshots: not an untyped nil")
	}
}

func TestAtExactly(t *testing.T) {
	snaps := map[uint64]*snap{2: {seq: 2}}
	if got := At(snaps, 2); got == nil || got.Sequence() != 2 {
		t.Errorf("At 2: %v", got)
	}
	if At(snaps, 3) != nil {
		t.Error("At 3: not an untyped nil")
	}
}

func TestRingSkipsSelf(t *testing.T) {
	for _, tc := range []struct {
		n      int
		self   uint32
		prefer int
		peers  []uint32
		first  uint32
	}{
		{4, 1, 3, []uint32{0, 2, 3}, 3},
		{4, 1, -1, []uint32{0, 2, 3}, 2},
		{4, 1, 1, []uint32{0, 2, 3}, 2}, // self is not a peer
		{4, 3, 9, []uint32{0, 1, 2}, 0}, // out of range; wraps after self
		{3, 0, -1, []uint32{1, 2}, 1},
	} {
		peers, first := Ring(tc.n, tc.self, tc.prefer)
		if !slices.Equal(peers, tc.peers) || peers[first] != tc.first {
			t.Errorf("Ring(%d, %d, %d) = %v, %d; want %v starting at %d", tc.n, tc.self, tc.prefer, peers, first, tc.peers, tc.first)
		}
	}
}
