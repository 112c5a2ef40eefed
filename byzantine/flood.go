package byzantine

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Flood tuning.
const (
	// stalePoolSize is how many distinct stale messages stale-flood signs
	// at once and cycles through.
	stalePoolSize = 256
	// stalePoolRefreshTicks is the least time between two re-signings of
	// the pool (when the view or the low watermark moved).
	stalePoolRefreshTicks = 100
	// farAbove is how far above the high watermark stale-flood's
	// out-of-window sequences lie.
	farAbove = 1 << 20
	// recentDigests is how many recent batch digests batch-request-flood
	// keeps (and asks for in turn).
	recentDigests = 16
)

// floodState is what the floods remember between ticks; guarded by
// Filter.mu.
type floodState struct {
	credit  float64 // frames owed, carried to the next tick
	next    int     // round robin over the other replicas
	counter uint64  // makes forged messages distinct
	others  []uint32

	pool      []protocol.Outbound // stale-flood's signed messages (To unset)
	poolView  uint64
	poolLow   uint64
	poolBuilt uint64 // tick

	digests  [][32]byte // batch-request-flood: recent batch digests, oldest first
	requests map[[32]byte]*wire.Signed
}

// badSignature is the floods' invalid signature pattern (64 bytes, an
// Ed25519 signature's size); each frame varies its first 8 bytes.
var badSignature = sha512.Sum512([]byte("pbftnode/byzantine/bad-signature"))

// nullDigest is the digest of the empty batch, which every replica holds.
var nullDigest = crypto.BatchDigest(nil)

// Inject implements the node's Injector hook: on each tick (tick counts
// them; st is this replica's core status) a flood returns the frames it
// sends beside the replica's own traffic, at Options.FramesPerTick in
// all, each to one other replica. Other strategies, and an inactive one,
// return nil.
func (f *Filter) Inject(tick uint64, st protocol.Status) []protocol.Outbound {
	switch f.strategy {
	case StrategyBadSignatureFlood, StrategyStaleFlood, StrategyBatchRequestFlood:
	default:
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := &f.flood
	if !f.active.Load() || f.n < 2 {
		fl.credit = 0
		return nil
	}
	if fl.others == nil {
		fl.others = f.others()
	}
	fl.credit = min(fl.credit+f.opts.FramesPerTick, maxFramesPerTick)
	count := int(fl.credit)
	fl.credit -= float64(count)
	if f.strategy == StrategyStaleFlood {
		f.refreshStalePool(tick, st)
	}
	outs := make([]protocol.Outbound, 0, count)
	for range count {
		o, ok := f.floodFrame(st)
		if !ok {
			break
		}
		o.To = fl.others[fl.next%len(fl.others)]
		fl.next++
		fl.counter++
		outs = append(outs, o)
	}
	f.actions.Add(uint64(len(outs)))
	return outs
}

// floodFrame returns the strategy's next frame (its To unset).
func (f *Filter) floodFrame(st protocol.Status) (protocol.Outbound, bool) {
	fl := &f.flood
	switch f.strategy {
	case StrategyBadSignatureFlood:
		return f.badSignatureFrame(st), true
	case StrategyStaleFlood:
		return fl.pool[fl.counter%uint64(len(fl.pool))], true
	case StrategyBatchRequestFlood:
		if len(fl.digests) == 0 {
			return protocol.Outbound{}, false
		}
		d := fl.digests[fl.counter%uint64(len(fl.digests))]
		s := fl.requests[d]
		if s == nil {
			s = f.sign(&wire.ReplicaMessage{From: f.self, Body: &wire.ReplicaMessage_BatchRequest{
				BatchRequest: &wire.BatchRequest{Digest: d[:]}}})
			fl.requests[d] = s
		}
		return protocol.Outbound{Signed: s, Kind: protocol.KindBatchRequest}, true
	}
	return protocol.Outbound{}, false
}

// badSignatureFrame forges a PREPARE for the current view and a sequence
// in the window, well formed, from this replica, whose signature is
// invalid: every victim checks it before its core looks further (a
// primary's PREPARE too, which the core then drops). It forges no COMMITs:
// a COMMIT its author's own session delivers counts on the session's word
// (protocol.Frame.Sender), so a bad signature on one costs no check; it is
// only that replica's vote, for a digest nobody proposed.
func (f *Filter) badSignatureFrame(st protocol.Status) protocol.Outbound {
	fl := &f.flood
	window := max(st.HighWatermark-st.LowWatermark, 1)
	seq := st.LowWatermark + 1 + fl.counter%window
	var d [32]byte
	binary.BigEndian.PutUint64(d[:], fl.counter)
	d = sha256.Sum256(d[:])
	kind := protocol.KindPrepare
	m := &wire.ReplicaMessage{From: f.self, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: st.View, Sequence: seq, Digest: d[:]}}}
	payload, _ := proto.Marshal(m)
	sig := badSignature
	binary.BigEndian.PutUint64(sig[:], fl.counter)
	return protocol.Outbound{Signed: &wire.Signed{Payload: payload, Signature: sig[:]}, Kind: kind}
}

