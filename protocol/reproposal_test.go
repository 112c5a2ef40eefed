package protocol

import (
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// TestReProposedBatchStaysObtainable is the scenario of simulator seed
// 6351 (n = 4, 1 Byzantine), reduced: the only prepared certificate for a
// batch is held by replica 2, a view change that does not carry it
// replaces the batch's slot everywhere, and a later NEW-VIEW re-proposes
// the certified digest. Replica 2 (which logged the batch before it
// prepared) and replica 0 (which proposed it) must still hold the batch,
// even across a restart, and serve it; before, every replica had dropped it with the slot (and a restart
// reloaded only the batches of the restored view), the re-proposal could
// never prepare, and every later view re-proposed the same digest: the
// cluster stalled for good.
func TestReProposedBatchStaysObtainable(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "no-restart"
		if restart {
			name = "holder-restarts"
		}
		t.Run(name, func(t *testing.T) {
			// One batch in flight: the new primary cannot rebuild the
			// batch by proposing its request again at the next sequence.
			c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize, cfg.MaxInFlight, cfg.MaxPartialInFlight = 1, 1, 1 })
			// The runtime's verifier drops what does not verify (a
			// pre-prepare sent without the batch it names).
			c.dropFrame = func(_, _ uint32, _ Kind, frame []byte) bool {
				_, err := c.verifier.ReplicaFrame(frame)
				return err != nil
			}
			submitN(t, c, 0, 3, 1)
			c.run()

			// Sequence 4: the primary's pre-prepare reaches replica 2 only;
			// replica 3 (faulty) signs a prepare for it anyway, so replica
			// 2 prepares it, the only replica that does; no commit arrives.
			c.drop = func(from, to uint32, k Kind) bool {
				return (from == 0 && k == KindPrePrepare && to != 2) || k == KindCommit
			}
			req := request(2, 1, "certified")
			if err := c.replicas[0].Submit(req); err != nil {
				t.Fatal(err)
			}
			c.run()
			want := crypto.BatchDigest([]*wire.Signed{req.Signed})
			if s := c.replicas[2].slots[4]; s == nil || s.digest != want || s.batch == nil {
				t.Fatal("replica 2 did not accept the pre-prepare at sequence 4")
			}
			_ = c.replicas[2].Step(c.signedBy(3, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{
				View: 0, Sequence: 4, Digest: digestBytes(want)}}}))
			c.collect()
			if pc, ok := c.replicas[2].prepared[4]; !ok || pc.PrePrepare.Digest != want {
				t.Fatal("replica 2 holds no prepared certificate for sequence 4")
			}

			// View 1 is decided without replica 2's VIEW-CHANGE (lost): it
			// re-proposes nothing at 4, and every replica's slot 4 goes.
			// Forwarded requests are dropped, so that the new primaries
			// never learn the request and never rebuild its batch.
			c.drop = func(from, _ uint32, k Kind) bool { return from == 2 || k == KindForward }
			c.replicas[2].startViewChange(1)
			c.collect()
			if restart {
				c.restart(2) // changing to view 1: its view 0 batch is only in its log
			}
			for _, i := range []int{0, 1, 3} {
				c.replicas[i].startViewChange(1)
			}
			c.run()
			if !c.allActiveIn(1) {
				t.Fatal("view 1 did not start on every replica")
			}
			if restart {
				// The primary of view 0, which proposed the batch, restarts
				// too: now only the two logs hold it.
				c.restart(0)
				c.run()
			}
			for i, r := range c.replicas {
				if s := r.slots[4]; s != nil && s.batch != nil {
					t.Fatalf("replica %d still has slot 4 with its batch in view 1: the scenario does not test anything", i)
				}
			}

			// View 2, led by replica 2, re-proposes the certified digest at
			// 4 from its own VIEW-CHANGE.
			c.drop = func(_, _ uint32, k Kind) bool { return k == KindForward }
			for _, r := range c.replicas {
				r.startViewChange(2)
			}
			c.run()
			c.tickUntil(20*DefaultViewChangeTimeoutTicks, "sequence 4 executes on the correct replicas", func() bool {
				for i := range 3 {
					if len(c.executed[i]) < 4 {
						return false
					}
				}
				return true
			})
			c.assertAgreement()
			for i := range 3 {
				if b := c.executed[i][3]; b.Digest != want {
					t.Fatalf("replica %d executed another batch at 4 than the certified one", i)
				}
			}
		})
	}
}
