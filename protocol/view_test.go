package protocol

import (
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// broadcastRequests submits requests to every replica, as a client does
// after its retransmission timeout.
func broadcastRequests(t *testing.T, c *cluster, client byte, from, n int) {
	t.Helper()
	for i := range n {
		req := request(client, uint64(from+i+1), "op")
		for _, r := range c.replicas {
			_ = r.Submit(req)
		}
	}
}

// tickUntil ticks until cond holds, failing after max ticks.
func (c *cluster) tickUntil(max int, what string, cond func() bool) {
	c.t.Helper()
	for range max {
		if cond() {
			return
		}
		c.tick(1)
	}
	if !cond() {
		c.t.Fatalf("after %d ticks: %s did not happen", max, what)
	}
}

func (c *cluster) allActiveIn(view uint64, except ...int) bool {
	for i, r := range c.replicas {
		if slicesContains(except, i) {
			continue
		}
		if r.View() != view || !r.ViewActive() {
			return false
		}
	}
	return true
}

func slicesContains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestSilentPrimaryIsReplaced(t *testing.T) {
	c := newCluster(t, 4, nil)
	submitN(t, c, 0, 5, 1)
	c.run()
	// Replica 0, the primary of view 0, goes silent.
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	broadcastRequests(t, c, 2, 0, 5)
	c.run()
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view change to view 1", func() bool { return c.allActiveIn(1, 0) })
	c.run()
	c.assertAgreement()
	for i := 1; i < 4; i++ {
		if got := len(c.executedRequests(i)); got != 10 {
			t.Fatalf("replica %d executed %d of 10 requests after the view change", i, got)
		}
		if st := c.replicas[i].Status(); st.ViewChangesStarted != 1 || st.ViewChangesCompleted != 1 {
			t.Fatalf("replica %d: %+v", i, st)
		}
		// Batches executed in view 0 and re-proposed in view 1 leave no
		// request tracked (a leak would hold the clients' queue share).
		if st := c.replicas[i].Status(); st.PendingRequests != 0 {
			t.Fatalf("replica %d still tracks %d requests after everything executed", i, st.PendingRequests)
		}
	}
}

func TestPreparedRequestSurvivesViewChangeAtSameSequence(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	submitN(t, c, 0, 3, 1)
	c.run()
	// Sequence 4 prepares at the backups but its commits are lost, then
	// the primary falls silent.
	c.drop = func(from, to uint32, k Kind) bool { return k == KindCommit || from == 0 || to == 0 }
	c.drop = func(from, to uint32, k Kind) bool { return k == KindCommit || to == 0 }
	_ = c.replicas[0].Submit(request(1, 4, "prepared-only"))
	c.run()
	for i := 1; i < 4; i++ {
		if c.replicas[i].Status().LastCommitted != 3 || c.replicas[i].prepared[4].PrePrepare.Sequence != 4 {
			t.Fatalf("replica %d: want sequence 4 prepared, not committed", i)
		}
	}
	want := c.replicas[1].prepared[4].PrePrepare.Digest
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	broadcastRequests(t, c, 2, 0, 1) // a pending request starts the timers
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view change to view 1", func() bool { return c.allActiveIn(1, 0) })
	c.run()
	c.assertAgreement()
	for i := 1; i < 4; i++ {
		b := c.executed[i][3]
		if b.Sequence != 4 || b.Digest != want || b.View != 1 {
			t.Fatalf("replica %d executed %+v at 4, want the prepared batch re-proposed in view 1", i, b)
		}
		if got := c.executedRequests(i)[keyOf(request(1, 4, "").Request)]; got != 1 {
			t.Fatalf("replica %d executed the prepared request %d times", i, got)
		}
	}
}

// equivocate makes replica 0 send each backup in victims a batch of its
// own (requests of the Byzantine replica's own client 9, signed with that
// client's key: it cannot forge real clients), instead of the real one.
func equivocate(c *cluster, sent *int, victims ...uint32) func(from, to uint32, m Outbound) (Outbound, bool) {
	return func(from, to uint32, m Outbound) (Outbound, bool) {
		if from != 0 || m.Kind != KindPrePrepare || !slicesContains32(victims, to) {
			return m, true
		}
		vm := c.decode(m)
		pp := vm.Body.GetPrePrepare()
		other := []*wire.Signed{request(9, pp.Sequence*100+uint64(to), "equivocation").Signed}
		d := crypto.BatchDigest(other)
		forged := c.prePrepareFrom(0, &wire.PrePrepare{View: pp.View, Sequence: pp.Sequence, Digest: digestBytes(d)}, other)
		*sent++
		return Outbound{To: to, Signed: forged.Signed, Batch: other, Kind: KindPrePrepare}, true
	}
}

func slicesContains32(xs []uint32, x uint32) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// genuine counts how many of client 1's requests replica i executed, and
// fails on any executed twice.
func genuine(t *testing.T, c *cluster, i int) int {
	t.Helper()
	n := 0
	for k, times := range c.executedRequests(i) {
		if times != 1 {
			t.Fatalf("replica %d executed %v %d times", i, k, times)
		}
		if k.client == string(request(1, 1, "").Request.ClientId) {
			n++
		}
	}
	return n
}

func TestEquivocatingPrimaryIsReplacedAndReplicasAgree(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	sent := 0
	// Every backup gets a different batch: nothing can prepare.
	c.outFilter = equivocate(c, &sent, 1, 2, 3)
	broadcastRequests(t, c, 1, 0, 6)
	c.run()
	c.tickUntil(20*DefaultViewChangeTimeoutTicks, "every request executed on the correct replicas", func() bool {
		for i := 1; i < 4; i++ {
			if genuine(t, c, i) < 6 {
				return false
			}
		}
		return true
	})
	if sent == 0 {
		t.Fatal("the primary sent no equivocating pre-prepare")
	}
	for i := 1; i < 4; i++ {
		if st := c.replicas[i].Status(); st.View == 0 || st.ViewChangesCompleted == 0 {
			t.Fatalf("replica %d still in view %d: the equivocating primary was not replaced", i, st.View)
		}
	}
	c.assertAgreement()
}

func TestReplicaDeceivedByEquivocationCatchesUpByCommitCertificate(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	sent := 0
	// Only replica 1 is deceived; 0, 2 and 3 form a quorum and commit.
	c.outFilter = equivocate(c, &sent, 1)
	broadcastRequests(t, c, 1, 0, 6)
	c.run()
	c.assertAgreement()
	if sent == 0 {
		t.Fatal("no equivocating pre-prepare was sent")
	}
	if got := genuine(t, c, 1); got != 6 {
		t.Fatalf("deceived replica executed %d of 6 requests", got)
	}
	if c.replicas[1].Status().AdoptedCommits == 0 {
		t.Fatal("the deceived replica did not use a commit certificate")
	}
	if c.replicas[1].View() != 0 {
		t.Fatal("a lone deceived replica changed views")
	}
}

func TestTimeoutDoublesWhenTheNextPrimaryIsSilentToo(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.drop = func(from, to uint32, _ Kind) bool { return from <= 1 || to <= 1 }
	broadcastRequests(t, c, 1, 0, 2)
	c.run()
	// 50 ticks to suspect view 0, then 100 waiting for view 1's NEW-VIEW.
	c.tick(DefaultViewChangeTimeoutTicks + 2*DefaultViewChangeTimeoutTicks - 5)
	if v := c.replicas[2].View(); v != 1 {
		t.Fatalf("view %d before the doubled timeout expired, want 1", v)
	}
	c.drop = func(from, to uint32, _ Kind) bool { return from == 1 || to == 1 } // replica 0 is back, 1 is gone
	c.tickUntil(6*DefaultViewChangeTimeoutTicks, "view 2", func() bool { return c.allActiveIn(2, 1) })
	c.run()
	c.assertAgreement()
	if got := len(c.executedRequests(2)); got != 2 {
		t.Fatalf("replica 2 executed %d of 2 requests in view 2", got)
	}
}

func TestReplicaJoinsAViewChangeThatFPlusOneStarted(t *testing.T) {
	c := newCluster(t, 4, nil)
	// Only replicas 1 and 2 learn of the request, so only they time out.
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	req := request(1, 1, "op")
	_ = c.replicas[1].Submit(req)
	_ = c.replicas[2].Submit(req)
	c.run()
	c.tickUntil(2*DefaultViewChangeTimeoutTicks, "replica 3 joins view 1", func() bool { return c.replicas[3].View() == 1 })
	if c.replicas[3].requests.len() != 0 && c.replicas[3].Status().ViewChangesStarted != 1 {
		t.Fatal("replica 3 did not join")
	}
}

func TestBogusNewViewIsRejected(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	submitN(t, c, 0, 2, 1)
	c.drop = func(_, _ uint32, k Kind) bool { return k == KindCommit }
	c.run() // sequences 1 and 2 prepared everywhere, committed nowhere
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	// Replica 1, the next primary, drops sequence 2 from its NEW-VIEW.
	forged := 0
	c.outFilter = func(from, to uint32, m Outbound) (Outbound, bool) {
		if from != 1 || m.Kind != KindNewView {
			return m, true
		}
		vm := c.decode(m)
		nv := vm.Body.GetNewView()
		bogus := &wire.NewView{View: nv.View, ViewChanges: nv.ViewChanges, PrePrepares: nv.PrePrepares[:1]}
		forged++
		return Outbound{To: to, Signed: c.signedBy(1, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_NewView{NewView: bogus}}).Signed, Kind: KindNewView}, true
	}
	broadcastRequests(t, c, 2, 0, 1)
	c.tickUntil(10*DefaultViewChangeTimeoutTicks, "view 2 after the bogus NEW-VIEW", func() bool { return c.allActiveIn(2, 0, 1) })
	if forged == 0 {
		t.Fatal("no bogus NEW-VIEW was sent")
	}
	rejected := 0
	for err, n := range c.stepErrs {
		if errors.Is(err, ErrNewViewRejected) {
			rejected += n
		}
	}
	if rejected == 0 {
		t.Fatal("the bogus NEW-VIEW was not rejected")
	}
	c.outFilter = nil
	c.run()
	c.assertAgreement()
	if got := len(c.executed[2]); got < 3 {
		t.Fatalf("replica 2 executed %d batches, want the 2 prepared ones and the new request", got)
	}
}

