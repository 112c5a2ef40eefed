package statetransfer

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// pbftTarget is a certified checkpoint at s's sequence, signed by peers.
func pbftTarget(s *snap, peers ...uint32) Target {
	return Target{Sequence: s.seq, Exact: true, Digest: digest(s.entries), HasDigest: true, Peers: peers}
}

func TestExactDigestHappyPathOverSeveralChunks(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.snaps[1], c.snaps[2] = []*snap{good}, []*snap{good}
	tg := pbftTarget(good, 1, 2)
	tg.First = 1
	c.f.Start(tg)
	if !c.f.Active() || c.lastRequest().to != 2 || c.lastRequest().req.Sequence != 10 {
		t.Fatalf("first request %+v, want peer 2 at 10", c.lastRequest())
	}
	seq, done := c.run(100)
	if !done || seq != 10 {
		t.Fatalf("done %v at %d, want done at 10", done, seq)
	}
	if good.chunks < 3 {
		t.Fatalf("served in %d chunks, want several", good.chunks)
	}
	if c.f.Active() || c.r.last != 10 || digest(c.r.state) != digest(good.entries) {
		t.Fatalf("active %v, state at %d", c.f.Active(), c.r.last)
	}
	if len(c.obs.rejected) != 0 || c.obs.entries != len(good.entries) || !slices.Equal(c.obs.installed, []uint64{10}) {
		t.Fatalf("observer %+v", c.obs)
	}
	// A late duplicate after done is ignored.
	if _, done := c.f.Chunk(2, &wire.StateChunk{Sequence: 10}); done {
		t.Fatal("a chunk after done finished again")
	}
}

func TestLeastIndexHappyPathTakesANewerSnapshot(t *testing.T) {
	c := newCluster(t, false)
	c.snaps[3] = []*snap{state(8, 3, ""), state(14, 9, "")}
	peers, first := Ring(4, 0, 3)
	c.f.Start(Target{Sequence: 10, Digest: [32]byte{1}, HasDigest: true, Peers: peers, First: first})
	seq, done := c.run(100)
	// The digest is for 10 only: a snapshot at 14 is checked by its index.
	if !done || seq != 14 || c.r.last != 14 {
		t.Fatalf("done %v at %d (state %d), want 14", done, seq, c.r.last)
	}
}

