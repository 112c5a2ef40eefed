package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// outFilter is a Byzantine strategy: it rewrites what a replica sends
// (pbft.Filter's shape; *byzantine.Filter implements it).
type outFilter interface {
	Outbound(out protocol.Outbound) []protocol.Outbound
	Reply(r *wire.Reply) bool
}

// delayer is a strategy that also slows some of its messages down.
type delayer interface {
	extraDelay(out protocol.Outbound) int64
}

// tickDelayer is pbft.Delayer's shape: how many ticks to hold a message
// the filter let out (*byzantine.Filter implements it).
type tickDelayer interface {
	Delay(out protocol.Outbound) uint64
}

// injector is pbft.Injector's shape: messages a strategy sends of its own
// on each tick (*byzantine.Filter's floods implement it).
type injector interface {
	Inject(tick uint64, st protocol.Status) []protocol.Outbound
}

// actionCounter counts the faults a strategy committed.
type actionCounter interface{ Actions() uint64 }

// Simulator-only strategies, filters of the same shape as the byzantine
// package's.
const (
	stratForge            = "forge"              // corrupt signatures, claim to be another replica
	stratReplay           = "replay"             // resend old messages later
	stratWrongViewSeq     = "wrong-view-seq"     // votes for other views and sequences outside the window
	stratBogusCheckpoint  = "bogus-checkpoint"   // checkpoint votes with wrong digests
	stratBogusViewChange  = "bogus-view-change"  // VIEW-CHANGEs hiding prepared certificates, far-ahead SUSPECTs
	stratLieClients       = "lie-clients"        // plausible but wrong replies
	stratDelayPrePrepares = "delay-pre-prepares" // delays its own pre-prepares by random ticks
	stratTwins            = "twins"              // two copies, each talking to part of the network
	byzantineClientDomain = "pbftnode/byzantine-client"
)

var simStrategies = []string{stratForge, stratReplay, stratWrongViewSeq, stratBogusCheckpoint, stratBogusViewChange,
	stratLieClients, stratDelayPrePrepares, stratOmitCertificates}

// byzantineClientID is the client identity byzantine.Filter signs its
// injected requests with (derived from the replica's key the same way).
func byzantineClientID(key ed25519.PrivateKey) []byte {
	seed := sha256.Sum256(append([]byte(byzantineClientDomain), key.Seed()...))
	return ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
}

// simFilter implements the simulator-only strategies. It draws from the
// run's random source, so it stays deterministic.
type simFilter struct {
	kind    string
	self    uint32
	n       int
	rng     *rand.Rand
	signer  *crypto.Signer
	actions uint64
	sent    []protocol.Outbound
}

func (f *simFilter) Actions() uint64 { return f.actions }

func (f *simFilter) Reply(r *wire.Reply) bool {
	if f.kind == stratLieClients {
		lie, _ := proto.Marshal(&wire.KVResult{Ok: true, Value: []byte("lie")})
		r.Result = lie
		f.actions++
	}
	return true
}

func (f *simFilter) extraDelay(out protocol.Outbound) int64 {
	if f.kind == stratDelayPrePrepares && out.Kind == protocol.KindPrePrepare {
		f.actions++
		return 5 + f.rng.Int64N(30)
	}
	return 0
}

