package membership

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
	"github.com/pbftnode/pbftnode/wire"
)

const cluster = "test-cluster"

var pbftRules = Rules{MinMembers: 4}

type fixture struct {
	cfg     Config
	keys    map[uint32]ed25519.PrivateKey
	admins  []ed25519.PrivateKey
	nextKey int64
}

// newFixture returns a configuration of n members (indices 0..n-1) with
// the given number of administrators and threshold.
func newFixture(t *testing.T, n, admins, threshold int) *fixture {
	f := &fixture{keys: map[uint32]ed25519.PrivateKey{}, nextKey: 100}
	for i := 0; i < n; i++ {
		f.cfg.Members = append(f.cfg.Members, f.member(t, uint32(i)))
	}
	for i := 0; i < admins; i++ {
		k := cryptotest.Key(t, int64(1000+i))
		f.admins = append(f.admins, k)
		f.cfg.Admins = append(f.cfg.Admins, k.Public().(ed25519.PublicKey))
	}
	f.cfg.AdminThreshold = threshold
	if err := f.cfg.Check(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) member(t *testing.T, index uint32) Member {
	f.nextKey++
	k := cryptotest.Key(t, f.nextKey)
	f.keys[index] = k
	return Member{Index: index, PublicKey: k.Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 26600+index)}
}

func (f *fixture) sign(ch Change, by ...int) SignedChange {
	sc := SignedChange{Change: ch.Encode()}
	for _, i := range by {
		sc.Signatures = append(sc.Signatures, Sign(cluster, sc.Change, f.admins[i]))
	}
	return sc
}