// TestEachRejectionMovesToTheNextPeer: peer 1 misbehaves in one way, peer
// 2 is honest; the fetch gives up on 1 for the named reason, wipes what 1
// served (unless 1 only had nothing to serve), and installs 2's state.
func TestEachRejectionMovesToTheNextPeer(t *testing.T) {
	good := state(10, 12, "")
	cases := []struct {
		reason string
		exact  bool
		peer1  []*snap
		tamper func(c *wire.StateChunk)
		// finished: peer 1's restore finished (nothing left to wipe).
		finished bool
		// kept: nothing to wipe, the restore goes on with peer 2.
		kept bool
		name string // when the reason alone does not say
	}{
		{reason: "unavailable", exact: true, peer1: nil, kept: true},
		{reason: "unavailable", exact: false, peer1: []*snap{state(9, 2, "")}, kept: true},
		{reason: "bad_chunk", exact: true, peer1: []*snap{good}, tamper: func(c *wire.StateChunk) {
			if c.StartKey != nil {
				c.Entries = append(c.Entries, &wire.KeyValue{Key: []byte("bad")})
			}
		}},
		// A NextKey that does not advance, with no entries: without the
		// check the fetch would loop on peer 1 forever.
		{reason: "bad_chunk", exact: false, peer1: []*snap{good}, tamper: func(c *wire.StateChunk) {
			if c.StartKey != nil {
				c.Entries, c.NextKey = nil, c.StartKey
			}
		}},
		{reason: "digest_mismatch", exact: true, peer1: []*snap{state(10, 12, "forged")}},
		{reason: "digest_mismatch", exact: false, peer1: []*snap{state(10, 12, "forged")}},
		// The served state says it is at 11, not at the 12 it was served as.
		{reason: "digest_mismatch", exact: false, peer1: []*snap{{seq: 12, entries: state(11, 12, "").entries}}, finished: true, name: "wrong index"},
		{reason: "too_old", exact: false, peer1: []*snap{good}, tamper: func(c *wire.StateChunk) { c.Sequence = 9 }},
		{reason: "changed", exact: false, peer1: []*snap{good}, tamper: func(c *wire.StateChunk) {
			if c.StartKey != nil {
				c.Sequence = 11
			}
		}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/exact=%v/%s", tc.reason, tc.exact, tc.name), func(t *testing.T) {
			c := newCluster(t, tc.exact)
			c.snaps[1], c.snaps[2] = tc.peer1, []*snap{good}
			if tc.tamper != nil {
				c.tamper = func(from uint32, ch *wire.StateChunk) {
					if from == 1 {
						tc.tamper(ch)
					}
				}
			}
			tg := pbftTarget(good, 1, 2)
			tg.Exact = tc.exact
			c.f.Start(tg)
			seq, done := c.run(100)
			if !done || seq != 10 || digest(c.r.state) != digest(good.entries) {
				t.Fatalf("done %v at %d", done, seq)
			}
			c.wantRejected(tc.reason)
			// The restart began the restore again (RestoreBegin replaces
			// peer 1's part, whether or not it had finished), without a
			// wipe first.
			if tc.kept {
				if c.r.begins != 1 || c.r.aborts != 0 {
					t.Fatalf("begins %d aborts %d, want the restore kept", c.r.begins, c.r.aborts)
				}
				return
			}
			if c.r.begins != 2 || c.r.aborts != 0 {
				t.Fatalf("begins %d aborts %d, want 2 and no wipe", c.r.begins, c.r.aborts)
			}
		})
	}
}

// TestTimeoutAfterIdleTicksAsksTheNextPeerSkippingNone: silent peers are
// asked in turn, the restore is kept across them, and once every peer gave
// up each further request waits BackoffTicks, twice that from the third
// round on.
func TestTimeoutAfterIdleTicksAsksTheNextPeerSkippingNone(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 3, "")
	c.f.Start(pbftTarget(good, 0, 2, 3))
	backoff := map[int]int{3: testBackoff, 4: testBackoff, 5: testBackoff, 6: 2 * testBackoff}
	for i, peer := range []uint32{0, 2, 3, 0, 2, 3, 0} {
		for range backoff[i] {
			if got := len(c.sent); got != i {
				t.Fatalf("request %d sent during the backoff", got)
			}
			c.f.Tick()
		}
		if got := len(c.sent); got != i+1 || c.lastRequest().to != peer {
			t.Fatalf("after %d timeouts: %d requests, last to %d, want %d", i, got, c.lastRequest().to, peer)
		}
		for range testIdle - 1 {
			c.f.Tick()
		}
		if got := c.lastRequest().to; got != peer || len(c.sent) != i+1 {
			t.Fatalf("moved to %d before IdleTicks", got)
		}
		c.f.Tick()
	}
	if len(c.obs.rejected) != 7 || c.r.aborts != 0 || c.r.begins != 1 {
		t.Fatalf("rejected %v, aborts %d begins %d; want 7 timeouts and the restore kept", c.obs.rejected, c.r.aborts, c.r.begins)
	}
}

