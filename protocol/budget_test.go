package protocol

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// sessionRequest builds a request of client key seed in session session,
// with an operation of size bytes.
func sessionRequest(clientSeed byte, session string, number uint64, size int) ClientRequest {
	key := testKey(100 + clientSeed)
	id, err := crypto.ClientID(key.Public().(ed25519.PublicKey), []byte(session))
	if err != nil {
		panic(err)
	}
	req := &wire.Request{ClientId: id, RequestNumber: number, Operation: []byte(strings.Repeat("x", size))}
	payload, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	signer := crypto.NewSigner(key, testCluster)
	return ClientRequest{Signed: &wire.Signed{Payload: payload, Signature: signer.Sign(crypto.DomainClientRequest, payload)}, Request: req}
}

// isolatedPrimary returns a cluster whose primary hears nothing back, so
// everything submitted to it stays pending.
func isolatedPrimary(t *testing.T, tweak func(*Config)) *Replica {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.MaxInFlight = 1
		if tweak != nil {
			tweak(cfg)
		}
	})
	c.drop = func(_, _ uint32, _ Kind) bool { return true }
	return c.replicas[0]
}

func TestSessionsOfOneKeyShareItsBudget(t *testing.T) {
	primary := isolatedPrimary(t, nil)
	accepted := 0
	for s := range 8 {
		for i := range DefaultMaxPendingPerClient {
			err := primary.Submit(sessionRequest(1, string(rune('a'+s)), uint64(i+1), 8))
			switch {
			case err == nil:
				accepted++
			case !errors.Is(err, ErrClientQueueFull):
				t.Fatalf("session %d request %d: %v", s, i, err)
			}
		}
	}
	if accepted != DefaultMaxPendingPerKey {
		t.Fatalf("8 sessions of one key hold %d pending requests, want the per-key bound %d", accepted, DefaultMaxPendingPerKey)
	}
	if err := primary.Submit(sessionRequest(2, "a", 1, 8)); err != nil {
		t.Fatalf("another key's request refused: %v", err)
	}
}

func TestLargeRequestsCountByTheirBytes(t *testing.T) {
	primary := isolatedPrimary(t, nil)
	const size = 1<<20 - 1024 // with its envelope, just under 1 MiB
	accepted := 0
	for i := range 40 {
		err := primary.Submit(sessionRequest(1, "s", uint64(i+1), size))
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, ErrClientQueueFull):
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if want := DefaultMaxPendingBytesPerKey >> 20; accepted != want {
		t.Fatalf("one key holds %d pending 1 MiB requests, want %d (its byte budget)", accepted, want)
	}
	if err := primary.Submit(sessionRequest(2, "s", 1, size)); err != nil {
		t.Fatalf("another key's large request refused: %v", err)
	}
}

func TestTotalPendingBytesAreBounded(t *testing.T) {
	primary := isolatedPrimary(t, func(cfg *Config) { cfg.MaxPendingBytes = 16 << 20 })
	const size = 1<<20 - 1024
	accepted := 0
	for k := range 6 {
		for i := range 8 {
			err := primary.Submit(sessionRequest(byte(k), "s", uint64(i+1), size))
			switch {
			case err == nil:
				accepted++
			case !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrClientQueueFull):
				t.Fatalf("key %d request %d: %v", k, i, err)
			}
		}
	}
	if accepted != 16 {
		t.Fatalf("the replica holds %d pending 1 MiB requests, want 16 (16 MiB in all)", accepted)
	}
}

// A burst of large requests does not fill the pipeline: the primary keeps
// at most MaxLargeInFlightBytes of large requests in flight, and the small
// requests queued behind them are batched meanwhile.
func TestLargeRequestsInFlightAreBounded(t *testing.T) {
	primary := isolatedPrimary(t, func(cfg *Config) { cfg.MaxInFlight = 8 })
	for i := range 8 {
		if err := primary.Submit(sessionRequest(1, "s", uint64(i+1), 1<<20-1024)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if err := primary.Submit(sessionRequest(2, "s", uint64(i+1), 16)); err != nil {
			t.Fatal(err)
		}
	}
	large, small := 0, 0
	for primary.HasReady() {
		for _, m := range primary.Ready().Messages {
			if m.Kind != KindPrePrepare {
				continue
			}
			for _, s := range m.Batch {
				if n := requestSize(s); n > largeRequestBytes {
					large += n
				} else {
					small++
				}
			}
		}
	}
	if limit := primary.Config().MaxLargeInFlightBytes; large > limit || large == 0 {
		t.Fatalf("%d bytes of large requests proposed before any committed; bound %d", large, limit)
	}
	if small != 20 {
		t.Fatalf("%d of the 20 small requests behind the large ones proposed", small)
	}
}

// proposedLarge drains the primary's Ready and counts the large requests
// its PRE-PREPAREs carried, per client id.
func proposedLarge(r *Replica, into map[string]int) {
	for r.HasReady() {
		for _, m := range r.Ready().Messages {
			if m.Kind != KindPrePrepare {
				continue
			}
			for _, s := range m.Batch {
				if requestSize(s) <= largeRequestBytes {
					continue
				}
				var req wire.Request
				if err := proto.Unmarshal(s.Payload, &req); err != nil {
					panic(err)
				}
				into[string(req.ClientId)]++
			}
		}
	}
}

// One key's large requests are paced: once its burst allowance
// (largePaceBurst) is spent its next large request waits, while another
// key's large request is ordered at once, and the waiting one goes after
// the ticks that pay its allowance back.
func TestLargeRequestsArePacedPerKey(t *testing.T) {
	primary := isolatedPrimary(t, func(cfg *Config) {
		cfg.MaxInFlight = 16
		cfg.MaxLargeInFlightBytes = 64 << 20 // only the pace binds here
		cfg.MaxPartialInFlight = 16
	})
	const size = 1<<20 - 1024
	for i := range 8 {
		if err := primary.Submit(sessionRequest(1, "s", uint64(i+1), size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := primary.Submit(sessionRequest(2, "s", 1, size)); err != nil {
		t.Fatal(err)
	}
	one, two := string(sessionRequest(1, "s", 1, 0).Request.ClientId), string(sessionRequest(2, "s", 1, 0).Request.ClientId)
	got := map[string]int{}
	proposedLarge(primary, got)
	// The burst (4 MiB) admits four and a fifth that takes the allowance
	// below zero.
	if got[one] != 5 || got[two] != 1 {
		t.Fatalf("proposed %d of key 1's and %d of key 2's 1 MiB requests before any tick; want 5 and 1", got[one], got[two])
	}
	for range (size + largePaceBytesPerTick - 1) / largePaceBytesPerTick {
		primary.Tick()
		proposedLarge(primary, got)
	}
	if got[one] != 6 {
		t.Fatalf("after the ticks that pay back one request, key 1 has %d proposed; want 6", got[one])
	}
}