func TestApplyChangesMembers(t *testing.T) {
	f := newFixture(t, 4, 3, 2)
	add := f.member(t, 4)
	next, ch, err := f.cfg.Apply(cluster, f.sign(Change{Epoch: 0, Kind: AddReplica, Member: add}, 0, 2), pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Kind != AddReplica || next.Epoch != 1 || len(next.Members) != 5 || next.Position(4) != 4 {
		t.Fatalf("after add: epoch %d, members %v", next.Epoch, next.Indices())
	}
	if len(f.cfg.Members) != 4 {
		t.Fatal("Apply modified the previous configuration")
	}
	next, _, err = next.Apply(cluster, f.sign(Change{Epoch: 1, Kind: RemoveReplica, Member: Member{Index: 1}}, 1, 2), pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(next.Indices()); got != "[0 2 3 4]" || !next.IsRetired(1) {
		t.Fatalf("after remove: members %s, retired %v", got, next.Retired)
	}
	newKey := cryptotest.Key(t, 9999).Public().(ed25519.PublicKey)
	next, _, err = next.Apply(cluster, f.sign(Change{Epoch: 2, Kind: RotateKey, Member: Member{Index: 2, PublicKey: newKey}}, 0, 1), pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := next.Member(2); !m.PublicKey.Equal(newKey) || next.Epoch != 3 {
		t.Fatalf("after rotate: member 2 key %x, epoch %d", m.PublicKey, next.Epoch)
	}
	round, err := Decode(next.Encode())
	if err != nil || round.Digest() != next.Digest() {
		t.Fatalf("encode/decode round trip: %v", err)
	}
}

func TestApplyRefuses(t *testing.T) {
	f := newFixture(t, 4, 3, 2)
	add := f.member(t, 4)
	dup := add
	dup.Index = 7
	dup.PublicKey = f.cfg.Members[0].PublicKey
	five, _, err := f.cfg.Apply(cluster, f.sign(Change{Kind: AddReplica, Member: add}, 0, 1), pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	afterRemove, _, err := five.Apply(cluster, f.sign(Change{Epoch: 1, Kind: RemoveReplica, Member: Member{Index: 3}}, 0, 1), pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	reuse := f.member(t, 3)
	for _, tc := range []struct {
		name string
		cfg  Config
		sc   SignedChange
		want error
	}{
		{"one signature of two", f.cfg, f.sign(Change{Kind: AddReplica, Member: add}, 0), ErrBadSignatures},
		{"the same admin twice", f.cfg, f.sign(Change{Kind: AddReplica, Member: add}, 1, 1), ErrBadSignatures},
		{"replayed in the next epoch", five, f.sign(Change{Kind: AddReplica, Member: add}, 0, 1), ErrWrongEpoch},
		{"index already a member", f.cfg, f.sign(Change{Kind: AddReplica, Member: Member{Index: 2, PublicKey: add.PublicKey, Address: add.Address}}, 0, 1), ErrRefused},
		{"key already a member's", f.cfg, f.sign(Change{Kind: AddReplica, Member: dup}, 0, 1), ErrRefused},
		{"bad address", f.cfg, f.sign(Change{Kind: AddReplica, Member: Member{Index: 9, PublicKey: add.PublicKey, Address: "not-a-multiaddr"}}, 0, 1), ErrRefused},
		{"below four members", f.cfg, f.sign(Change{Kind: RemoveReplica, Member: Member{Index: 0}}, 0, 1), ErrRefused},
		{"remove a non-member", f.cfg, f.sign(Change{Kind: RemoveReplica, Member: Member{Index: 42}}, 0, 1), ErrRefused},
		{"retired index comes back", afterRemove, f.sign(Change{Epoch: 2, Kind: AddReplica, Member: reuse}, 0, 1), ErrRefused},
		{"rotate to a member's key", f.cfg, f.sign(Change{Kind: RotateKey, Member: Member{Index: 1, PublicKey: f.cfg.Members[0].PublicKey}}, 0, 1), ErrRefused},
		{"no admins left", f.cfg, f.sign(Change{Kind: SetAdmins}, 0, 1), ErrRefused},
		{"threshold above admins", f.cfg, f.sign(Change{Kind: SetAdmins, Admins: f.cfg.Admins[:1], AdminThreshold: 2}, 0, 1), ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := tc.cfg.Apply(cluster, tc.sc, pbftRules); !errors.Is(err, tc.want) {
				t.Fatalf("Apply: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("signature over another cluster", func(t *testing.T) {
		sc := SignedChange{Change: Change{Kind: AddReplica, Member: add}.Encode()}
		for _, k := range f.admins[:2] {
			sc.Signatures = append(sc.Signatures, Sign("other-cluster", sc.Change, k))
		}
		if _, _, err := f.cfg.Apply(cluster, sc, pbftRules); !errors.Is(err, ErrBadSignatures) {
			t.Fatalf("Apply: %v", err)
		}
	})
	t.Run("tampered after signing", func(t *testing.T) {
		sc := f.sign(Change{Kind: AddReplica, Member: add}, 0, 1)
		other := add
		other.Address = "/ip4/10.0.0.1/tcp/1"
		sc.Change = Change{Kind: AddReplica, Member: other}.Encode()
		if _, _, err := f.cfg.Apply(cluster, sc, pbftRules); !errors.Is(err, ErrBadSignatures) {
			t.Fatalf("Apply: %v", err)
		}
	})
}

// certify makes the certificate of sc applied to prev, with votes of the
// given members of prev.
func (f *fixture) certify(t *testing.T, prev Config, sc SignedChange, seq uint64, voters ...uint32) (Certificate, Config) {
	next, _, err := prev.Apply(cluster, sc, pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	cert := Certificate{Change: sc, Config: next, Sequence: seq}
	for _, i := range voters {
		cert.Votes = append(cert.Votes, SignVote(cluster, Vote{Epoch: next.Epoch, ConfigDigest: next.Digest(), Sequence: seq, From: i}, f.keys[i]))
	}
	return cert, next
}

func TestHistoryVerifies(t *testing.T) {
	f := newFixture(t, 4, 1, 1)
	genesis := f.cfg.Clone()
	c1, e1 := f.certify(t, genesis, f.sign(Change{Kind: AddReplica, Member: f.member(t, 4)}, 0), 128, 0, 1, 2)
	c2, e2 := f.certify(t, e1, f.sign(Change{Epoch: 1, Kind: RemoveReplica, Member: Member{Index: 1}}, 0), 256, 0, 2, 3, 4)
	h := History{Certificates: []Certificate{c1, c2}}
	decoded, err := DecodeHistory(h.Encode(genesis))
	if err != nil {
		t.Fatal(err)
	}
	got, from, err := VerifyHistory(cluster, genesis, decoded, pbftRules)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != e2.Digest() || from != 256 {
		t.Fatalf("history proves epoch %d from %d, want epoch %d from 256", got.Epoch, from, e2.Epoch)
	}

	short := c2
	short.Votes = short.Votes[:2] // epoch 1 has 5 members: a quorum is 4
	if _, _, err := VerifyHistory(cluster, genesis, History{Certificates: []Certificate{c1, short}}, pbftRules); !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("too few votes: %v", err)
	}
	repeated := c2
	repeated.Votes = []*wire.Signed{c2.Votes[0], c2.Votes[0], c2.Votes[0], c2.Votes[0]}
	if _, _, err := VerifyHistory(cluster, genesis, History{Certificates: []Certificate{c1, repeated}}, pbftRules); !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("one vote four times: %v", err)
	}
	// A removed member's vote does not count in the next epoch.
	c3, _ := f.certify(t, e2, f.sign(Change{Epoch: 2, Kind: AddReplica, Member: f.member(t, 5)}, 0), 384, 0, 1, 2)
	if _, _, err := VerifyHistory(cluster, genesis, History{Certificates: []Certificate{c1, c2, c3}}, pbftRules); !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("votes of a removed member counted: %v", err)
	}
	// A certificate whose configuration is not what its change produces.
	forged := c1
	forged.Config = e1.Clone()
	forged.Config.Members[4].Address = "/ip4/10.9.9.9/tcp/1"
	if _, _, err := VerifyHistory(cluster, genesis, History{Certificates: []Certificate{forged}}, pbftRules); !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("forged configuration: %v", err)
	}
	// Skipping an epoch.
	if _, _, err := VerifyHistory(cluster, genesis, History{Certificates: []Certificate{c2}}, pbftRules); !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("skipped epoch: %v", err)
	}
}

func TestDecodeBoundsHostileInput(t *testing.T) {
	for _, b := range [][]byte{nil, {0xff}, make([]byte, MaxEncodedConfig+1)} {
		if _, err := Decode(b); err == nil {
			t.Fatalf("Decode(%d bytes) accepted", len(b))
		}
	}
	if _, err := DecodeSignedChange(make([]byte, MaxEncodedChange+1)); err == nil {
		t.Fatal("oversized signed change accepted")
	}
	if _, err := DecodeHistory(make([]byte, MaxEncodedHistory+1)); err == nil {
		t.Fatal("oversized history accepted")
	}
}

func FuzzDecode(f *testing.F) {
	fx := newFixture(&testing.T{}, 4, 1, 1)
	f.Add(fx.cfg.Encode())
	f.Add(fx.sign(Change{Kind: RemoveReplica, Member: Member{Index: 1}}, 0).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := Decode(b); err == nil {
			if err := c.Check(); err != nil {
				t.Fatalf("Decode accepted a config Check refuses: %v", err)
			}
		}
		if sc, err := DecodeSignedChange(b); err == nil {
			_, _, _ = fx.cfg.Apply(cluster, sc, pbftRules)
		}
		if h, err := DecodeHistory(b); err == nil {
			_, _, _ = VerifyHistory(cluster, fx.cfg, h, pbftRules)
		}
	})
}