// TestUnavailablePeersBackOffInsteadOfSpinning: every peer answers
// Unavailable (it released the checkpoint). The fetch asks each once,
// then waits BackoffTicks before each request, doubling per round up to
// MaxBackoffTicks, instead of asking again at once; a chunk restored ends
// the backoff.
func TestUnavailablePeersBackOffInsteadOfSpinning(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.f.Start(pbftTarget(good, 1, 2, 3))
	asked := 0
	for range 200 {
		for len(c.sent) > 0 && asked < 1000 {
			c.answer()
			asked++
		}
		c.f.Tick()
	}
	// 3 at once, then 3 each after 2, 4, 8 ticks, then one per 16 ticks:
	// in 200 ticks about 21 asks (without the backoff, one per answer).
	if asked < 6 || asked > 3+3*(4+200/testMaxBackoff) {
		t.Fatalf("%d requests in 200 ticks with every peer unavailable", asked)
	}
	if c.r.aborts != 0 || c.r.begins != 1 {
		t.Fatalf("aborts %d begins %d: unavailable peers wiped the restore", c.r.aborts, c.r.begins)
	}
	// Peer 2 gets the snapshot: the fetch completes and the backoff resets.
	c.snaps[2] = []*snap{good}
	for range 2 * testMaxBackoff {
		for len(c.sent) > 0 {
			if _, done := c.answer(); done {
				if c.f.failures != 0 {
					t.Fatalf("failures %d after chunks restored", c.f.failures)
				}
				return
			}
		}
		c.f.Tick()
	}
	t.Fatal("the fetch did not complete once a peer had the snapshot")
}

// TestChunksAreKeptAcrossPeers: peer 1 serves part of the snapshot, then
// goes silent; peer 2 serves it as unavailable; peer 3 continues from the
// key peer 1 stopped at, and the state, checked against the certified
// digest, installs without a wipe or a second copy of peer 1's part.
func TestChunksAreKeptAcrossPeers(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.snaps[1], c.snaps[3] = []*snap{good}, []*snap{good}
	c.f.Start(pbftTarget(good, 1, 2, 3))
	c.answer()
	c.answer()
	key := c.lastRequest().req.StartKey
	if len(key) == 0 || c.obs.entries == 0 {
		t.Fatal("peer 1 served nothing")
	}
	before := c.obs.entries
	c.sent = nil // peer 1 falls silent
	for range testIdle {
		c.f.Tick()
	}
	if rq := c.lastRequest(); rq.to != 2 || string(rq.req.StartKey) != string(key) {
		t.Fatalf("after peer 1's timeout: %+v, want peer 2 from %q", rq, key)
	}
	seq, done := c.run(100) // peer 2: unavailable; peer 3 continues
	if !done || seq != 10 || digest(c.r.state) != digest(good.entries) {
		t.Fatalf("done %v at %d", done, seq)
	}
	if c.r.begins != 1 || c.r.aborts != 0 || c.obs.entries != len(good.entries) || before >= len(good.entries) {
		t.Fatalf("begins %d aborts %d, %d entries received for %d", c.r.begins, c.r.aborts, c.obs.entries, len(good.entries))
	}
	c.wantRejected("timeout", "unavailable")
}

// TestAMixedRestoreThatFailsIsRedoneFromOnePeer: peer 1 always serves one
// forged chunk, then goes silent; peer 2 continues honestly. The final
// digest check fails, and from then on the fetch takes every chunk of a
// restore from one peer, so peer 1's forged part is never mixed in again
// and peer 2's restore completes (without that, peer 1 and peer 2 would
// take turns forever).
func TestAMixedRestoreThatFailsIsRedoneFromOnePeer(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.snaps[1], c.snaps[2] = []*snap{state(10, 12, "forged")}, []*snap{good}
	c.f.Start(pbftTarget(good, 1, 2))
	for range 1000 {
		switch {
		case len(c.sent) == 0:
			c.f.Tick()
		case c.sent[0].to == 1 && c.sent[0].req.StartKey != nil:
			c.sent = c.sent[1:] // peer 1 falls silent after its first chunk
		default:
			if seq, done := c.answer(); done {
				if seq != 10 || digest(c.r.state) != digest(good.entries) || !c.f.strict {
					t.Fatalf("installed %d, strict %v", seq, c.f.strict)
				}
				return
			}
		}
	}
	t.Fatalf("no restore completed: rejected %v", c.obs.rejected)
}

