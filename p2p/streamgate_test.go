package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A key that opens ClientProtocol streams faster than its stream-opening
// limit has the excess reset unread and counted; another established key
// and a key not yet established are unaffected. The replica's clock is
// frozen, so no bucket refills during the test.
func TestClientStreamLimitRefusesExcessStreams(t *testing.T) {
	const burst, extra = 4, 8
	frozen := time.Unix(1_700_000_000, 0)
	replicas, keys := startCluster(t, 1, func(_ int, cfg *Config) {
		cfg.ClientsAllowed = true
		cfg.Streams = StreamLimits{ClientRate: 1, ClientBurst: burst}
		cfg.Now = func() time.Time { return frozen }
	})
	replica := replicas[0]
	members := membersOf(keys)
	members[0].Addr = listenAddr(t, replica)
	flooder := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 1))
	calm := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 2))
	newcomer := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 3))

	// The flooder's link stream opens while it is a newcomer (the shared
	// bucket); once established it has its own bucket of burst streams.
	if !flooder.SendToReplica(0, []byte("hello")) {
		t.Fatal("flooder's first send refused")
	}
	receive(t, clientFrames(replica), "the flooder's first frame")
	replica.MarkClientEstablished(flooder.ID())
	replica.MarkClientEstablished(calm.ID())

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for i := range burst + extra {
		s, err := flooder.host.NewStream(ctx, members[0].ID, ClientProtocol)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		// A refused stream may still take the write locally; its frame
		// is never read.
		_ = WriteFrame(s, fmt.Appendf(nil, "flood %d", i), DefaultMaxFrameSize)
		if i < burst {
			waitFor(t, fmt.Sprintf("flood frame %d", i), func() bool {
				f := receive(t, clientFrames(replica), "a flood frame")
				return string(f.Data) == fmt.Sprintf("flood %d", i)
			})
		}
	}
	waitFor(t, "the excess streams to be refused", func() bool {
		return replica.Stats().ClientStreamsRefused == extra
	})

	for _, c := range []*Host{calm, newcomer} {
		if !c.SendToReplica(0, []byte("calm")) {
			t.Fatal("calm client's send refused")
		}
		if f := receive(t, clientFrames(replica), "a calm client's frame"); string(f.Data) != "calm" || f.From != c.ID() {
			t.Fatalf("got %q from %s, want \"calm\" from %s", f.Data, f.From, c.ID())
		}
	}
	if got := replica.Stats().ClientStreamsRefused; got != extra {
		t.Fatalf("ClientStreamsRefused = %d after the calm clients, want %d", got, extra)
	}
	assertNoFrame(t, clientFrames(replica), "frames of refused streams")
}

// The gate's buckets: an established key has its own, kept across its
// sessions (nothing here refills it but time); keys not established share
// one; the LRU forgets the least recently used key beyond its bound.
func TestStreamGateBuckets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	established := map[string]bool{"a": true, "b": true, "c": true}
	g := newStreamGate(StreamLimits{ClientRate: 1, ClientBurst: 2, NewcomerRate: 1, NewcomerBurst: 3, Keys: 2},
		func() time.Time { return now }, func(id peer.ID) bool { return established[string(id)] })
	take := func(id string, n int) (allowed int) {
		for range n {
			if g.allow(peer.ID(id)) {
				allowed++
			}
		}
		return allowed
	}
	if got := take("a", 5); got != 2 {
		t.Fatalf("established key a: %d of 5 streams allowed, want its burst 2", got)
	}
	if got := take("b", 1); got != 1 {
		t.Fatal("established key b refused while a is over its limit")
	}
	if got := take("x", 2) + take("y", 2); got != 3 {
		t.Fatalf("keys not established: %d of 4 streams allowed, want the shared burst 3", got)
	}
	if got := take("a", 1); got != 0 {
		t.Fatal("key a's bucket refilled without time passing")
	}
	now = now.Add(time.Second)
	if got := take("a", 2); got != 1 {
		t.Fatalf("key a after 1 s: %d streams allowed, want 1", got)
	}
	// a and b are remembered; c evicts the least recently used, b, whose
	// bucket starts full again when it returns.
	take("c", 1)
	if g.buckets.len() != 2 || g.buckets.has("b") {
		t.Fatalf("remembered %d keys (b: %v), want 2 without b", g.buckets.len(), g.buckets.has("b"))
	}
	if !newStreamGate(StreamLimits{ClientRate: -1}, time.Now, nil).allow("a") {
		t.Fatal("a switched-off gate refused a stream")
	}
}
