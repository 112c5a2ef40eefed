package replica

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// rank is where a step belongs in the handling of one Ready (see doc.go).
func rank(s step) int {
	switch s.what {
	case "view":
		return 0
	case "send":
		if s.early {
			return 1
		}
		return 3
	case "append", "write":
		return 2
	case "apply", "reply", "snapshot":
		return 4
	case "stable-save":
		return 5
	case "stable":
		return 6
	}
	return -1
}

// orderError says where, within one Ready, a step comes after one that
// must follow it (nil: nowhere).
func orderError(r *testReplica) error {
	last, ready, written := -1, 0, false
	for i, s := range r.trace {
		if s.what == "ready" {
			last, ready, written = -1, i, false
			continue
		}
		written = written || s.what == "write"
		if written && (s.what == "send" && !s.early || s.what == "stable-save") {
			// An unsynced write is only for a Ready whose every message
			// may go before the log is durable.
			return fmt.Errorf("replica %d: %v in a Ready whose log was written without a sync: %v", r.id, s, r.trace[ready:i+1])
		}
		if k := rank(s); k >= 0 && k < last {
			return fmt.Errorf("replica %d: %v after %v in one Ready: %v", r.id, s, r.trace[i-1], r.trace[ready:i+1])
		}
		last = max(last, rank(s))
	}
	return nil
}

// run submits requests 1..count to the primary and delivers everything.
func run(t *testing.T, c *testCluster, count int) {
	t.Helper()
	for i := 1; i <= count; i++ {
		if err := c.submit(0, c.request(uint64(i), string(rune('a'+i)))); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		c.deliver()
	}
	for _, r := range c.replicas {
		if r.cut {
			continue
		}
		if got := r.exec.LastExecuted(); got != uint64(count) {
			t.Fatalf("replica %d executed %d, want %d", r.id, got, count)
		}
	}
}

// TestProcessOrder: every replica handles each Ready in the contract's
// order: view, early sends, log append, other sends, execution and
// replies, stable checkpoint stored, then released; the view is stored
// before anything is sent, and the primary sends its PRE-PREPARE before
// its log append.
func TestProcessOrder(t *testing.T) {
	c := newTestCluster(t, 4)
	run(t, c, 4)
	for _, r := range c.replicas {
		if err := orderError(r); err != nil {
			t.Fatal(err)
		}
		if r.trace[0].what != "view" {
			t.Errorf("replica %d: first step %v, want the first start's view", r.id, r.trace[0])
		}
		i := slices.IndexFunc(r.trace, func(s step) bool { return s.what == "stable-save" })
		j := slices.IndexFunc(r.trace, func(s step) bool { return s.what == "stable" })
		if i < 0 || j < i {
			t.Errorf("replica %d: stable checkpoint stored at step %d, released at %d", r.id, i, j)
		}
		if r.store.LogEntries() == 0 {
			continue
		}
		for _, e := range mustLoadLog(t, r) {
			if e.Sequence <= 4 {
				t.Errorf("replica %d: log entry at %d kept below the stable checkpoint 4", r.id, e.Sequence)
			}
		}
	}
	p := c.replicas[0].trace
	early := slices.IndexFunc(p, func(s step) bool { return s.early && s.kind == protocol.KindPrePrepare })
	if early < 0 || !slices.ContainsFunc(p[early:], func(s step) bool { return s.what == "append" }) {
		t.Fatalf("primary: no PRE-PREPARE sent before its log append: %v", p)
	}
	for _, r := range c.replicas[1:] {
		if slices.ContainsFunc(r.trace, func(s step) bool { return s.early && s.kind != protocol.KindPrepare }) {
			t.Errorf("backup %d sent something other than a PREPARE before persisting", r.id)
		}
		if !slices.ContainsFunc(r.trace, func(s step) bool { return s.what == "write" }) {
			t.Errorf("backup %d never wrote its log without a sync (its PRE-PREPARE and PREPARE)", r.id)
		}
	}
	for _, r := range c.replicas {
		if slices.ContainsFunc(r.trace, func(s step) bool { return s.early && s.kind == protocol.KindCommit }) {
			t.Errorf("replica %d sent a COMMIT before its log append", r.id)
		}
	}
}

// TestProcessOrderCatchesACommitAfterAnUnsyncedWrite: the order check
// catches a COMMIT sent in a Ready whose log was only written.
func TestProcessOrderCatchesACommitAfterAnUnsyncedWrite(t *testing.T) {
	r := &testReplica{trace: []step{{what: "ready"}, {what: "send", kind: protocol.KindPrepare, early: true}, {what: "write"}, {what: "send", kind: protocol.KindCommit}}}
	if orderError(r) == nil {
		t.Fatal("a COMMIT after an unsynced write passed the order check")
	}
}

