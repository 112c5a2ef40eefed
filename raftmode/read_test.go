package raftmode_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/wire"
)

// read sends a read-only request to replica to.
func (c *cluster) read(to int, number uint64, op []byte) {
	c.drivers[to].Read(&wire.Request{ClientId: client, RequestNumber: number, Operation: op, ReadOnly: true})
}

// readAnswer returns the read-only reply to request number, or nil.
func (c *cluster) readAnswer(number uint64) *wire.Reply {
	return c.reads[fmt.Sprintf("%x/%d", client, number)]
}

// readValue decodes a read reply's get result.
func readValue(t *testing.T, r *wire.Reply) string {
	t.Helper()
	if r.GetError() != "" {
		t.Fatalf("read %d refused: %s", r.GetRequestNumber(), r.GetError())
	}
	res, err := execution.DecodeResult(r.GetResult())
	if err != nil {
		t.Fatal(err)
	}
	return string(res.GetValue())
}

// readCluster starts 3 replicas with the given read deadline and bound
// (0: defaults) and returns them once one leads, with the leader.
func readCluster(t *testing.T, timeout, maxReads int) (*cluster, int) {
	c := newCluster(t, 3, 1000)
	if timeout != 0 || maxReads != 0 {
		c.readTimeout, c.maxReads = timeout, maxReads
		for i := range 3 {
			c.start(i)
		}
	}
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	return c, c.leader()
}

func TestLeaderReadSeesCompletedWritesWithoutLogAppend(t *testing.T) {
	c, l := readCluster(t, 0, 0)
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(100, func() bool { return c.replied(1) && c.converged() })
	last := c.cores[l].Status().LastIndex
	c.read(l, 2, execution.EncodeGet([]byte("k")))
	c.runUntil(100, func() bool { return c.readAnswer(2) != nil })
	if got := readValue(t, c.readAnswer(2)); got != "v1" {
		t.Fatalf("read returned %q, want v1", got)
	}
	if got := c.cores[l].Status().LastIndex; got != last {
		t.Fatalf("a read appended to the log: last index %d -> %d", last, got)
	}
	// A follower refuses, naming the leader; a write sent as a read is
	// refused too (and not executed).
	f := (l + 1) % 3
	c.read(f, 3, execution.EncodeGet([]byte("k")))
	r := c.readAnswer(3)
	if r == nil || r.GetError() == "" || r.GetLeaderHint() != uint32(l)+1 {
		t.Fatalf("follower's answer %v: want an error reply with leader hint %d", r, l+1)
	}
	c.read(l, 4, execution.EncodePut([]byte("k"), []byte("sneaky")))
	c.runUntil(100, func() bool { return c.readAnswer(4) != nil })
	if c.readAnswer(4).GetError() == "" {
		t.Fatalf("a put sent as a read was answered: %v", c.readAnswer(4))
	}
	c.read(l, 5, execution.EncodeGet([]byte("k")))
	c.runUntil(100, func() bool { return c.readAnswer(5) != nil })
	if got := readValue(t, c.readAnswer(5)); got != "v1" {
		t.Fatalf("after the refused put the read returned %q, want v1", got)
	}
}

func TestReadsAreBounded(t *testing.T) {
	c, l := readCluster(t, 0, 2)
	for n := uint64(1); n <= 3; n++ {
		c.read(l, n, execution.EncodeGet([]byte("k")))
	}
	if r := c.readAnswer(3); r == nil || r.GetError() == "" {
		t.Fatalf("third pending read: %v, want an error reply (at most 2 pending)", r)
	}
	c.runUntil(100, func() bool { return c.readAnswer(1) != nil && c.readAnswer(2) != nil })
	if st := c.cores[l].Status(); st.PendingReads != 0 {
		t.Fatalf("%d reads still pending after every answer", st.PendingReads)
	}
}

func TestPartitionedLeaderTimesOutReads(t *testing.T) {
	c, l := readCluster(t, 20, 0)
	c.cut[l] = true
	c.read(l, 1, execution.EncodeGet([]byte("k")))
	for range 15 {
		c.round()
	}
	if r := c.readAnswer(1); r != nil {
		t.Fatalf("a partitioned leader answered a read before the timeout: %v", r)
	}
	c.runUntil(50, func() bool { return c.readAnswer(1) != nil })
	if e := c.readAnswer(1).GetError(); e != raftmode.ErrReadTimeout.Error() {
		t.Fatalf("partitioned leader's read: error %q, want %q", e, raftmode.ErrReadTimeout)
	}
}

