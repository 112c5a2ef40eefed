package raftsim

import (
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/wire"
)

// transfer is node/raft_transfer.go's raftTransfer: it fetches the
// application state a Core waits for, a snapshot at need.Index or later,
// chunk by chunk, from one peer at a time (the leader that sent the raft
// snapshot first).
type transfer struct {
	need    raftmode.StateNeed
	peer    uint32
	index   uint64 // the snapshot index being fetched, 0 until the first chunk
	nextKey []byte
	idle    int
}

func (h *host) startTransfer(need raftmode.StateNeed) {
	if h.transfer != nil {
		return
	}
	t := &transfer{need: need}
	if need.From >= 0 && uint32(need.From) != h.id && need.From < h.w.n {
		t.peer = uint32(need.From)
	} else {
		t.peer = (h.id + 1) % uint32(h.w.n)
	}
	h.transfer = t
	h.w.log.Debug("state transfer: starting", "replica", h.id, "need", need.Index, "peer", t.peer)
	h.restartTransfer()
}

// restartTransfer wipes what was fetched and asks the current peer from
// the first key.
func (h *host) restartTransfer() {
	t := h.transfer
	_ = h.exec.RestoreAbort() // fails when no restore is in progress
	if err := h.exec.RestoreBegin(); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("replica %d: state transfer: begin: %v", h.id, err))
		return
	}
	t.index, t.nextKey, t.idle = 0, nil, 0
	h.requestChunk()
}

func (h *host) requestChunk() {
	t := h.transfer
	want := t.need.Index
	if t.index > 0 {
		want = t.index
	}
	if t.peer == h.id {
		return // a single replica has no one to ask; the idle timer moves on
	}
	h.w.sendBetween(h, h.w.hosts[t.peer], event{kind: evStateRequest, stateReq: &wire.StateRequest{Sequence: want, StartKey: t.nextKey}})
}

// nextPeer gives up on the current peer.
func (h *host) nextPeer(reason string) {
	t := h.transfer
	n := uint32(h.w.n)
	t.peer = (t.peer + 1) % n
	if t.peer == h.id {
		t.peer = (t.peer + 1) % n
	}
	h.w.log.Debug("state transfer: next peer", "replica", h.id, "reason", reason, "peer", t.peer)
	h.restartTransfer()
}

func (h *host) transferTick() {
	t := h.transfer
	if t == nil {
		return
	}
	if t.idle++; t.idle >= TransferIdleTicks {
		h.nextPeer("timeout")
	}
}

// handleStateChunk is RaftNode.handleStateChunk.
func (h *host) handleStateChunk(from uint32, c *wire.StateChunk) {
	t := h.transfer
	if t == nil || from != t.peer {
		return
	}
	switch {
	case c.GetUnavailable():
		h.nextPeer("unavailable")
		return
	case t.index == 0 && c.GetSequence() < t.need.Index:
		h.nextPeer("too_old")
		return
	case t.index != 0 && c.GetSequence() != t.index:
		h.nextPeer("changed")
		return
	case string(c.GetStartKey()) != string(t.nextKey):
		return // a stale answer to an earlier request
	}
	t.index, t.idle = c.GetSequence(), 0
	if err := h.exec.RestoreChunk(c.GetEntries()); err != nil {
		h.nextPeer("bad_chunk")
		return
	}
	if len(c.GetNextKey()) > 0 {
		t.nextKey = c.GetNextKey()
		h.requestChunk()
		return
	}
	var err error
	if t.index == t.need.Index && t.need.HasDigest {
		_, err = h.exec.RestoreFinishExpect(t.need.Digest)
	} else {
		_, err = h.exec.RestoreFinish()
	}
	if err == nil && h.exec.LastExecuted() != t.index {
		err = errors.New("restored state is not at the served snapshot index")
	}
	if err != nil {
		h.w.log.Debug("state transfer: restore", "replica", h.id, "index", t.index, "err", err)
		h.nextPeer("digest_mismatch")
		return
	}
	if err := h.core.StateInstalled(); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("replica %d: state installed at %d: %v", h.id, t.index, err))
		return
	}
	h.w.res.StateTransfers++
	h.w.check.installed(h, t.peer, t.index)
	h.w.check.digestAt(h, t.index, h.exec.StateDigest())
	h.transfer = nil
}

// serveState answers a state request from the snapshots h holds, as
// RaftNode.serveRaftSnapshots does.
func (h *host) serveState(from *host, r *wire.StateRequest) {
	chunk := &wire.StateChunk{StartKey: r.GetStartKey(), Sequence: r.GetSequence()}
	if snap := raftmode.PickSnapshot(h.snaps, r.GetSequence()); snap == nil {
		chunk.Unavailable = true
	} else if entries, next, err := snap.Chunk(r.GetStartKey(), TransferChunkBytes); err != nil {
		chunk.Unavailable = true
	} else {
		chunk.Sequence, chunk.Entries, chunk.NextKey = snap.Sequence(), entries, next
	}
	h.w.sendBetween(h, from, event{kind: evStateChunk, chunk: chunk})
}
