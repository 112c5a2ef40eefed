package protocol

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// newEpochCluster is newCluster for epoch e starting after base: every
// replica and the verifier run epoch e, and the executed log is padded to
// the base (the state the previous epoch left).
func newEpochCluster(t *testing.T, n int, epoch, base uint64, tweak func(*Config)) *cluster {
	t.Helper()
	c := newCluster(t, n, func(cfg *Config) {
		cfg.Epoch, cfg.Base = epoch, base
		if tweak != nil {
			tweak(cfg)
		}
	})
	c.verifier.WithEpoch(epoch)
	for i := range c.executed {
		for s := uint64(1); s <= base; s++ {
			c.executed[i] = append(c.executed[i], CommittedBatch{Sequence: s})
		}
	}
	return c
}

func TestPrimaryRotationShiftsWithTheEpoch(t *testing.T) {
	for _, tc := range []struct {
		epoch, view uint64
		n           int
		want        uint32
	}{{0, 0, 4, 0}, {0, 5, 4, 1}, {1, 0, 4, 1}, {3, 2, 4, 1}, {7, 0, 7, 0}, {9, 1, 5, 0}} {
		if got := PrimaryIn(tc.epoch, tc.view, tc.n); got != tc.want {
			t.Errorf("PrimaryIn(%d, %d, %d) = %d, want %d", tc.epoch, tc.view, tc.n, got, tc.want)
		}
	}
	c := newEpochCluster(t, 4, 2, 0, nil)
	if !c.replicas[2].IsPrimary() || c.replicas[0].IsPrimary() {
		t.Fatal("in epoch 2, view 0 is led by position 2")
	}
}

func TestMessagesOfAnotherEpochAreRefused(t *testing.T) {
	c := newEpochCluster(t, 4, 1, 0, nil)
	// A prepare signed by replica 2 for epoch 0: a genuine signature of a
	// member, but of another configuration.
	body := &wire.ReplicaMessage{From: 2, Epoch: 0, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{Sequence: 1, Digest: make([]byte, 32)}}}
	payload, _ := protoMarshal(body)
	signed := &wire.Signed{Payload: payload, Signature: c.signers[2].Sign(crypto.DomainReplicaMessage, payload)}
	if _, err := c.verifier.ReplicaMessage(signed); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("verifier of epoch 1 accepted an epoch-0 message: %v", err)
	}
	if c.verifier.WrongEpoch() != 1 {
		t.Fatalf("wrong-epoch drops counted %d, want 1", c.verifier.WrongEpoch())
	}
	// The epoch is checked before the sender: position 4 of a larger
	// earlier epoch is of another epoch, not an unknown sender (a
	// restarted replica skips such log entries; it failed on them).
	wide := &wire.ReplicaMessage{From: 4, Epoch: 0, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{Sequence: 1, Digest: make([]byte, 32)}}}
	wp, _ := protoMarshal(wide)
	if _, err := c.verifier.ReplicaMessage(&wire.Signed{Payload: wp, Signature: c.signers[0].Sign(crypto.DomainReplicaMessage, wp)}); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("a message of another epoch from a position outside this one: %v", err)
	}
	// Nested: a checkpoint certificate whose votes are of epoch 0.
	var votes []*wire.Signed
	for i := range 3 {
		vb := &wire.ReplicaMessage{From: uint32(i), Body: &wire.ReplicaMessage_Checkpoint{Checkpoint: &wire.Checkpoint{Sequence: 128, StateDigest: make([]byte, 32)}}}
		p, _ := protoMarshal(vb)
		votes = append(votes, &wire.Signed{Payload: p, Signature: c.signers[i].Sign(crypto.DomainReplicaMessage, p)})
	}
	outer := &wire.ReplicaMessage{From: 3, Epoch: 1, Body: &wire.ReplicaMessage_CheckpointCertificate{CheckpointCertificate: &wire.CheckpointCertificate{Votes: votes}}}
	p, _ := protoMarshal(outer)
	if _, err := c.verifier.ReplicaMessage(&wire.Signed{Payload: p, Signature: c.signers[3].Sign(crypto.DomainReplicaMessage, p)}); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("a certificate of epoch-0 votes passed the epoch-1 verifier: %v", err)
	}
	// The core refuses another epoch too (a verifier of the wrong epoch).
	vm := VerifiedMessage{Signed: signed, Body: body}
	if err := c.replicas[1].Step(vm); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("core of epoch 1 stepped an epoch-0 message: %v", err)
	}
	// Its own messages carry its epoch.
	_ = c.replicas[1].Submit(request(1, 1, "op"))
	c.run()
	if got := len(c.executedRequests(0)); got != 1 {
		t.Fatalf("epoch-1 cluster executed %d requests, want 1", got)
	}
}

