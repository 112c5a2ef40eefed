package p2p

import (
	"context"
	crand "crypto/rand"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// waitTimeout bounds every wait in these tests; loopback peers connect in
// milliseconds, so reaching it means the behaviour under test is broken.
const waitTimeout = 20 * time.Second

type testKey struct {
	priv crypto.PrivKey
	id   peer.ID
}

func newTestKey(t *testing.T) testKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(crand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatalf("peer ID: %v", err)
	}
	return testKey{priv: priv, id: id}
}

// testWriter sends slog output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig is a replica or client host config with fast reconnects and a
// seeded jitter source; Members carry no addresses yet.
func testConfig(t *testing.T, key testKey, self int, members []Member, seed uint64) Config {
	listen := "/ip4/127.0.0.1/tcp/0"
	if self < 0 {
		listen = ""
	}
	return Config{
		PrivateKey:          key.priv,
		ListenAddr:          listen,
		Self:                self,
		Members:             members,
		Logger:              testLogger(t),
		Rand:                rand.New(rand.NewPCG(seed, seed+1)),
		ReconnectBackoffMin: 20 * time.Millisecond,
		ReconnectBackoffMax: 250 * time.Millisecond,
	}
}

func membersOf(keys []testKey) []Member {
	members := make([]Member, len(keys))
	for i, k := range keys {
		members[i] = Member{Index: uint32(i), ID: k.id}
	}
	return members
}

func newTestHost(t *testing.T, cfg Config) *Host {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// startCluster starts n replica hosts on loopback ports and tells each the
// others' addresses. adjust, if not nil, edits each config before New.
func startCluster(t *testing.T, n int, adjust func(index int, cfg *Config)) ([]*Host, []testKey) {
	t.Helper()
	keys := make([]testKey, n)
	for i := range keys {
		keys[i] = newTestKey(t)
	}
	members := membersOf(keys)
	hosts := make([]*Host, n)
	for i := range hosts {
		cfg := testConfig(t, keys[i], i, members, uint64(i))
		if adjust != nil {
			adjust(i, &cfg)
		}
		hosts[i] = newTestHost(t, cfg)
	}
	for _, h := range hosts {
		for j, other := range hosts {
			if h == other {
				continue
			}
			if err := h.SetMemberAddr(uint32(j), listenAddr(t, other)); err != nil {
				t.Fatalf("SetMemberAddr(%d): %v", j, err)
			}
		}
	}
	return hosts, keys
}

func listenAddr(t *testing.T, h *Host) multiaddr.Multiaddr {
	t.Helper()
	addrs := h.Addrs()
	if len(addrs) == 0 {
		t.Fatalf("host %s has no listen address", h.ID())
	}
	return addrs[0]
}

// receive returns the next frame from ch or fails the test after waitTimeout.
func receive(t *testing.T, ch <-chan Frame, what string) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	select {
	case f, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return f
	case <-ctx.Done():
		t.Fatalf("%s: no frame within %v", what, waitTimeout)
	}
	return Frame{}
}

// waitFor polls cond until it holds or fails the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}

// assertNoFrame fails if ch holds a frame right now.
func assertNoFrame(t *testing.T, ch <-chan Frame, what string) {
	t.Helper()
	select {
	case f := <-ch:
		t.Fatalf("%s: unexpected frame %q from %s (index %d)", what, f.Data, f.From, f.FromIndex)
	default:
	}
}

func mustAddr(t *testing.T, s string) multiaddr.Multiaddr {
	t.Helper()
	a, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		t.Fatalf("multiaddr %q: %v", s, err)
	}
	return a
}

func secp256k1Key(t *testing.T) crypto.PrivKey {
	t.Helper()
	priv, _, err := crypto.GenerateSecp256k1Key(crand.Reader)
	if err != nil {
		t.Fatalf("generate secp256k1 key: %v", err)
	}
	return priv
}

// testInbound splits a host's scheduled inbound frames into two channels,
// as the host delivered them before it had per-source queues, for the
// tests that only check what arrives.
type testInbound struct{ replica, client chan Frame }

var testInbounds sync.Map // *Host -> *testInbound

func inboundOf(h *Host) *testInbound {
	if v, ok := testInbounds.Load(h); ok {
		return v.(*testInbound)
	}
	in := &testInbound{replica: make(chan Frame, 1<<16), client: make(chan Frame, 1<<16)}
	if v, loaded := testInbounds.LoadOrStore(h, in); loaded {
		return v.(*testInbound)
	}
	go func() {
		var buf []Frame
		for {
			var ok bool
			buf, ok = h.NextFrames(context.Background(), buf[:0], 64)
			for _, f := range buf {
				if f.FromIndex >= 0 {
					in.replica <- f
				} else {
					in.client <- f
				}
			}
			if !ok {
				close(in.replica)
				close(in.client)
				return
			}
		}
	}()
	return in
}

// replicaFrames and clientFrames deliver h's frames from replicas and from
// clients; the channels close when h closes.
func replicaFrames(h *Host) <-chan Frame { return inboundOf(h).replica }
func clientFrames(h *Host) <-chan Frame  { return inboundOf(h).client }
