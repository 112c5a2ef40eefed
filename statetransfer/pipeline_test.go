package statetransfer

import (
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// TestAWindowTakesFewerRoundTrips: with Window 4 each request asks for 4
// chunks, all four are in flight before the next request leaves, and the
// transfer takes a quarter of the round trips one chunk at a time takes.
func TestAWindowTakesFewerRoundTrips(t *testing.T) {
	good := state(10, 60, "")
	rounds := map[int]int{}
	for _, window := range []int{1, 4} {
		c := newClusterWith(t, true, Config{Window: window})
		c.snaps[1] = []*snap{good}
		c.f.Start(pbftTarget(good, 1))
		for range 1000 {
			if len(c.inFlight) == 0 && len(c.sent) > 0 {
				if got := c.sent[0].req.GetChunks(); window > 1 && int(got) != window {
					t.Fatalf("window %d: request for %d chunks", window, got)
				}
				if len(c.sent) != 1 {
					t.Fatalf("window %d: %d requests outstanding, want one window at a time", window, len(c.sent))
				}
			}
			if window > 1 && len(c.inFlight) > 0 && len(c.sent) > 0 {
				t.Fatalf("window %d: the next request left with %d chunks of the window in flight", window, len(c.inFlight))
			}
			if seq, done := c.answer(); done {
				if seq != 10 || digest(c.r.state) != digest(good.entries) {
					t.Fatalf("window %d: installed %d", window, seq)
				}
				break
			}
		}
		if c.f.Active() {
			t.Fatalf("window %d: not done", window)
		}
		rounds[window] = c.rounds
	}
	if rounds[1] < 12 || rounds[4] > (rounds[1]+3)/4 {
		t.Fatalf("round trips: %v; want a quarter with a window of 4", rounds)
	}
}

// TestServeChunksBoundsAWindow: a request for more chunks than
// MaxChunksPerRequest gets that many, each starting where the one before
// ended; the last chunk of the snapshot ends a window early.
func TestServeChunksBoundsAWindow(t *testing.T) {
	s := state(10, 100, "")
	chunks := ServeChunks(s, &wire.StateRequest{Sequence: 10, Chunks: 1000}, 16)
	if len(chunks) != MaxChunksPerRequest {
		t.Fatalf("%d chunks for a request of 1000, want %d", len(chunks), MaxChunksPerRequest)
	}
	for i := 1; i < len(chunks); i++ {
		if string(chunks[i].StartKey) != string(chunks[i-1].NextKey) || chunks[i].Sequence != 10 {
			t.Fatalf("chunk %d starts at %q after one ending at %q", i, chunks[i].StartKey, chunks[i-1].NextKey)
		}
	}
	if got := ServeChunks(s, &wire.StateRequest{Sequence: 10}, 16); len(got) != 1 {
		t.Fatalf("%d chunks for a request without Chunks, want 1", len(got))
	}
	small := state(10, 2, "")
	if got := ServeChunks(small, &wire.StateRequest{Sequence: 10, Chunks: 8}, 1<<10); len(got) != 1 || got[0].NextKey != nil {
		t.Fatalf("a snapshot of one chunk served as %d", len(got))
	}
	if got := ServeChunks(nil, &wire.StateRequest{Sequence: 10, Chunks: 8}, 16); len(got) != 1 || !got[0].Unavailable {
		t.Fatalf("no snapshot: %d chunks", len(got))
	}
}

// TestANewerTargetDoesNotWipeAFetchThatProgresses: with KeepTarget, a
// newer stable checkpoint during a transfer whose target is still served
// neither restarts nor wipes it; the transfer completes at its target.
func TestANewerTargetDoesNotWipeAFetchThatProgresses(t *testing.T) {
	c := newClusterWith(t, true, Config{KeepTarget: true})
	old, newer := state(10, 12, ""), state(20, 12, "")
	c.snaps[1], c.snaps[2] = []*snap{old, newer}, []*snap{old, newer}
	c.f.Start(pbftTarget(old, 1, 2))
	c.answer()
	c.answer()
	if c.f.Keeps(pbftTarget(newer, 1, 2)) != true || c.f.Start(pbftTarget(newer, 1, 2)) {
		t.Fatal("a newer target retargeted a fetch in progress")
	}
	if seq, done := c.run(100); !done || seq != 10 || digest(c.r.state) != digest(old.entries) {
		t.Fatalf("done %v at %d, want the kept target 10", done, seq)
	}
	if c.r.begins != 1 || c.r.aborts != 0 || c.obs.started != 1 {
		t.Fatalf("begins %d aborts %d started %d: the restore was wiped", c.r.begins, c.r.aborts, c.obs.started)
	}
	// Done: the newer target starts a new fetch.
	if !c.f.Start(pbftTarget(newer, 1, 2)) {
		t.Fatal("a target after done did not start")
	}
}

// TestATargetNoLongerServedIsRetargeted: with KeepTarget, once every
// peer answered Unavailable for the target (they released it), the fetch
// is Stalled and a newer target retargets it.
func TestATargetNoLongerServedIsRetargeted(t *testing.T) {
	c := newClusterWith(t, true, Config{KeepTarget: true})
	old, newer := state(10, 12, ""), state(20, 12, "")
	c.snaps[1], c.snaps[2] = []*snap{old, newer}, []*snap{old, newer}
	c.f.Start(pbftTarget(old, 1, 2))
	c.answer()
	c.snaps[1], c.snaps[2] = []*snap{newer}, []*snap{newer}
	if c.f.Start(pbftTarget(newer, 1, 2)) {
		t.Fatal("retargeted before the target was found unserved")
	}
	c.answer() // peer 1: unavailable
	if c.f.Stalled() {
		t.Fatal("stalled after one peer of two")
	}
	c.answer() // peer 2: unavailable
	if !c.f.Stalled() || c.f.Keeps(pbftTarget(newer, 1, 2)) {
		t.Fatal("not stalled once every peer released the target")
	}
	if !c.f.Start(pbftTarget(newer, 1, 2)) {
		t.Fatal("a stalled fetch was not retargeted")
	}
	c.sent = c.sent[len(c.sent)-1:]
	if seq, done := c.run(100); !done || seq != 20 || digest(c.r.state) != digest(newer.entries) {
		t.Fatalf("done %v at %d, want 20", done, seq)
	}
	c.wantRejected("unavailable", "unavailable")
}

// TestAForgedChunkInAWindowIsCaught: peer 1 serves windows whose second
// chunk is forged (valid keys, wrong values); the final digest check
// fails, the fetch redoes the restore from one peer, and peer 2's state
// installs.
func TestAForgedChunkInAWindowIsCaught(t *testing.T) {
	c := newClusterWith(t, true, Config{Window: 4})
	good := state(10, 60, "")
	c.snaps[1], c.snaps[2] = []*snap{good}, []*snap{good}
	c.tamper = func(from uint32, ch *wire.StateChunk) {
		if from == 1 && ch.StartKey != nil && len(ch.Entries) > 0 && string(ch.Entries[0].Key) < "k010" {
			forged := slices.Clone(ch.Entries)
			forged[0] = &wire.KeyValue{Key: forged[0].Key, Value: []byte("forged")}
			ch.Entries = forged
		}
	}
	c.f.Start(pbftTarget(good, 1, 2))
	seq, done := c.run(1000)
	if !done || seq != 10 || digest(c.r.state) != digest(good.entries) {
		t.Fatalf("done %v at %d, rejected %v", done, seq, c.obs.rejected)
	}
	if !slices.Contains(c.obs.rejected, "digest_mismatch") {
		t.Fatalf("rejected %v, want a digest mismatch", c.obs.rejected)
	}
}

// TestAWindowDeliveredOutOfOrderIsApplied: the runtime verifies frames on
// several workers, so a window's chunks may arrive in any order; each is
// held until the one before it is applied, and the transfer still takes
// one round trip per window.
func TestAWindowDeliveredOutOfOrderIsApplied(t *testing.T) {
	c := newClusterWith(t, true, Config{Window: 4})
	good := state(10, 60, "")
	c.snaps[1] = []*snap{good}
	c.f.Start(pbftTarget(good, 1))
	for range 100 {
		if len(c.inFlight) == 0 {
			rq := c.sent[0]
			c.sent = c.sent[1:]
			c.rounds++
			for _, chunk := range ServeChunks(c.pick(rq.to, rq.req.Sequence), rq.req, 16) {
				c.inFlight = append([]served{{rq.to, chunk}}, c.inFlight...) // reversed
			}
		}
		if seq, done := c.answer(); done {
			if seq != 10 || digest(c.r.state) != digest(good.entries) || len(c.obs.rejected) != 0 {
				t.Fatalf("installed %d, rejected %v", seq, c.obs.rejected)
			}
			if want := (good.chunks + 3) / 4; c.rounds > want+1 {
				t.Fatalf("%d round trips for %d chunks", c.rounds, good.chunks)
			}
			return
		}
	}
	t.Fatalf("not done: rejected %v", c.obs.rejected)
}
