package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
)

// reconfigured is a cluster of four whose history adds replica 4 (epoch 1,
// from sequence 9) and then rotates replica 1's key (epoch 2, from
// sequence 17).
type reconfigured struct {
	cf      config.ClusterFile
	signers map[uint32]*crypto.Signer // the current keys
	old1    *crypto.Signer            // replica 1's key before the rotation
	h1, h2  []byte                    // encoded histories to epochs 1 and 2
}

func newReconfigured(t *testing.T) *reconfigured {
	t.Helper()
	cf, genesisSigners := testCluster(t, "c1", 4, 1)
	admin := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	cf.Admins = []string{hex.EncodeToString(admin.Public().(ed25519.PublicKey))}
	cf.AdminThreshold = 1
	genesis, err := cf.Genesis()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[uint32]ed25519.PrivateKey{}
	for i := range 4 {
		var s [ed25519.SeedSize]byte
		s[0], s[1] = 1, byte(i) // testCluster's seeds
		keys[uint32(i)] = ed25519.NewKeyFromSeed(s[:])
	}
	newKey := func(b byte) ed25519.PrivateKey {
		var s [ed25519.SeedSize]byte
		s[0], s[1] = 7, b
		return ed25519.NewKeyFromSeed(s[:])
	}
	certify := func(prev membership.Config, ch membership.Change, from uint64, voters ...uint32) (membership.Certificate, membership.Config) {
		sc := membership.SignedChange{Change: ch.Encode()}
		sc.Signatures = append(sc.Signatures, membership.Sign(cf.ClusterID, sc.Change, admin))
		next, _, err := prev.Apply(cf.ClusterID, sc, config.MembershipRules(config.ConsensusPBFT))
		if err != nil {
			t.Fatal(err)
		}
		cert := membership.Certificate{Change: sc, Config: next, Sequence: from}
		for _, i := range voters {
			v := membership.Vote{Epoch: next.Epoch, ConfigDigest: next.Digest(), Sequence: from, From: i}
			cert.Votes = append(cert.Votes, membership.SignVote(cf.ClusterID, v, keys[i]))
		}
		return cert, next
	}
	k4, rotated := newKey(4), newKey(1)
	add := membership.Member{Index: 4, PublicKey: k4.Public().(ed25519.PublicKey), Address: "/ip4/127.0.0.1/tcp/20004"}
	c1, e1 := certify(genesis, membership.Change{Kind: membership.AddReplica, Member: add}, 9, 0, 1, 2)
	keys[4] = k4
	c2, _ := certify(e1, membership.Change{Epoch: 1, Kind: membership.RotateKey,
		Member: membership.Member{Index: 1, PublicKey: rotated.Public().(ed25519.PublicKey)}}, 17, 0, 2, 3, 4)
	r := &reconfigured{cf: cf, signers: map[uint32]*crypto.Signer{}, old1: genesisSigners[1]}
	for i, s := range genesisSigners {
		r.signers[uint32(i)] = s
	}
	r.signers[4] = crypto.NewSigner(k4, cf.ClusterID)
	r.signers[1] = crypto.NewSigner(rotated, cf.ClusterID)
	r.h1 = membership.History{Certificates: []membership.Certificate{c1}}.Encode(genesis)
	r.h2 = membership.History{Certificates: []membership.Certificate{c1, c2}}.Encode(genesis)
	return r
}

// receipt returns the receipt of leaf 0 of a one-request batch at
// sequence executed in epoch, signed by the given signers (by member
// index), assembled with history.
func (rc *reconfigured) receipt(t *testing.T, epoch, sequence uint64, history []byte, by map[uint32]*crypto.Signer) *Receipt {
	t.Helper()
	op := execution.EncodePut([]byte("a"), []byte("1"))
	raw := []byte{0x08, 0x01}
	client := []byte("client-1")
	leaves := []crypto.Digest{LeafHash(client, 3, raw)}
	var sigs []Signature
	var first = SignBatch(rc.signers[0], epoch, sequence, crypto.Digest{5}, leaves)[0]
	for i, s := range by {
		rr := SignBatch(s, epoch, sequence, crypto.Digest{5}, leaves)[0]
		if _, err := VerifyReply(s.Public(), rc.cf.ClusterID, client, 3, raw, rr); err != nil {
			t.Fatalf("replica %d's reply receipt: %v", i, err)
		}
		sigs = append(sigs, Signature{Replica: i, Signature: hex.EncodeToString(rr.Signature)})
	}
	return Assemble(rc.cf.ClusterID, client, 3, op, raw, first, sigs, history)
}

