package client

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p"
)

// newBenchClient builds a Client for n=4 replicas (ReplyQuorum 2) without
// a network: sends go to the send hook, replies to handleReply directly.
func newBenchClient(window uint64) *Client {
	var seed [ed25519.SeedSize]byte
	seed[0] = 11
	key := ed25519.NewKeyFromSeed(seed[:])
	c := &Client{
		cfg: Config{
			ReplyQuorum:       2,
			Window:            window,
			RetransmitTimeout: time.Minute,
			HintTimeout:       time.Minute,
			Replicas:          make([]p2p.Member, 4),
		},
		signer:      crypto.NewSigner(key, "bench"),
		n:           4,
		span:        4,
		member:      []bool{true, true, true, true},
		log:         slog.New(slog.DiscardHandler),
		next:        1,
		outstanding: make(map[uint64]*call),
		done:        make(chan struct{}),
		leader:      -1,
		send:        func(uint32, []byte) bool { return true },
	}
	for i := range c.cfg.Replicas {
		c.cfg.Replicas[i].Index = uint32(i)
	}
	c.id = c.signer.Public()
	c.windowFree = sync.NewCond(&c.mu)
	return c
}

// frameRequestNumber extracts the request number from an encoded
// ClientFrame{request: Signed{payload: Request}} without the proto
// runtime, so the fake replicas cost little next to the client.
func frameRequestNumber(frame []byte) (uint64, bool) {
	field := func(b []byte, want protowire.Number) ([]byte, uint64, bool) {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return nil, 0, false
			}
			b = b[n:]
			switch {
			case num == want && typ == protowire.BytesType:
				v, m := protowire.ConsumeBytes(b)
				return v, 0, m >= 0
			case num == want && typ == protowire.VarintType:
				v, m := protowire.ConsumeVarint(b)
				return nil, v, m >= 0
			}
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return nil, 0, false
			}
			b = b[m:]
		}
		return nil, 0, false
	}
	signed, _, ok := field(frame, 1)
	if !ok {
		return 0, false
	}
	payload, _, ok := field(signed, 1)
	if !ok {
		return 0, false
	}
	_, number, ok := field(payload, 2)
	return number, ok
}

// appendReply encodes a wire.Reply by hand (fields in proto order).
func appendReply(b []byte, view uint64, clientID []byte, number uint64, replica uint32, result []byte) []byte {
	if view != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, view)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, clientID)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, number)
	if replica != 0 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(replica))
	}
	if len(result) > 0 {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, result)
	}
	return b
}

// startFakeReplicas makes every request the client sends answered by all
// four replicas, in index order, on one goroutine like one replica's reader. The
// returned function stops them.
func startFakeReplicas(tb testing.TB, c *Client) func() {
	reqs := make(chan uint64, 1024)
	c.send = func(_ uint32, frame []byte) bool {
		number, ok := frameRequestNumber(frame)
		if !ok {
			tb.Errorf("fake replica: undecodable frame")
			return false
		}
		reqs <- number
		return true
	}
	result := []byte("ok")
	var wg sync.WaitGroup
	wg.Go(func() {
		for number := range reqs {
			for i := range c.n {
				data := appendReply(make([]byte, 0, 64), 0, c.id, number, uint32(i), result)
				c.handleReply(p2p.Frame{FromIndex: i, Data: data})
			}
		}
	})
	return func() {
		close(reqs)
		wg.Wait()
	}
}

// BenchmarkInvoke runs Invoke from 32 goroutines (16 per core on 2 cores)
// against four fake replicas that answer at once. It includes signing.
func BenchmarkInvoke(b *testing.B) {
	c := newBenchClient(64)
	stop := startFakeReplicas(b, c)
	defer stop()
	op := []byte("put k v")
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			res, err := c.Invoke(ctx, op)
			if err != nil || string(res) != "ok" {
				b.Errorf("Invoke = %q, %v", res, err)
				return
			}
		}
	})
}

// BenchmarkFrame is the encoding and signing of one request.
func BenchmarkFrame(b *testing.B) {
	c := newBenchClient(64)
	op := []byte("put k v")
	b.ReportAllocs()
	for i := range b.N {
		c.frame(uint64(i+1), op, requestFlags{})
	}
}

// BenchmarkBeginEndSliding keeps 32 calls outstanding and each iteration
// ends the oldest and begins a new one, as a steady stream of Invokes does.
func BenchmarkBeginEndSliding(b *testing.B) {
	c := newBenchClient(64)
	ctx := context.Background()
	const depth = 32
	ring := make([]*call, depth)
	for i := range ring {
		cl, err := c.begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ring[i] = cl
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c.end(ring[i%depth])
		cl, err := c.begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ring[i%depth] = cl
	}
}

// BenchmarkBeginEndParallel runs begin and end from 32 goroutines.
func BenchmarkBeginEndParallel(b *testing.B) {
	c := newBenchClient(64)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			cl, err := c.begin(ctx)
			if err != nil {
				b.Errorf("begin: %v", err)
				return
			}
			c.end(cl)
		}
	})
}

// BenchmarkHandleReplies is one call's four replies: two complete it, two
// arrive late. It includes begin and end.
func BenchmarkHandleReplies(b *testing.B) {
	c := newBenchClient(64)
	ctx := context.Background()
	frames := make([]p2p.Frame, c.n)
	for i := range frames {
		frames[i] = p2p.Frame{FromIndex: i, Data: appendReply(nil, 3, c.id, 1, uint32(i), []byte("result-value"))}
	}
	b.ReportAllocs()
	for range b.N {
		cl, err := c.begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range frames {
			c.handleReply(f)
		}
		if cl.result == nil {
			b.Fatal("call not complete")
		}
		c.end(cl)
		c.mu.Lock()
		c.next = 1 // reuse the prebuilt frames
		c.mu.Unlock()
	}
}
