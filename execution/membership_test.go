package execution

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
	"github.com/pbftnode/pbftnode/membership"
)

const memberCluster = "exec-membership"

func memberFixture(t *testing.T) (MembershipRules, ed25519.PrivateKey) {
	admin := cryptotest.Key(t, 77)
	g := membership.Config{Admins: []ed25519.PublicKey{admin.Public().(ed25519.PublicKey)}, AdminThreshold: 1}
	for i := 0; i < 4; i++ {
		g.Members = append(g.Members, membership.Member{Index: uint32(i), PublicKey: cryptotest.Key(t, int64(i+1)).Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 9000+i)})
	}
	return MembershipRules{
		ClusterID: memberCluster, Genesis: g, Rules: membership.Rules{MinMembers: 4},
		ActiveFrom: func(seq uint64) uint64 { return (seq/8 + 1) * 8 }, // after the next multiple of 8
	}, admin
}

func openMemberReplica(t *testing.T, dir string, rules MembershipRules) *testReplica {
	t.Helper()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := NewExecutor(db, kv, slog.New(slog.DiscardHandler), WithMembership(rules))
	if err != nil {
		t.Fatal(err)
	}
	return &testReplica{db: db, kv: kv, exe: exe}
}

func addChange(t *testing.T, epoch uint64, index uint32, admin ed25519.PrivateKey) []byte {
	ch := membership.Change{Epoch: epoch, Kind: membership.AddReplica, Member: membership.Member{
		Index: index, PublicKey: cryptotest.Key(t, int64(100+index)).Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 9000+index)}}
	sc := membership.SignedChange{Change: ch.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(memberCluster, sc.Change, admin))
	return sc.Encode()
}

func TestExecutorAppliesConfigurationChanges(t *testing.T) {
	rules, admin := memberFixture(t)
	dir := t.TempDir()
	r := openMemberReplica(t, dir, rules)
	apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: putOp("k", "v")})
	before := r.exe.StateDigest()
	add4 := addChange(t, 0, 4, admin)
	replies := apply(t, r.exe, 2,
		Request{ClientID: bob, RequestNumber: 1, ConfigChange: add4},
		Request{ClientID: bob, RequestNumber: 2, ConfigChange: addChange(t, 1, 5, admin)},
		Request{ClientID: alice, RequestNumber: 2, Operation: putOp("k", "w")})
	if len(replies) != 3 || !strings.HasPrefix(string(replies[0].Result), ConfigChangeAccepted) {
		t.Fatalf("replies %v", replies)
	}
	if got := string(replies[1].Result); !strings.Contains(got, "takes effect at sequence 8") {
		t.Fatalf("a second change while one is pending: %q", got)
	}
	m := r.exe.Membership()
	if m.Current.Epoch != 1 || len(m.Current.Members) != 5 || m.ActiveFrom != 8 || m.At(7).Epoch != 0 || m.At(8).Epoch != 1 || !m.Pending(2) {
		t.Fatalf("membership after the change: epoch %d, %d members, from %d", m.Current.Epoch, len(m.Current.Members), m.ActiveFrom)
	}
	if r.exe.StateDigest() == before {
		t.Fatal("the state digest does not cover the membership")
	}
	// Exactly once: the same request again answers from the cache.
	again := apply(t, r.exe, 3, Request{ClientID: bob, RequestNumber: 1, ConfigChange: add4})
	if string(again[0].Result) != string(replies[0].Result) || r.exe.Membership().Current.Epoch != 1 {
		t.Fatalf("a retransmitted change ran again: %q", again[0].Result)
	}
	// A stale change (signed for epoch 0) is refused once epoch 1 holds.
	for seq := uint64(4); seq <= 8; seq++ {
		apply(t, r.exe, seq)
	}
	stale := apply(t, r.exe, 9, Request{ClientID: bob, RequestNumber: 3, ConfigChange: addChange(t, 0, 6, admin)})
	if !strings.HasPrefix(string(stale[0].Result), ConfigChangeRefused) {
		t.Fatalf("stale change: %q", stale[0].Result)
	}
	digest := r.exe.StateDigest()
	r.db.Close()
	r = openMemberReplica(t, dir, rules)
	defer r.db.Close()
	if got := r.exe.Membership(); got.Current.Digest() != m.Current.Digest() || got.ActiveFrom != 8 || r.exe.StateDigest() != digest {
		t.Fatal("the membership did not survive a restart")
	}
}

func TestExecutorRefusesChangesWithoutMembership(t *testing.T) {
	_, admin := memberFixture(t)
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	replies := apply(t, r.exe, 1, Request{ClientID: bob, RequestNumber: 1, ConfigChange: addChange(t, 0, 4, admin)})
	if !strings.HasPrefix(string(replies[0].Result), ConfigChangeRefused) {
		t.Fatalf("result %q", replies[0].Result)
	}
}

func TestMembershipTravelsWithTheState(t *testing.T) {
	rules, admin := memberFixture(t)
	src := openMemberReplica(t, t.TempDir(), rules)
	defer src.db.Close()
	apply(t, src.exe, 1, Request{ClientID: bob, RequestNumber: 1, ConfigChange: addChange(t, 0, 4, admin)})
	snap, err := src.exe.TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	dst := openMemberReplica(t, t.TempDir(), rules)
	defer dst.db.Close()
	if d := restoreChunks(t, dst, chunkAll(t, snap, 1<<20)); d != snap.Digest() {
		t.Fatal("restored digest differs")
	}
	if dst.exe.Membership().Current.Epoch != 1 {
		t.Fatal("membership not restored")
	}
}
