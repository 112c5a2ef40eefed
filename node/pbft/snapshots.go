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
	budget := newChunkBudget()
	// retry is armed only while requests are deferred (nil: not armed).
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C
		} else if len(budget.deferred) > 0 {
			retry = time.NewTimer(stateServeRetry)
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-n.snapshotEvents:
			n.snapshotEvent(snaps, ev, time.Now())
		case r := <-n.stateRequests:
			now := time.Now()
			if !budget.admit(r, now) {
				n.drop("rate_limited", "from", r.From, "kind", "state_request")
				continue
			}
			n.answerWindow(signer, snaps, budget, r, now)
		case now := <-retryC:
			retry = nil
			for _, r := range budget.due(now) {
				n.answerWindow(signer, snaps, budget, r, now)
			}
		}
	}
}

// answerWindow answers r, admitted by budget, and then the rest of its
// window (statetransfer.Rest: at most statetransfer.MaxChunksPerRequest
// chunks) one chunk at a time, each charged to and admitted by r.From's
// budget: the window's rest that does not fit waits as the deferred
// request, so a window never makes the server send more than the budget.
func (n *Node) answerWindow(signer *crypto.Signer, snaps *servedSnapshots, budget *chunkBudget, r node.StateRequest, now time.Time) {
	deferred := budget.window(r, now, func(r node.StateRequest) (int, *wire.StateChunk) {
		return n.answerStateRequest(signer, snaps, r, now)
	})
	if deferred {
		n.drop("rate_limited", "from", r.From, "kind", "state_request")
	}
}

// window answers r (already admitted) with answer, then the rest of its
// window chunk by chunk while the budget admits it, charging each chunk's
// bytes; it reports whether a rest was deferred.
func (b *chunkBudget) window(r node.StateRequest, now time.Time, answer func(node.StateRequest) (int, *wire.StateChunk)) (deferred bool) {
	for {
		sent, chunk := answer(r)
		b.charge(r.From, sent)
		rest := statetransfer.Rest(r.Req, chunk)
		if rest == nil {
			return false
		}
		r = node.StateRequest{From: r.From, Req: rest}
		if !b.admit(r, now) {
			return true
		}
	}
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

// State-transfer chunk requests are about 50 bytes and each answer up to
// node.StateChunkBytes: without a bound one replica could make another send it
// its whole state over and over. Each requesting replica has a token
// bucket of stateServeRequestsPerSecond requests and
// stateServeBytesPerSecond bytes, holding at most one second's worth. A
// request that finds the bucket empty is deferred, not dropped (a
// requester asks for one window of chunks at a time and moves to another
// peer on a timeout, so dropping would stall an honest transfer of a
// large state); so is the rest of a window that does not fit:
// the server keeps the latest deferred request of each replica, answers it
// when the bucket has refilled, and counts every request it defers or
// replaces (pbftnode_messages_dropped_total{reason="rate_limited"}). An
// honest transfer of a few MiB fits in the first second's burst; a larger
// one proceeds at the budget's rate.
const (
	stateServeBytesPerSecond    = 32 << 20
	stateServeRequestsPerSecond = 64
	stateServeRetry             = 50 * time.Millisecond
)

// chunkBudget is the snapshot server's per-replica budget. It is used by
// the server's goroutine only.
type chunkBudget struct {
	bytesPerSecond, requestsPerSecond float64
	peers                             map[uint32]*chunkBucket
	deferred                          map[uint32]node.StateRequest
}

type chunkBucket struct {
	bytes, requests float64
	refilled        time.Time
}

func newChunkBudget() *chunkBudget {
	return &chunkBudget{bytesPerSecond: stateServeBytesPerSecond, requestsPerSecond: stateServeRequestsPerSecond,
		peers: make(map[uint32]*chunkBucket), deferred: make(map[uint32]node.StateRequest)}
}

// bucket returns from's bucket refilled up to now. from is a replica
// index checked by the verifier, so the map holds at most N entries.
func (b *chunkBudget) bucket(from uint32, now time.Time) *chunkBucket {
	p := b.peers[from]
	if p == nil {
		p = &chunkBucket{bytes: b.bytesPerSecond, requests: b.requestsPerSecond, refilled: now}
		b.peers[from] = p
		return p
	}
	if dt := now.Sub(p.refilled).Seconds(); dt > 0 {
		p.bytes = min(b.bytesPerSecond, p.bytes+dt*b.bytesPerSecond)
		p.requests = min(b.requestsPerSecond, p.requests+dt*b.requestsPerSecond)
		p.refilled = now
	}
	return p
}

// admit reports whether r may be answered now, taking a request token if
// so; otherwise r becomes from's deferred request (replacing an older one).
func (b *chunkBudget) admit(r node.StateRequest, now time.Time) bool {
	p := b.bucket(r.From, now)
	if _, waiting := b.deferred[r.From]; !waiting && p.requests >= 1 && p.bytes > 0 {
		p.requests--
		return true
	}
	b.deferred[r.From] = r
	return false
}

// charge takes the bytes sent to from out of its bucket (it may go into
// debt: a chunk's size is known only once read).
func (b *chunkBudget) charge(from uint32, sent int) {
	if p := b.peers[from]; p != nil {
		p.bytes -= float64(sent)
	}
}

// due returns the deferred requests whose buckets have refilled, taking a
// request token for each, in replica order.
func (b *chunkBudget) due(now time.Time) []node.StateRequest {
	var out []node.StateRequest
	for from, r := range b.deferred {
		if p := b.bucket(from, now); p.requests >= 1 && p.bytes > 0 {
			p.requests--
			delete(b.deferred, from)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, c node.StateRequest) int { return int(a.From) - int(c.From) })
	return out
}
