package byzantine

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

const testCluster = "byzantine-test"

func testFilter(t *testing.T, strategy string, opts Options) (*Filter, ed25519.PublicKey) {
	t.Helper()
	seed := sha256.Sum256([]byte("byzantine-test-key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	f, err := NewWithOptions(strategy, 1, 4, key, testCluster, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, key.Public().(ed25519.PublicKey)
}

// status is a backup's core status in view 3 with window (100, 200].
var status = protocol.Status{ID: 1, View: 3, Primary: 3, LowWatermark: 100, HighWatermark: 200, ViewActive: true}

// prepareOut is a PREPARE this replica sends for a batch with digest d.
func prepareOut(f *Filter, d [32]byte) protocol.Outbound {
	m := &wire.ReplicaMessage{From: 1, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: 3, Sequence: 150, Digest: d[:]}}}
	return protocol.Outbound{To: protocol.Broadcast, Signed: f.sign(m), Kind: protocol.KindPrepare}
}

// TestFloodRate checks the rate (fractions carried over ticks), the round
// robin over the other replicas and that Actions counts every frame.
func TestFloodRate(t *testing.T) {
	f, _ := testFilter(t, StrategyBadSignatureFlood, Options{FramesPerTick: 2.5})
	to := map[uint32]int{}
	total := 0
	for tick := range uint64(10) {
		outs := f.Inject(tick+1, status)
		total += len(outs)
		for _, o := range outs {
			to[o.To]++
		}
	}
	if total != 25 || f.Actions() != 25 {
		t.Fatalf("10 ticks at 2.5 frames a tick: %d frames, %d actions; want 25", total, f.Actions())
	}
	if to[1] != 0 || to[0] < 8 || to[2] < 8 || to[3] < 8 {
		t.Fatalf("frames per recipient %v; want about 8 to each of 0, 2, 3 and none to itself", to)
	}
}

// TestInactiveFiltersDoNothing: a filter switched off passes every
// message through, keeps replies, injects and delays nothing.
func TestInactiveFiltersDoNothing(t *testing.T) {
	for _, s := range Strategies {
		f, _ := testFilter(t, s, Options{Inactive: true})
		out := prepareOut(f, sha256.Sum256([]byte("batch")))
		pp := out
		pp.Kind = protocol.KindPrePrepare
		for _, o := range []protocol.Outbound{out, pp} {
			if got := f.Outbound(o); len(got) != 1 || got[0].Signed != o.Signed || got[0].To != o.To {
				t.Errorf("%s inactive: Outbound changed a message: %+v", s, got)
			}
			if d := f.Delay(o); d != 0 {
				t.Errorf("%s inactive: delays a message %d ticks", s, d)
			}
		}
		r := &wire.Reply{Result: []byte("ok")}
		if !f.Reply(r) || string(r.Result) != "ok" {
			t.Errorf("%s inactive: Reply changed or dropped a reply", s)
		}
		for tick := range uint64(3) {
			if outs := f.Inject(tick+1, status); len(outs) != 0 {
				t.Errorf("%s inactive: injected %d frames", s, len(outs))
			}
		}
		if f.Actions() != 0 {
			t.Errorf("%s inactive: %d actions", s, f.Actions())
		}
		if !f.SetActive(true) || !f.Active() || f.SetActive(true) {
			t.Errorf("%s: SetActive(true) did not switch it on once", s)
		}
	}
}

// TestBadSignatureFlood: current view, sequences in the window, from
// this replica, well formed, every signature invalid.
func TestBadSignatureFlood(t *testing.T) {
	f, pub := testFilter(t, StrategyBadSignatureFlood, Options{})
	outs := f.Inject(1, status)
	if len(outs) == 0 {
		t.Fatal("the active flood injected nothing")
	}
	for _, o := range outs {
		m, ok := decode(o.Signed)
		if !ok {
			t.Fatal("a forged frame does not decode")
		}
		var view, seq uint64
		switch {
		case m.GetPrepare() != nil:
			view, seq = m.GetPrepare().View, m.GetPrepare().Sequence
		case m.GetCommit() != nil:
			view, seq = m.GetCommit().View, m.GetCommit().Sequence
		default:
			t.Fatalf("forged %v, want a PREPARE or COMMIT", m.Body)
		}
		if m.From != 1 || view != 3 || seq <= 100 || seq > 200 {
			t.Fatalf("forged from %d view %d sequence %d; want from 1, view 3, in (100, 200]", m.From, view, seq)
		}
		if crypto.Verify(pub, testCluster, crypto.DomainReplicaMessage, o.Signed.Payload, o.Signed.Signature) {
			t.Fatal("a forged frame carries a valid signature")
		}
	}
}