func TestAChunkResetsTheIdleCount(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.snaps[1] = []*snap{good}
	c.f.Start(pbftTarget(good, 1, 2))
	for range 3 {
		for range testIdle - 1 {
			c.f.Tick()
		}
		if _, done := c.answer(); done {
			t.Fatal("done early")
		}
	}
	c.wantRejected()
}

func TestRetargetToAHigherSequenceOnly(t *testing.T) {
	c := newCluster(t, true)
	old, newer := state(10, 12, ""), state(20, 12, "")
	c.snaps[1] = []*snap{old, newer}
	c.f.Start(pbftTarget(old, 1))
	c.answer() // one chunk of 10 restored
	c.f.Start(pbftTarget(old, 1))
	c.f.Start(pbftTarget(state(5, 1, ""), 1))
	if c.obs.started != 1 {
		t.Fatalf("started %d times, want a lower or equal target ignored", c.obs.started)
	}
	c.f.Start(pbftTarget(newer, 1))
	if c.obs.started != 2 || c.r.begins != 2 || c.r.aborts != 0 || c.lastRequest().req.Sequence != 20 || c.lastRequest().req.StartKey != nil {
		t.Fatalf("retarget: started %d aborts %d last %+v", c.obs.started, c.r.aborts, c.lastRequest())
	}
	c.sent = c.sent[len(c.sent)-1:] // the answer to the old request is lost
	if seq, done := c.run(100); !done || seq != 20 {
		t.Fatalf("done %v at %d, want 20", done, seq)
	}
	// After done, the same target starts a new fetch.
	c.f.Start(pbftTarget(newer, 1))
	if c.obs.started != 3 || !c.f.Active() {
		t.Fatal("a fetch after done did not start")
	}
}

func TestStaleAndForeignChunksAreIgnored(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.snaps[1] = []*snap{good}
	c.f.Start(pbftTarget(good, 1, 2))
	first := c.sent[0]
	firstChunk := Serve(good, first.req, 16)
	c.answer()
	pending := len(c.sent)
	for range testIdle - 1 {
		c.f.Tick()
	}
	for name, ch := range map[string]struct {
		from  uint32
		chunk *wire.StateChunk
	}{
		"stale start key": {1, firstChunk},
		"other peer":      {2, Serve(good, c.lastRequest().req, 16)},
		"other sequence":  {1, Serve(state(11, 12, ""), c.lastRequest().req, 16)},
	} {
		if _, done := c.f.Chunk(ch.from, ch.chunk); done {
			t.Fatalf("%s: done", name)
		}
		if len(c.sent) != pending || c.f.Peer() != 1 {
			t.Fatalf("%s: acted on", name)
		}
	}
	c.wantRejected("unexpected", "unexpected", "unexpected")
	c.f.Tick() // ignored chunks did not reset the idle count
	c.wantRejected("unexpected", "unexpected", "unexpected", "timeout")
}

func TestFailAfterDoneWipesAndAsksTheNextPeer(t *testing.T) {
	c := newCluster(t, false)
	good := state(10, 3, "")
	c.snaps[1], c.snaps[2] = []*snap{good}, []*snap{good}
	c.f.Start(Target{Sequence: 10, Peers: []uint32{1, 2}})
	if _, done := c.run(100); !done {
		t.Fatal("not done")
	}
	c.f.Fail("install")
	if !c.f.Active() || c.lastRequest().to != 2 || c.r.begins != 2 || c.r.state != nil {
		t.Fatalf("fail: active %v, asking %d, begins %d", c.f.Active(), c.lastRequest().to, c.r.begins)
	}
	c.wantRejected("install")
	if seq, done := c.run(100); !done || seq != 10 {
		t.Fatal("not done after Fail")
	}
}

