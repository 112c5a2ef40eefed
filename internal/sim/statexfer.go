package sim

import (
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// transferChunkBytes is small so that transfers take several chunks, and
// transferWindow makes a request ask for several of them (the runtime asks
// for statetransfer.DefaultWindow).
const (
	transferChunkBytes = 256
	transferWindow     = 4
)

// serveState answers a state request over the virtual network from the
// host's checkpoint snapshots, as node/pbft's snapshot server does (through
// the host's Filter, without its rate limits): the requesting replica's
// driver fetches state window by window as in production.
func (h *host) serveState(from uint32, req *wire.StateRequest) {
	for _, chunk := range statetransfer.ServeChunks(statetransfer.At(h.snaps.Taken, req.Sequence), req, transferChunkBytes) {
		h.sendChunk(from, chunk)
	}
}

// sendChunk signs chunk as this replica and sends it to from.
func (h *host) sendChunk(from uint32, chunk *wire.StateChunk) {
	body := &wire.ReplicaMessage{From: h.id, Body: &wire.ReplicaMessage_StateChunk{StateChunk: chunk}}
	if st, ok := h.driver.EpochStatus(); ok {
		if !st.Member {
			return
		}
		body.From, body.Epoch = st.Position, st.Config.Epoch
	}
	payload, err := proto.Marshal(body)
	if err != nil {
		return
	}
	signed := &wire.Signed{Payload: payload, Signature: h.cfg.Signer.Sign(crypto.DomainReplicaMessage, payload)}
	outs := []protocol.Outbound{{To: from, Signed: signed, Kind: protocol.KindStateChunk}}
	if h.filter != nil {
		outs = h.filter.Outbound(outs[0])
	}
	for _, o := range outs {
		h.w.sendReplica(h, o, 0)
	}
}
