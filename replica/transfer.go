package replica

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// The driver's state transfer: when the core is behind (Ready.Behind), a
// statetransfer.Fetcher fetches the snapshot of the certified checkpoint
// chunk by chunk from the certificate's signers, checks its digest, and
// the driver installs the checkpoint in the core.
//
// A transfer keeps its target while it progresses: a newer stable
// checkpoint certified meanwhile is remembered (deferred), not fetched,
// until the fetcher is Stalled (no peer serves the target any more, see
// statetransfer.Fetcher.Keeps). Retargeting starts the restore over, so
// without this a state larger than one checkpoint interval's worth of
// transfer never finished under load. Servers keep the snapshots being
// read for a while after they become older than the stable checkpoint
// (Snapshots), so that a transfer reading one can finish. Once it lands,
// the core continues from the kept target: it fetches the log above it,
// or learns the newer certificate again and asks for a second transfer.
// Safety is unchanged: whatever target is fetched, the restored state is
// checked against that target's certified digest before the core installs
// it.

// newFetcher returns the driver's fetcher, reporting to d's Observer.
func (d *Driver) newFetcher() *statetransfer.Fetcher {
	return statetransfer.New(statetransfer.Config{
		Restorer: restorer{d.exec},
		Request: func(to uint32, req *wire.StateRequest) {
			d.sendOwn(to, protocol.KindStateRequest, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_StateRequest{StateRequest: req}})
		},
		Logger:     d.log,
		Observer:   fetchObserver{d},
		Window:     d.cfg.TransferWindow,
		KeepTarget: true,
	})
}

// startTransfer begins (or retargets to a higher checkpoint) a state
// transfer to cert, asking its signers other than this replica, the first
// one chosen by this replica's index.
//
// It first stores cert as the stable checkpoint: the transfer wipes the
// executor's state, so after a crash this replica can only start from a
// transferred state again, and it must ask for cert (whose partial
// restore the executor kept, see statetransfer.Resumer) rather than for
// the older checkpoint it stored last, which the others may have released.
// An error storing it is returned (as persistStable's is) and nothing
// starts: a restore must never begin that a restart could not resume or
// wipe.
//
// A transfer in progress keeps its target while it progresses (Keeps): a
// higher cert is then deferred (see retargetStalled), and nothing is
// stored.
func (d *Driver) startTransfer(cert checkpoint.Certificate) error {
	if d.fetcher.Keeps(statetransfer.Target{Sequence: cert.Sequence}) {
		if cert.Sequence > d.behind.Sequence && (d.deferred == nil || cert.Sequence > d.deferred.Sequence) {
			d.log.Info("state transfer: keeping the target while it is served", "sequence", d.behind.Sequence, "deferred", cert.Sequence)
			d.deferred = &cert
		}
		return nil
	}
	d.deferred = nil
	peers, base := transferPeers(cert, d.cfg.Core.ID, d.cfg.Core.N)
	if len(peers) == 0 {
		d.log.Error("state transfer: no peer signed the certificate", "sequence", cert.Sequence)
		return nil
	}
	if !base {
		stored, err := encodeCertificate(&cert)
		if err != nil {
			return fmt.Errorf("replica: state transfer: %w", err)
		}
		if err := d.store.SaveStableCheckpoint(stored); err != nil {
			return fmt.Errorf("replica: state transfer: store the target: %w", err)
		}
	}
	d.behind = &cert
	d.fetcher.Start(statetransfer.Target{
		Sequence: cert.Sequence, Exact: true, Digest: cert.StateDigest, HasDigest: true,
		Peers: peers, First: int(d.cfg.Core.ID) % len(peers),
	})
	return nil
}

// transferTick times out a silent peer.
func (d *Driver) transferTick() { d.fetcher.Tick() }

// retargetStalled starts the transfer of the deferred certificate once
// the one in progress is Stalled (its peers no longer serve it), and
// forgets it once no transfer is in progress (the core asks again if it
// is still behind).
func (d *Driver) retargetStalled() error {
	switch {
	case d.deferred == nil:
		return nil
	case !d.fetcher.Active():
		d.deferred = nil
		return nil
	case d.fetcher.Keeps(statetransfer.Target{Sequence: d.deferred.Sequence}):
		return nil
	}
	return d.startTransfer(*d.deferred)
}