func TestRestartKeepsTheView(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.drop = func(from, to uint32, _ Kind) bool { return from == 0 || to == 0 }
	broadcastRequests(t, c, 1, 0, 1)
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view 1", func() bool { return c.allActiveIn(1, 0) })
	c.restart(2)
	if v := c.replicas[2].View(); v != 1 {
		t.Fatalf("restarted replica is in view %d, want 1", v)
	}
	// With replica 0 still cut off, view 1 cannot prepare the next
	// sequence while the restarted replica withholds its PREPARE for it
	// (it may have sent one it lost: the sequence is within the span
	// above its restored base): it asks for view 2, and replica 3 joins
	// once the client's retransmitted request waits too long.
	broadcastRequests(t, c, 1, 1, 1)
	c.tickUntil(10*DefaultViewChangeTimeoutTicks, "the request after the restart", func() bool {
		return len(c.executedRequests(2)) == 2 && len(c.executedRequests(3)) == 2
	})
	c.assertAgreement()
	if st := c.replicas[2].Status(); st.PreparesWithheld == 0 || st.View != 2 {
		t.Fatalf("restarted replica: withheld %d PREPAREs, view %d; want some withheld and view 2", st.PreparesWithheld, st.View)
	}
}

func TestALoneSuspicionDoesNotChangeTheView(t *testing.T) {
	c := newCluster(t, 4, nil)
	// Replica 3 alone has a client's request; its relay to the primary is
	// lost, so it times out, alone.
	c.drop = func(from, to uint32, k Kind) bool { return from == 3 && to == 0 && k == KindForward }
	_ = c.replicas[3].Submit(request(1, 1, "op"))
	c.run()
	c.tick(3 * DefaultViewChangeTimeoutTicks)
	if st := c.replicas[3].Status(); st.SuspectsSent == 0 {
		t.Fatal("replica 3 never suspected the primary")
	}
	for i, r := range c.replicas {
		if r.View() != 0 || !r.ViewActive() {
			t.Fatalf("replica %d left view 0 on a single suspicion", i)
		}
	}
	// A second replica with the same complaint makes f+1: the view changes.
	_ = c.replicas[2].Submit(request(1, 1, "op"))
	c.drop = func(from, to uint32, k Kind) bool { return (from == 3 || from == 2) && to == 0 && k == KindForward }
	c.tickUntil(4*DefaultViewChangeTimeoutTicks, "view 1 after f+1 suspicions", func() bool { return c.allActiveIn(1) })
	c.run()
	if got := len(c.executedRequests(0)); got != 1 {
		t.Fatalf("request executed %d times after the view change, want 1", got)
	}
}