func TestEpochStartsAtItsBase(t *testing.T) {
	const base = 256
	c := newEpochCluster(t, 4, 1, base, func(cfg *Config) { cfg.CheckpointInterval = 128 })
	if st := c.replicas[3].Status(); st.LowWatermark != base || st.LastCommitted != base || st.NextSequence != base+1 {
		t.Fatalf("status at start: %+v", st)
	}
	broadcastRequests(t, c, 1, 0, 3)
	c.run()
	c.assertAgreement()
	for i := range c.replicas {
		if got := c.executed[i][len(c.executed[i])-1].Sequence; got <= base {
			t.Fatalf("replica %d executed up to %d, want above the base %d", i, got, base)
		}
	}
	// A view change in an epoch with a base: the VIEW-CHANGEs' stable
	// checkpoint is the unproven base, which every replica accepts.
	c.drop = func(from, to uint32, _ Kind) bool { return from == 1 || to == 1 }
	broadcastRequests(t, c, 2, 0, 2)
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view change to view 1", func() bool { return c.allActiveIn(1, 1) })
	c.run()
	c.assertAgreement()
	if got := len(c.executedRequests(2)); got != 5 {
		t.Fatalf("after the view change replica 2 executed %d of 5 requests", got)
	}
}

func TestEndAtFillsWithEmptyBatchesAndProposesNothingBeyond(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 8 })
	submitN(t, c, 0, 1, 1)
	c.run()
	for _, r := range c.replicas {
		if err := r.EndAt(8); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.replicas[0].EndAt(16); err == nil {
		t.Fatal("a second, different end was accepted")
	}
	c.run()
	for i, r := range c.replicas {
		if st := r.Status(); st.LastCommitted != 8 || st.LowWatermark != 8 {
			t.Fatalf("replica %d: committed %d, low %d; want the epoch filled and stable at 8 (%v)", i, st.LastCommitted, st.LowWatermark, c.stepErrs)
		}
		for _, b := range c.executed[i][1:] {
			if len(b.Requests) != 0 {
				t.Fatalf("replica %d: fill batch %d carries requests", i, b.Sequence)
			}
		}
	}
	// A request arriving after the end is not proposed.
	submitN(t, c, 1, 1, 1)
	c.run()
	if st := c.replicas[0].Status(); st.NextSequence != 9 || st.LastCommitted != 8 {
		t.Fatalf("primary proposed beyond the end: %+v", st)
	}
	c.assertAgreement()
}

func TestPrePrepareBeyondTheEndIsNotPrepared(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 8 })
	if err := c.replicas[1].EndAt(8); err != nil {
		t.Fatal(err)
	}
	req := request(1, 1, "op")
	batch := []*wire.Signed{req.Signed}
	d := crypto.BatchDigest(batch)
	pp := c.prePrepareFrom(0, &wire.PrePrepare{View: 0, Sequence: 9, Digest: digestBytes(d)}, batch)
	if err := c.replicas[1].Step(pp); !errors.Is(err, ErrBeyondEpoch) {
		t.Fatalf("pre-prepare at 9 beyond the end 8: %v", err)
	}
	if rd := c.replicas[1].Ready(); len(rd.Messages) != 0 || len(rd.Persist) != 0 {
		t.Fatalf("replica sent or logged something for a pre-prepare beyond the end: %+v", rd)
	}
	// An empty pre-prepare (a null request) within the epoch is accepted.
	empty := c.prePrepareFrom(0, &wire.PrePrepare{View: 0, Sequence: 1, Digest: fzNullDigest()}, nil)
	if err := c.replicas[1].Step(empty); err != nil {
		t.Fatalf("empty pre-prepare refused: %v", err)
	}
}

