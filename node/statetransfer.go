package node

import (
	"bytes"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// transferTimeoutTicks is how long the loop waits for a chunk before it
// asks another peer.
const transferTimeoutTicks = 300

// transfer is a state transfer in progress, driven by the event loop: it
// fetches the snapshot of cert.Sequence chunk by chunk from one peer that
// signed the certificate, installs it, and checks the installed state's
// digest against the certified one. A peer that serves a wrong snapshot,
// or none, or too slowly, is skipped and the next one asked.
type transfer struct {
	cert    checkpoint.Certificate
	peers   []uint32 // the certificate's signers other than this replica
	current int      // index into peers
	nextKey []byte
	idle    int // ticks since the last chunk
	bytes   int
	started time.Time
	begun   bool // the executor holds a restore in progress
}

// startTransfer begins (or retargets) a state transfer to cert.
func (n *Node) startTransfer(cert checkpoint.Certificate) {
	old := n.transfer
	if old != nil && old.cert.Sequence >= cert.Sequence {
		return
	}
	t := &transfer{cert: cert, started: time.Now(), begun: old != nil && old.begun}
	for _, v := range cert.Proof {
		if v.Replica != n.cfg.Index {
			t.peers = append(t.peers, v.Replica)
		}
	}
	if len(t.peers) == 0 {
		n.log.Error("state transfer: no peer signed the certificate", "sequence", cert.Sequence)
		return
	}
	t.current = int(n.cfg.Index) % len(t.peers)
	n.transfer = t
	n.metrics.stateTransfers.Inc()
	n.log.Info("state transfer: starting", "checkpoint", cert.Sequence, "executed", n.executor.LastExecuted())
	n.restartTransfer()
}

// restartTransfer wipes what was fetched and asks the current peer for
// the snapshot from its first key.
func (n *Node) restartTransfer() {
	t := n.transfer
	if t.begun {
		if err := n.executor.RestoreAbort(); err != nil {
			n.log.Error("state transfer: wiping state", "err", err)
		}
	}
	if err := n.executor.RestoreBegin(); err != nil {
		n.log.Error("state transfer: begin", "err", err)
		return
	}
	t.begun = true
	t.nextKey, t.idle, t.bytes = nil, 0, 0
	n.requestChunk()
}

func (n *Node) requestChunk() {
	t := n.transfer
	n.sendOwn(t.peers[t.current], protocol.KindStateRequest, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_StateRequest{
		StateRequest: &wire.StateRequest{Sequence: t.cert.Sequence, StartKey: t.nextKey},
	}})
}

// nextPeer gives up on the current peer.
func (n *Node) nextPeer(reason string) {
	t := n.transfer
	n.metrics.stateTransferRejected.WithLabelValues(reason).Inc()
	n.log.Warn("state transfer: trying another peer", "peer", t.peers[t.current], "reason", reason, "checkpoint", t.cert.Sequence)
	t.current = (t.current + 1) % len(t.peers)
	n.restartTransfer()
}

// transferTick times out a silent peer.
func (n *Node) transferTick() {
	if t := n.transfer; t != nil {
		t.idle++
		if t.idle >= transferTimeoutTicks {
			n.nextPeer("timeout")
		}
	}
}

// handleStateChunk applies one chunk of the transfer in progress.
func (n *Node) handleStateChunk(from uint32, c *wire.StateChunk) {
	t := n.transfer
	if t == nil || from != t.peers[t.current] || c.Sequence != t.cert.Sequence || !bytes.Equal(c.StartKey, t.nextKey) {
		n.drop("unexpected_state_chunk")
		return
	}
	t.idle = 0
	if c.Unavailable {
		n.nextPeer("unavailable")
		return
	}
	if err := n.executor.RestoreChunk(c.Entries); err != nil {
		n.log.Warn("state transfer: bad chunk", "peer", from, "err", err)
		n.nextPeer("bad_chunk")
		return
	}
	for _, e := range c.Entries {
		t.bytes += len(e.Key) + len(e.Value)
	}
	n.metrics.stateReceivedEntries.Add(float64(len(c.Entries)))
	if len(c.NextKey) > 0 {
		if bytes.Compare(c.NextKey, t.nextKey) <= 0 {
			n.nextPeer("bad_chunk")
			return
		}
		t.nextKey = c.NextKey
		n.requestChunk()
		return
	}
	if _, err := n.executor.RestoreFinishExpect(t.cert.StateDigest); err != nil {
		n.log.Warn("state transfer: snapshot rejected", "peer", from, "err", err)
		n.nextPeer("digest_mismatch")
		return
	}
	n.transfer = nil
	if err := n.core.InstallCheckpoint(t.cert); err != nil {
		n.log.Error("state transfer: install", "err", err)
		return
	}
	n.pruneRequests()
	n.metrics.stateTransferSeconds.Observe(time.Since(t.started).Seconds())
	n.log.Info("state transfer: installed", "checkpoint", t.cert.Sequence, "bytes", t.bytes, "peer", from, "took", time.Since(t.started).Round(time.Millisecond))
}

// sendOwn signs body as this replica and sends it (through the filter).
func (n *Node) sendOwn(to uint32, kind protocol.Kind, body *wire.ReplicaMessage) {
	body.From = n.cfg.Index
	payload, err := proto.Marshal(body)
	if err != nil {
		return
	}
	signed := &wire.Signed{Payload: payload, Signature: n.signer.Sign(crypto.DomainReplicaMessage, payload)}
	_ = n.send(protocol.Outbound{To: to, Signed: signed, Kind: kind}, protocol.EncodeFrame)
}
