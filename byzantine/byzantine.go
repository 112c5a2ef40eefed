package byzantine

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Strategy names.
const (
	StrategySilent            = "silent"
	StrategyEquivocate        = "equivocate"
	StrategyWithhold          = "withhold"
	StrategyBadNewView        = "bad-new-view"
	StrategyWrongResults      = "wrong-results"
	StrategyBadSignatureFlood = "bad-signature-flood"
	StrategyStaleFlood        = "stale-flood"
	StrategyBatchRequestFlood = "batch-request-flood"
	StrategySlowPrimary       = "slow-primary"
)

// Strategies lists the strategy names New accepts.
var Strategies = []string{
	StrategySilent, StrategyEquivocate, StrategyWithhold, StrategyBadNewView, StrategyWrongResults,
	StrategyBadSignatureFlood, StrategyStaleFlood, StrategyBatchRequestFlood, StrategySlowPrimary,
}

// DefaultRate is the floods' default rate in frames per second, to all
// other replicas together: about what one peer can push on a 2-core
// machine it shares with its victims.
const DefaultRate = 2000

// DefaultFramesPerTick is DefaultRate at the runtime's default 10 ms tick.
const DefaultFramesPerTick = DefaultRate / 100

// DefaultDelayTicks is how long slow-primary holds each PRE-PREPARE by
// default: 90% of protocol.DefaultViewChangeTimeoutTicks, just under the
// backups' timeout.
const DefaultDelayTicks = protocol.DefaultViewChangeTimeoutTicks * 9 / 10 // SlowPrimaryDelayTicks of the default

// SlowPrimaryDelayTicks is how long slow-primary holds each PRE-PREPARE
// in a cluster whose view-change timeout is timeoutTicks: 90% of it, at
// least one tick.
func SlowPrimaryDelayTicks(timeoutTicks int) uint64 {
	return uint64(max(1, timeoutTicks*9/10))
}

// maxFramesPerTick bounds one tick's injection whatever the rate.
const maxFramesPerTick = 4096

// Options tunes the strategies that act on their own schedule (the
// floods, driven by the runtime's ticks, and slow-primary). The zero
// value gives the defaults.
type Options struct {
	// FramesPerTick is the floods' rate: frames per tick to all other
	// replicas together (default DefaultFramesPerTick; it may be a
	// fraction, e.g. 0.5 is one frame every other tick).
	FramesPerTick float64
	// DelayTicks is how many ticks slow-primary holds each PRE-PREPARE
	// (default DefaultDelayTicks).
	DelayTicks uint64
	// Inactive starts the strategy switched off: the filter passes
	// everything through unchanged and injects nothing until
	// SetActive(true).
	Inactive bool
}

// Filter is one replica's fault-injection strategy. It implements
// pbft.Filter (and the node's optional Injector and Delayer hooks) and
// counts the faults it committed. Safe for concurrent use.
type Filter struct {
	strategy string
	self     uint32
	n        int
	opts     Options
	signer   *crypto.Signer
	// client is the Byzantine replica's own client identity: it cannot
	// forge real clients' signatures, so what it injects, it signs itself.
	client  *crypto.Signer
	actions atomic.Uint64
	// active switches the strategy on and off (SetActive).
	active atomic.Bool

	mu    sync.Mutex // guards flood
	flood floodState
}

// New returns the strategy for replica self of n, signing with key, with
// default Options.
func New(strategy string, self uint32, n int, key ed25519.PrivateKey, clusterID string) (*Filter, error) {
	return NewWithOptions(strategy, self, n, key, clusterID, Options{})
}

// NewWithOptions returns the strategy for replica self of n, signing with
// key, tuned by opts.
func NewWithOptions(strategy string, self uint32, n int, key ed25519.PrivateKey, clusterID string, opts Options) (*Filter, error) {
	if !slices.Contains(Strategies, strategy) {
		return nil, fmt.Errorf("byzantine: unknown strategy %q (known: %v)", strategy, Strategies)
	}
	if opts.FramesPerTick < 0 {
		return nil, fmt.Errorf("byzantine: negative flood rate %v frames per tick", opts.FramesPerTick)
	}
	if opts.FramesPerTick == 0 {
		opts.FramesPerTick = DefaultFramesPerTick
	}
	if opts.DelayTicks == 0 {
		opts.DelayTicks = DefaultDelayTicks
	}
	seed := sha256.Sum256(append([]byte("pbftnode/byzantine-client"), key.Seed()...))
	f := &Filter{
		strategy: strategy, self: self, n: n, opts: opts,
		signer: crypto.NewSigner(key, clusterID),
		client: crypto.NewSigner(ed25519.NewKeyFromSeed(seed[:]), clusterID),
	}
	f.active.Store(!opts.Inactive)
	return f, nil
}

// Strategy returns the strategy's name.
func (f *Filter) Strategy() string { return f.strategy }

// Actions counts the faults committed so far (messages withheld, forged,
// corrupted, injected or delayed).
func (f *Filter) Actions() uint64 { return f.actions.Load() }

// SetActive switches the strategy on or off; it reports whether that
// changed anything. Off, the filter passes everything through unchanged
// and injects and delays nothing.
func (f *Filter) SetActive(on bool) bool { return f.active.Swap(on) != on }

