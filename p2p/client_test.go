package p2p

import (
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestClientHostRoundTrip(t *testing.T) {
	const n = 4
	replicas, keys := startCluster(t, n, func(_ int, cfg *Config) { cfg.ClientsAllowed = true })
	members := membersOf(keys)
	for i := range members {
		members[i].Addr = listenAddr(t, replicas[i])
	}
	client := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 42))
	if len(client.Addrs()) != 0 {
		t.Fatalf("client host listens on %v", client.Addrs())
	}

	for i := range n {
		if !client.SendToReplica(uint32(i), fmt.Appendf(nil, "request for %d", i)) {
			t.Fatalf("SendToReplica(%d) refused", i)
		}
	}
	for i, r := range replicas {
		f := receive(t, clientFrames(r), fmt.Sprintf("replica %d client frames", i))
		if f.FromIndex != -1 || f.From != client.ID() {
			t.Fatalf("replica %d: client frame from %s (index %d), want %s (index -1)", i, f.From, f.FromIndex, client.ID())
		}
		if want := fmt.Sprintf("request for %d", i); string(f.Data) != want {
			t.Fatalf("replica %d: got %q, want %q", i, f.Data, want)
		}
		assertNoFrame(t, replicaFrames(r), fmt.Sprintf("replica %d replica frames", i))
	}

	for i, r := range replicas {
		if !r.SendToClient(client.ID(), fmt.Appendf(nil, "reply from %d", i)) {
			t.Fatalf("replica %d: SendToClient refused for a connected client", i)
		}
	}
	seen := make(map[int]bool)
	for range n {
		f := receive(t, client.Replies(), "client replies")
		if f.FromIndex < 0 || f.FromIndex >= n || seen[f.FromIndex] {
			t.Fatalf("reply with FromIndex %d (seen before: %v)", f.FromIndex, seen[f.FromIndex])
		}
		seen[f.FromIndex] = true
		if f.From != keys[f.FromIndex].id {
			t.Fatalf("reply claims index %d but comes from %s", f.FromIndex, f.From)
		}
		if want := fmt.Sprintf("reply from %d", f.FromIndex); string(f.Data) != want {
			t.Fatalf("got %q, want %q", f.Data, want)
		}
	}

	// The replica and client APIs do not cross over.
	if client.Send(0, []byte("x")) {
		t.Fatal("client host accepted a replica-protocol Send")
	}
	stranger := peer.ID(newTestKey(t).id)
	if replicas[0].SendToClient(stranger, []byte("x")) {
		t.Fatal("SendToClient accepted a frame for a peer with no open stream")
	}
}

func TestClientRefusedWhenClientsNotAllowed(t *testing.T) {
	replicas, keys := startCluster(t, 1, nil)
	members := membersOf(keys)
	members[0].Addr = listenAddr(t, replicas[0])
	client := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 3))
	client.SendToReplica(0, []byte("request"))
	waitFor(t, "the replica to refuse the client", func() bool { return replicas[0].Stats().RejectedPeers >= 1 })
	select {
	case f := <-clientFrames(replicas[0]):
		t.Fatalf("replica delivered client frame %q although clients are not allowed", f.Data)
	default:
	}
}

func TestConfigValidation(t *testing.T) {
	a, b, outsider := newTestKey(t), newTestKey(t), newTestKey(t)
	members := membersOf([]testKey{a, b})
	cases := []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"no key", func(c *Config) { c.PrivateKey = nil }, "PrivateKey"},
		{"not an Ed25519 key", func(c *Config) { c.PrivateKey = secp256k1Key(t) }, "Ed25519"},
		{"no members", func(c *Config) { c.Members = nil }, "Members"},
		{"self not a member", func(c *Config) { c.Self = 5 }, "not a member"},
		{"self below -1", func(c *Config) { c.Self = -2 }, "neither"},
		{"key is not self's", func(c *Config) { c.PrivateKey = outsider.priv }, "PrivateKey is"},
		{"replica without listen address", func(c *Config) { c.ListenAddr = "" }, "ListenAddr"},
		{"duplicate index", func(c *Config) { c.Members = []Member{members[0], {Index: 0, ID: b.id}} }, "duplicate member index"},
		{"duplicate peer", func(c *Config) { c.Members = []Member{members[0], {Index: 1, ID: a.id}} }, "duplicate peer ID"},
		{"client with clients allowed", func(c *Config) { c.Self, c.ListenAddr, c.PrivateKey, c.ClientsAllowed = -1, "", outsider.priv, true }, "ClientsAllowed"},
		{"client with a member key", func(c *Config) { c.Self, c.ListenAddr = -1, "" }, "member's key"},
		{"negative queue", func(c *Config) { c.PeerQueueSize = -1 }, "negative"},
		{"backoff max below min", func(c *Config) { c.ReconnectBackoffMax = c.ReconnectBackoffMin / 2 }, "ReconnectBackoffMax"},
		{"bad listen address", func(c *Config) { c.ListenAddr = "not a multiaddr" }, "libp2p host"},
		{"member address names another peer", func(c *Config) {
			c.Members = []Member{members[0], {Index: 1, ID: b.id, Addr: mustAddr(t, "/ip4/127.0.0.1/tcp/1/p2p/"+outsider.id.String())}}
		}, "names peer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, a, 0, members, 1)
			tc.adjust(&cfg)
			h, err := New(cfg)
			if err == nil {
				_ = h.Close()
				t.Fatalf("New accepted an invalid config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// A client host with OnReply hands it every reply, each replica's in
// order, on the reading goroutine, and leaves the Replies channel empty.
func TestClientHostOnReply(t *testing.T) {
	const n, each = 2, 20
	replicas, keys := startCluster(t, n, func(_ int, cfg *Config) { cfg.ClientsAllowed = true })
	members := membersOf(keys)
	for i := range members {
		members[i].Addr = listenAddr(t, replicas[i])
	}
	got := make(chan Frame, n*each)
	cfg := testConfig(t, newTestKey(t), -1, members, 43)
	cfg.OnReply = func(f Frame) { got <- f }
	client := newTestHost(t, cfg)
	for i, r := range replicas {
		if !client.SendToReplica(uint32(i), []byte("hello")) {
			t.Fatalf("SendToReplica(%d) refused", i)
		}
		receive(t, clientFrames(r), fmt.Sprintf("replica %d client frames", i))
	}
	for k := range each {
		for i, r := range replicas {
			if !r.SendToClient(client.ID(), fmt.Appendf(nil, "reply %d from %d", k, i)) {
				t.Fatalf("replica %d: SendToClient refused", i)
			}
		}
	}
	next := make([]int, n)
	for range n * each {
		f := receive(t, got, "OnReply")
		if f.FromIndex < 0 || f.FromIndex >= n {
			t.Fatalf("reply with FromIndex %d", f.FromIndex)
		}
		if want := fmt.Sprintf("reply %d from %d", next[f.FromIndex], f.FromIndex); string(f.Data) != want {
			t.Fatalf("got %q, want %q", f.Data, want)
		}
		next[f.FromIndex]++
	}
	assertNoFrame(t, client.Replies(), "client Replies channel")
}
