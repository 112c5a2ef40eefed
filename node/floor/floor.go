package floor

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/verifypool"
	"github.com/pbftnode/pbftnode/wire"
)

// Node is a benchmark instrument, not a replica: it measures the
// floor under PBFT's cost on a machine, what the transport and the
// signatures alone cost, by doing the per-request work of PBFT's data
// path and none of its agreement. `pbftnode run --benchmark-floor` runs
// it; `pbftnode bench --protocol floor` measures a cluster of them.
//
// Every replica verifies each client signature once, with the same
// MessageVerifier, verified-request cache, verification pool and
// batching of waiting frames as a PBFT Node. The primary (replica 0)
// relays the requests it verified to every backup in signed
// PRE-PREPAREs of at most MaxBatchSize requests, as PBFT's primary does,
// and every replica answers each request it verified with the same fixed
// result. There are no PREPAREs, COMMITs or checkpoints, nothing is
// persisted or executed, and there are no view changes: a floor Node gives
// no guarantee and must never serve real clients.
//
// What a PBFT cluster does per request beyond what a floor cluster
// does is the price of agreement, persistence and execution; what a
// floor cluster does beyond the crypto ceiling is the transport's.
type Node struct {
	node.Shell
	cfg      node.Config
	log      *slog.Logger
	verifier *protocol.MessageVerifier
	pool     *verifypool.Pool
	signer   *crypto.Signer
	metrics  *node.Metrics
	maxBatch int

	// relay carries the primary's verified client requests to its batcher.
	relay chan *wire.Signed
	// result is every reply's result: a successful put.
	result []byte
	// batches counts the PRE-PREPAREs sent (primary) or received and
	// answered (backups): the status's executed sequence.
	batches atomic.Uint64
}

// floorRelayQueue bounds the primary's requests waiting for a PRE-PREPARE.
const floorRelayQueue = 4096

// Start starts a floor Node on the replica configuration cfg: its
// transport, verification workers, batcher (primary) and operations
// HTTP server. It opens cfg's database only so that it reports a size;
// nothing is written to it.
func Start(cfg node.Config) (*Node, error) {
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("replica", cfg.Index, "protocol", "floor"), metrics: node.NewMetrics()}
	result, err := proto.Marshal(&wire.KVResult{Ok: true})
	if err != nil {
		return nil, fmt.Errorf("node: floor result: %w", err)
	}
	n.result = result
	if err := n.open(); err != nil {
		_ = n.CloseResources(nil)
		return nil, err
	}
	var loops []func(ctx context.Context)
	for range cfg.VerifyLoops() {
		loops = append(loops, n.verifyLoop)
	}
	if n.cfg.Index == 0 {
		loops = append(loops, n.batchLoop)
	}
	n.Run(loops...)
	return n, nil
}

func (n *Node) open() error {
	cfg := n.cfg
	n.log.Warn("BENCHMARK FLOOR: this replica verifies and answers requests without ordering, persisting or executing them")
	if err := n.OpenDB(cfg, n.log, ""); err != nil {
		return err
	}
	n.maxBatch = cfg.PBFT.MaxBatchSize
	if n.maxBatch <= 0 {
		n.maxBatch = protocol.DefaultMaxBatchSize
	}
	n.signer = crypto.NewSigner(cfg.Key, cfg.ClusterID)
	n.verifier, n.pool = node.NewVerifier(cfg, n.maxBatch)
	if err := n.StartHost(cfg, "", n.log); err != nil {
		return err
	}
	n.metrics.WatchTransport(n.Host.Stats)
	n.relay = make(chan *wire.Signed, floorRelayQueue)
	rule := node.PBFTReadiness(len(cfg.Replicas))
	rule.Consensus = "floor"
	return n.ServeOps(cfg.MetricsAddr, n.metrics, rule, n.Status, n.log)
}

// Status reports view 0, always active, led by replica 0; the executed
// sequence counts the batches relayed or answered.
func (n *Node) Status() node.Status {
	return node.Status{Index: n.cfg.Index, ViewActive: true, Leader: 0, ExecutedSequence: n.batches.Load()}
}

// Close stops the node and releases its resources. Idempotent.
func (n *Node) Close() error { return n.Shutdown(nil) }

