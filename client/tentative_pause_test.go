package client

import (
	"context"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/wire"
)

// pauseClient is a 4-replica client whose sent requests arrive on the
// returned channel and whose retransmission timeout is short.
func pauseClient(t *testing.T) (*Client, chan *wire.Request) {
	t.Helper()
	c := newBenchClient(64)
	c.cfg.RetransmitTimeout, c.cfg.HintTimeout = 20*time.Millisecond, 20*time.Millisecond
	c.cfg.TentativePause = time.Hour
	c.known, c.confirmed = true, true
	sent := make(chan *wire.Request, 64)
	c.send = func(_ uint32, frame []byte) bool {
		for _, req := range sentRequests(t, frame) {
			sent <- req
		}
		return true
	}
	return c, sent
}

// drain empties sent.
func drain(sent chan *wire.Request) {
	for len(sent) > 0 {
		<-sent
	}
}

// TestTentativeRepliesPauseAfterAStall: a call whose tentative replies
// stop short of 2f+1 (two replicas answered tentatively; a third that
// votes but never answers clients, and a fourth slow to reach this one,
// did not) waits for its retransmission, which the replicas' reply
// caches answer with committed replies; the client's next calls then
// ask for committed replies only, until the pause ends. A call that
// stalls holding no tentative reply (its primary gone, or committed
// replies slow to come) pauses nothing.
func TestTentativeRepliesPauseAfterAStall(t *testing.T) {
	c, sent := pauseClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	// call runs one Invoke: it checks whether its request asked for
	// tentative replies, feeds it before (the replicas' first replies),
	// waits for its retransmission when after is set, then feeds after.
	call := func(name string, wantTentative bool, before, after []tagged) {
		t.Helper()
		drain(sent)
		done := invokeAsync(ctx, c)
		req := nextSent(t, sent)
		if req.Tentative != wantTentative {
			t.Fatalf("%s: the request asked for tentative replies: %v, want %v", name, req.Tentative, wantTentative)
		}
		for _, r := range before {
			feed(t, c, req.RequestNumber, r)
		}
		if after != nil {
			nextSent(t, sent) // the retransmission to every replica
		}
		for _, r := range after {
			feed(t, c, req.RequestNumber, r)
		}
		if err := awaitErr(t, done); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// A stall without tentative replies (one committed reply came): no
	// pause.
	call("committed reply, then a stall", true, []tagged{comm(1, "ok", 0, 7)}, []tagged{comm(2, "ok", 0, 7)})
	if n := c.TentativePauses(); n != 0 {
		t.Fatalf("a stall with no tentative reply paused tentative replies (%d)", n)
	}
	// A stall with tentative replies short of their quorum: a pause. The
	// replies after the retransmission come from the reply caches.
	call("tentative replies short of the quorum", true,
		[]tagged{tent(0, "ok", 0, 8), tent(1, "ok", 0, 8)}, []tagged{comm(0, "ok", 0, 0), comm(1, "ok", 0, 0)})
	if n := c.TentativePauses(); n != 1 {
		t.Fatalf("tentative replies paused %d times, want 1", n)
	}
	call("during the pause", false, []tagged{comm(0, "ok", 0, 9), comm(2, "ok", 0, 9)}, nil)

	// The pause over, calls ask again.
	c.mu.Lock()
	c.tentativePausedUntil = time.Now().Add(-time.Second)
	c.mu.Unlock()
	call("after the pause", true, []tagged{comm(0, "ok", 0, 10), comm(2, "ok", 0, 10)}, nil)
}
