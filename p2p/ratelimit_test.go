package p2p

import (
	"fmt"
	"testing"
	"time"
)

// A client over its rate limit has its frames dropped before they reach
// the replica, and the drops are counted; another client is unaffected.
func TestClientRateLimitDropsExcessFrames(t *testing.T) {
	const limit, burst, sent = 20, 5, 100
	replicas, keys := startCluster(t, 1, func(_ int, cfg *Config) {
		cfg.ClientsAllowed = true
		cfg.ClientRateLimit, cfg.ClientRateBurst = limit, burst
	})
	members := membersOf(keys)
	members[0].Addr = listenAddr(t, replicas[0])
	flooder := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 1))
	calm := newTestHost(t, testConfig(t, newTestKey(t), -1, members, 2))

	start := time.Now()
	for i := range sent {
		if !flooder.SendToReplica(0, fmt.Appendf(nil, "flood %d", i)) {
			t.Fatalf("send %d refused by the client's own queue", i)
		}
	}
	waitFor(t, "the flood to be read", func() bool {
		return replicas[0].Stats().RateLimited+uint64(len(clientFrames(replicas[0]))) >= sent
	})
	elapsed := time.Since(start)
	// Every frame is accounted for: the delivered ones wait in the channel.
	delivered := 0
	for len(clientFrames(replicas[0])) > 0 {
		<-clientFrames(replicas[0])
		delivered++
	}
	st := replicas[0].Stats()
	// The bucket holds burst tokens and refills at limit per second.
	maxAllowed := burst + int(limit*elapsed.Seconds()) + 1
	if delivered > maxAllowed || delivered < 1 {
		t.Fatalf("delivered %d of %d frames in %v; the limit allows 1..%d", delivered, sent, elapsed, maxAllowed)
	}
	if st.RateLimited != uint64(sent-delivered) {
		t.Fatalf("RateLimited = %d, want %d (sent %d, delivered %d)", st.RateLimited, sent-delivered, sent, delivered)
	}
	// Another client has its own bucket.
	if !calm.SendToReplica(0, []byte("calm")) {
		t.Fatal("calm client's send refused")
	}
	if f := receive(t, clientFrames(replicas[0]), "calm client's frame"); string(f.Data) != "calm" {
		t.Fatalf("got %q from the calm client", f.Data)
	}
}
