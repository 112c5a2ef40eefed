package p2p

import (
	"testing"
)

// A member added by SetMembers is dialed and admitted, one removed by it
// is cut off both ways; the gater and the replica handler follow the set.
func TestSetMembersStartsAndStopsLinks(t *testing.T) {
	hosts, keys := startCluster(t, 2, nil)
	a := hosts[0]
	c := newTestKey(t)
	all := append(membersOf(keys), Member{Index: 2, ID: c.id})
	all[0].Addr = listenAddr(t, a)
	all[1].Addr = listenAddr(t, hosts[1])
	newcomer := newTestHost(t, testConfig(t, c, 2, all, 9))

	// Not yet a member of a's set: its frame waits in its queue while a's
	// gater refuses its dials.
	newcomer.Send(0, []byte("early"))
	waitFor(t, "a to refuse the newcomer", func() bool { return a.Stats().RejectedPeers >= 1 })
	assertNoFrame(t, replicaFrames(a), "before the newcomer is a member")
	if a.Send(2, []byte("to nobody")) {
		t.Fatal("a sent to index 2 before it was a member")
	}

	all[2].Addr = listenAddr(t, newcomer)
	if err := a.SetMembers(all); err != nil {
		t.Fatal(err)
	}
	f := receive(t, replicaFrames(a), "the newcomer's queued frame")
	if string(f.Data) != "early" || f.FromIndex != 2 || f.From != c.id {
		t.Fatalf("got %q from index %d (%s)", f.Data, f.FromIndex, f.From)
	}
	if !a.Send(2, []byte("welcome")) {
		t.Fatal("a could not queue a frame for its new member")
	}
	if f := receive(t, replicaFrames(newcomer), "a's frame to the new member"); string(f.Data) != "welcome" || f.FromIndex != 0 {
		t.Fatalf("newcomer got %q from index %d", f.Data, f.FromIndex)
	}

	// Removed again: a drops frames for it and refuses its connections.
	rejected := a.Stats().RejectedPeers
	if err := a.SetMembers(all[:2]); err != nil {
		t.Fatal(err)
	}
	if a.Send(2, []byte("gone")) {
		t.Fatal("a still routes frames to a removed member")
	}
	newcomer.Send(0, []byte("late"))
	waitFor(t, "a to refuse the removed member again", func() bool { return a.Stats().RejectedPeers > rejected })
	assertNoFrame(t, replicaFrames(a), "after the removal")
	// The kept member is unaffected.
	hosts[1].Send(0, []byte("still here"))
	if f := receive(t, replicaFrames(a), "the kept member's frame"); string(f.Data) != "still here" || f.FromIndex != 1 {
		t.Fatalf("got %q from index %d", f.Data, f.FromIndex)
	}
}

func TestSetMembersRefusesASetWithoutSelf(t *testing.T) {
	hosts, keys := startCluster(t, 2, nil)
	other := newTestKey(t)
	if err := hosts[0].SetMembers([]Member{{Index: 1, ID: keys[1].id}}); err == nil {
		t.Fatal("accepted a member set without this replica")
	}
	if err := hosts[0].SetMembers([]Member{{Index: 0, ID: other.id}, {Index: 1, ID: keys[1].id}}); err == nil {
		t.Fatal("accepted a member set giving this replica's index another key")
	}
	if err := hosts[0].SetMembers([]Member{{Index: 0, ID: keys[0].id}, {Index: 1, ID: keys[0].id}}); err == nil {
		t.Fatal("accepted a key twice")
	}
}

// A member whose key changes (same index, new peer ID) gets a new link;
// the old key is refused from then on.
func TestSetMembersFollowsARotatedKey(t *testing.T) {
	hosts, keys := startCluster(t, 2, nil)
	a, old := hosts[0], hosts[1]
	rotated := newTestKey(t)
	members := []Member{{Index: 0, ID: keys[0].id, Addr: listenAddr(t, a)}, {Index: 1, ID: rotated.id}}
	replacement := newTestHost(t, testConfig(t, rotated, 1, members, 5))
	members[1].Addr = listenAddr(t, replacement)
	if err := a.SetMembers(members); err != nil {
		t.Fatal(err)
	}
	if !a.Send(1, []byte("to the new key")) {
		t.Fatal("a could not queue a frame for index 1")
	}
	if f := receive(t, replicaFrames(replacement), "a's frame at the new key"); string(f.Data) != "to the new key" || f.FromIndex != 0 {
		t.Fatalf("got %q from index %d", f.Data, f.FromIndex)
	}
	rejected := a.Stats().RejectedPeers
	old.Send(0, []byte("from the old key"))
	waitFor(t, "a to refuse the old key", func() bool { return a.Stats().RejectedPeers > rejected })
	assertNoFrame(t, replicaFrames(a), "from the old key")
	assertNoFrame(t, replicaFrames(old), "a's frames after the rotation")
}
