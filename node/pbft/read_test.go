package pbft_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/opstest"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// sumMetric sums a metric over the cluster's replicas.
func sumMetric(net *localnet.Net, name string) float64 {
	total := 0.0
	for _, n := range net.Nodes {
		if n != nil {
			total += n.MetricValue(name)
		}
	}
	return total
}

// mustRead reads key through c.Read and decodes the value ("" if absent).
func mustRead(ctx context.Context, t *testing.T, c *client.Client, key string) string {
	t.Helper()
	raw, err := c.Read(ctx, execution.EncodeGet([]byte(key)))
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	res, err := execution.DecodeResult(raw)
	if err != nil {
		t.Fatalf("decode read of %s: %v", key, err)
	}
	return string(res.Value)
}

// Reads sent on the client's own stream are answered on the read-only
// path with no signature verification: 40 reads on 4 replicas would cost
// 160 verifications if they were verified like ordered requests.
func TestReadOnClientStreamNotVerified(t *testing.T) {
	net := startNet(t, localnet.Options{})
	// A generous retransmission timeout: the read timeout (a quarter of
	// it) must not make reads fall back on a busy machine.
	c, err := net.NewClient(4 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if res := invoke(ctx, t, c, execution.EncodePut([]byte("k"), []byte("v1"))); !res.Ok {
		t.Fatalf("put: %+v", res)
	}
	// Let every replica execute the put, so no read has to wait.
	waitUntil(t, net, 20*time.Second, "every replica executed the put", func() bool {
		for _, n := range net.Nodes {
			if n.Status().ExecutedSequence < 1 {
				return false
			}
		}
		return true
	})
	const reads = 40
	verifiedBefore := sumMetric(net, "pbftnode_signatures_verified_total")
	committedBefore := sumMetric(net, "pbftnode_committed_requests_total")
	for range reads {
		if got := mustRead(ctx, t, c, "k"); got != "v1" {
			t.Fatalf("read k = %q, want v1", got)
		}
	}
	rc := c.ReadCounts()
	verified := sumMetric(net, "pbftnode_signatures_verified_total") - verifiedBefore
	t.Logf("%d reads: %d fast, %d ordered; %.0f signatures verified, %.0f read-only requests handled",
		reads, rc.Fast, rc.Fallback, verified, sumMetric(net, "pbftnode_read_only_requests_total"))
	if rc.Fast < reads/2 {
		t.Fatalf("only %d of %d reads answered on the read-only path", rc.Fast, reads)
	}
	// Each ordered fallback costs at most a verification per replica
	// plus its protocol messages; the fast reads cost none.
	if limit := float64(rc.Fallback)*40 + reads/4; verified > limit {
		t.Fatalf("%.0f signatures verified during %d reads (%d ordered): the read-only path verified signatures", verified, reads, rc.Fallback)
	}
	if rc.Fallback == 0 && sumMetric(net, "pbftnode_committed_requests_total") != committedBefore {
		t.Fatal("fast reads were committed")
	}
}

// forwardReadOnly is a Byzantine replica that, beside each message it
// sends, relays a validly signed read-only request (of a client key it
// holds) as a forwarded request: correct replicas must refuse it.
type forwardReadOnly struct {
	signer, client *crypto.Signer
	clientID       []byte
	number         atomic.Uint64
	forged         atomic.Uint64
}

func (f *forwardReadOnly) Outbound(out protocol.Outbound) []protocol.Outbound {
	outs := []protocol.Outbound{out}
	if out.Kind != protocol.KindPrepare && out.Kind != protocol.KindCommit {
		return outs
	}
	req := &wire.Request{ClientId: f.clientID, RequestNumber: f.number.Add(1), Operation: execution.EncodeGet([]byte("k")), ReadOnly: true}
	payload, err := proto.Marshal(req)
	if err != nil {
		return outs
	}
	signedReq := &wire.Signed{Payload: payload, Signature: f.client.Sign(crypto.DomainClientRequest, payload)}
	var body wire.ReplicaMessage
	if proto.Unmarshal(out.Signed.GetPayload(), &body) != nil {
		return outs
	}
	msg := &wire.ReplicaMessage{From: body.From, Body: &wire.ReplicaMessage_ForwardedRequest{ForwardedRequest: signedReq}}
	b, err := proto.Marshal(msg)
	if err != nil {
		return outs
	}
	signed := &wire.Signed{Payload: b, Signature: f.signer.Sign(crypto.DomainReplicaMessage, b)}
	f.forged.Add(1)
	return append(outs, protocol.Outbound{To: protocol.Broadcast, Signed: signed, Kind: protocol.KindForward})
}

func (f *forwardReadOnly) Reply(*wire.Reply) bool { return true }

// A read-only request relayed by a replica (the ordering path) is refused
// by the correct replicas (counted as read_only_ordered), never ordered.
func TestRelayedReadOnlyRequestRefused(t *testing.T) {
	const liar = 2
	var filter *forwardReadOnly
	net := startNet(t, localnet.Options{
		Metrics: true,
		FilterFactory: func(i int, key ed25519.PrivateKey, cluster string) pbft.Filter {
			if i != liar {
				return nil
			}
			clientKey := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
			filter = &forwardReadOnly{signer: crypto.NewSigner(key, cluster), client: crypto.NewSigner(clientKey, cluster),
				clientID: clientKey.Public().(ed25519.PublicKey)}
			return filter
		},
	})
	if n := runWorkload(t, net, 1, 2, 8); n != 16 {
		t.Fatalf("%d operations completed, want 16", n)
	}
	waitUntil(t, net, 20*time.Second, "the correct replicas to refuse a relayed read-only request", func() bool {
		for i, n := range net.Nodes {
			if i != liar && opstest.Metric(t, n.MetricsAddr(), `pbftnode_messages_dropped_total{reason="read_only_ordered"}`) < 1 {
				return false
			}
		}
		return true
	})
	if filter.forged.Load() == 0 {
		t.Fatal("the Byzantine replica relayed nothing; the test proved nothing")
	}
	waitConvergedExcept(t, net, liar)
}

// staleReads is a Byzantine replica answering each read with the result
// of its previous read (one key in the test: a value it really had), and
// everything else correctly.
type staleReads struct {
	mu     sync.Mutex
	last   []byte
	forged atomic.Uint64
}

func (f *staleReads) Outbound(out protocol.Outbound) []protocol.Outbound {
	return []protocol.Outbound{out}
}

func (f *staleReads) Reply(r *wire.Reply) bool {
	if !r.ReadOnly || r.Error != "" {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.last
	f.last = r.Result
	if prev != nil && string(prev) != string(r.Result) {
		r.Result = prev
		f.forged.Add(1)
	}
	return true
}

// laggingPrimary is a Byzantine primary (replica 0) that makes two
// correct replicas lag: it holds its PRE-PREPAREs to replica 2 and its
// COMMITs to replica 1 for lagTicks, so a write completes with its own
// reply and replica 3's while replica 1 has prepared but not executed it
// and replica 2 has not even prepared it. It answers every read with the
// result of the read before (a value the key had), like staleReads.
type laggingPrimary struct {
	staleReads
}

const lagTicks = 60

func (f *laggingPrimary) Outbound(out protocol.Outbound) []protocol.Outbound {
	if out.To != protocol.Broadcast || (out.Kind != protocol.KindPrePrepare && out.Kind != protocol.KindCommit) {
		return []protocol.Outbound{out}
	}
	outs := make([]protocol.Outbound, 0, 3)
	for to := uint32(1); to <= 3; to++ {
		o := out
		o.To = to
		outs = append(outs, o)
	}
	return outs
}

func (f *laggingPrimary) Delay(out protocol.Outbound) uint64 {
	if (out.Kind == protocol.KindPrePrepare && out.To == 2) || (out.Kind == protocol.KindCommit && out.To == 1) {
		return lagTicks
	}
	return 0
}

// With f Byzantine and f other correct replicas lagging (the worst case
// the read quorum must survive), a read issued right after a write
// completed must not return the value before it: the Byzantine primary
// and replica 2 (which never prepared the write) answer the old value,
// and replica 1, which prepared it, must wait until it executed it
// rather than answer the old value too (which would make 2f+1).
func TestReadNotStaleWithLaggingReplicas(t *testing.T) {
	primary := &laggingPrimary{}
	net := startNet(t, localnet.Options{Filters: map[int]pbft.Filter{0: primary}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := net.NewClient(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	allExecuted := func(seq uint64) bool {
		for _, n := range net.Nodes {
			if n.Status().ExecutedSequence < seq {
				return false
			}
		}
		return true
	}
	for v := 1; v <= 5; v++ {
		if res := invoke(ctx, t, c, execution.EncodePut([]byte("k"), []byte(fmt.Sprint(v)))); !res.Ok {
			t.Fatalf("put %d: %+v", v, res)
		}
		// The read right after the write: it must see version v.
		if got := mustRead(ctx, t, c, "k"); got != fmt.Sprint(v) {
			t.Fatalf("read after put %d returned %q", v, got)
		}
		// Let the laggards catch up, then read once more so the
		// Byzantine primary's memory holds version v for the next round.
		seq := net.Nodes[3].Status().ExecutedSequence
		waitUntil(t, net, 30*time.Second, "every replica executed the put", func() bool { return allExecuted(seq) })
		if got := mustRead(ctx, t, c, "k"); got != fmt.Sprint(v) {
			t.Fatalf("read after everyone executed put %d returned %q", v, got)
		}
	}
	rc := c.ReadCounts()
	t.Logf("reads: %d fast, %d ordered; %d stale answers forged", rc.Fast, rc.Fallback, primary.forged.Load())
	if primary.forged.Load() == 0 {
		t.Fatal("the Byzantine primary forged no stale answer: the test proved nothing")
	}
}
