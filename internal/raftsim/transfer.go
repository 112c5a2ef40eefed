package raftsim

import (
	"fmt"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// transfer is the runtime's state transfer (node/raft_transfer.go): a
// statetransfer.Fetcher for the state a Core waits for, from the moment
// the Core needs it until the Core accepts it (host.transfer is nil
// otherwise). It uses the runtime's idle timeout,
// statetransfer.DefaultIdleTicks.
type transfer struct {
	fetch *statetransfer.Fetcher
}

// simRestorer is the executor's restore side; a RestoreBegin that fails
// (it cannot on an in-memory database) is a violation.
type simRestorer struct {
	*execution.Executor
	h *host
}

func (r simRestorer) RestoreBegin() error {
	err := r.Executor.RestoreBegin()
	if err != nil {
		r.h.w.violate(KindInternal, fmt.Sprintf("replica %d: state transfer: begin: %v", r.h.id, err))
	}
	return err
}

func (h *host) startTransfer(need raftmode.StateNeed) {
	if h.transfer == nil {
		h.transfer = &transfer{fetch: statetransfer.New(statetransfer.Config{
			Restorer: simRestorer{Executor: h.exec, h: h},
			Request: func(to uint32, req *wire.StateRequest) {
				h.w.sendBetween(h, h.w.hosts[to], event{kind: evStateRequest, stateReq: req})
			},
			Logger: h.w.log.With("replica", h.id),
		})}
	}
	h.transfer.fetch.Start(need.Target(h.w.n, h.id))
	if !h.transfer.fetch.Active() {
		h.transfer = nil // no peer to ask (a single replica)
	}
}

func (h *host) transferTick() {
	if h.transfer != nil {
		h.transfer.fetch.Tick()
	}
}

// handleStateChunk is RaftNode.handleStateChunk, and checks the state
// installed.
func (h *host) handleStateChunk(from uint32, c *wire.StateChunk) {
	if h.transfer == nil {
		return
	}
	index, done := h.transfer.fetch.Chunk(from, c)
	if !done {
		return
	}
	if err := h.core.StateInstalled(); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("replica %d: state installed at %d: %v", h.id, index, err))
		return
	}
	h.w.res.StateTransfers++
	h.w.check.installed(h, from, index)
	h.w.check.digestAt(h, index, h.exec.StateDigest())
	h.transfer = nil
}

// serveState answers a state request from the snapshots h holds, as
// RaftNode.serveRaftSnapshots does.
func (h *host) serveState(from *host, r *wire.StateRequest) {
	chunk := statetransfer.Serve(statetransfer.Pick(h.snaps, r.GetSequence()), r, TransferChunkBytes)
	h.w.sendBetween(h, from, event{kind: evStateChunk, chunk: chunk})
}