// A leader cut off while a read waits is deposed; when it hears the new
// term its pending read fails at once: it never answers with the value it
// holds, which the new leader's write made stale.
func TestDeposedLeaderFailsPendingReads(t *testing.T) {
	c, old := readCluster(t, 100000, 0)
	c.submit(old, 1, execution.EncodePut([]byte("k"), []byte("old")))
	c.runUntil(100, func() bool { return c.replied(1) && c.converged() })
	c.cut[old] = true
	c.read(old, 2, execution.EncodeGet([]byte("k")))
	c.runUntil(400, func() bool {
		for i, core := range c.cores {
			if i != old && core.Status().IsLeader {
				return true
			}
		}
		return false
	})
	var nl int
	for i, core := range c.cores {
		if i != old && core.Status().IsLeader {
			nl = i
		}
	}
	c.submit(nl, 3, execution.EncodePut([]byte("k"), []byte("new")))
	c.runUntil(100, func() bool { return c.replied(3) })
	delete(c.cut, old)
	c.runUntil(300, func() bool { return c.readAnswer(2) != nil })
	r := c.readAnswer(2)
	if r.GetError() != raftmode.ErrReadAborted.Error() {
		t.Fatalf("deposed leader's pending read: %v, want error %q", r, raftmode.ErrReadAborted)
	}
}

func TestSubmitRefusesReadOnlyRequests(t *testing.T) {
	c := newCluster(t, 1, 1000)
	_, err := c.cores[0].Submit(&wire.Request{ClientId: client, RequestNumber: 1, Operation: execution.EncodeGet([]byte("k")), ReadOnly: true})
	if !errors.Is(err, raftmode.ErrReadOnlyOrdered) {
		t.Fatalf("Submit of a read-only request: %v, want ErrReadOnlyOrdered", err)
	}
}

// A read queued behind a ReadIndex request that never completes still
// fails within the deadline: its wait in the queue counts.
func TestQueuedReadsFailWithinTheDeadline(t *testing.T) {
	c, l := readCluster(t, 20, 0)
	c.cut[l] = true
	c.read(l, 1, execution.EncodeGet([]byte("k")))
	for range 10 {
		c.round()
	}
	c.read(l, 2, execution.EncodeGet([]byte("k"))) // queued behind read 1's request
	for range 24 {
		c.round()
	}
	if r := c.readAnswer(2); r == nil || r.GetError() != raftmode.ErrReadTimeout.Error() {
		t.Fatalf("read queued for 24 ticks with a 20-tick deadline: %v, want %q", r, raftmode.ErrReadTimeout)
	}
}

// Reads that arrive before one Process share one ReadIndex request; reads
// arriving in later Processes, while earlier requests are unconfirmed, get
// requests of their own at once, up to ReadIndexesInFlight, and the rest
// wait for a confirmation. Every read is answered with the completed write.
func TestReadIndexRequestsShareAndPipeline(t *testing.T) {
	c, l := readCluster(t, 0, 0)
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(100, func() bool { return c.replied(1) && c.converged() })
	leader := c.drivers[l]
	process := func() {
		t.Helper()
		if err := leader.Process(); err != nil {
			t.Fatal(err)
		}
	}
	number := uint64(2)
	for range 10 {
		c.read(l, number, execution.EncodeGet([]byte("k")))
		number++
	}
	process() // no message is delivered until c.round
	if got := raftmode.UnconfirmedReadIndexes(c.cores[l]); got != 1 {
		t.Fatalf("10 reads before one Process: %d ReadIndex requests, want 1", got)
	}
	for range raftmode.DefaultReadIndexesInFlight {
		c.read(l, number, execution.EncodeGet([]byte("k")))
		number++
		process()
	}
	if got := raftmode.UnconfirmedReadIndexes(c.cores[l]); got != raftmode.DefaultReadIndexesInFlight {
		t.Fatalf("%d more Processes with a read each: %d ReadIndex requests unconfirmed, want %d",
			raftmode.DefaultReadIndexesInFlight, got, raftmode.DefaultReadIndexesInFlight)
	}
	if got, want := c.cores[l].PendingReads(), int(number-2); got != want {
		t.Fatalf("%d reads pending, want %d", got, want)
	}
	c.runUntil(100, func() bool { return c.cores[l].PendingReads() == 0 })
	for n := uint64(2); n < number; n++ {
		if r := c.readAnswer(n); r == nil || readValue(t, r) != "v1" {
			t.Fatalf("read %d: %v, want v1", n, r)
		}
	}
}
