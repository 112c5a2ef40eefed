package node

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// stateChunkBytes bounds the entries of one StateChunk, well under the
// transport's frame limit.
const stateChunkBytes = 1 << 20

// snapshotEvent hands the snapshot server a new checkpoint snapshot, or
// tells it which checkpoint became stable (older snapshots are released
// and the log at or below it deleted).
type snapshotEvent struct {
	add    *execution.StateSnapshot
	stable uint64
}

// stateRequest is a verified StateRequest from a replica.
type stateRequest struct {
	from uint32
	req  *wire.StateRequest
}

// serveSnapshots answers state requests from the snapshots taken at
// checkpoints, off the event loop's goroutine. It owns the snapshots: it
// keeps the stable one and those above it, and releases the rest.
func (n *Node) serveSnapshots(ctx context.Context) {
	defer n.wg.Done()
	snaps := make(map[uint64]*execution.StateSnapshot)
	defer func() {
		for _, s := range snaps {
			s.Release()
		}
	}()
	signer := crypto.NewSigner(n.cfg.Key, n.cfg.ClusterID)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-n.snapshotEvents:
			if ev.add != nil {
				snaps[ev.add.Sequence()] = ev.add
			}
			if ev.stable > 0 {
				for seq, s := range snaps {
					if seq < ev.stable {
						s.Release()
						delete(snaps, seq)
					}
				}
				// The certificate is saved: the log at or below it is
				// never read again (see storage.DB.DeleteLogBelow).
				if err := n.db.DeleteLogBelow(ev.stable + 1); err != nil {
					n.log.Warn("deleting the log below a stable checkpoint", "sequence", ev.stable, "err", err)
				}
			}
		case r := <-n.stateRequests:
			chunk := &wire.StateChunk{Sequence: r.req.Sequence, StartKey: r.req.StartKey}
			snap := snaps[r.req.Sequence]
			if snap == nil {
				chunk.Unavailable = true
			} else {
				entries, next, err := snap.Chunk(r.req.StartKey, stateChunkBytes)
				if err != nil {
					n.log.Warn("state transfer: reading snapshot", "sequence", r.req.Sequence, "err", err)
					chunk.Unavailable = true
				} else {
					chunk.Entries, chunk.NextKey = entries, next
					n.metrics.stateServedBytes.Add(float64(proto.Size(chunk)))
				}
			}
			body := &wire.ReplicaMessage{From: n.cfg.Index, Body: &wire.ReplicaMessage_StateChunk{StateChunk: chunk}}
			payload, err := proto.Marshal(body)
			if err != nil {
				continue
			}
			signed := &wire.Signed{Payload: payload, Signature: signer.Sign(crypto.DomainReplicaMessage, payload)}
			out := []protocol.Outbound{{To: r.from, Signed: signed, Kind: protocol.KindStateChunk}}
			if n.cfg.Filter != nil {
				out = n.cfg.Filter.Outbound(out[0])
			}
			for _, o := range out {
				if b, err := protocol.EncodeFrame(o.Signed, o.Batch); err == nil {
					n.host.Send(o.To, b)
				}
			}
		}
	}
}
