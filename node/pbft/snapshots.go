package pbft

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// snapshotEvent hands the snapshot server a new checkpoint snapshot, or
// tells it which checkpoint became stable (older snapshots are released
// and the log at or below it deleted).
type snapshotEvent struct {
	add    *execution.StateSnapshot
	stable uint64
}

// serveSnapshots answers state requests from the snapshots taken at
// checkpoints, off the event loop's goroutine. It owns the snapshots: it
// keeps the stable one and those above it, and those below it that a
// transfer read recently (see servedSnapshots), and releases the rest.
func (n *Node) serveSnapshots(ctx context.Context) {
	snaps := newServedSnapshots()
	defer snaps.releaseAll()
	signer := crypto.NewSigner(n.cfg.Key, n.cfg.ClusterID)
	server := node.NewChunkServer()
	defer server.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-n.snapshotEvents:
			n.snapshotEvent(snaps, ev, time.Now())
		case r := <-n.stateRequests:
			now := time.Now()
			if !server.Serve(r, now, n.chunkAnswer(signer, snaps, now)) {
				n.drop("rate_limited", "from", r.From, "kind", "state_request")
			}
		case now := <-server.RetryC():
			for range server.Retry(now, n.chunkAnswer(signer, snaps, now)) {
				n.drop("rate_limited", "kind", "state_request")
			}
		}
	}
}

// chunkAnswer answers one state request from snaps, signed (see
// answerStateRequest).
func (n *Node) chunkAnswer(signer *crypto.Signer, snaps *servedSnapshots, now time.Time) node.ChunkAnswer {
	return func(r node.StateRequest) (int, *wire.StateChunk) { return n.answerStateRequest(signer, snaps, r, now) }
}

// Below the stable checkpoint the server keeps the previous stable
// checkpoint's snapshot (the newest below it: the target of a transfer
// that began before the new one became stable, from whichever peer it
// asks next) and those a transfer read within readSnapshotRetention, at
// most maxReadSnapshotsKept of them (the newest): a transfer takes longer
// than one checkpoint interval under load for a large state, and its
// fetcher keeps its target while the target is served
// (statetransfer.Config.KeepTarget). A kept
// snapshot holds goleveldb's old versions of the keys written since, so
// both the time and the count are bounded; the log is deleted at the
// stable checkpoint regardless (the snapshot alone serves a transfer).
const (
	readSnapshotRetention = 30 * time.Second
	maxReadSnapshotsKept  = 2
)

// servedSnapshot is a snapshot the server holds (*execution.StateSnapshot).
type servedSnapshot interface {
	statetransfer.Snapshot
	Release()
}

// servedSnapshots are the server's snapshots by sequence, with when a
// transfer last read each. Used by the server's goroutine only.
type servedSnapshots struct {
	bySeq    map[uint64]servedSnapshot
	lastRead map[uint64]time.Time
}

func newServedSnapshots() *servedSnapshots {
	return &servedSnapshots{bySeq: make(map[uint64]servedSnapshot), lastRead: make(map[uint64]time.Time)}
}

func (s *servedSnapshots) releaseAll() {
	for seq, snap := range s.bySeq {
		snap.Release()
		delete(s.bySeq, seq)
	}
}

// add keeps snap, releasing one it replaces.
func (s *servedSnapshots) add(snap servedSnapshot) {
	if old := s.bySeq[snap.Sequence()]; old != nil && old != snap {
		old.Release()
	}
	s.bySeq[snap.Sequence()] = snap
}

// read returns the snapshot at exactly seq (an untyped nil if none) and
// notes that a transfer read it at now.
func (s *servedSnapshots) read(seq uint64, now time.Time) statetransfer.Snapshot {
	snap := statetransfer.At(s.bySeq, seq)
	if snap != nil {
		s.lastRead[seq] = now
	}
	return snap
}

// stable releases the snapshots below stable but the newest
// maxReadSnapshotsKept of the newest one below it and those read since
// now-readSnapshotRetention.
func (s *servedSnapshots) stable(stable uint64, now time.Time) {
	var kept []uint64
	newest := uint64(0)
	for seq := range s.bySeq {
		if seq < stable {
			newest = max(newest, seq)
		}
	}
	for seq := range s.bySeq {
		if seq < stable && (seq == newest || now.Sub(s.lastRead[seq]) < readSnapshotRetention) {
			kept = append(kept, seq)
		}
	}
	slices.Sort(kept)
	kept = kept[max(0, len(kept)-maxReadSnapshotsKept):]
	for seq, snap := range s.bySeq {
		if seq < stable && !slices.Contains(kept, seq) {
			snap.Release()
			delete(s.bySeq, seq)
			delete(s.lastRead, seq)
		}
	}
}

// snapshotEvent adds a snapshot (releasing one it replaces), or releases
// those below a new stable checkpoint (but those read recently, see
// servedSnapshots.stable) and deletes the log at or below it.
func (n *Node) snapshotEvent(snaps *servedSnapshots, ev snapshotEvent, now time.Time) {
	if ev.add != nil {
		snaps.add(ev.add)
	}
	if ev.stable == 0 {
		return
	}
	snaps.stable(ev.stable, now)
	// The certificate is saved: the log at or below it is never read again
	// (see storage.DB.DeleteLogBelow).
	if err := n.DB.DeleteLogBelow(ev.stable + 1); err != nil {
		n.log.Warn("deleting the log below a stable checkpoint", "sequence", ev.stable, "err", err)
	}
}

// answerStateRequest sends the first chunk r asks for (or Unavailable)
// and returns the bytes sent and the chunk.
func (n *Node) answerStateRequest(signer *crypto.Signer, snaps *servedSnapshots, r node.StateRequest, now time.Time) (int, *wire.StateChunk) {
	chunk, err := statetransfer.ServeChunk(snaps.read(r.Req.Sequence, now), r.Req, node.StateChunkBytes)
	if err != nil {
		n.log.Warn("state transfer: reading snapshot", "sequence", r.Req.Sequence, "err", err)
	} else if !chunk.Unavailable {
		n.metrics.StateServedBytes.Add(float64(proto.Size(chunk)))
	}
	// With epochs the chunk is signed as this replica's position in the
	// epoch in force, and r.From is the requester's member index.
	body := &wire.ReplicaMessage{From: n.cfg.Index, Body: &wire.ReplicaMessage_StateChunk{StateChunk: chunk}}
	if st := n.epochNow.Load(); st != nil {
		if !st.Member {
			return 0, nil // no position to sign as: the requester asks a member
		}
		body.From, body.Epoch = st.Position, st.Config.Epoch
	}
	payload, err := proto.Marshal(body)
	if err != nil {
		return 0, nil
	}
	signed := &wire.Signed{Payload: payload, Signature: signer.Sign(crypto.DomainReplicaMessage, payload)}
	out := []protocol.Outbound{{To: r.From, Signed: signed, Kind: protocol.KindStateChunk}}
	if n.filter != nil {
		out = n.filter.Outbound(out[0])
	}
	sent := 0
	for _, o := range out {
		if b, err := protocol.EncodeFrame(o.Signed, o.Batch); err == nil {
			n.Host.Send(o.To, b)
			sent += len(b)
		}
	}
	return sent, chunk
}