// handleStateChunk applies one chunk of the transfer in progress; when
// the state is complete and matches the certificate, it installs the
// checkpoint in the core and prunes the requests the state executed.
func (d *Driver) handleStateChunk(from uint32, c *wire.StateChunk) error {
	d.unexpected = false
	seq, done := d.fetcher.Chunk(from, c)
	if d.unexpected {
		return ErrUnexpectedStateChunk
	}
	if !done {
		return nil
	}
	cert := *d.behind
	d.behind, d.deferred = nil, nil
	if seq != cert.Sequence {
		panic(fmt.Sprintf("replica: exact state transfer of %d installed %d", cert.Sequence, seq))
	}
	if err := d.core.InstallCheckpoint(cert); err != nil {
		// No Fetcher.Fail: the state matched the certified digest, so any
		// other peer would serve the same state and the core would refuse
		// it again.
		d.log.Error("state transfer: install", "err", err)
		return nil
	}
	d.pruneRequests()
	// Serve the installed state too: peers behind may need it, and after
	// a restart of the others this replica may be the one that has it.
	if snap, err := d.exec.TakeSnapshot(); err != nil {
		d.log.Warn("state transfer: snapshot of the installed state", "sequence", cert.Sequence, "err", err)
	} else {
		d.snaps.Checkpointed(snap)
	}
	d.obs.TransferInstalled(cert.Sequence, from, d.installedBytes)
	return nil
}

// sendOwn signs body as this replica and sends it through the Filter.
func (d *Driver) sendOwn(to uint32, kind protocol.Kind, body *wire.ReplicaMessage) {
	body.From, body.Epoch = d.cfg.Core.ID, d.cfg.Core.Epoch
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

// restorer is the Executor's restore side as statetransfer.Restorer.
type restorer struct{ Executor }

// RestoreBeginTagged makes the restore resumable after a crash when the
// Executor supports it (statetransfer.Resumer).
func (r restorer) RestoreBeginTagged(tag []byte) error {
	if x, ok := r.Executor.(statetransfer.Resumer); ok {
		return x.RestoreBeginTagged(tag)
	}
	return r.RestoreBegin()
}

// RestoreResume continues a restore a crash interrupted, when the
// Executor supports it.
func (r restorer) RestoreResume(tag []byte) ([]byte, bool) {
	if x, ok := r.Executor.(statetransfer.Resumer); ok {
		return x.RestoreResume(tag)
	}
	return nil, false
}

// RestoreFinish is never called for an exact fetch with a digest.
func (r restorer) RestoreFinish() ([32]byte, error) {
	return [32]byte{}, fmt.Errorf("replica: state transfer without a certified digest")
}

// fetchObserver passes the fetcher's events to the driver's Observer.
type fetchObserver struct{ d *Driver }

func (o fetchObserver) Started(t statetransfer.Target) {
	o.d.obs.TransferStarted(t.Sequence, o.d.exec.LastExecuted())
}

func (o fetchObserver) Rejected(reason string) {
	d := o.d
	if reason == "unexpected" {
		d.unexpected = true
		return
	}
	var seq uint64
	if d.behind != nil {
		seq = d.behind.Sequence
	}
	d.obs.TransferRejected(seq, d.fetcher.Peer(), reason, nil)
	if reason == "unavailable" {
		// The peers moved past the target (they keep only the stable
		// snapshot and newer ones): ask for the newer certificate now.
		d.core.FetchSoon()
	}
}

func (o fetchObserver) Received(entries, _ int) { o.d.obs.TransferReceived(entries) }

func (o fetchObserver) Installed(_ uint64, bytes int) { o.d.installedBytes = bytes }

// transferPeers returns whom to ask for cert's state: its signers but
// self, or, for an epoch's base (no proof: the configuration certificate
// names its digest), every other replica; base says which.
func transferPeers(cert checkpoint.Certificate, self uint32, n int) (peers []uint32, base bool) {
	if len(cert.Proof) == 0 {
		for i := range uint32(n) {
			if i != self {
				peers = append(peers, i)
			}
		}
		return peers, true
	}
	for _, v := range cert.Proof {
		if v.Replica != self {
			peers = append(peers, v.Replica)
		}
	}
	return peers, false
}
