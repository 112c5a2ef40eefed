package pbft_test

import (
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// badSignatures sends everything its replica sends with the signature
// corrupted: every frame on the replica's own stream proves it faulty.
type badSignatures struct{ sent atomic.Uint64 }

func (f *badSignatures) Outbound(out protocol.Outbound) []protocol.Outbound {
	sig := append([]byte(nil), out.Signed.GetSignature()...)
	if len(sig) > 0 {
		sig[0] ^= 0xff
	}
	out.Signed = &wire.Signed{Payload: out.Signed.GetPayload(), Signature: sig}
	f.sent.Add(1)
	return []protocol.Outbound{out}
}

func (f *badSignatures) Reply(*wire.Reply) bool { return true }

// A replica whose frames carry bad signatures is backed off by every
// correct replica (its later frames dropped unverified, counted), while
// the others keep committing.
func TestBadSignatureReplicaBackedOff(t *testing.T) {
	const liar = 1
	filter := &badSignatures{}
	net := startNet(t, localnet.Options{Filters: map[int]pbft.Filter{liar: filter}})
	if n := runWorkload(t, net, 2, 4, 20); n != 160 {
		t.Fatalf("%d operations completed with replica %d sending bad signatures, want 160", n, liar)
	}
	waitUntil(t, net, 20*time.Second, "every correct replica backed replica 1 off and dropped its frames unverified", func() bool {
		for i, n := range net.Nodes {
			if i == liar {
				continue
			}
			if n.MetricValue("pbftnode_faulty_replica_backoffs_total") < 1 || n.MetricValue("pbftnode_p2p_dropped_faulty_total") < 1 {
				return false
			}
		}
		return true
	})
	if filter.sent.Load() == 0 {
		t.Fatal("the faulty replica sent nothing; the test proved nothing")
	}
	waitConvergedExcept(t, net, liar)
}

// staleCopies sends, beside every PREPARE and COMMIT of a view above 0,
// validly signed copies for the view before (stale) and for a sequence
// far beyond the window (outside it): the core would drop them all.
type staleCopies struct {
	signer *crypto.Signer
	window uint64
	extra  atomic.Uint64
}

func (f *staleCopies) Outbound(out protocol.Outbound) []protocol.Outbound {
	outs := []protocol.Outbound{out}
	var body wire.ReplicaMessage
	if proto.Unmarshal(out.Signed.GetPayload(), &body) != nil {
		return outs
	}
	forge := func(view, seq uint64) {
		var b wire.ReplicaMessage
		switch {
		case body.GetPrepare() != nil:
			p := proto.Clone(body.GetPrepare()).(*wire.Prepare)
			p.View, p.Sequence = view, seq
			b.Body = &wire.ReplicaMessage_Prepare{Prepare: p}
		case body.GetCommit() != nil:
			c := proto.Clone(body.GetCommit()).(*wire.Commit)
			c.View, c.Sequence = view, seq
			b.Body = &wire.ReplicaMessage_Commit{Commit: c}
		default:
			return
		}
		b.From = body.From
		payload, err := proto.Marshal(&b)
		if err != nil {
			return
		}
		signed := &wire.Signed{Payload: payload, Signature: f.signer.Sign(crypto.DomainReplicaMessage, payload)}
		outs = append(outs, protocol.Outbound{To: out.To, Signed: signed, Kind: out.Kind})
		f.extra.Add(1)
	}
	view, seq := body.GetPrepare().GetView()+body.GetCommit().GetView(), body.GetPrepare().GetSequence()+body.GetCommit().GetSequence()
	if view > 0 && seq > 0 {
		for range 4 {
			forge(view-1, seq)
		}
		forge(view, seq+3*f.window)
	}
	return outs
}

func (f *staleCopies) Reply(*wire.Reply) bool { return true }

// Stale-view and out-of-window messages, validly signed, are dropped by
// the pre-check before any signature is checked (counted by reason), and
// the cluster keeps committing.
func TestStaleFramesDroppedBeforeVerification(t *testing.T) {
	const liar, stopped = 2, 0
	var filter *staleCopies
	net := startNet(t, localnet.Options{
		FilterFactory: func(i int, key ed25519.PrivateKey, cluster string) pbft.Filter {
			if i != liar {
				return nil
			}
			filter = &staleCopies{signer: crypto.NewSigner(key, cluster), window: 2 * protocol.DefaultCheckpointInterval}
			return filter
		},
	})
	if n := runWorkload(t, net, 1, 2, 4); n != 8 {
		t.Fatalf("%d warm-up operations completed, want 8", n)
	}
	// Replace the primary of view 0: from view 1 on, replica 2 sends
	// stale and out-of-window copies.
	if err := net.StopReplica(stopped); err != nil {
		t.Fatal(err)
	}
	if n := runWorkload(t, net, 2, 4, 8); n != 64 {
		t.Fatalf("%d operations completed after the view change, want 64", n)
	}
	waitUntil(t, net, 20*time.Second, "the correct replicas in view 1 to pre-check the stale copies", func() bool {
		for _, i := range []int{1, 3} {
			if net.Nodes[i].MetricValue("pbftnode_prechecked_dropped_total") < 1 {
				return false
			}
		}
		return true
	})
	if filter.extra.Load() == 0 {
		t.Fatal("replica 2 forged no stale copies; the test proved nothing")
	}
	t.Logf("forged %d copies; replica 1 pre-checked %.0f, replica 3 %.0f", filter.extra.Load(),
		net.Nodes[1].MetricValue("pbftnode_prechecked_dropped_total"), net.Nodes[3].MetricValue("pbftnode_prechecked_dropped_total"))
	waitConvergedExcept(t, net, stopped)
}
