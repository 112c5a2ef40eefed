package byzantine

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"

	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Strategies lists the strategy names New accepts.
var Strategies = []string{"silent", "equivocate", "withhold", "bad-new-view", "wrong-results"}

// Filter is one replica's fault-injection strategy. It implements
// node.Filter and counts the faults it committed. Safe for concurrent use.
type Filter struct {
	strategy string
	self     uint32
	n        int
	signer   *crypto.Signer
	// client is the Byzantine replica's own client identity: it cannot
	// forge real clients' signatures, so what it injects, it signs itself.
	client  *crypto.Signer
	actions atomic.Uint64
}

// New returns the strategy for replica self of n, signing with key.
func New(strategy string, self uint32, n int, key ed25519.PrivateKey, clusterID string) (*Filter, error) {
	if !slices.Contains(Strategies, strategy) {
		return nil, fmt.Errorf("byzantine: unknown strategy %q (known: %v)", strategy, Strategies)
	}
	seed := sha256.Sum256(append([]byte("pbftnode/byzantine-client"), key.Seed()...))
	return &Filter{
		strategy: strategy, self: self, n: n,
		signer: crypto.NewSigner(key, clusterID),
		client: crypto.NewSigner(ed25519.NewKeyFromSeed(seed[:]), clusterID),
	}, nil
}

// Strategy returns the strategy's name.
func (f *Filter) Strategy() string { return f.strategy }

// Actions counts the faults committed so far (messages withheld, forged
// or corrupted).
func (f *Filter) Actions() uint64 { return f.actions.Load() }

// Outbound implements node.Filter.
func (f *Filter) Outbound(out protocol.Outbound) []protocol.Outbound {
	switch f.strategy {
	case "silent":
		f.actions.Add(1)
		return nil
	case "equivocate":
		if out.Kind == protocol.KindPrePrepare {
			return f.equivocate(out)
		}
	case "withhold":
		if out.Kind == protocol.KindPrePrepare && out.To == protocol.Broadcast {
			return f.withhold(out)
		}
	case "bad-new-view":
		if out.Kind == protocol.KindNewView {
			return f.badNewView(out)
		}
	}
	return []protocol.Outbound{out}
}

// Reply implements node.Filter.
func (f *Filter) Reply(r *wire.Reply) bool {
	switch f.strategy {
	case "silent":
		f.actions.Add(1)
		return false
	case "wrong-results":
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
