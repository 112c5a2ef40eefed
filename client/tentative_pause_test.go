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

	// A stall without tentative replies (one committed reply came): no
	// pause.
	done := invokeAsync(ctx, c)
	first := nextSent(t, sent)
	if !first.Tentative {
		t.Fatal("the first call did not ask for tentative replies")
	}
	feed(t, c, first.RequestNumber, comm(1, "ok", 0, 7)) // one committed reply only
	nextSent(t, sent)                                    // the retransmission to every replica
	feed(t, c, first.RequestNumber, comm(2, "ok", 0, 7))
	if err := awaitErr(t, done); err != nil {
		t.Fatal(err)
	}
	if n := c.TentativePauses(); n != 0 {
		t.Fatalf("a stall with no tentative reply paused tentative replies (%d)", n)
	}

	// A stall with tentative replies short of their quorum: a pause.
	drain(sent)
	done = invokeAsync(ctx, c)
	second := nextSent(t, sent)
	if !second.Tentative {
		t.Fatal("the second call did not ask for tentative replies")
	}
	feed(t, c, second.RequestNumber, tent(0, "ok", 0, 8))
	feed(t, c, second.RequestNumber, tent(1, "ok", 0, 8))
	nextSent(t, sent)                                     // the retransmission
	feed(t, c, second.RequestNumber, comm(0, "ok", 0, 0)) // from the reply caches
	feed(t, c, second.RequestNumber, comm(1, "ok", 0, 0))
	if err := awaitErr(t, done); err != nil {
		t.Fatal(err)
	}
	if n := c.TentativePauses(); n != 1 {
		t.Fatalf("tentative replies paused %d times, want 1", n)
	}
	drain(sent)
	done = invokeAsync(ctx, c)
	third := nextSent(t, sent)
	if third.Tentative {
		t.Fatal("a call during the pause asked for tentative replies")
	}
	feed(t, c, third.RequestNumber, comm(0, "ok", 0, 9))
	feed(t, c, third.RequestNumber, comm(2, "ok", 0, 9))
	if err := awaitErr(t, done); err != nil {
		t.Fatal(err)
	}

	// The pause over, calls ask again.
	c.mu.Lock()
	c.tentativePausedUntil = time.Now().Add(-time.Second)
	c.mu.Unlock()
	drain(sent)
	done = invokeAsync(ctx, c)
	fourth := nextSent(t, sent)
	if !fourth.Tentative {
		t.Fatal("a call after the pause did not ask for tentative replies")
	}
	feed(t, c, fourth.RequestNumber, comm(0, "ok", 0, 10))
	feed(t, c, fourth.RequestNumber, comm(2, "ok", 0, 10))
	if err := awaitErr(t, done); err != nil {
		t.Fatal(err)
	}
}
