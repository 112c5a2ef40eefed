package p2p

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// testScheduler is a scheduler with small bounds for unit tests.
func testScheduler(t *testing.T, limits InboundLimits) (*scheduler, *counters) {
	t.Helper()
	stats := &counters{}
	return newScheduler(limits, stats, newFaultBook(time.Second, time.Minute, time.Now)), stats
}

func clientID(t *testing.T, i int) peer.ID {
	t.Helper()
	return peer.ID(fmt.Sprintf("client-%d", i))
}

func replicaFrame(index int, size int) Frame {
	return Frame{From: peer.ID(fmt.Sprintf("replica-%d", index)), FromIndex: index, Data: make([]byte, size)}
}

func clientFrame(id peer.ID, size int) Frame {
	return Frame{From: id, FromIndex: -1, Data: make([]byte, size)}
}

func takeAll(s *scheduler) []Frame {
	var out []Frame
	for {
		s.mu.Lock()
		n := len(out)
		out = s.take(out, 64)
		s.mu.Unlock()
		if len(out) == n {
			return out
		}
	}
}

// A replica flooding its queue, and a client key flooding its own, lose
// only their own frames: every frame of the others is queued and served.
func TestFloodingSourceCannotDropAnothersFrames(t *testing.T) {
	s, stats := testScheduler(t, InboundLimits{ReplicaQueueFrames: 100, ClientQueueFrames: 50})
	flooder, calm := clientID(t, 1), clientID(t, 2)
	s.established.add(flooder)
	s.established.add(calm)
	for range 10000 {
		s.push(replicaFrame(1, 10))
		s.push(clientFrame(flooder, 10))
	}
	for i := range 20 {
		if !s.push(replicaFrame(2, 10)) {
			t.Fatalf("replica 2's frame %d refused while replica 1 floods", i)
		}
		if !s.push(clientFrame(calm, 10)) {
			t.Fatalf("calm client's frame %d refused while another key floods", i)
		}
	}
	got := map[string]int{}
	for _, f := range takeAll(s) {
		got[string(f.From)]++
	}
	if got["replica-2"] != 20 || got[string(calm)] != 20 {
		t.Fatalf("served %d of replica 2's and %d of the calm client's 20 frames", got["replica-2"], got[string(calm)])
	}
	if got["replica-1"] != 100 || got[string(flooder)] != 50 {
		t.Fatalf("served %d of the flooding replica's and %d of the flooding key's frames; want their bounds 100, 50", got["replica-1"], got[string(flooder)])
	}
	if d := stats.droppedInbound[ClassReplica].Load(); d != 10000-100 {
		t.Fatalf("replica drops counted %d, want %d", d, 10000-100)
	}
	if d := stats.droppedInbound[ClassClient].Load(); d != 10000-50 {
		t.Fatalf("client drops counted %d, want %d", d, 10000-50)
	}
}

// A queue is bounded in bytes as well as frames.
func TestSourceQueueBoundedInBytes(t *testing.T) {
	s, _ := testScheduler(t, InboundLimits{ClientQueueBytes: 1 << 20})
	id := clientID(t, 1)
	s.established.add(id)
	accepted := 0
	for range 10 {
		if s.push(clientFrame(id, 300<<10)) {
			accepted++
		}
	}
	if accepted != 3 {
		t.Fatalf("accepted %d frames of 300 KiB under a 1 MiB bound, want 3", accepted)
	}
}

