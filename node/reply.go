package node

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// SendReply sends r to the client peer id over its stream to this
// replica, if it has one, and counts it.
func SendReply(host *p2p.Host, m *Metrics, id peer.ID, r *wire.Reply) {
	b, err := proto.Marshal(r)
	if err != nil {
		return
	}
	if host.SendToClient(id, b) {
		m.ClientReplies.Inc()
	}
}

// ReplyToClient sends r back to the client it names (the peer of the
// client id's key; a malformed id is ignored).
func ReplyToClient(host *p2p.Host, m *Metrics, r *wire.Reply) {
	id, err := identity.ClientPeerID(r.GetClientId())
	if err != nil {
		return
	}
	SendReply(host, m, id, r)
}
