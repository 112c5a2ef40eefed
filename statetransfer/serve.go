package statetransfer

import (
	"fmt"

	"github.com/pbftnode/pbftnode/wire"
)

// Snapshot is a state a replica serves (*execution.StateSnapshot
// implements it): its sequence, and its transferred entries in key order
// from start, at most about maxBytes of them, with the key to ask for next
// (nil after the last chunk).
type Snapshot interface {
	Sequence() uint64
	Chunk(start []byte, maxBytes int) ([]*wire.KeyValue, []byte, error)
}

// Serve answers req from snap: the entries from req.StartKey (at most
// about maxBytes) at snap's sequence, or Unavailable (at the requested
// sequence) when snap is nil or cannot be read. snap must be an untyped
// nil, not a nil pointer, when there is none (see Pick).
func Serve(snap Snapshot, req *wire.StateRequest, maxBytes int) *wire.StateChunk {
	chunk, _ := ServeChunk(snap, req, maxBytes)
	return chunk
}

// ServeChunk is Serve that also returns why snap could not be read (the
// chunk is then Unavailable); a nil snap is no error.
func ServeChunk(snap Snapshot, req *wire.StateRequest, maxBytes int) (*wire.StateChunk, error) {
	chunk := &wire.StateChunk{Sequence: req.GetSequence(), StartKey: req.GetStartKey()}
	if snap == nil {
		chunk.Unavailable = true
		return chunk, nil
	}
	entries, next, err := snap.Chunk(req.GetStartKey(), maxBytes)
	if err != nil {
		chunk.Unavailable = true
		return chunk, fmt.Errorf("state transfer: reading snapshot %d: %w", snap.Sequence(), err)
	}
	chunk.Sequence, chunk.Entries, chunk.NextKey = snap.Sequence(), entries, next
	return chunk, nil
}

// Rest returns the request for the rest of req's window once chunk
// answered its first chunk: chunk's sequence (the snapshot that served
// it), from chunk's NextKey, one chunk fewer; nil when chunk ends the window (its last chunk, the
// snapshot's last, or Unavailable). req.Chunks is clamped to
// MaxChunksPerRequest, so a request makes a server send at most that many
// chunks. A server with a byte budget answers a window one chunk at a
// time, admitting each Rest against the budget.
func Rest(req *wire.StateRequest, chunk *wire.StateChunk) *wire.StateRequest {
	left := min(max(req.GetChunks(), 1), MaxChunksPerRequest) - 1
	if left == 0 || chunk.GetUnavailable() || len(chunk.GetNextKey()) == 0 {
		return nil
	}
	rest := &wire.StateRequest{Sequence: chunk.GetSequence(), StartKey: chunk.GetNextKey()}
	if left > 1 {
		rest.Chunks = left
	}
	return rest
}

// ServeChunks answers req's whole window from snap (Serve, then Rest
// until it ends): the answer of a server without a byte budget (the
// simulators, tests).
func ServeChunks(snap Snapshot, req *wire.StateRequest, maxBytes int) []*wire.StateChunk {
	var out []*wire.StateChunk
	for req != nil {
		chunk := Serve(snap, req, maxBytes)
		out = append(out, chunk)
		req = Rest(req, chunk)
	}
	return out
}

// Pick chooses which of snaps serves a request for the state at seq: the
// one at exactly seq if held, else the newest above it (a fetch without
// Target.Exact accepts any snapshot at or above its sequence), else an
// untyped nil. A fetch with Target.Exact rejects an answer above seq, so
// a server for such fetches looks up seq exactly instead.
func Pick[S Snapshot](snaps []S, seq uint64) Snapshot {
	var best Snapshot
	for _, s := range snaps {
		if s.Sequence() == seq {
			return s
		}
		if s.Sequence() > seq && (best == nil || s.Sequence() > best.Sequence()) {
			best = s
		}
	}
	return best
}

// At returns the snapshot at exactly seq from snaps (keyed by sequence),
// or an untyped nil: how a server for Target.Exact fetches (PBFT) chooses.
func At[S Snapshot](snaps map[uint64]S, seq uint64) Snapshot {
	if s, ok := snaps[seq]; ok {
		return s
	}
	return nil
}

// Ring returns the replicas 0..n-1 other than self, in index order, for
// Target.Peers, and the position in it for Target.First: that of prefer
// if prefer is one of them, else that of the first replica after self
// (wrapping). Walking it from there asks every other replica in turn.
func Ring(n int, self uint32, prefer int) (peers []uint32, first int) {
	for i := range n {
		if uint32(i) != self {
			peers = append(peers, uint32(i))
		}
	}
	first = -1
	for i, p := range peers {
		if prefer >= 0 && p == uint32(prefer) {
			return peers, i
		}
		if first < 0 && p > self {
			first = i
		}
	}
	return peers, max(first, 0)
}
