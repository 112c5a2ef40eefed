package replica

import (
	"testing"

	"github.com/pbftnode/pbftnode/protocol"
)

// keptFrame is a frame deliverAllHolding kept back.
type keptFrame struct {
	to uint32
	m  protocol.VerifiedMessage
}

// deliverAllHolding delivers every queued frame, as deliver does, except
// those hold picks (by destination and message): it returns those,
// verified, in the order they came.
func (c *testCluster) deliverAllHolding(hold func(to uint32, m protocol.VerifiedMessage) bool) []keptFrame {
	c.t.Helper()
	var held []keptFrame
	for steps := 0; len(c.queue) > 0; steps++ {
		if steps > 100000 {
			c.t.Fatal("the cluster does not settle")
		}
		f := c.queue[0]
		c.queue = c.queue[1:]
		m, err := c.verifier.ReplicaFrame(f.data)
		if err != nil {
			c.t.Fatalf("frame from %d: %v", f.from, err)
		}
		if hold(f.to, m) {
			held = append(held, keptFrame{to: f.to, m: m})
			continue
		}
		r := c.replicas[f.to]
		_ = r.driver.Step(m)
		if err := r.driver.Process(); err != nil {
			c.t.Fatal(err)
		}
	}
	return held
}

// step delivers held frames, then whatever they cause.
func (c *testCluster) stepHeld(held []keptFrame) {
	c.t.Helper()
	for _, h := range held {
		r := c.replicas[h.to]
		_ = r.driver.Step(h.m)
		if err := r.driver.Process(); err != nil {
			c.t.Fatal(err)
		}
	}
	c.deliver()
}

func isCommit(_ uint32, m protocol.VerifiedMessage) bool { return m.Body.GetCommit() != nil }

// orderWithCommitsHeld has the primary order client request 1 (accepting
// tentative replies when tentative is set) with every COMMIT held back,
// and returns the held COMMITs.
func orderWithCommitsHeld(t *testing.T, c *testCluster, tentative bool) []keptFrame {
	t.Helper()
	c.tentative = tentative
	if err := c.submit(0, c.request(1, "k")); err != nil {
		t.Fatal(err)
	}
	held := c.deliverAllHolding(isCommit)
	if len(held) != 4*3 {
		t.Fatalf("held %d COMMITs, want 12 (every replica prepared)", len(held))
	}
	return held
}

// TestTentativeRepliesGoBeforeTheCommit: every replica that prepared the
// request's batch (its COMMIT sent, the certificate durable) answers with
// a tentative reply naming the view and sequence, before any COMMIT
// arrives and without applying the batch; at the commit it writes the
// staged execution and does not answer again.
func TestTentativeRepliesGoBeforeTheCommit(t *testing.T) {
	c := newTestCluster(t, 4)
	held := orderWithCommitsHeld(t, c, true)
	for _, r := range c.replicas {
		if len(r.replies) != 1 {
			t.Fatalf("replica %d sent %d replies before the commit, want 1 tentative", r.id, len(r.replies))
		}
		rep := r.replies[0]
		if !rep.Tentative || rep.Sequence != 1 || rep.View != 0 || rep.RequestNumber != 1 || rep.Receipt != nil {
			t.Fatalf("replica %d's reply: %v", r.id, rep)
		}
		if r.exec.LastExecuted() != 0 {
			t.Fatalf("replica %d applied the batch before it committed", r.id)
		}
		if stepAt(r.trace, "append", 0) < 0 || stepAt(r.trace, "append", 0) > stepAt(r.trace, "reply", 1) {
			t.Fatalf("replica %d answered before its log append: %v", r.id, r.trace)
		}
	}
	c.stepHeld(held)
	for _, r := range c.replicas {
		if r.exec.LastExecuted() != 1 || r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
			t.Fatalf("replica %d: executed %d, digest differs: %v", r.id, r.exec.LastExecuted(), r.exec.StateDigest() != c.replicas[0].exec.StateDigest())
		}
		if len(r.replies) != 1 {
			t.Fatalf("replica %d answered again at the commit: %v", r.id, r.replies)
		}
		if got := r.driver.TentativeCounts(); got != (TentativeCounts{Executed: 1, Committed: 1}) {
			t.Fatalf("replica %d: %+v", r.id, got)
		}
	}
}