// withBadSignature is out, a COMMIT of this replica's own, with its
// signature made invalid (bad-signature-flood sends every COMMIT so, not
// counted as actions). Its victims count it as this replica's vote, on
// its session's word, and must never relay it: a correct replica that did
// would look faulty to the replica it relayed it to.
func withBadSignature(out protocol.Outbound) protocol.Outbound {
	sig := badSignature
	out.Signed = &wire.Signed{Payload: out.Signed.GetPayload(), Signature: sig[:]}
	return out
}

// refreshStalePool (re-)signs stale-flood's pool when it is empty, or
// when the view or the low watermark moved and the pool is at least
// stalePoolRefreshTicks old: the signing cost stays a few milliseconds a
// second at most, whatever the rate.
func (f *Filter) refreshStalePool(tick uint64, st protocol.Status) {
	fl := &f.flood
	if len(fl.pool) > 0 && (tick < fl.poolBuilt+stalePoolRefreshTicks || (st.View == fl.poolView && st.LowWatermark == fl.poolLow)) {
		return
	}
	fl.pool = fl.pool[:0]
	for i := range uint64(stalePoolSize) {
		m, kind := staleMessage(f.self, i, st)
		fl.pool = append(fl.pool, protocol.Outbound{Signed: f.sign(m), Kind: kind})
	}
	fl.poolView, fl.poolLow, fl.poolBuilt = st.View, st.LowWatermark, tick
}

// staleMessage is the i-th message of a stale pool: a PREPARE or COMMIT,
// in turn for an older view (in the window), for a sequence at or below
// the low watermark, and for one far above the high watermark; the first
// two fall back to the third while there is no older view or nothing
// below the window.
func staleMessage(self uint32, i uint64, st protocol.Status) (*wire.ReplicaMessage, protocol.Kind) {
	window := max(st.HighWatermark-st.LowWatermark, 1)
	view, seq := st.View, st.HighWatermark+farAbove+i
	switch {
	case i%3 == 0 && st.View > 0:
		view, seq = st.View-1-i%min(st.View, 8), st.LowWatermark+1+i%window
	case i%3 == 1 && st.LowWatermark > 0:
		seq = st.LowWatermark - i%min(st.LowWatermark, window)
	}
	var d [32]byte
	binary.BigEndian.PutUint64(d[:], i)
	binary.BigEndian.PutUint64(d[8:], view)
	d = sha256.Sum256(d[:])
	if i%2 == 0 {
		return &wire.ReplicaMessage{From: self, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: view, Sequence: seq, Digest: d[:]}}}, protocol.KindPrepare
	}
	return &wire.ReplicaMessage{From: self, Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{View: view, Sequence: seq, Digest: d[:]}}}, protocol.KindCommit
}

// observeDigest remembers the batch digest a PRE-PREPARE, PREPARE or
// COMMIT of this replica carries, for batch-request-flood.
func (f *Filter) observeDigest(out protocol.Outbound) {
	switch out.Kind {
	case protocol.KindPrePrepare, protocol.KindPrepare, protocol.KindCommit:
	default:
		return
	}
	m, ok := decode(out.Signed)
	if !ok {
		return
	}
	var raw []byte
	switch {
	case m.GetPrePrepare() != nil:
		raw = m.GetPrePrepare().Digest
	case m.GetPrepare() != nil:
		raw = m.GetPrepare().Digest
	case m.GetCommit() != nil:
		raw = m.GetCommit().Digest
	}
	if len(raw) != 32 {
		return
	}
	d := [32]byte(raw)
	if d == nullDigest {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := &f.flood
	for _, have := range fl.digests {
		if have == d {
			return
		}
	}
	if fl.requests == nil {
		fl.requests = make(map[[32]byte]*wire.Signed)
	}
	if len(fl.digests) == recentDigests {
		delete(fl.requests, fl.digests[0])
		fl.digests = append(fl.digests[:0], fl.digests[1:]...)
	}
	fl.digests = append(fl.digests, d)
}

// Delay implements the node's Delayer hook: slow-primary, while active,
// holds each PRE-PREPARE (only a primary sends them) for
// Options.DelayTicks ticks; everything else goes at once (0).
func (f *Filter) Delay(out protocol.Outbound) uint64 {
	if f.strategy != StrategySlowPrimary || out.Kind != protocol.KindPrePrepare || !f.active.Load() {
		return 0
	}
	f.actions.Add(1)
	return f.opts.DelayTicks
}
