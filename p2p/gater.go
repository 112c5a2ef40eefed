package p2p

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// membershipGater is the host's libp2p connection gater. It lets the host
// dial only cluster members, and accepts inbound connections from members
// always and from anyone else only when clients are allowed (and, with a
// client allowlist, only from listed peers). It is the first line of
// defence; the ReplicaProtocol handler checks membership again, because an
// allowed client must still never reach the replica protocol, and the
// ClientProtocol handler checks the allowlist again.
type membershipGater struct {
	isMember        func(peer.ID) bool // the host's current member set
	clientsAllowed  bool
	clientAllowlist peerSet // nil: any client
	stats           *counters
	logger          *slog.Logger
}

var _ connmgr.ConnectionGater = (*membershipGater)(nil)

// InterceptPeerDial allows dialing cluster members only.
func (g *membershipGater) InterceptPeerDial(p peer.ID) bool {
	return g.isMember(p)
}

// InterceptAddrDial allows every address of a peer InterceptPeerDial allowed.
func (g *membershipGater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool {
	return true
}

// InterceptAccept allows every incoming socket: the remote identity is only
// known after the Noise handshake, in InterceptSecured.
func (g *membershipGater) InterceptAccept(network.ConnMultiaddrs) bool {
	return true
}

// InterceptSecured decides on the authenticated remote peer: members are
// always allowed; other peers only on inbound connections of a host that
// accepts clients, and only if they are on its client allowlist when it has
// one. Refusals are counted in Stats.RejectedPeers.
func (g *membershipGater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if g.isMember(p) {
		return true
	}
	if dir == network.DirInbound && g.clientsAllowed && g.clientAllowlist.allows(p) {
		return true
	}
	g.stats.rejectedPeers.Add(1)
	g.logger.Warn("p2p: refused connection from peer outside the cluster",
		"peer", p, "remote_addr", addrs.RemoteMultiaddr(), "direction", dir)
	return false
}

// InterceptUpgraded allows every connection InterceptSecured allowed.
func (g *membershipGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
