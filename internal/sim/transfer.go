package sim

import (
	"fmt"

	"github.com/pbftnode/pbftnode/execution"
)

// transferChunkBytes is small so that transfers take several chunks.
const transferChunkBytes = 256

// transfer carries out a state transfer h's core asked for (Ready.Behind),
// as node/statetransfer.go does: it copies the snapshot at the certified
// sequence from a replica that has one, checks the restored state against
// the certified digest, and installs the checkpoint in the core. When no
// replica has that snapshot yet, it tries again on the next tick.
func (w *world) transfer(h *host) {
	cert := *h.behind
	if h.exec.LastExecuted() >= cert.Sequence {
		h.behind = nil
		return
	}
	var (
		src     *execution.StateSnapshot
		srcHost *host
	)
	for _, s := range w.hosts {
		// A correct replica's snapshot; the certified digest is checked
		// below in any case.
		if s == h || s.down || !s.correct {
			continue
		}
		if snap := s.snaps[cert.Sequence]; snap != nil && snap.Digest() == cert.StateDigest {
			src, srcHost = snap, s
			break
		}
	}
	if src == nil {
		return
	}
	if err := w.copyState(h, src, cert.StateDigest); err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d%s: state transfer of checkpoint %d: %v", h.id, h.label(), cert.Sequence, err))
		return
	}
	h.behind = nil
	w.res.StateTransfers++
	if err := h.core.InstallCheckpoint(cert); err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d%s: install checkpoint %d: %v", h.id, h.label(), cert.Sequence, err))
		return
	}
	h.pruneRequests()
	if h.correct {
		w.check.installed(h, srcHost, cert.Sequence)
	}
	if err := h.checkpointSnapshot(cert.Sequence); err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d%s: %v", h.id, h.label(), err))
		return
	}
	h.drain()
}

// copyState streams src into h's executor chunk by chunk.
func (w *world) copyState(h *host, src *execution.StateSnapshot, digest [32]byte) error {
	if err := h.exec.RestoreBegin(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var start []byte
	for {
		entries, next, err := src.Chunk(start, transferChunkBytes)
		if err != nil {
			return fmt.Errorf("read chunk: %w", err)
		}
		if err := h.exec.RestoreChunk(entries); err != nil {
			return fmt.Errorf("restore chunk: %w", err)
		}
		if len(next) == 0 {
			break
		}
		start = next
	}
	if _, err := h.exec.RestoreFinishExpect(digest); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	return nil
}

// checkpointSnapshot keeps a snapshot of the installed state so that h
// can serve it in turn.
func (h *host) checkpointSnapshot(seq uint64) error {
	snap, err := h.exec.TakeSnapshot()
	if err != nil {
		return fmt.Errorf("snapshot at %d: %w", seq, err)
	}
	if old := h.snaps[seq]; old != nil {
		old.Release()
	}
	h.snaps[seq] = snap
	return nil
}