// verifyLoop takes one frame and every frame already waiting (at most
// node.MaxVerifyDrain), verifies them together and answers what passed,
// as a PBFT replica's verification workers do.
func (n *Node) verifyLoop(ctx context.Context) {
	node.ReceiveLoop(ctx, n.Host, n.verifyArrivals)
}

// verifyArrivals verifies frames together, answers every request that
// passed and, on the primary, queues the client requests for relay.
func (n *Node) verifyArrivals(ctx context.Context, arrivals []node.Arrival) {
	frames := make([]protocol.Frame, 0, len(arrivals))
	from := make([]p2p.Frame, 0, len(arrivals))
	for _, a := range arrivals {
		if a.Client {
			signed, err := node.SignedRequestOf(a.Frame)
			if err != nil {
				n.metrics.Dropped.WithLabelValues("malformed").Inc()
				continue
			}
			frames = append(frames, protocol.Frame{ClientRequest: signed})
		} else {
			frames = append(frames, protocol.Frame{ReplicaFrame: a.Frame.Data})
		}
		from = append(from, a.Frame)
	}
	for i, v := range n.verifier.VerifyFrames(frames) {
		switch {
		case v.Err != nil:
			node.Refused(n.Host, n.metrics, n.log, from[i], v.Err)
			n.metrics.Dropped.WithLabelValues(node.ReasonOf(v.Err)).Inc()
		case frames[i].ClientRequest != nil:
			if !node.SentByItsClient(from[i], v.Request.Request) {
				n.metrics.Dropped.WithLabelValues("client_mismatch").Inc()
				continue
			}
			// Answered on the stream it came on (its client's, checked above).
			node.SendReply(n.Host, n.metrics, from[i].From, n.answer(v.Request.Request))
			if n.cfg.Index == 0 {
				select {
				case n.relay <- v.Request.Signed:
				case <-ctx.Done():
					return
				}
			}
		case v.Message.Body.GetPrePrepare() != nil && v.Message.Body.From == 0:
			for _, r := range v.Message.Requests {
				node.ReplyToClient(n.Host, n.metrics, n.answer(r))
			}
			n.batches.Add(1)
			n.metrics.CommittedBatches.Inc()
			n.metrics.CommittedRequests.Add(float64(len(v.Message.Requests)))
		}
	}
}

// answer is the reply with the fixed result for req.
func (n *Node) answer(req *wire.Request) *wire.Reply {
	return &wire.Reply{ClientId: req.ClientId, RequestNumber: req.RequestNumber, Replica: n.cfg.Index, Result: n.result}
}

// batchLoop (primary only) takes one verified request and every one
// already waiting, at most maxBatch, and broadcasts them in one signed
// PRE-PREPARE, as the PBFT primary cuts a batch from what arrived.
func (n *Node) batchLoop(ctx context.Context) {
	var sequence uint64
	for {
		var batch []*wire.Signed
		select {
		case <-ctx.Done():
			return
		case r := <-n.relay:
			batch = append(batch, r)
		}
	fill:
		for len(batch) < n.maxBatch {
			select {
			case r := <-n.relay:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		sequence++
		if err := n.broadcastPrePrepare(sequence, batch); err != nil {
			n.log.Error("floor pre-prepare", "sequence", sequence, "err", err)
			continue
		}
		n.batches.Store(sequence)
		n.metrics.CommittedBatches.Inc()
		n.metrics.CommittedRequests.Add(float64(len(batch)))
	}
}

// broadcastPrePrepare signs a PRE-PREPARE for batch at sequence in view
// 0 and sends it, with the batch, to every backup.
func (n *Node) broadcastPrePrepare(sequence uint64, batch []*wire.Signed) error {
	digest := crypto.BatchDigest(batch)
	payload, err := proto.Marshal(&wire.ReplicaMessage{From: n.cfg.Index, Body: &wire.ReplicaMessage_PrePrepare{
		PrePrepare: &wire.PrePrepare{Sequence: sequence, Digest: digest[:]},
	}})
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	signed := &wire.Signed{Payload: payload, Signature: n.signer.Sign(crypto.DomainReplicaMessage, payload)}
	frame, err := protocol.EncodeFrame(signed, batch)
	if err != nil {
		return err
	}
	n.Host.Broadcast(frame)
	return nil
}
