package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/verifypool"
	"github.com/pbftnode/pbftnode/wire"
)

// FloorNode is a benchmark instrument, not a replica: it measures the
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
// persisted or executed, and there are no view changes: a FloorNode gives
// no guarantee and must never serve real clients.
//
// What a PBFT cluster does per request beyond what a FloorNode cluster
// does is the price of agreement, persistence and execution; what a
// FloorNode cluster does beyond the crypto ceiling is the transport's.
type FloorNode struct {
	shell
	cfg      Config
	log      *slog.Logger
	verifier *protocol.MessageVerifier
	pool     *verifypool.Pool
	signer   *crypto.Signer
	metrics  *metrics
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

// StartFloor starts a FloorNode on the replica configuration cfg: its
// transport, verification workers, batcher (primary) and operations
// HTTP server. It opens cfg's database only so that it reports a size;
// nothing is written to it.
func StartFloor(cfg Config) (*FloorNode, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	n := &FloorNode{cfg: cfg, log: cfg.Logger.With("replica", cfg.Index, "protocol", "floor"), metrics: newMetrics()}
	result, err := proto.Marshal(&wire.KVResult{Ok: true})
	if err != nil {
		return nil, fmt.Errorf("node: floor result: %w", err)
	}
	n.result = result
	if err := n.open(); err != nil {
		_ = n.shell.closeResources(nil)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for range cfg.verifyLoops() {
		n.wg.Add(1)
		go n.verifyLoop(ctx)
	}
	if n.cfg.Index == 0 {
		n.wg.Add(1)
		go n.batchLoop(ctx)
	}
	return n, nil
}

func (n *FloorNode) open() error {
	cfg := n.cfg
	n.log.Warn("BENCHMARK FLOOR: this replica verifies and answers requests without ordering, persisting or executing them")
	db, err := storage.Open(cfg.DataDir, storage.Options{Sync: cfg.Sync, Logger: n.log})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.db = db
	pubs := make([]ed25519.PublicKey, len(cfg.Replicas))
	for i, r := range cfg.Replicas {
		pubs[i] = r.PublicKey
	}
	n.maxBatch = cfg.PBFT.MaxBatchSize
	if n.maxBatch <= 0 {
		n.maxBatch = protocol.DefaultMaxBatchSize
	}
	n.pool = verifypool.New(cfg.ClusterID, cfg.VerifyWorkers)
	n.signer = crypto.NewSigner(cfg.Key, cfg.ClusterID)
	n.verifier = protocol.NewMessageVerifier(cfg.ClusterID, pubs, crypto.NewVerifiedCache(1<<16), n.pool, n.maxBatch)
	if err := n.startHost(cfg, "", n.log); err != nil {
		return err
	}
	n.metrics.watchTransport(n.host.Stats)
	n.relay = make(chan *wire.Signed, floorRelayQueue)
	return n.serveMetrics(cfg.MetricsAddr, n.metrics, n.opsState(), n.log)
}

// Status reports view 0, always active, led by replica 0; the executed
// sequence counts the batches relayed or answered.
func (n *FloorNode) Status() Status {
	return Status{Index: n.cfg.Index, ViewActive: true, Leader: 0, ExecutedSequence: n.batches.Load()}
}

func (n *FloorNode) opsState() opsState {
	return n.shell.opsState(len(n.cfg.Replicas), 2*((len(n.cfg.Replicas)-1)/3), n.Status)
}

// Close stops the node and releases its resources. Idempotent.
func (n *FloorNode) Close() error { return n.shutdown(nil) }

// verifyLoop takes one frame and every frame already waiting (at most
// maxVerifyDrain), verifies them together and answers what passed, as a
// PBFT Node's verification workers do.
func (n *FloorNode) verifyLoop(ctx context.Context) {
	defer n.wg.Done()
	verifyLoop(ctx, n.host, n.verifyArrivals)
}

// verifyArrivals verifies frames together, answers every request that
// passed and, on the primary, queues the client requests for relay.
func (n *FloorNode) verifyArrivals(ctx context.Context, arrivals []arrival) {
	frames := make([]protocol.Frame, 0, len(arrivals))
	from := make([]p2p.Frame, 0, len(arrivals))
	for _, a := range arrivals {
		if a.client {
			signed, err := signedRequestOf(a.frame)
			if err != nil {
				n.metrics.dropped.WithLabelValues("malformed").Inc()
				continue
			}
			frames = append(frames, protocol.Frame{ClientRequest: signed})
		} else {
			frames = append(frames, protocol.Frame{ReplicaFrame: a.frame.Data})
		}
		from = append(from, a.frame)
	}
	for i, v := range n.verifier.VerifyFrames(frames) {
		switch {
		case v.Err != nil:
			refused(n.host, n.metrics, n.log, from[i], v.Err)
			n.metrics.dropped.WithLabelValues(reasonOf(v.Err)).Inc()
		case frames[i].ClientRequest != nil:
			if !sentByItsClient(from[i], v.Request.Request) {
				n.metrics.dropped.WithLabelValues("client_mismatch").Inc()
				continue
			}
			n.answer(from[i].From, v.Request.Request)
			if n.cfg.Index == 0 {
				select {
				case n.relay <- v.Request.Signed:
				case <-ctx.Done():
					return
				}
			}
		case v.Message.Body.GetPrePrepare() != nil && v.Message.Body.From == 0:
			for _, r := range v.Message.Requests {
				if id, err := identity.ClientPeerID(r.ClientId); err == nil {
					n.answer(id, r)
				}
			}
			n.batches.Add(1)
			n.metrics.committedBatches.Inc()
			n.metrics.committedRequests.Add(float64(len(v.Message.Requests)))
		}
	}
}

// answer sends the fixed result for req to its client, peer id.
func (n *FloorNode) answer(id peer.ID, req *wire.Request) {
	b, err := proto.Marshal(&wire.Reply{ClientId: req.ClientId, RequestNumber: req.RequestNumber, Replica: n.cfg.Index, Result: n.result})
	if err != nil {
		return
	}
	if n.host.SendToClient(id, b) {
		n.metrics.clientReplies.Inc()
	}
}

// batchLoop (primary only) takes one verified request and every one
// already waiting, at most maxBatch, and broadcasts them in one signed
// PRE-PREPARE, as the PBFT primary cuts a batch from what arrived.
func (n *FloorNode) batchLoop(ctx context.Context) {
	defer n.wg.Done()
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
		n.metrics.committedBatches.Inc()
		n.metrics.committedRequests.Add(float64(len(batch)))
	}
}

// broadcastPrePrepare signs a PRE-PREPARE for batch at sequence in view
// 0 and sends it, with the batch, to every backup.
func (n *FloorNode) broadcastPrePrepare(sequence uint64, batch []*wire.Signed) error {
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
	n.host.Broadcast(frame)
	return nil
}
