package raftnode

import (
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
)

func indices(rs []node.Replica) []uint32 {
	out := make([]uint32, len(rs))
	for i, r := range rs {
		out[i] = r.Index
	}
	slices.Sort(out)
	return out
}

// While raft's configuration is joint, the transport admits the members
// a removal took out of C_new (they vote in C_old), and a removed replica
// that still votes there keeps its links; otherwise the applied
// configuration's members (or only itself, once removed).
func TestTransportKeepsOutgoingVotersWhileJoint(t *testing.T) {
	mem := func(i uint32) membership.Member { return membership.Member{Index: i} }
	cur := membership.Config{Epoch: 3, Members: []membership.Member{mem(0), mem(2)}, Retired: []uint32{1}}
	outgoing := []membership.Member{mem(1)}
	for _, tc := range []struct {
		self     uint32
		outgoing []membership.Member
		want     []uint32
	}{
		{self: 0, outgoing: outgoing, want: []uint32{0, 1, 2}},
		{self: 1, outgoing: outgoing, want: []uint32{0, 1, 2}},
		{self: 0, want: []uint32{0, 2}},
		{self: 1, want: []uint32{1}},
	} {
		n := &Node{cfg: node.Config{Index: tc.self, Self: mem(tc.self)}}
		if got := indices(n.transportReplicas(cur, tc.outgoing)); !slices.Equal(got, tc.want) {
			t.Errorf("replica %d, outgoing %v: transport admits %v, want %v", tc.self, tc.outgoing, got, tc.want)
		}
	}
}