// TestProcessOrderCheckFails: the order check catches a late send moved
// before the log append.
func TestProcessOrderCheckFails(t *testing.T) {
	r := &testReplica{trace: []step{{what: "ready"}, {what: "send", kind: protocol.KindPrepare}, {what: "append"}}}
	if orderError(r) == nil {
		t.Fatal("a send before the log append passed the order check")
	}
}

func mustLoadLog(t *testing.T, r *testReplica) []struct{ Sequence uint64 } {
	t.Helper()
	entries, err := r.store.LoadLog(0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]struct{ Sequence uint64 }, len(entries))
	for i, e := range entries {
		out[i].Sequence = e.Sequence
	}
	return out
}

// TestRecoverRestoresWhatWasPersisted: a replica restarted over its
// storage and executor state resumes at its stable checkpoint with its
// log above it.
func TestRecoverRestoresWhatWasPersisted(t *testing.T) {
	c := newTestCluster(t, 4)
	run(t, c, 3)
	r := c.replicas[2]
	before := r.driver.Status()
	r.trace = nil
	r.start()
	after := r.driver.Status()
	if after.LowWatermark != 2 || after.LowWatermark != before.LowWatermark {
		t.Fatalf("restarted at stable checkpoint %d, want 2 (was %d)", after.LowWatermark, before.LowWatermark)
	}
	if after.LastCommitted != before.LastCommitted || after.View != before.View {
		t.Fatalf("restarted at view %d committed %d, was view %d committed %d", after.View, after.LastCommitted, before.View, before.LastCommitted)
	}
	if slices.ContainsFunc(r.trace, func(s step) bool { return s.what == "view" && s.seq == 0 && len(r.trace) == 1 }) {
		t.Fatal("a restart stored the first start's view")
	}
	// The restarted replica takes part again.
	if err := c.submit(0, c.request(4, "d")); err != nil {
		t.Fatal(err)
	}
	c.deliver()
	if got := r.exec.LastExecuted(); got != 4 {
		t.Fatalf("restarted replica executed %d, want 4", got)
	}
}

// TestRestartWithOnlyTheViewStored: a primary that crashed after its
// first start stored the view, and before it persisted anything else,
// restarts as a restart (the core is restored) and does not propose
// afresh: it may have sent PRE-PREPAREs it did not persist.
func TestRestartWithOnlyTheViewStored(t *testing.T) {
	fresh := newTestCluster(t, 4)
	if err := fresh.submit(0, fresh.request(1, "a")); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(fresh.replicas[0].trace, func(s step) bool { return s.kind == protocol.KindPrePrepare }) {
		t.Fatal("a fresh primary did not propose")
	}

	c := newTestCluster(t, 4)
	p := c.replicas[0]
	p.trace = nil
	p.start() // only view 0 is stored
	if err := c.submit(0, c.request(1, "a")); err != nil && !errors.Is(err, protocol.ErrQueueFull) {
		t.Logf("submit: %v", err)
	}
	if slices.ContainsFunc(p.trace, func(s step) bool { return s.kind == protocol.KindPrePrepare }) {
		t.Fatalf("a restarted primary proposed afresh: %v", p.trace)
	}
}

// TestSubmitExecutedRepliesFromCache: a request the executor ran is
// answered from its reply cache, without the core.
func TestSubmitExecutedRepliesFromCache(t *testing.T) {
	c := newTestCluster(t, 4)
	run(t, c, 1)
	r := c.replicas[1]
	first := r.replies[len(r.replies)-1]
	r.trace = nil
	if err := c.submit(1, c.request(1, "b")); err != nil {
		t.Fatal(err)
	}
	if len(r.trace) != 1 || r.trace[0].what != "reply" {
		t.Fatalf("resubmitted executed request: %v, want one reply", r.trace)
	}
	again := r.replies[len(r.replies)-1]
	if again.RequestNumber != 1 || string(again.Result) != string(first.Result) {
		t.Fatalf("cached reply %v, want %v", again, first)
	}
}

