package p2p

import (
	"testing"

	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

func TestResourceLimitsBoundPeersAndClients(t *testing.T) {
	got := resourceLimits().ToPartialLimitConfig()
	checks := []struct {
		name      string
		got, want rcmgr.LimitVal
	}{
		{"system inbound connections", got.System.ConnsInbound, limitSystemConnsInbound},
		{"system inbound streams", got.System.StreamsInbound, limitSystemStreamsIn},
		{"connections per peer", got.PeerDefault.Conns, limitPeerConns},
		{"inbound streams per peer", got.PeerDefault.StreamsInbound, limitPeerStreamsIn},
		{"client streams per client", got.ProtocolPeer[ClientProtocol].StreamsInbound, limitClientStreamsPeer},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: limit %v, want %v", c.name, c.got, c.want)
		}
	}
	// Memory stays libp2p's autoscaled default (not unlimited, not zero).
	if m := got.PeerDefault.Memory; m == rcmgr.Unlimited64 || m == rcmgr.BlockAllLimit64 {
		t.Errorf("per-peer memory limit %v", m)
	}
}
