package replica

import (
	"testing"

	"github.com/pbftnode/pbftnode/protocol"
)

// TestATransferKeepsItsTargetWhileServed: replica 3, cut off, transfers
// the stable checkpoint's state while the others execute on and certify
// a newer checkpoint, which replica 3 learns (its core asks for it). The
// transfer is
// neither restarted nor retargeted while its target is served: every
// state request before the install asks for the first target, only one
// from the first key. The replica then catches up with the others.
func TestATransferKeepsItsTargetWhileServed(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[3]
	r.cut = true
	run(t, c, 10)
	r.cut = false
	type asked struct {
		seq   uint64
		first bool
	}
	var requests []asked // replica 3's state requests before it installed a state
	var stopped []byte   // the chunk frame the last halt stopped at
	c.halt = func() bool {
		f := c.queue[0]
		m, err := c.verifier.ReplicaFrame(f.data)
		if err != nil {
			return false
		}
		if req := m.Body.GetStateRequest(); req != nil && f.from == 3 && r.exec.LastExecuted() == 0 {
			requests = append(requests, asked{req.Sequence, len(req.StartKey) == 0})
		}
		if f.to == 3 && len(m.Body.GetStateChunk().GetEntries()) > 0 && (stopped == nil || &f.data[0] != &stopped[0]) {
			stopped = f.data
			return true
		}
		return false
	}
	next := uint64(11)
	for i := 0; i < 400 && r.exec.LastExecuted() == 0; i++ {
		if len(c.queue) == 0 {
			c.tick()
			continue
		}
		if next == 11 {
			// The first chunk is on its way to replica 3. Holding the
			// chunks back, the others certify the next checkpoint and
			// replica 3 Fetches, which brings it the certificate.
			var chunks, rest []frame
			for _, f := range c.queue {
				if m, err := c.verifier.ReplicaFrame(f.data); err == nil && f.to == 3 && m.Body.GetStateChunk() != nil {
					chunks = append(chunks, f)
				} else {
					rest = append(rest, f)
				}
			}
			halt := c.halt
			c.queue, c.halt = rest, nil
			for range 2 {
				if err := c.submit(0, c.request(next, string(rune('a'+next)))); err != nil {
					t.Fatal(err)
				}
				next++
				c.deliver()
			}
			for range protocol.DefaultRetransmitTicks/4 + 1 {
				c.tick() // past the others' limit on answering Fetches
			}
			r.driver.Core().FetchSoon()
			if err := r.driver.Process(); err != nil {
				t.Fatal(err)
			}
			c.deliver()
			c.queue, c.halt = append(chunks, c.queue...), halt
			if got := r.driver.Core().StableCheckpoint().Sequence; got != 12 {
				t.Fatalf("replica 3 learned stable checkpoint %d, want 12", got)
			}
		}
		c.deliver()
	}
	c.halt = nil
	if r.exec.LastExecuted() == 0 || len(requests) == 0 {
		t.Fatalf("nothing installed after %d state requests", len(requests))
	}
	target, firsts := requests[0].seq, 0
	for _, a := range requests {
		if a.seq != target {
			t.Fatalf("state requests %v: retargeted from %d", requests, target)
		}
		if a.first {
			firsts++
		}
	}
	if firsts != 1 || next-11 < 2 || r.exec.LastExecuted() != target {
		t.Fatalf("state requests %v (%d from the first key), installed %d, %d requests executed meanwhile", requests, firsts, r.exec.LastExecuted(), next-11)
	}
	for i := 0; i < 2000 && r.exec.LastExecuted() < next-1; i++ {
		c.tick()
	}
	if r.exec.LastExecuted() != next-1 || r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
		t.Fatalf("replica 3 executed %d of %d", r.exec.LastExecuted(), next-1)
	}
}