func TestNewViewReProposalsBeyondTheEndAreIgnored(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 4; cfg.MaxBatchSize = 1 })
	submitN(t, c, 0, 4, 1)
	c.run()
	// Sequence 5 prepares everywhere but its commits are lost.
	c.drop = func(_, _ uint32, k Kind) bool { return k == KindCommit }
	_ = c.replicas[0].Submit(request(1, 5, "prepared-only"))
	c.run()
	for i := 1; i < 4; i++ {
		if _, ok := c.replicas[i].prepared[5]; !ok {
			t.Fatalf("replica %d did not prepare 5", i)
		}
	}
	// Replicas 2 and 3 learn the epoch ends at 4; 1 does not (yet).
	for _, i := range []int{2, 3} {
		if err := c.replicas[i].EndAt(4); err != nil {
			t.Fatal(err)
		}
	}
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	broadcastRequests(t, c, 2, 0, 1)
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view change to view 1", func() bool { return c.allActiveIn(1, 0) })
	c.run()
	if n := c.stepErrs[ErrNewViewRejected]; n != 0 {
		t.Fatalf("%d NEW-VIEWs rejected", n)
	}
	for _, i := range []int{2, 3} {
		if st := c.replicas[i].Status(); st.LastCommitted != 4 {
			t.Fatalf("aware replica %d committed up to %d, want 4 (nothing beyond the end)", i, st.LastCommitted)
		}
		if s := c.replicas[i].slots[5]; s != nil && s.view == 1 && s.prepares[uint32(i)].signed != nil {
			t.Fatalf("aware replica %d prepared the re-proposal beyond the end", i)
		}
	}
	c.assertAgreement()
}

// TestNewPrimaryFillsOnlyAfterTheReProposals: a new primary whose epoch
// ends, entering a NEW-VIEW that moves its window, must not fill a
// sequence the NEW-VIEW re-proposes with an empty batch (it once did:
// moving the window proposed before the re-proposals were in place, and
// the primary sent two pre-prepares for one sequence and view).
func TestNewPrimaryFillsOnlyAfterTheReProposals(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 4; cfg.MaxBatchSize = 1 })
	// Replica 1, the primary of view 1, misses the checkpoint votes: its
	// window stays at 0 while the others' checkpoint at 4 is stable.
	c.drop = func(_, to uint32, k Kind) bool { return to == 1 && k == KindCheckpoint }
	submitN(t, c, 0, 4, 1)
	c.run()
	// Sequence 5 prepares everywhere, its commits are lost.
	c.drop = func(_, to uint32, k Kind) bool { return k == KindCommit || (to == 1 && k == KindCheckpoint) }
	_ = c.replicas[0].Submit(request(1, 5, "prepared-only"))
	c.run()
	if st := c.replicas[1].Status(); st.LowWatermark != 0 || st.LastCommitted != 4 {
		t.Fatalf("replica 1: %+v", st)
	}
	for _, r := range c.replicas {
		if err := r.EndAt(8); err != nil {
			t.Fatal(err)
		}
	}
	sent := map[[2]uint64]crypto.Digest{}
	note := func(s *wire.Signed) {
		var m wire.ReplicaMessage
		if proto.Unmarshal(s.Payload, &m) != nil || m.GetPrePrepare() == nil {
			return
		}
		pp := m.GetPrePrepare()
		var d crypto.Digest
		copy(d[:], pp.Digest)
		k := [2]uint64{pp.View, pp.Sequence}
		if prev, ok := sent[k]; ok && prev != d {
			t.Fatalf("replica 1 sent two pre-prepares for view %d sequence %d", pp.View, pp.Sequence)
		}
		sent[k] = d
	}
	c.outFilter = func(from, _ uint32, m Outbound) (Outbound, bool) {
		if from == 1 {
			note(m.Signed)
			var body wire.ReplicaMessage
			if proto.Unmarshal(m.Signed.Payload, &body) == nil && body.GetNewView() != nil {
				for _, pp := range body.GetNewView().PrePrepares {
					note(pp)
				}
			}
		}
		return m, true
	}
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	broadcastRequests(t, c, 2, 0, 1)
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view change to view 1", func() bool { return c.allActiveIn(1, 0) })
	c.run()
	c.assertAgreement()
	if _, ok := sent[[2]uint64{1, 5}]; !ok {
		t.Fatal("the new primary did not re-propose sequence 5: the test tests nothing")
	}
}
