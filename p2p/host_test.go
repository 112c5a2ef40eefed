package p2p

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBroadcastReachesEveryMember(t *testing.T) {
	const n = 4
	hosts, keys := startCluster(t, n, nil)
	for i, h := range hosts {
		h.Broadcast(fmt.Appendf(nil, "hello from %d", i))
	}
	for i, h := range hosts {
		seen := make(map[int]bool)
		for range n - 1 {
			f := receive(t, replicaFrames(h), fmt.Sprintf("replica %d", i))
			if f.FromIndex < 0 || f.FromIndex >= n || f.FromIndex == i {
				t.Fatalf("replica %d: frame with FromIndex %d", i, f.FromIndex)
			}
			if f.From != keys[f.FromIndex].id {
				t.Fatalf("replica %d: frame claims index %d but comes from %s", i, f.FromIndex, f.From)
			}
			if want := fmt.Sprintf("hello from %d", f.FromIndex); string(f.Data) != want {
				t.Fatalf("replica %d: got %q from index %d, want %q", i, f.Data, f.FromIndex, want)
			}
			if seen[f.FromIndex] {
				t.Fatalf("replica %d: two frames from index %d", i, f.FromIndex)
			}
			seen[f.FromIndex] = true
		}
		assertNoFrame(t, replicaFrames(h), fmt.Sprintf("replica %d after all broadcasts", i))
	}
	for i, h := range hosts {
		st := h.Stats()
		if st.FramesSent != n-1 || st.FramesReceived != n-1 {
			t.Errorf("replica %d: FramesSent=%d FramesReceived=%d, want %d each", i, st.FramesSent, st.FramesReceived, n-1)
		}
		if want := uint64(len("hello from 0") * (n - 1)); st.BytesSent != want || st.BytesReceived != want {
			t.Errorf("replica %d: BytesSent=%d BytesReceived=%d, want %d each", i, st.BytesSent, st.BytesReceived, want)
		}
	}
}

// intruderFor starts a host whose key is not in target's cluster but which
// believes it is member 0 of a cluster that contains target as member 1.
func intruderFor(t *testing.T, target *Host) *Host {
	t.Helper()
	key := newTestKey(t)
	members := []Member{{Index: 0, ID: key.id}, {Index: 1, ID: target.ID(), Addr: listenAddr(t, target)}}
	return newTestHost(t, testConfig(t, key, 0, members, 99))
}

func TestNonMemberCannotDeliverReplicaFrames(t *testing.T) {
	t.Run("clients allowed: replica handler refuses", func(t *testing.T) {
		hosts, keys := startCluster(t, 2, func(_ int, cfg *Config) { cfg.ClientsAllowed = true })
		target := hosts[1]
		intruder := intruderFor(t, target)
		intruder.Send(1, []byte("forged"))
		waitFor(t, "the replica handler to refuse the intruder", func() bool { return target.Stats().RejectedPeers >= 1 })

		// A member's frame sent after the refusal is the first one delivered.
		hosts[0].Send(1, []byte("genuine"))
		f := receive(t, replicaFrames(target), "member frame")
		if string(f.Data) != "genuine" || f.FromIndex != 0 || f.From != keys[0].id {
			t.Fatalf("got %q from %s (index %d), want \"genuine\" from member 0", f.Data, f.From, f.FromIndex)
		}
		// The intruder keeps redialing and keeps being refused; nothing of
		// it is ever delivered.
		waitFor(t, "a second refusal", func() bool { return target.Stats().RejectedPeers >= 2 })
		assertNoFrame(t, replicaFrames(target), "after refusing the intruder")
	})
	t.Run("clients not allowed: gater refuses the connection", func(t *testing.T) {
		hosts, _ := startCluster(t, 2, nil)
		target := hosts[1]
		intruder := intruderFor(t, target)
		intruder.Send(1, []byte("forged"))
		waitFor(t, "the gater to refuse the intruder", func() bool { return target.Stats().RejectedPeers >= 2 })
		assertNoFrame(t, replicaFrames(target), "after refusing the intruder")
		if st := intruder.Stats(); st.FramesSent != 0 {
			t.Fatalf("intruder flushed %d frames through a refused connection", st.FramesSent)
		}
		if n := len(target.host.Network().ConnsToPeer(intruder.ID())); n != 0 {
			t.Fatalf("target holds %d connections to the intruder", n)
		}
	})
}

func TestSendQueueFull(t *testing.T) {
	keys := []testKey{newTestKey(t), newTestKey(t)}
	cfg := testConfig(t, keys[0], 0, membersOf(keys), 1)
	cfg.PeerQueueSize = 4
	cfg.MaxFrameSize = 64
	// Member 1 has no address and is not running: its link never opens a
	// stream, so nothing drains its queue.
	h := newTestHost(t, cfg)
	for i := range 4 {
		if !h.Send(1, []byte{byte(i)}) {
			t.Fatalf("Send %d refused with room in the queue", i)
		}
	}
	if h.Send(1, []byte("one too many")) {
		t.Fatal("Send accepted a frame into a full queue")
	}
	h.Broadcast([]byte("also dropped"))
	if st := h.Stats(); st.DroppedQueueFull != 2 {
		t.Fatalf("DroppedQueueFull = %d, want 2", st.DroppedQueueFull)
	}

	if h.Send(0, []byte("to self")) || h.Send(7, []byte("to nobody")) || h.SendToReplica(1, []byte("wrong host kind")) {
		t.Fatal("Send accepted a frame for self, an unknown member, or via the client API")
	}
	if st := h.Stats(); st.DroppedNoRoute != 3 {
		t.Fatalf("DroppedNoRoute = %d, want 3", st.DroppedNoRoute)
	}
	if h.Send(1, make([]byte, 65)) {
		t.Fatal("Send accepted a frame above MaxFrameSize")
	}
	if st := h.Stats(); st.RejectedOversized != 1 || st.DroppedQueueFull != 2 {
		t.Fatalf("RejectedOversized = %d, DroppedQueueFull = %d; want 1 and 2", st.RejectedOversized, st.DroppedQueueFull)
	}
}