// TestReceiptsFollowReconfiguration: a receipt of a later epoch is
// checked against the members its history proves from the cluster file's
// genesis: a joiner's signature counts, a rotated-out key does not, and
// the epoch and sequence must agree with the history.
func TestReceiptsFollowReconfiguration(t *testing.T) {
	rc := newReconfigured(t)
	s := rc.signers
	// Epoch 1 has five members (f = 1): the joiner 4 and member 0 suffice.
	if err := Verify(rc.receipt(t, 1, 12, rc.h1, map[uint32]*crypto.Signer{0: s[0], 4: s[4]}), rc.cf); err != nil {
		t.Fatalf("epoch 1 receipt with its history: %v", err)
	}
	// A longer history is fine while it leaves the sequence in epoch 1.
	if err := Verify(rc.receipt(t, 1, 16, rc.h2, map[uint32]*crypto.Signer{0: s[0], 4: s[4]}), rc.cf); err != nil {
		t.Fatalf("epoch 1 receipt with the history to epoch 2: %v", err)
	}
	// Epoch 2: replica 1 signs with its new key.
	if err := Verify(rc.receipt(t, 2, 20, rc.h2, map[uint32]*crypto.Signer{1: s[1], 4: s[4]}), rc.cf); err != nil {
		t.Fatalf("epoch 2 receipt: %v", err)
	}

	cases := []struct {
		name   string
		r      *Receipt
		reason error
	}{
		{"no history", rc.receipt(t, 1, 12, nil, map[uint32]*crypto.Signer{0: s[0], 4: s[4]}), ErrWrongEpoch},
		{"history short of the epoch", rc.receipt(t, 2, 20, rc.h1, map[uint32]*crypto.Signer{1: s[1], 4: s[4]}), ErrWrongEpoch},
		{"sequence before the epoch", rc.receipt(t, 1, 8, rc.h1, map[uint32]*crypto.Signer{0: s[0], 4: s[4]}), ErrWrongEpoch},
		{"sequence after the epoch", rc.receipt(t, 1, 17, rc.h2, map[uint32]*crypto.Signer{0: s[0], 4: s[4]}), ErrWrongEpoch},
		{"rotated-out key", rc.receipt(t, 2, 20, rc.h2, map[uint32]*crypto.Signer{1: rc.old1, 4: s[4]}), ErrBadSignature},
		{"joiner in genesis", rc.receipt(t, 0, 5, nil, map[uint32]*crypto.Signer{0: s[0], 4: s[4]}), ErrUnknownKey},
	}
	// An epoch 1 statement presented as epoch 0 (the epoch is signed).
	replayed := rc.receipt(t, 1, 12, rc.h1, map[uint32]*crypto.Signer{0: s[0], 2: s[2]})
	replayed.Epoch, replayed.History = 0, ""
	cases = append(cases, struct {
		name   string
		r      *Receipt
		reason error
	}{"epoch rewritten", replayed, ErrBadSignature})
	// A history whose certificate lost its votes.
	forged := rc.receipt(t, 1, 12, rc.h1, map[uint32]*crypto.Signer{0: s[0], 4: s[4]})
	h, err := membership.DecodeHistory(rc.h1)
	if err != nil {
		t.Fatal(err)
	}
	h.Certificates[0].Votes = h.Certificates[0].Votes[:1]
	genesis, _ := rc.cf.Genesis()
	forged.History = hex.EncodeToString(h.Encode(genesis))
	cases = append(cases, struct {
		name   string
		r      *Receipt
		reason error
	}{"history without a quorum", forged, ErrWrongEpoch})
	for _, c := range cases {
		if err := Verify(c.r, rc.cf); !errors.Is(err, c.reason) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.reason)
		}
	}
}