// TestStaleFlood: properly signed, every message for an older view or a
// sequence outside the window, from a pool signed once.
func TestStaleFlood(t *testing.T) {
	f, pub := testFilter(t, StrategyStaleFlood, Options{FramesPerTick: 300})
	outs := f.Inject(1, status)
	kinds := map[string]int{}
	for _, o := range outs {
		if !crypto.Verify(pub, testCluster, crypto.DomainReplicaMessage, o.Signed.Payload, o.Signed.Signature) {
			t.Fatal("a stale message is not properly signed")
		}
		m, _ := decode(o.Signed)
		view, seq := m.GetPrepare().GetView(), m.GetPrepare().GetSequence()
		if m.GetCommit() != nil {
			view, seq = m.GetCommit().View, m.GetCommit().Sequence
		}
		switch {
		case view < status.View:
			kinds["old view"]++
		case seq <= status.LowWatermark:
			kinds["below"]++
		case seq > status.HighWatermark:
			kinds["above"]++
		default:
			t.Fatalf("view %d sequence %d is current", view, seq)
		}
	}
	if len(kinds) != 3 {
		t.Fatalf("stale kinds %v; want old views, below and above the window", kinds)
	}
	pool := f.flood.pool[0].Signed
	f.Inject(2, protocol.Status{ID: 1, View: 4, Primary: 0, LowWatermark: 200, HighWatermark: 300})
	if f.flood.pool[0].Signed != pool {
		t.Fatal("the pool was re-signed one tick after it was built")
	}
}

// TestBatchRequestFlood: asks for the digests this replica voted for,
// properly signed, each signed once.
func TestBatchRequestFlood(t *testing.T) {
	f, pub := testFilter(t, StrategyBatchRequestFlood, Options{})
	if outs := f.Inject(1, status); len(outs) != 0 {
		t.Fatalf("%d BATCH-REQUESTs before any batch was seen", len(outs))
	}
	d := sha256.Sum256([]byte("batch"))
	f.Outbound(prepareOut(f, d))
	f.Outbound(prepareOut(f, nullDigest))
	outs := f.Inject(2, status)
	if len(outs) != DefaultFramesPerTick {
		t.Fatalf("%d BATCH-REQUESTs in a tick, want %d", len(outs), DefaultFramesPerTick)
	}
	for _, o := range outs {
		m, _ := decode(o.Signed)
		if o.Kind != protocol.KindBatchRequest || m.GetBatchRequest() == nil || [32]byte(m.GetBatchRequest().Digest) != d {
			t.Fatalf("injected %v, want a BATCH-REQUEST for the batch voted for", m.Body)
		}
		if o.Signed != outs[0].Signed {
			t.Fatal("a BATCH-REQUEST was signed again")
		}
		if !crypto.Verify(pub, testCluster, crypto.DomainReplicaMessage, o.Signed.Payload, o.Signed.Signature) {
			t.Fatal("a BATCH-REQUEST is not properly signed")
		}
	}
}

// TestSlowPrimaryDelay: PRE-PREPAREs are held, nothing else.
func TestSlowPrimaryDelay(t *testing.T) {
	f, _ := testFilter(t, StrategySlowPrimary, Options{})
	out := prepareOut(f, sha256.Sum256([]byte("batch")))
	if d := f.Delay(out); d != 0 {
		t.Fatalf("a PREPARE is held %d ticks", d)
	}
	out.Kind = protocol.KindPrePrepare
	if d := f.Delay(out); d != DefaultDelayTicks || f.Actions() != 1 {
		t.Fatalf("a PRE-PREPARE is held %d ticks (%d actions), want %d", d, f.Actions(), DefaultDelayTicks)
	}
}