// Active reports whether the strategy is switched on.
func (f *Filter) Active() bool { return f.active.Load() }

// Outbound implements pbft.Filter.
func (f *Filter) Outbound(out protocol.Outbound) []protocol.Outbound {
	if f.strategy == StrategyBatchRequestFlood {
		f.observeDigest(out) // even while inactive, so an attack starts at once
	}
	if !f.active.Load() {
		return []protocol.Outbound{out}
	}
	switch f.strategy {
	case StrategySilent:
		f.actions.Add(1)
		return nil
	case StrategyEquivocate:
		if out.Kind == protocol.KindPrePrepare {
			return f.equivocate(out)
		}
	case StrategyWithhold:
		if out.Kind == protocol.KindPrePrepare && out.To == protocol.Broadcast {
			return f.withhold(out)
		}
	case StrategyBadNewView:
		if out.Kind == protocol.KindNewView {
			return f.badNewView(out)
		}
	case StrategyBadSignatureFlood:
		if out.Kind == protocol.KindCommit {
			return []protocol.Outbound{withBadSignature(out)}
		}
	}
	return []protocol.Outbound{out}
}

// Reply implements pbft.Filter.
func (f *Filter) Reply(r *wire.Reply) bool {
	if !f.active.Load() {
		return true
	}
	switch f.strategy {
	case StrategySilent:
		f.actions.Add(1)
		return false
	case StrategyWrongResults:
		r.Result = append([]byte("wrong:"), r.Result...)
		f.actions.Add(1)
	}
	return true
}

func (f *Filter) others() []uint32 {
	var out []uint32
	for i := range f.n {
		if uint32(i) != f.self {
			out = append(out, uint32(i))
		}
	}
	return out
}

// equivocate sends every other replica a different batch for the same
// view and sequence: the real batch plus a request of its own client that
// differs per recipient, each properly signed.
func (f *Filter) equivocate(out protocol.Outbound) []protocol.Outbound {
	pp, ok := decode(out.Signed)
	if !ok || pp.GetPrePrepare() == nil {
		return []protocol.Outbound{out}
	}
	header := pp.GetPrePrepare()
	recipients := f.others()
	if out.To != protocol.Broadcast {
		recipients = []uint32{out.To}
	}
	var outs []protocol.Outbound
	for _, to := range recipients {
		extra := f.clientRequest(header.Sequence<<8|uint64(to), fmt.Sprintf("equivocation for %d", to))
		batch := append(slices.Clone(out.Batch), extra)
		d := crypto.BatchDigest(batch)
		forged := &wire.ReplicaMessage{From: f.self, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{
			View: header.View, Sequence: header.Sequence, Digest: d[:]}}}
		outs = append(outs, protocol.Outbound{To: to, Signed: f.sign(forged), Batch: batch, Kind: out.Kind})
	}
	f.actions.Add(1)
	return outs
}

// withhold sends a pre-prepare to only f backups.
func (f *Filter) withhold(out protocol.Outbound) []protocol.Outbound {
	fault := protocol.FaultTolerance(f.n)
	var outs []protocol.Outbound
	for _, to := range f.others()[:fault] {
		o := out
		o.To = to
		outs = append(outs, o)
	}
	f.actions.Add(1)
	return outs
}

// badNewView drops one re-proposal from a NEW-VIEW (or adds a fabricated
// one when there is none) and signs the result.
func (f *Filter) badNewView(out protocol.Outbound) []protocol.Outbound {
	m, ok := decode(out.Signed)
	if !ok || m.GetNewView() == nil {
		return []protocol.Outbound{out}
	}
	nv := m.GetNewView()
	if len(nv.PrePrepares) > 0 {
		nv.PrePrepares = nv.PrePrepares[:len(nv.PrePrepares)-1]
	} else {
		d := sha256.Sum256([]byte("fabricated"))
		nv.PrePrepares = append(nv.PrePrepares, f.sign(&wire.ReplicaMessage{From: f.self, Body: &wire.ReplicaMessage_PrePrepare{
			PrePrepare: &wire.PrePrepare{View: nv.View, Sequence: 1 << 40, Digest: d[:]}}}))
	}
	f.actions.Add(1)
	out.Signed = f.sign(m)
	return []protocol.Outbound{out}
}

func (f *Filter) clientRequest(number uint64, op string) *wire.Signed {
	payload, _ := proto.Marshal(&wire.Request{ClientId: f.client.Public(), RequestNumber: number, Operation: []byte(op)})
	return &wire.Signed{Payload: payload, Signature: f.client.Sign(crypto.DomainClientRequest, payload)}
}

func (f *Filter) sign(m *wire.ReplicaMessage) *wire.Signed {
	payload, _ := proto.Marshal(m)
	return &wire.Signed{Payload: payload, Signature: f.signer.Sign(crypto.DomainReplicaMessage, payload)}
}

func decode(s *wire.Signed) (*wire.ReplicaMessage, bool) {
	var m wire.ReplicaMessage
	if s == nil || proto.Unmarshal(s.Payload, &m) != nil {
		return nil, false
	}
	return &m, true
}