func TestLatePrePrepareAfterCommitCertificateChangesNothing(t *testing.T) {
	c := newCluster(t, 4, nil)
	backup := c.replicas[1]
	req := request(1, 1, "x")
	batch := []*wire.Signed{req.Signed}
	d := crypto.BatchDigest(batch)
	// Commits from a quorum arrive before the pre-prepare: a commit
	// certificate for a batch this backup does not hold yet.
	for _, from := range []uint32{0, 2, 3} {
		if err := backup.Step(commit(c, from, 0, 1, d)); err != nil {
			t.Fatal(err)
		}
	}
	rd := backup.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Kind != KindBatchRequest {
		t.Fatalf("want one batch request, got %v", rd.Messages)
	}
	reply := c.signedBy(2, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_BatchReply{BatchReply: &wire.BatchReply{Digest: digestBytes(d), Requests: batch}}})
	if err := backup.Step(reply); err != nil {
		t.Fatal(err)
	}
	if rd := backup.Ready(); len(rd.Committed) != 1 || rd.Committed[0].Sequence != 1 {
		t.Fatalf("batch reply did not execute sequence 1: %+v", rd.Committed)
	}
	pp := c.prePrepareFrom(0, &wire.PrePrepare{Sequence: 1, Digest: digestBytes(d)}, batch)
	if err := backup.Step(pp); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("late pre-prepare: %v, want ErrDuplicate", err)
	}
	if backup.HasReady() {
		t.Fatalf("late pre-prepare produced actions: %+v", backup.Ready())
	}
	if st := backup.Status(); st.PendingRequests != 0 || st.LastCommitted != 1 {
		t.Fatalf("after the late pre-prepare: %+v", st)
	}
}