func TestStopAbortsARestoreInProgress(t *testing.T) {
	c := newCluster(t, true)
	good := state(10, 12, "")
	c.snaps[1] = []*snap{good}
	c.f.Start(pbftTarget(good, 1))
	c.answer()
	c.f.Stop()
	if c.f.Active() || c.r.inProgress || c.r.aborts != 1 {
		t.Fatalf("stop: active %v, restore in progress %v", c.f.Active(), c.r.inProgress)
	}
	c.f.Fail("install") // nothing to fail after Stop
	c.f.Tick()
	if _, done := c.answer(); done || c.f.Active() {
		t.Fatal("acted after Stop")
	}
}

func TestStartWithoutPeersDoesNothing(t *testing.T) {
	c := newCluster(t, true)
	c.f.Start(Target{Sequence: 10})
	if c.f.Active() || len(c.sent) != 0 || c.r.begins != 0 {
		t.Fatal("started without peers")
	}
}

// resumingRestorer is the fake restorer with a restore kept from before a
// crash (a Resumer).
type resumingRestorer struct {
	*restorer
	keptTag  []byte
	tags     [][]byte
	resumeAt []byte
}

func (r *resumingRestorer) RestoreBeginTagged(tag []byte) error {
	r.tags = append(r.tags, tag)
	return r.RestoreBegin()
}

func (r *resumingRestorer) RestoreResume(tag []byte) ([]byte, bool) {
	if r.keptTag == nil || string(tag) != string(r.keptTag) {
		return nil, false
	}
	r.keptTag = nil
	return r.resumeAt, true
}

// TestAFetchResumesARestoreACrashInterrupted: the Restorer kept the
// first chunks of the target's snapshot across a restart; Start continues
// from the key it names instead of wiping, and the completed state has the
// certified digest. A target with another sequence begins afresh, tagged.
func TestAFetchResumesARestoreACrashInterrupted(t *testing.T) {
	good := state(10, 12, "")
	first := Serve(good, &wire.StateRequest{Sequence: 10}, 16)
	run := func(kept Target) (*cluster, *resumingRestorer) {
		c := newCluster(t, true)
		rr := &resumingRestorer{restorer: c.r}
		c.f = New(Config{IdleTicks: testIdle, Restorer: rr, Observer: c.obs,
			Request: func(to uint32, req *wire.StateRequest) { c.sent = append(c.sent, request{to, req}) }})
		// What the crashed process restored: the first chunk, under kept's tag.
		c.r.inProgress, c.r.restoring = true, append([]*wire.KeyValue(nil), first.Entries...)
		probe := New(Config{Restorer: c.r, Request: func(uint32, *wire.StateRequest) {}})
		probe.target = kept
		rr.keptTag, rr.resumeAt = probe.tag(), first.NextKey
		c.snaps[1] = []*snap{good, state(20, 12, "")}
		return c, rr
	}
	c, rr := run(pbftTarget(good, 1))
	c.f.Start(pbftTarget(good, 1))
	if rq := c.lastRequest(); string(rq.req.StartKey) != string(first.NextKey) || c.r.begins != 0 {
		t.Fatalf("first request from %q after %d begins; want a resume from %q", rq.req.StartKey, c.r.begins, first.NextKey)
	}
	if seq, done := c.run(100); !done || seq != 10 || digest(c.r.state) != digest(good.entries) {
		t.Fatalf("done %v at %d", done, seq)
	}
	if len(rr.tags) != 0 {
		t.Fatal("began a new restore")
	}
	c, rr = run(pbftTarget(good, 1))
	c.f.Start(pbftTarget(state(20, 12, ""), 1))
	if rq := c.lastRequest(); rq.req.StartKey != nil || c.r.begins != 1 || len(rr.tags) != 1 {
		t.Fatalf("another target: request from %q, %d begins, tags %q", rq.req.StartKey, c.r.begins, rr.tags)
	}
}