// sendUntilReceived sends numbered frames from sender to member to every
// 20ms until one arrives on ch, which it returns.
func sendUntilReceived(t *testing.T, send func([]byte) bool, ch <-chan Frame, what string) Frame {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		send(fmt.Appendf(nil, "probe %d", seq))
		select {
		case f := <-ch:
			return f
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: nothing received within %v", what, waitTimeout)
		}
	}
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	hosts, keys := startCluster(t, 2, nil)
	hosts[0].Send(1, []byte("before"))
	if f := receive(t, replicaFrames(hosts[1]), "before restart"); string(f.Data) != "before" {
		t.Fatalf("got %q, want \"before\"", f.Data)
	}

	addr := listenAddr(t, hosts[1])
	if err := hosts[1].Close(); err != nil {
		t.Fatalf("close replica 1: %v", err)
	}
	members := membersOf(keys)
	members[0].Addr = listenAddr(t, hosts[0])
	cfg := testConfig(t, keys[1], 1, members, 7)
	cfg.ListenAddr = addr.String()
	restarted := newTestHost(t, cfg)

	f := sendUntilReceived(t, func(b []byte) bool { return hosts[0].Send(1, b) }, replicaFrames(restarted), "0 -> restarted 1")
	if f.FromIndex != 0 || f.From != keys[0].id || !bytes.HasPrefix(f.Data, []byte("probe ")) {
		t.Fatalf("restarted replica got %q from %s (index %d)", f.Data, f.From, f.FromIndex)
	}
	f = sendUntilReceived(t, func(b []byte) bool { return restarted.Send(0, b) }, replicaFrames(hosts[0]), "restarted 1 -> 0")
	if f.FromIndex != 1 || f.From != keys[1].id {
		t.Fatalf("replica 0 got %q from %s (index %d), want index 1", f.Data, f.From, f.FromIndex)
	}
}

func TestOversizedInboundFrameClosesStream(t *testing.T) {
	hosts, _ := startCluster(t, 2, func(i int, cfg *Config) {
		if i == 1 {
			cfg.MaxFrameSize = 1024
		}
	})
	hosts[0].Send(1, make([]byte, 4096))
	waitFor(t, "replica 1 to refuse the oversized frame", func() bool { return hosts[1].Stats().RejectedOversized == 1 })
	assertNoFrame(t, replicaFrames(hosts[1]), "after the oversized frame")
	// The sender notices the closed stream, redials, and small frames flow.
	f := sendUntilReceived(t, func(b []byte) bool { return hosts[0].Send(1, b) }, replicaFrames(hosts[1]), "after reconnect")
	if f.FromIndex != 0 || len(f.Data) > 1024 {
		t.Fatalf("got %d bytes from index %d", len(f.Data), f.FromIndex)
	}
}

func TestCloseIsIdempotentAndClosesChannels(t *testing.T) {
	hosts, _ := startCluster(t, 2, nil)
	h := hosts[0]
	if err := h.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, ch := range map[string]<-chan Frame{"replica frames": replicaFrames(h), "client frames": clientFrames(h), "Replies": h.Replies()} {
		if _, ok := <-ch; ok {
			t.Fatalf("%s delivered a frame after Close", name)
		}
	}
	if h.Send(1, []byte("late")) {
		t.Fatal("Send accepted a frame after Close")
	}
}

func TestBackoffGrowsCapsAndJitters(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 1600 * time.Millisecond
	b := newBackoff(lo, hi, &lockedRand{rng: rand.New(rand.NewPCG(1, 2))})
	nominal := lo
	for i := range 10 {
		d := b.next()
		if d < nominal/2 || d > nominal {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, nominal/2, nominal)
		}
		nominal = min(2*nominal, hi)
	}
	b.reset()
	if d := b.next(); d < lo/2 || d > lo {
		t.Fatalf("after reset: delay %v outside [%v, %v]", d, lo/2, lo)
	}

	// The same seed gives the same delays; a different one does not.
	delays := func(seed uint64) []time.Duration {
		b := newBackoff(lo, hi, &lockedRand{rng: rand.New(rand.NewPCG(seed, seed))})
		out := make([]time.Duration, 8)
		for i := range out {
			out[i] = b.next()
		}
		return out
	}
	if a, b := delays(5), delays(5); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("seeded delays differ: %v vs %v", a, b)
	}
	if a, b := delays(5), delays(6); fmt.Sprint(a) == fmt.Sprint(b) {
		t.Fatalf("different seeds gave identical jitter %v", a)
	}
}