func TestCommitCertificateIsNeverReplacedByALaterPrePrepare(t *testing.T) {
	c := newCluster(t, 4, nil)
	backup := c.replicas[3]
	decided := []*wire.Signed{request(1, 2, "decided").Signed}
	d := crypto.BatchDigest(decided)
	// A quorum's commits for the decided batch arrive first...
	for _, from := range []uint32{0, 1, 2} {
		if err := backup.Step(commit(c, from, 0, 4, d)); err != nil {
			t.Fatal(err)
		}
	}
	backup.Ready()
	// ...then a (twin or equivocating) primary's pre-prepare for another.
	other := []*wire.Signed{request(1, 3, "other").Signed}
	pp := c.prePrepareFrom(0, &wire.PrePrepare{Sequence: 4, Digest: digestBytes(crypto.BatchDigest(other))}, other)
	if err := backup.Step(pp); !errors.Is(err, ErrConflictingPrePrepare) {
		t.Fatalf("pre-prepare for another batch after a commit certificate: %v", err)
	}
	if backup.HasReady() {
		t.Fatalf("it acted on it: %+v", backup.Ready())
	}
	// The decided batch's pre-prepare brings the batch; nothing is voted.
	right := c.prePrepareFrom(0, &wire.PrePrepare{Sequence: 4, Digest: digestBytes(d)}, decided)
	if err := backup.Step(right); err != nil {
		t.Fatal(err)
	}
	rd := backup.Ready()
	for _, m := range rd.Messages {
		if m.Kind == KindPrepare || m.Kind == KindCommit {
			t.Fatalf("voted after a commit certificate: %v", m.Kind)
		}
	}
	if s := backup.slots[4]; s.digest != d || s.batch == nil {
		t.Fatal("the decided batch was not attached")
	}
}