// Under a flood from many client keys, replica frames are served first
// (their class's weight), and under a replica flood clients still get a
// share.
func TestReplicaFramesServedUnderClientFlood(t *testing.T) {
	s, _ := testScheduler(t, InboundLimits{})
	for c := range 200 {
		id := clientID(t, c)
		s.established.add(id)
		for range 20 {
			s.push(clientFrame(id, 200))
		}
	}
	for range 10 {
		s.push(replicaFrame(1, 200))
	}
	s.mu.Lock()
	first := s.take(nil, 15)
	s.mu.Unlock()
	replicas := 0
	for _, f := range first {
		if f.FromIndex >= 0 {
			replicas++
		}
	}
	if replicas != 10 {
		t.Fatalf("%d of the 10 replica frames among the first 15 served under a flood from 200 client keys", replicas)
	}

	// The other way round: a replica floods; a client's frames still get
	// one turn in ReplicaWeight+1.
	s, _ = testScheduler(t, InboundLimits{})
	for range 5000 {
		s.push(replicaFrame(3, 200))
	}
	id := clientID(t, 1)
	s.established.add(id)
	for range 10 {
		s.push(clientFrame(id, 200))
	}
	s.mu.Lock()
	first = s.take(nil, 10*(DefaultReplicaWeight+1)+1)
	s.mu.Unlock()
	clients := 0
	for _, f := range first {
		if f.FromIndex < 0 {
			clients++
		}
	}
	if clients != 10 {
		t.Fatalf("%d of the client's 10 frames served among the first %d under a replica flood", clients, len(first))
	}
}

// Deficit round robin shares service by bytes (plus a per-frame cost):
// a source of big frames and a source of small ones, both backlogged, get
// about the same bytes-plus-cost.
func TestDeficitRoundRobinSharesBytes(t *testing.T) {
	s, _ := testScheduler(t, InboundLimits{ClientQueueFrames: 100000, ClientQueueBytes: 1 << 30, ClientTotalBytes: 1 << 30})
	big, small := clientID(t, 1), clientID(t, 2)
	s.established.add(big)
	s.established.add(small)
	for range 200 {
		s.push(clientFrame(big, 32<<10))
	}
	for range 20000 {
		s.push(clientFrame(small, 100))
	}
	served := map[peer.ID]int{}
	s.mu.Lock()
	for range 3000 {
		f := s.take(nil, 1)[0]
		served[f.From] += len(f.Data) + DefaultFrameCost
	}
	s.mu.Unlock()
	ratio := float64(served[big]) / float64(served[small])
	if ratio < 0.8 || ratio > 1.25 {
		t.Fatalf("big source got %d, small source %d cost units: ratio %.2f, want about 1", served[big], served[small], ratio)
	}
}

// Keys not established share one newcomer budget: a thousand fresh keys
// get no more queue than one, while an established key keeps its own.
func TestNewcomersShareOneBudget(t *testing.T) {
	s, stats := testScheduler(t, InboundLimits{NewcomerQueueFrames: 64})
	accepted := 0
	for c := range 1000 {
		if s.push(clientFrame(clientID(t, 1000+c), 10)) {
			accepted++
		}
	}
	if accepted != 64 {
		t.Fatalf("1000 fresh keys queued %d frames, want the shared budget of 64", accepted)
	}
	if d := stats.droppedInbound[ClassNewcomer].Load(); d != 1000-64 {
		t.Fatalf("newcomer drops counted %d, want %d", d, 1000-64)
	}
	known := clientID(t, 1)
	s.established.add(known)
	if !s.push(clientFrame(known, 10)) {
		t.Fatal("an established key's frame was refused while the newcomer budget is full")
	}
	// The established set is bounded: the least recently active key is
	// forgotten first.
	l := newLRUSet(2)
	l.add("a")
	l.add("b")
	l.touch("a")
	l.add("c")
	if !l.touch("a") || l.touch("b") || !l.touch("c") {
		t.Fatal("LRU set did not evict the least recently touched key")
	}
}

