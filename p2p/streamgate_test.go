package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"
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
