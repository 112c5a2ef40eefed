package p2p

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource-manager limits tighter than libp2p's defaults (which scale with
// the machine's memory and are sized for public DHT nodes). A pbftnode
// host talks to n-1 replicas and to its clients: each replica keeps one
// stream open to every other, a client one stream to each replica. The
// per-peer limits bound what one peer (a flooding or buggy client) can
// hold; the system limits bound the host as a whole.
const (
	limitPeerConns          = 16   // connections per peer (one is normal; processes sharing a client key have one each)
	limitPeerStreamsIn      = 40   // inbound streams per peer (ours: 1, plus identify and ping; a shared client key: one per process)
	limitPeerStreamsOut     = 16   // outbound streams per peer
	limitSystemConnsInbound = 1024 // inbound connections in total: replicas plus clients
	limitSystemStreamsIn    = 4096 // inbound streams in total
	limitClientStreamsPeer  = 16   // ClientProtocol streams per client key (one per process using the key is normal)
)

// resourceLimits returns the host's resource-manager limits: libp2p's
// autoscaled defaults with the counts above in place of theirs. Memory
// limits stay the autoscaled defaults: yamux windows must be able to grow
// for throughput between replicas.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	defaults := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&defaults)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			ConnsInbound:   limitSystemConnsInbound,
			StreamsInbound: limitSystemStreamsIn,
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:           limitPeerConns,
			StreamsInbound:  limitPeerStreamsIn,
			StreamsOutbound: limitPeerStreamsOut,
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			ClientProtocol: {StreamsInbound: limitClientStreamsPeer, Streams: limitClientStreamsPeer},
		},
	}
	return partial.Build(defaults.AutoScale())
}
