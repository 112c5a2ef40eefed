package raftsim

import (
	"fmt"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

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

// SendStateRequest is the driver's Network: it sends a state request for
// the driver's fetcher over the virtual network.
func (h *host) SendStateRequest(to uint32, req *wire.StateRequest) {
	h.w.sendBetween(h, h.w.hosts[to], event{kind: evStateRequest, stateReq: req})
}

// StateInstalled is the driver's Observer: it checks the state installed.
func (h *host) StateInstalled(from uint32, index uint64) {
	h.w.res.StateTransfers++
	h.w.check.installed(h, from, index)
	h.w.check.digestAt(h, index, h.exec.StateDigest())
}

// handleStateChunk hands a chunk to the driver; the Core refusing the
// state it installed is a violation.
func (h *host) handleStateChunk(from uint32, c *wire.StateChunk) {
	if err := h.driver.Chunk(from, c); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("replica %d: %v", h.id, err))
	}
}

// serveState answers a state request from the snapshots h holds, as
// raftnode.Node.serveSnapshots does.
func (h *host) serveState(from *host, r *wire.StateRequest) {
	for _, chunk := range statetransfer.ServeChunks(statetransfer.Pick(h.snaps, r.GetSequence()), r, TransferChunkBytes) {
		h.w.sendBetween(h, from, event{kind: evStateChunk, chunk: chunk})
	}
}