// TestStepStateMessages: state requests are the runtime's; a chunk no
// transfer asked for is refused.
func TestStepStateMessages(t *testing.T) {
	c := newTestCluster(t, 4)
	d := c.replicas[1].driver
	req := protocol.VerifiedMessage{Body: &wire.ReplicaMessage{From: 2, Body: &wire.ReplicaMessage_StateRequest{StateRequest: &wire.StateRequest{Sequence: 2}}}}
	if err := d.Step(req); !errors.Is(err, ErrStateRequest) {
		t.Fatalf("state request: %v", err)
	}
	chunk := protocol.VerifiedMessage{Body: &wire.ReplicaMessage{From: 2, Body: &wire.ReplicaMessage_StateChunk{StateChunk: &wire.StateChunk{Sequence: 2}}}}
	if err := d.Step(chunk); !errors.Is(err, ErrUnexpectedStateChunk) {
		t.Fatalf("unexpected state chunk: %v", err)
	}
}

// TestBehindReplicaTransfersState: a replica cut off while the others
// moved two windows on learns it is behind, fetches the certified
// snapshot from them chunk by chunk, installs it and executes on from
// there.
func TestBehindReplicaTransfersState(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[3]
	r.cut = true
	run(t, c, 10)
	r.cut = false
	r.trace = nil
	for i := 0; i < 2000 && r.exec.LastExecuted() < 10; i++ {
		c.tick()
	}
	if got := r.exec.LastExecuted(); got < 10 {
		t.Fatalf("the cut-off replica executed %d after reconnecting, want 10 (status %+v)", got, r.driver.Status())
	}
	requests := 0
	for _, s := range r.trace {
		if s.what == "send" && s.kind == protocol.KindStateRequest {
			requests++
		}
	}
	installed := slices.IndexFunc(r.trace, func(s step) bool { return s.what == "installed" })
	if requests < 2 || installed < 0 || r.driver.Transferring() {
		t.Fatalf("%d state requests, installed at step %d, still transferring %v: %v", requests, installed, r.driver.Transferring(), r.trace)
	}
	if r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
		t.Fatal("the transferred state differs from the primary's")
	}
}

// stateRequestsFrom decodes the state requests replica from has queued.
func stateRequestsFrom(t *testing.T, c *testCluster, from uint32) []*wire.StateRequest {
	t.Helper()
	var out []*wire.StateRequest
	for _, f := range c.queue {
		if f.from != from {
			continue
		}
		m, err := c.verifier.ReplicaFrame(f.data)
		if err != nil {
			t.Fatal(err)
		}
		if req := m.Body.GetStateRequest(); req != nil {
			out = append(out, req)
		}
	}
	return out
}

// TestCrashDuringStateTransferResumes: a replica that crashes in the
// middle of a state transfer keeps the chunks it restored: restarted, it
// asks for the same certified checkpoint (not the older one it had
// stored) from the key after the last one it wrote, and completes the
// state, digest checked, without fetching the first part again.
func TestCrashDuringStateTransferResumes(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[3]
	r.cut = true
	run(t, c, 10)
	r.cut = false
	// Halt (crash) when the third chunk with entries arrives: two are in.
	received := 0
	c.halt = func() bool {
		f := c.queue[0]
		if f.to == 3 {
			if m, err := c.verifier.ReplicaFrame(f.data); err == nil && len(m.Body.GetStateChunk().GetEntries()) > 0 {
				received++
			}
		}
		return received >= 3
	}
	for i := 0; i < 2000 && received < 3; i++ {
		c.tick()
	}
	if received < 3 || !r.driver.Transferring() {
		t.Fatalf("%d chunks on the way, transferring %v: the scenario wants a transfer in progress", received, r.driver.Transferring())
	}
	c.halt = nil
	// Crash: what is in flight is lost; the storage and database stay.
	kept := c.queue[:0]
	for _, f := range c.queue {
		if f.to != 3 && f.from != 3 {
			kept = append(kept, f)
		}
	}
	c.queue = kept
	r.start()
	if r.exec.LastExecuted() != 0 {
		t.Fatalf("restarted at executed %d, want 0 during the transfer", r.exec.LastExecuted())
	}
	reqs := stateRequestsFrom(t, c, 3)
	if len(reqs) != 1 || len(reqs[0].GetStartKey()) == 0 {
		t.Fatalf("after the restart it asked %v; want one request resuming past the first key", reqs)
	}
	for i := 0; i < 2000 && r.exec.LastExecuted() < 10; i++ {
		c.tick()
	}
	if r.exec.LastExecuted() < 10 || r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
		t.Fatalf("after the resumed transfer: executed %d, same digest %v", r.exec.LastExecuted(), r.exec.StateDigest() == c.replicas[0].exec.StateDigest())
	}
}

