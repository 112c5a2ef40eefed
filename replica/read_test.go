package replica

import (
	"crypto/ed25519"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/wire"
)

// readRequest is client 0's read-only request number with op.
func (c *testCluster) readRequest(number uint64, op []byte) *wire.Request {
	return &wire.Request{ClientId: c.client.Public().(ed25519.PublicKey), RequestNumber: number, Operation: op, ReadOnly: true}
}

// readReplies returns the read-only replies r sent.
func readReplies(r *testReplica) []*wire.Reply {
	var out []*wire.Reply
	for _, rep := range r.replies {
		if rep.ReadOnly {
			out = append(out, rep)
		}
	}
	return out
}

// A read arriving at a replica that prepared a write but has not executed
// it yet waits for that execution: once the write could have completed
// (a commit quorum, which shares a correct replica with any 2f+1
// answering a read, prepared it), no answer without it may be given.
// Without the wait, replica 1 would answer "not found" here: a stale
// answer that, with f Byzantine and f other lagging replicas, makes 2f+1.
func TestReadWaitsForPreparedWrites(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[1]
	c.halt = func() bool { return r.driver.Core().HighestPrepared() >= 1 && r.exec.LastExecuted() == 0 }
	if err := c.submit(0, c.request(1, "k")); err != nil {
		t.Fatal(err)
	}
	c.deliver()
	if r.driver.Core().HighestPrepared() < 1 || r.exec.LastExecuted() != 0 {
		t.Fatalf("replica 1 prepared %d, executed %d: the scenario did not arise", r.driver.Core().HighestPrepared(), r.exec.LastExecuted())
	}
	get := execution.EncodeGet([]byte("k"))
	if err := r.driver.Read(c.readRequest(100, get)); err != nil {
		t.Fatal(err)
	}
	if err := r.driver.Process(); err != nil {
		t.Fatal(err)
	}
	if got := readReplies(r); len(got) != 0 {
		t.Fatalf("replica 1 answered the read before executing the write it prepared: %v", got)
	}
	if r.driver.PendingReads() != 1 {
		t.Fatalf("%d pending reads, want 1", r.driver.PendingReads())
	}
	c.halt = nil
	c.deliver()
	got := readReplies(r)
	if len(got) != 1 || got[0].Error != "" {
		t.Fatalf("read replies after the write executed: %v, want one answer", got)
	}
	res, err := execution.DecodeResult(got[0].Result)
	if err != nil || !res.Ok || string(res.Value) != "v" {
		t.Fatalf("read answered %v (%v), want the written value v", res, err)
	}
	if got[0].RequestNumber != 100 || r.exec.Status(got[0].ClientId, 100) != execution.RequestNew {
		t.Fatal("the read touched the client's window or reply cache")
	}
}

// A replica that has executed everything it prepared answers at once; an
// operation that is not read-only is refused on the read-only path.
func TestReadAnswersAtOnceAndRefusesWrites(t *testing.T) {
	c := newTestCluster(t, 4)
	run(t, c, 1)
	r := c.replicas[2]
	if err := r.driver.Read(c.readRequest(100, execution.EncodeGet([]byte("nothing")))); err != nil {
		t.Fatal(err)
	}
	if err := r.driver.Read(c.readRequest(101, execution.EncodePut([]byte("k"), []byte("w")))); err != nil {
		t.Fatal(err)
	}
	got := readReplies(r)
	if len(got) != 2 {
		t.Fatalf("%d read replies, want 2", len(got))
	}
	if res, err := execution.DecodeResult(got[0].Result); err != nil || res.Ok || got[0].Error != "" {
		t.Fatalf("get of a missing key answered %v %q (%v)", res, got[0].Error, err)
	}
	if got[1].Error != readNotReadOnly {
		t.Fatalf("put on the read-only path answered %q, want the refusal %q", got[1].Error, readNotReadOnly)
	}
}

// Pending reads are refused when they waited ReadWaitTicks.
func TestPendingReadExpires(t *testing.T) {
	c := newTestCluster(t, 4)
	r := c.replicas[1]
	c.halt = func() bool { return r.driver.Core().HighestPrepared() >= 1 && r.exec.LastExecuted() == 0 }
	if err := c.submit(0, c.request(1, "k")); err != nil {
		t.Fatal(err)
	}
	c.deliver()
	if err := r.driver.Read(c.readRequest(100, execution.EncodeGet([]byte("k")))); err != nil {
		t.Fatal(err)
	}
	for range ReadWaitTicks {
		r.driver.Tick()
	}
	got := readReplies(r)
	if len(got) != 1 || got[0].Error == "" || r.driver.PendingReads() != 0 {
		t.Fatalf("after %d ticks: replies %v, %d pending; want one refusal", ReadWaitTicks, got, r.driver.PendingReads())
	}
}