func (f *simFilter) Outbound(out protocol.Outbound) []protocol.Outbound {
	outs := []protocol.Outbound{out}
	switch f.kind {
	case stratForge:
		if f.rng.IntN(4) == 0 {
			bad := &wire.Signed{Payload: out.Signed.Payload, Signature: append([]byte(nil), out.Signed.Signature...)}
			bad.Signature[f.rng.IntN(len(bad.Signature))] ^= 1 << f.rng.IntN(8)
			outs = append(outs, protocol.Outbound{To: out.To, Signed: bad, Batch: out.Batch, Kind: out.Kind})
			f.actions++
		}
		if m, ok := decodeBody(out.Signed); ok && f.rng.IntN(4) == 0 {
			m.From = (f.self + 1 + uint32(f.rng.IntN(f.n-1))) % uint32(f.n)
			outs = append(outs, protocol.Outbound{To: out.To, Signed: f.sign(m), Batch: out.Batch, Kind: out.Kind})
			f.actions++
		}
	case stratReplay:
		if len(f.sent) < 512 {
			f.sent = append(f.sent, out)
		} else {
			f.sent[f.rng.IntN(len(f.sent))] = out
		}
		if f.rng.IntN(3) == 0 {
			old := f.sent[f.rng.IntN(len(f.sent))]
			old.To = protocol.Broadcast
			outs = append(outs, old)
			f.actions++
		}
	case stratWrongViewSeq:
		if m, ok := decodeBody(out.Signed); ok && f.rng.IntN(2) == 0 {
			if f.shift(m) {
				outs = append(outs, protocol.Outbound{To: out.To, Signed: f.sign(m), Batch: out.Batch, Kind: out.Kind})
				f.actions++
			}
		}
	case stratBogusCheckpoint:
		if m, ok := decodeBody(out.Signed); ok && m.GetCheckpoint() != nil {
			cp := m.GetCheckpoint()
			if f.rng.IntN(3) == 0 {
				cp.Sequence++ // not a checkpoint sequence
			} else {
				d := sha256.Sum256(append(cp.StateDigest, byte(f.rng.IntN(256))))
				cp.StateDigest = d[:]
			}
			outs[0] = protocol.Outbound{To: out.To, Signed: f.sign(m), Kind: out.Kind}
			f.actions++
		}
	case stratBogusViewChange:
		if m, ok := decodeBody(out.Signed); ok {
			switch {
			case m.GetViewChange() != nil:
				m.GetViewChange().Prepared = nil
				outs[0] = protocol.Outbound{To: out.To, Signed: f.sign(m), Kind: out.Kind}
				f.actions++
			case m.GetSuspect() != nil && f.rng.IntN(2) == 0:
				m.GetSuspect().NewView += 1 + uint64(f.rng.IntN(5))
				outs = append(outs, protocol.Outbound{To: out.To, Signed: f.sign(m), Kind: out.Kind})
				f.actions++
			}
		}
	}
	return outs
}

// shift moves a normal-case message to another view or outside the window.
func (f *simFilter) shift(m *wire.ReplicaMessage) bool {
	var view, seq *uint64
	switch {
	case m.GetPrePrepare() != nil:
		view, seq = &m.GetPrePrepare().View, &m.GetPrePrepare().Sequence
	case m.GetPrepare() != nil:
		view, seq = &m.GetPrepare().View, &m.GetPrepare().Sequence
	case m.GetCommit() != nil:
		view, seq = &m.GetCommit().View, &m.GetCommit().Sequence
	default:
		return false
	}
	switch f.rng.IntN(3) {
	case 0:
		*view += 1 + uint64(f.rng.IntN(3))
	case 1:
		*seq += WindowSize * (1 + uint64(f.rng.IntN(3)))
	default:
		if *view > 0 {
			*view--
		} else {
			*seq += WindowSize + 1
		}
	}
	return true
}

func (f *simFilter) sign(m *wire.ReplicaMessage) *wire.Signed {
	payload, _ := proto.Marshal(m)
	return &wire.Signed{Payload: payload, Signature: f.signer.Sign(crypto.DomainReplicaMessage, payload)}
}

func decodeBody(s *wire.Signed) (*wire.ReplicaMessage, bool) {
	var m wire.ReplicaMessage
	if s == nil || proto.Unmarshal(s.Payload, &m) != nil {
		return nil, false
	}
	return &m, true
}

// chain applies two strategies, b to what a lets through.
type chain struct{ a, b outFilter }

func (c chain) Outbound(out protocol.Outbound) []protocol.Outbound {
	var outs []protocol.Outbound
	for _, o := range c.a.Outbound(out) {
		outs = append(outs, c.b.Outbound(o)...)
	}
	return outs
}

func (c chain) Reply(r *wire.Reply) bool { return c.a.Reply(r) && c.b.Reply(r) }

func (c chain) extraDelay(out protocol.Outbound) int64 {
	var d int64
	for _, f := range []outFilter{c.a, c.b} {
		if x, ok := f.(delayer); ok {
			d += x.extraDelay(out)
		}
	}
	return d
}

// Delay is the sum of both strategies' tick delays.
func (c chain) Delay(out protocol.Outbound) uint64 {
	var d uint64
	for _, f := range []outFilter{c.a, c.b} {
		if x, ok := f.(tickDelayer); ok {
			d += x.Delay(out)
		}
	}
	return d
}

// Inject returns what both strategies inject; b sees a's injections as it
// sees a's other messages.
func (c chain) Inject(tick uint64, st protocol.Status) []protocol.Outbound {
	var outs []protocol.Outbound
	if x, ok := c.a.(injector); ok {
		for _, o := range x.Inject(tick, st) {
			outs = append(outs, c.b.Outbound(o)...)
		}
	}
	if x, ok := c.b.(injector); ok {
		outs = append(outs, x.Inject(tick, st)...)
	}
	return outs
}

func (c chain) Actions() uint64 { return actions(c.a) + actions(c.b) }

func actions(f outFilter) uint64 {
	if a, ok := f.(actionCounter); ok {
		return a.Actions()
	}
	return 0
}