// TestUnavailableTargetAsksForANewerCertificate: when a peer answers that
// it no longer holds the transfer's target (it moved its stable checkpoint
// on), the replica broadcasts a Fetch at once, whose answers carry the
// newer certificate, instead of waiting for its retransmission timer.
func TestUnavailableTargetAsksForANewerCertificate(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[3]
	r.cut = true
	run(t, c, 10)
	r.cut = false
	c.halt = func() bool {
		f := c.queue[0]
		if f.from != 3 {
			return false
		}
		m, err := c.verifier.ReplicaFrame(f.data)
		return err == nil && m.Body.GetStateRequest() != nil
	}
	for i := 0; i < 2000 && !r.driver.Transferring(); i++ {
		c.tick()
	}
	c.halt = nil
	if !r.driver.Transferring() {
		t.Fatal("the cut-off replica did not start a state transfer")
	}
	// The peers release their snapshots; time passes for replica 3 (past
	// the Fetch rate limit) while its request waits.
	for _, p := range c.replicas[:3] {
		p.snaps.ReleaseAll()
	}
	for range protocol.DefaultRetransmitTicks/4 + 1 {
		r.driver.Tick()
	}
	r.trace = nil
	c.deliver()
	if !slices.ContainsFunc(r.trace, func(s step) bool { return s.what == "send" && s.kind == protocol.KindFetch }) {
		t.Fatalf("no Fetch after an unavailable answer: %v", r.trace)
	}
}

// TestLaggingReplicaRecoversAfterAWholeClusterRestart: the correct
// replicas executed past their stable checkpoint, the whole cluster
// restarted (every in-memory snapshot lost) and stays idle, so the next
// checkpoint never comes. A replica behind the stable checkpoint must
// still get its state: the others rebuild it at recovery (the executor's
// rollback records) and serve it.
func TestLaggingReplicaRecoversAfterAWholeClusterRestart(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[3]
	r.cut = true
	run(t, c, 9) // checkpoint 8 is stable, 9 executed past it
	for _, p := range c.replicas[:3] {
		if st := p.driver.Status(); st.LowWatermark != 8 {
			t.Fatalf("replica %d stable checkpoint %d, want 8", p.id, st.LowWatermark)
		}
	}
	// Crash everyone: what is in flight and every snapshot are lost.
	c.queue = nil
	for _, p := range c.replicas {
		p.snaps.ReleaseAll()
		p.start()
	}
	r.cut = false
	for i := 0; i < 3000 && r.exec.LastExecuted() < 9; i++ {
		c.tick()
	}
	if got := r.exec.LastExecuted(); got < 9 {
		t.Fatalf("the lagging replica executed %d after the restart, want 9 (status %+v)", got, r.driver.Status())
	}
	if r.exec.StateDigest() != c.replicas[0].exec.StateDigest() {
		t.Fatal("the lagging replica's state differs from the others'")
	}
}

// TestRecoveryKeepsRollbackRecordsPerCheckpoint: recovery has the
// executor keep its rollback records per checkpoint interval (it only
// ever rebuilds checkpoints; execution.SetRollbackInterval), after a
// restart too.
func TestRecoveryKeepsRollbackRecordsPerCheckpoint(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[0]
	if r.rollbackInterval != 2 {
		t.Fatalf("rollback interval %d, want the checkpoint interval 2", r.rollbackInterval)
	}
	run(t, c, 5)
	r.rollbackInterval = 0
	r.start()
	if r.rollbackInterval != 2 {
		t.Fatalf("rollback interval %d after a restart, want 2", r.rollbackInterval)
	}
}

// TestInstalledStateIsServed: a replica that installed a checkpoint by
// state transfer serves that checkpoint's state to others (it may be the
// one replica that still has it once the others restarted).
func TestInstalledStateIsServed(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[3]
	r.cut = true
	run(t, c, 9)
	r.cut = false
	for i := 0; i < 2000 && r.exec.LastExecuted() < 9; i++ {
		c.tick()
	}
	if !slices.ContainsFunc(r.trace, func(s step) bool { return s.what == "installed" && s.seq == 8 }) {
		t.Fatalf("replica 3 did not install checkpoint 8: %v", r.trace)
	}
	snap := r.snaps.Taken[8]
	if snap == nil {
		t.Fatal("replica 3 keeps no snapshot of the checkpoint it installed")
	}
	chunk := statetransfer.Serve(snap, &wire.StateRequest{Sequence: 8}, 1<<20)
	if chunk.Unavailable || len(chunk.Entries) == 0 {
		t.Fatalf("replica 3 cannot serve checkpoint 8: %+v", chunk)
	}
}
