package p2p

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestClientAllowlist(t *testing.T) {
	const n = 2
	listed, unlisted := newTestKey(t), newTestKey(t)
	replicas, keys := startCluster(t, n, func(_ int, cfg *Config) {
		cfg.ClientsAllowed = true
		cfg.ClientAllowlist = []peer.ID{listed.id}
	})
	members := membersOf(keys)
	for i := range members {
		members[i].Addr = listenAddr(t, replicas[i])
	}

	// Members still connect: the allowlist restricts clients only.
	replicas[0].Send(1, []byte("from member 0"))
	f := receive(t, replicaFrames(replicas[1]), "member frame")
	if string(f.Data) != "from member 0" || f.FromIndex != 0 || f.From != keys[0].id {
		t.Fatalf("got %q from %s (index %d), want \"from member 0\" from member 0", f.Data, f.From, f.FromIndex)
	}

	// A listed client reaches every replica and gets its replies.
	client := newTestHost(t, testConfig(t, listed, -1, members, 7))
	for i := range n {
		if !client.SendToReplica(uint32(i), fmt.Appendf(nil, "listed to %d", i)) {
			t.Fatalf("SendToReplica(%d) refused", i)
		}
	}
	for i, r := range replicas {
		f := receive(t, clientFrames(r), fmt.Sprintf("replica %d client frames", i))
		if f.From != listed.id || f.FromIndex != -1 || string(f.Data) != fmt.Sprintf("listed to %d", i) {
			t.Fatalf("replica %d: got %q from %s (index %d), want the listed client's request", i, f.Data, f.From, f.FromIndex)
		}
		if !r.SendToClient(listed.id, []byte("reply")) {
			t.Fatalf("replica %d: SendToClient refused for the listed client", i)
		}
	}
	for range n {
		if f := receive(t, client.Replies(), "listed client replies"); string(f.Data) != "reply" {
			t.Fatalf("listed client got %q, want \"reply\"", f.Data)
		}
	}
	for i, r := range replicas {
		if st := r.Stats(); st.RejectedPeers != 0 {
			t.Fatalf("replica %d rejected %d peers before any unlisted peer connected", i, st.RejectedPeers)
		}
	}

	// An unlisted client is refused by the gater and counted; nothing of
	// it is delivered and no connection to it is kept.
	stranger := newTestHost(t, testConfig(t, unlisted, -1, members, 8))
	stranger.SendToReplica(0, []byte("unlisted"))
	waitFor(t, "replica 0 to refuse the unlisted client", func() bool { return replicas[0].Stats().RejectedPeers >= 1 })
	assertNoFrame(t, clientFrames(replicas[0]), "replica 0 after refusing the unlisted client")
	if c := len(replicas[0].host.Network().ConnsToPeer(unlisted.id)); c != 0 {
		t.Fatalf("replica 0 holds %d connections to the unlisted client", c)
	}
	if st := stranger.Stats(); st.FramesSent != 0 {
		t.Fatalf("unlisted client flushed %d frames through a refused connection", st.FramesSent)
	}
}

// TestClientAllowlistStreamCheck opens a ClientProtocol stream from a member,
// which the gater lets through: the stream handler must still refuse it,
// because the member is not on the client allowlist.
func TestClientAllowlistStreamCheck(t *testing.T) {
	listed := newTestKey(t)
	replicas, _ := startCluster(t, 2, func(_ int, cfg *Config) {
		cfg.ClientsAllowed = true
		cfg.ClientAllowlist = []peer.ID{listed.id}
	})
	// Wait for the members' own connection, so the stream below reuses it
	// instead of racing their dials.
	replicas[1].Send(0, []byte("member"))
	receive(t, replicaFrames(replicas[0]), "member frame")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := replicas[1].host.NewStream(ctx, replicas[0].ID(), ClientProtocol)
	if err != nil {
		t.Fatalf("open client stream: %v", err)
	}
	defer s.Reset()
	// The handler resets the stream, possibly before the write below is
	// through (then the write fails with the reset), else the read ends
	// with an error, not a reply.
	if err := WriteFrame(s, []byte("member posing as client"), DefaultMaxFrameSize); err == nil {
		if frame, err := ReadFrame(bufio.NewReader(s), DefaultMaxFrameSize); err == nil {
			t.Fatalf("read reply %q on a stream the replica should have reset", frame)
		}
	} else {
		t.Logf("write refused: %v", err)
	}
	waitFor(t, "replica 0 to count the refused stream", func() bool { return replicas[0].Stats().RejectedPeers >= 1 })
	assertNoFrame(t, clientFrames(replicas[0]), "replica 0 after refusing the stream")
}

func TestClientAllowlistConfig(t *testing.T) {
	a, b, outsider := newTestKey(t), newTestKey(t), newTestKey(t)
	members := membersOf([]testKey{a, b})
	cases := []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"client host with an allowlist", func(c *Config) {
			c.Self, c.ListenAddr, c.PrivateKey = -1, "", outsider.priv
			c.ClientAllowlist = []peer.ID{outsider.id}
		}, "replica hosts only"},
		{"allowlist without clients", func(c *Config) { c.ClientAllowlist = []peer.ID{outsider.id} }, "needs ClientsAllowed"},
		{"invalid peer ID", func(c *Config) {
			c.ClientsAllowed = true
			c.ClientAllowlist = []peer.ID{outsider.id, ""}
		}, "ClientAllowlist[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, a, 0, members, 1)
			tc.adjust(&cfg)
			h, err := New(cfg)
			if err == nil {
				_ = h.Close()
				t.Fatal("New accepted an invalid config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