// TestCommittedRepliesWithoutTentative: a request that does not accept
// tentative replies, or a driver with CommittedRepliesOnly, is answered
// only at the commit, with the batch's sequence.
func TestCommittedRepliesWithoutTentative(t *testing.T) {
	for _, tc := range []struct {
		name               string
		ask, committedOnly bool
	}{{"request does not ask", false, false}, {"driver refuses", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, 4)
			for _, r := range c.replicas {
				r.driver.cfg.CommittedRepliesOnly = tc.committedOnly
			}
			held := orderWithCommitsHeld(t, c, tc.ask)
			for _, r := range c.replicas {
				if len(r.replies) != 0 {
					t.Fatalf("replica %d answered before the commit: %v", r.id, r.replies)
				}
			}
			c.stepHeld(held)
			for _, r := range c.replicas {
				if len(r.replies) != 1 || r.replies[0].Tentative || r.replies[0].Sequence != 1 {
					t.Fatalf("replica %d's replies: %v", r.id, r.replies)
				}
			}
		})
	}
}

// TestTentativeExecutionDiscardedMeanwhile: a retransmitted request is
// answered from the executed state (not at all: it is not executed) and
// keeps the staged execution; when something discards it (here the test),
// the batch is applied again at its commit, to the same state, and not
// answered twice.
func TestTentativeExecutionDiscardedMeanwhile(t *testing.T) {
	c := newTestCluster(t, 4)
	held := orderWithCommitsHeld(t, c, true)
	r := c.replicas[1]
	_ = r.driver.Submit(c.request(1, "k"))
	if _, staged := r.exec.TentativeSequence(); !staged || len(r.replies) != 1 {
		t.Fatalf("a retransmission discarded the staged execution or was answered: %v", r.replies)
	}
	r.exec.DiscardTentative()
	c.stepHeld(held)
	if got := r.driver.TentativeCounts(); got != (TentativeCounts{Executed: 1, Discarded: 1}) {
		t.Fatalf("counts %+v", got)
	}
	if r.exec.LastExecuted() != 1 || r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
		t.Fatal("the batch applied after the discard differs")
	}
	if len(r.replies) != 1 || !r.replies[0].Tentative {
		t.Fatalf("replies %v, want the one tentative reply", r.replies)
	}
}

// TestTentativeAcrossAViewChange: replicas that answered tentatively in
// view 0 and never got the COMMITs change views; the new primary
// re-proposes the prepared batch at its sequence, and each replica
// answers again naming the new view (its tentative reply of view 0 gives
// way to it at the client), executes the batch once, and agrees.
func TestTentativeAcrossAViewChange(t *testing.T) {
	c := newTestCluster(t, 4)
	c.tentative = true
	req := c.request(1, "k")
	for i := range c.replicas {
		_ = c.submit(i, req) // every replica watches it
	}
	held := c.deliverAllHolding(isCommit)
	if len(held) == 0 {
		t.Fatal("no COMMIT held")
	}
	for ticks := 0; ; ticks++ {
		done := true
		for _, r := range c.replicas {
			done = done && r.driver.Status().View > 0 && r.exec.LastExecuted() == 1
		}
		if done {
			break
		}
		if ticks > 5000 {
			t.Fatal("no view change committed the batch")
		}
		c.tick()
	}
	discarded := uint64(0)
	for _, r := range c.replicas {
		if r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
			t.Fatalf("replica %d disagrees", r.id)
		}
		first, last := r.replies[0], r.replies[len(r.replies)-1]
		if !first.Tentative || first.View != 0 || first.Sequence != 1 {
			t.Fatalf("replica %d's first reply: %v", r.id, first)
		}
		if last.View == 0 || last.Sequence != 1 {
			t.Fatalf("replica %d never answered in the new view: %v", r.id, r.replies)
		}
		discarded += r.driver.TentativeCounts().Discarded
	}
	if discarded == 0 {
		t.Fatal("no staged execution of view 0 was replaced")
	}
}
