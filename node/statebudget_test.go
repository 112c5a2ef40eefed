package node

import (
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

func TestStateChunkRequestsAreBoundedPerReplica(t *testing.T) {
	b := newChunkBudget()
	now := time.Unix(1000, 0)
	answered := 0
	// A flood of 1000 chunk requests from replica 3 in one instant, each
	// answered with a full chunk.
	for i := range 1000 {
		r := StateRequest{From: 3, Req: &wire.StateRequest{Sequence: 128, StartKey: []byte{byte(i)}}}
		if b.admit(r, now) {
			answered++
			b.charge(3, StateChunkBytes)
		}
	}
	if answered*StateChunkBytes > stateServeBytesPerSecond+StateChunkBytes {
		t.Fatalf("%d chunks answered in one instant; budget %d bytes per second", answered, stateServeBytesPerSecond)
	}
	// Replica 2's transfer of a few MiB is untouched by replica 3's flood.
	for i := range 4 {
		if !b.admit(StateRequest{From: 2, Req: &wire.StateRequest{Sequence: 128}}, now) {
			t.Fatalf("replica 2's chunk request %d deferred during replica 3's flood", i)
		}
		b.charge(2, StateChunkBytes)
	}
	// The flooder's latest request waits for its bucket, and is answered
	// once it refills; one at most is kept.
	if due := b.due(now); len(due) != 0 {
		t.Fatalf("%d deferred requests answered before the bucket refilled", len(due))
	}
	due := b.due(now.Add(2 * time.Second))
	if len(due) != 1 || due[0].Req.StartKey[0] != byte(999%256) {
		t.Fatalf("after the refill: %d deferred requests answered, want the latest one", len(due))
	}
}

// TestAWindowStaysWithinTheBudget: requests for windows of many large
// chunks from one replica in one instant are answered up to the byte
// budget (plus the one chunk that overdraws it), and the rest of the
// window that overdrew it is deferred, not dropped: once the bucket
// refills it continues where it stopped.
func TestAWindowStaysWithinTheBudget(t *testing.T) {
	b := newChunkBudget()
	now := time.Unix(1000, 0)
	const size = StateChunkBytes * 3 / 2 // a chunk and its frame can exceed StateChunkBytes
	sent := 0
	answer := func(r StateRequest) (int, *wire.StateChunk) {
		sent++
		return size, &wire.StateChunk{Sequence: r.Req.Sequence, StartKey: r.Req.StartKey,
			NextKey: []byte{r.Req.GetStartKey()[0] + 1}}
	}
	deferred := false
	for range 100 {
		r := StateRequest{From: 3, Req: &wire.StateRequest{Sequence: 128, StartKey: []byte{0}, Chunks: 1000}}
		if b.admit(r, now) && b.window(r, now, answer) {
			deferred = true
			break
		}
	}
	if sent*size > stateServeBytesPerSecond+size || !deferred {
		t.Fatalf("%d chunks sent in one instant (deferred %v); budget %d bytes per second", sent, deferred, stateServeBytesPerSecond)
	}
	due := b.due(now.Add(2 * time.Second))
	if len(due) != 1 || due[0].Req.GetChunks() >= statetransfer.MaxChunksPerRequest || due[0].Req.StartKey[0] == 0 {
		t.Fatalf("deferred %v, want the rest of one window", due)
	}
}

// TestChunkServerDefersAndRetries: a flood from one replica is answered
// up to its budget and the rest deferred (Serve false), RetryC is armed
// only while something is deferred, and Retry answers the latest deferred
// request once the bucket has refilled; another replica is served all
// along.
func TestChunkServerDefersAndRetries(t *testing.T) {
	s := NewChunkServer()
	defer s.Stop()
	if s.RetryC() != nil {
		t.Fatal("retry armed with nothing deferred")
	}
	now := time.Unix(1000, 0)
	answered := map[uint32]int{}
	answer := func(r StateRequest) (int, *wire.StateChunk) {
		answered[r.From]++
		return StateChunkBytes, &wire.StateChunk{Sequence: r.Req.Sequence, StartKey: r.Req.StartKey}
	}
	refused := 0
	for i := range 200 {
		if !s.Serve(StateRequest{From: 3, Req: &wire.StateRequest{Sequence: 64, StartKey: []byte{byte(i)}}}, now, answer) {
			refused++
		}
	}
	if answered[3]*StateChunkBytes > stateServeBytesPerSecond+StateChunkBytes || refused == 0 {
		t.Fatalf("flood: %d chunks answered, %d refused; budget %d bytes a second", answered[3], refused, stateServeBytesPerSecond)
	}
	if !s.Serve(StateRequest{From: 2, Req: &wire.StateRequest{Sequence: 64}}, now, answer) || answered[2] != 1 {
		t.Fatal("replica 2's request was not answered during replica 3's flood")
	}
	if s.RetryC() == nil {
		t.Fatal("retry not armed with a request deferred")
	}
	before := answered[3]
	if again := s.Retry(now.Add(2*time.Second), answer); again != 0 || answered[3] != before+1 {
		t.Fatalf("retry: %d deferred again, %d answered; want the latest request answered", again, answered[3]-before)
	}
	if s.RetryC() != nil {
		t.Fatal("retry still armed with nothing deferred")
	}
}
