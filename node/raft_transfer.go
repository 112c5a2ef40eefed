package node

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/wire"
)

// errStateIndex: a restored state is not at the snapshot index served.
var errStateIndex = errors.New("restored state is not at the served snapshot index")

// raftTransferIdleTicks is how long a Raft-mode state transfer waits for
// a chunk before asking the next peer.
const raftTransferIdleTicks = 200

// raftTransfer fetches the application state a raftmode.Core waits for:
// a snapshot at need.Index or later, chunk by chunk, from one peer at a
// time (the leader that sent the raft snapshot first). Every replica
// snapshots at the same indexes, so any peer can serve one; a peer that
// has none, or stalls, or serves a chunk that does not fit is skipped.
type raftTransfer struct {
	need    raftmode.StateNeed
	peer    uint32
	index   uint64 // the snapshot index being fetched, 0 until the first chunk
	nextKey []byte
	idle    int
	started time.Time
}

func (n *RaftNode) startTransfer(need raftmode.StateNeed) {
	if n.transfer != nil {
		return
	}
	t := &raftTransfer{need: need, started: time.Now()}
	if need.From >= 0 && uint32(need.From) != n.cfg.Index && need.From < len(n.cfg.Replicas) {
		t.peer = uint32(need.From)
	} else {
		t.peer = (n.cfg.Index + 1) % uint32(len(n.cfg.Replicas))
	}
	n.transfer = t
	n.metrics.stateTransfers.Inc()
	n.log.Info("state transfer: starting", "need", need.Index, "executed", n.executor.LastExecuted(), "peer", t.peer)
	n.restartTransfer()
}

// restartTransfer wipes what was fetched and asks the current peer from
// the first key.
func (n *RaftNode) restartTransfer() {
	t := n.transfer
	if err := n.executor.RestoreAbort(); err != nil {
		n.log.Debug("state transfer: abort", "err", err)
	}
	if err := n.executor.RestoreBegin(); err != nil {
		n.log.Error("state transfer: begin", "err", err)
		return
	}
	t.index, t.nextKey, t.idle = 0, nil, 0
	n.requestChunk()
}

func (n *RaftNode) requestChunk() {
	t := n.transfer
	want := t.need.Index
	if t.index > 0 {
		want = t.index
	}
	n.sendFrame(t.peer, &wire.RaftFrame{Body: &wire.RaftFrame_StateRequest{
		StateRequest: &wire.StateRequest{Sequence: want, StartKey: t.nextKey},
	}}, "StateRequest")
}

// nextPeer gives up on the current peer.
func (n *RaftNode) nextPeer(reason string) {
	t := n.transfer
	n.metrics.stateTransferRejected.WithLabelValues(reason).Inc()
	t.peer = (t.peer + 1) % uint32(len(n.cfg.Replicas))
	if t.peer == n.cfg.Index {
		t.peer = (t.peer + 1) % uint32(len(n.cfg.Replicas))
	}
	n.log.Info("state transfer: next peer", "reason", reason, "peer", t.peer)
	n.restartTransfer()
}

func (n *RaftNode) transferTick() {
	t := n.transfer
	if t == nil {
		return
	}
	if t.idle++; t.idle >= raftTransferIdleTicks {
		n.nextPeer("timeout")
	}
}

func (n *RaftNode) handleStateChunk(from uint32, c *wire.StateChunk) {
	t := n.transfer
	if t == nil || from != t.peer {
		return
	}
	switch {
	case c.GetUnavailable():
		n.nextPeer("unavailable")
		return
	case t.index == 0 && c.GetSequence() < t.need.Index:
		n.nextPeer("too_old")
		return
	case t.index != 0 && c.GetSequence() != t.index:
		n.nextPeer("changed")
		return
	case string(c.GetStartKey()) != string(t.nextKey):
		return // a stale answer to an earlier request
	}
	t.index, t.idle = c.GetSequence(), 0
	if err := n.executor.RestoreChunk(c.GetEntries()); err != nil {
		n.nextPeer("bad_chunk")
		return
	}
	n.metrics.stateReceivedEntries.Add(float64(len(c.GetEntries())))
	if len(c.GetNextKey()) > 0 {
		t.nextKey = c.GetNextKey()
		n.requestChunk()
		return
	}
	var err error
	if t.index == t.need.Index && t.need.HasDigest {
		_, err = n.executor.RestoreFinishExpect(t.need.Digest)
	} else {
		_, err = n.executor.RestoreFinish()
	}
	if err == nil && n.executor.LastExecuted() != t.index {
		err = errStateIndex
	}
	if err != nil {
		n.log.Warn("state transfer: restore", "index", t.index, "err", err)
		n.nextPeer("digest_mismatch")
		return
	}
	if err := n.core.StateInstalled(); err != nil {
		n.log.Error("state transfer: install", "err", err)
		n.nextPeer("install")
		return
	}
	n.metrics.stateTransferSeconds.Observe(time.Since(t.started).Seconds())
	n.log.Info("state transfer: done", "index", t.index, "took", time.Since(t.started).Round(time.Millisecond))
	n.transfer = nil
}

// serveRaftSnapshots answers state requests off the event loop from the
// two latest snapshots (the Core snapshots at the same indexes on every
// replica). It owns the snapshots and releases those it drops.
func (n *RaftNode) serveRaftSnapshots(ctx context.Context) {
	defer n.wg.Done()
	var snaps []*execution.StateSnapshot // oldest first, at most 2
	defer func() {
		for _, s := range snaps {
			s.Release()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-n.snapshots:
			snaps = append(snaps, s)
			if len(snaps) > 2 {
				snaps[0].Release()
				snaps = snaps[1:]
			}
		case r := <-n.stateReqs:
			chunk := &wire.StateChunk{StartKey: r.req.GetStartKey(), Sequence: r.req.GetSequence()}
			snap := raftmode.PickSnapshot(snaps, r.req.GetSequence())
			if snap == nil {
				chunk.Unavailable = true
			} else {
				entries, next, err := snap.Chunk(r.req.GetStartKey(), stateChunkBytes)
				if err != nil {
					chunk.Unavailable = true
				} else {
					chunk.Sequence, chunk.Entries, chunk.NextKey = snap.Sequence(), entries, next
					n.metrics.stateServedBytes.Add(float64(proto.Size(chunk)))
				}
			}
			n.sendFrame(r.from, &wire.RaftFrame{Body: &wire.RaftFrame_StateChunk{StateChunk: chunk}}, "StateChunk")
		}
	}
}