// A source reported faulty has its queued and later frames dropped
// unverified until its backoff ends; the backoff doubles while it keeps
// failing.
func TestFaultySourceBackedOff(t *testing.T) {
	now := time.Unix(1000, 0)
	stats := &counters{}
	book := newFaultBook(time.Second, 4*time.Second, func() time.Time { return now })
	s := newScheduler(InboundLimits{}, stats, book)
	h := &Host{sched: s, faulty: book}
	for range 5 {
		s.push(replicaFrame(1, 10))
	}
	bad := replicaFrame(1, 10)
	if period, started := h.ReportFaulty(bad); !started || period != time.Second {
		t.Fatalf("first report: period %v started %v", period, started)
	}
	if _, started := h.ReportFaulty(bad); started {
		t.Fatal("a second report during the backoff started another")
	}
	if s.push(replicaFrame(1, 10)) || !s.push(replicaFrame(2, 10)) {
		t.Fatal("during the backoff the faulty replica's frame was queued, or another's refused")
	}
	if got := takeAll(s); len(got) != 1 || got[0].FromIndex != 2 {
		t.Fatalf("served %d frames; want only replica 2's", len(got))
	}
	if stats.droppedFaulty.Load() != 6 || h.Stats().BackedOffReplicas != 1 {
		t.Fatalf("dropped faulty %d (want 6), backed off %d", stats.droppedFaulty.Load(), h.Stats().BackedOffReplicas)
	}
	now = now.Add(1500 * time.Millisecond) // let back, fails again soon
	if !s.push(replicaFrame(1, 10)) {
		t.Fatal("frame refused after the backoff ended")
	}
	if period, started := h.ReportFaulty(bad); !started || period != 2*time.Second {
		t.Fatalf("repeat offence: period %v started %v, want 2s", period, started)
	}
	now = now.Add(time.Hour)
	if period, _ := h.ReportFaulty(bad); period != time.Second {
		t.Fatalf("after a long good spell the backoff is %v, want the minimum", period)
	}

	// A client key is backed off the same way, whether established or not;
	// other keys are not.
	faultyKey, other := clientID(t, 7), clientID(t, 8)
	s.established.add(faultyKey)
	s.push(clientFrame(faultyKey, 10))
	if _, started := h.ReportFaulty(clientFrame(faultyKey, 10)); !started {
		t.Fatal("client key report started no backoff")
	}
	if s.push(clientFrame(faultyKey, 10)) || !s.push(clientFrame(other, 10)) {
		t.Fatal("during its backoff the faulty key's frame was queued, or another key's refused")
	}
	for _, f := range takeAll(s) {
		if f.From == faultyKey {
			t.Fatal("a frame the faulty key queued before its backoff was still served")
		}
	}
	// A fresh key's frames already in the shared newcomer queue are
	// dropped when taken, once it is backed off.
	fresh := clientID(t, 9)
	s.push(clientFrame(fresh, 10))
	s.push(clientFrame(fresh, 10))
	h.ReportFaulty(clientFrame(fresh, 10))
	if got := takeAll(s); len(got) != 0 {
		t.Fatalf("served %d frames of a backed-off fresh key", len(got))
	}
}

// NextFrames waits for a frame and returns false once the host context
// ends with nothing queued.
func TestSchedulerNextWaitsAndEnds(t *testing.T) {
	s, _ := testScheduler(t, InboundLimits{})
	done := make(chan struct{})
	got := make(chan []Frame, 1)
	go func() {
		frames, _ := s.next(context.Background(), done, nil, 8)
		got <- frames
	}()
	s.push(replicaFrame(1, 3))
	if frames := <-got; len(frames) != 1 {
		t.Fatalf("next returned %d frames", len(frames))
	}
	close(done)
	if frames, ok := s.next(context.Background(), done, nil, 8); ok || len(frames) != 0 {
		t.Fatalf("after done: %d frames, ok %v", len(frames), ok)
	}
}

// The scheduler's cost per frame: push and take, one source of each class.
func BenchmarkSchedulerPushTake(b *testing.B) {
	stats := &counters{}
	s := newScheduler(InboundLimits{}, stats, newFaultBook(time.Second, time.Minute, time.Now))
	ids := make([]peer.ID, 16)
	for i := range ids {
		ids[i] = peer.ID(fmt.Sprintf("client-%d", i))
		s.established.add(ids[i])
	}
	frames := make([]Frame, 0, 64)
	data := make([]byte, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%4 == 0 {
			s.push(Frame{From: "r", FromIndex: i % 3, Data: data})
		} else {
			s.push(Frame{From: ids[i%16], FromIndex: -1, Data: data})
		}
		if i%64 == 63 {
			s.mu.Lock()
			frames = s.take(frames[:0], 64)
			s.mu.Unlock()
		}
	}
}
