package replica

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// transferTimeoutTicks is how long the driver waits for a chunk before it
// asks another peer.
const transferTimeoutTicks = 300

// transfer is a state transfer in progress: it fetches the snapshot of
// cert.Sequence chunk by chunk from one peer that signed the certificate,
// installs it, and checks the installed state's digest against the
// certified one. A peer that serves a wrong snapshot, or none, or too
// slowly, is skipped and the next one asked.
type transfer struct {
	cert    checkpoint.Certificate
	peers   []uint32 // the certificate's signers other than this replica
	current int      // index into peers
	nextKey []byte
	idle    int // ticks since the last chunk
	bytes   int
	begun   bool // the executor holds a restore in progress
}

// startTransfer begins (or retargets) a state transfer to cert.
func (d *Driver) startTransfer(cert checkpoint.Certificate) {
	old := d.transfer
	if old != nil && old.cert.Sequence >= cert.Sequence {
		return
	}
	t := &transfer{cert: cert, begun: old != nil && old.begun}
	for _, v := range cert.Proof {
		if v.Replica != d.cfg.Core.ID {
			t.peers = append(t.peers, v.Replica)
		}
	}
	if len(t.peers) == 0 {
		d.log.Error("state transfer: no peer signed the certificate", "sequence", cert.Sequence)
		return
	}
	t.current = int(d.cfg.Core.ID) % len(t.peers)
	d.transfer = t
	d.obs.TransferStarted(cert.Sequence, d.exec.LastExecuted())
	d.log.Info("state transfer: starting", "checkpoint", cert.Sequence, "executed", d.exec.LastExecuted())
	d.restartTransfer()
}

// restartTransfer wipes what was fetched and asks the current peer for
// the snapshot from its first key.
func (d *Driver) restartTransfer() {
	t := d.transfer
	if t.begun {
		if err := d.exec.RestoreAbort(); err != nil {
			d.log.Error("state transfer: wiping state", "err", err)
		}
	}
	if err := d.exec.RestoreBegin(); err != nil {
		d.log.Error("state transfer: begin", "err", err)
		return
	}
	t.begun = true
	t.nextKey, t.idle, t.bytes = nil, 0, 0
	d.requestChunk()
}

func (d *Driver) requestChunk() {
	t := d.transfer
	d.sendOwn(t.peers[t.current], protocol.KindStateRequest, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_StateRequest{
		StateRequest: &wire.StateRequest{Sequence: t.cert.Sequence, StartKey: t.nextKey},
	}})
}

// nextPeer gives up on the current peer.
func (d *Driver) nextPeer(reason string, err error) {
	t := d.transfer
	d.obs.TransferRejected(t.cert.Sequence, t.peers[t.current], reason, err)
	d.log.Warn("state transfer: trying another peer", "peer", t.peers[t.current], "reason", reason, "checkpoint", t.cert.Sequence, "err", err)
	t.current = (t.current + 1) % len(t.peers)
	d.restartTransfer()
}

// transferTick times out a silent peer.
func (d *Driver) transferTick() {
	if t := d.transfer; t != nil {
		t.idle++
		if t.idle >= transferTimeoutTicks {
			d.nextPeer("timeout", nil)
		}
	}
}

// handleStateChunk applies one chunk of the transfer in progress; when
// the state is complete and matches the certificate, it installs the
// checkpoint in the core and prunes the requests the state executed.
func (d *Driver) handleStateChunk(from uint32, c *wire.StateChunk) error {
	t := d.transfer
	if t == nil || from != t.peers[t.current] || c.Sequence != t.cert.Sequence || !bytes.Equal(c.StartKey, t.nextKey) {
		return ErrUnexpectedStateChunk
	}
	t.idle = 0
	if c.Unavailable {
		d.nextPeer("unavailable", nil)
		return nil
	}
	if err := d.exec.RestoreChunk(c.Entries); err != nil {
		d.nextPeer("bad_chunk", err)
		return nil
	}
	for _, e := range c.Entries {
		t.bytes += len(e.Key) + len(e.Value)
	}
	d.obs.TransferReceived(len(c.Entries))
	if len(c.NextKey) > 0 {
		if bytes.Compare(c.NextKey, t.nextKey) <= 0 {
			d.nextPeer("bad_chunk", nil)
			return nil
		}
		t.nextKey = c.NextKey
		d.requestChunk()
		return nil
	}
	if _, err := d.exec.RestoreFinishExpect(t.cert.StateDigest); err != nil {
		d.nextPeer("digest_mismatch", err)
		return nil
	}
	d.transfer = nil
	if err := d.core.InstallCheckpoint(t.cert); err != nil {
		d.log.Error("state transfer: install", "err", err)
		return nil
	}
	d.pruneRequests()
	d.obs.TransferInstalled(t.cert.Sequence, from, t.bytes)
	d.log.Info("state transfer: installed", "checkpoint", t.cert.Sequence, "bytes", t.bytes, "peer", from)
	return nil
}

// sendOwn signs body as this replica and sends it through the Filter.
func (d *Driver) sendOwn(to uint32, kind protocol.Kind, body *wire.ReplicaMessage) {
	body.From = d.cfg.Core.ID
	payload, err := proto.Marshal(body)
	if err != nil {
		d.log.Error("encode own message", "err", fmt.Errorf("replica: %w", err))
		return
	}
	signed := &wire.Signed{Payload: payload, Signature: d.cfg.Core.Signer.Sign(crypto.DomainReplicaMessage, payload)}
	if err := d.send(protocol.Outbound{To: to, Signed: signed, Kind: kind}, protocol.EncodeFrame); err != nil {
		d.log.Error("send own message", "err", err)
	}
}
