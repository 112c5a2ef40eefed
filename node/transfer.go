package node

import "github.com/pbftnode/pbftnode/wire"

// StateChunkBytes bounds the entries of one StateChunk a snapshot server
// sends, well under the transport's frame limit.
const StateChunkBytes = 1 << 20

// StateRequest is a StateRequest from replica From, for a runtime's
// snapshot server.
type StateRequest struct {
	From uint32
	Req  *wire.StateRequest
}
