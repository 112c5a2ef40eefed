package p2p

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"testing"
)

// A writer woken by the first frame of a burst yields before it drains
// the queue, so the frames its producer queues right after share the
// write. With one processor the producer, runnable when the writer takes
// the first frame, runs only if the writer yields: the test fails when
// drainBatch does not.
//
// Other goroutines of the test binary may take the yield instead (the
// race detector's, a parallel test's), so the scenario runs up to five
// times and must drain the whole burst in one of them; without the yield
// the producer never runs before the drain and no attempt does.
func TestDrainBatchYieldsToTheBurstsProducer(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const burst = 10
	var got []int
	for range 5 {
		batch := drainOneBurst(t, burst)
		if len(batch) == burst {
			for i, f := range batch {
				if want := fmt.Sprintf("frame %d", i); string(f) != want {
					t.Fatalf("frame %d of the batch is %q, want %q", i, f, want)
				}
			}
			return
		}
		got = append(got, len(batch))
	}
	t.Fatalf("one wakeup drained %v frames in five attempts, want the burst of %d once", got, burst)
}

// drainOneBurst queues a frame, starts a producer of burst-1 more, and
// returns what one writer wakeup drains.
func drainOneBurst(t *testing.T, burst int) [][]byte {
	t.Helper()
	q := newFrameQueue(64, 0)
	if !q.push([]byte("frame 0")) {
		t.Fatal("push refused into an empty queue")
	}
	done := make(chan struct{})
	go func() { // the producer: runnable, not yet run
		defer close(done)
		for i := 1; i < burst; i++ {
			q.push(fmt.Appendf(nil, "frame %d", i))
		}
	}()
	first := <-q.frames
	q.taken(first)
	batch := drainBatch([][]byte{first}, q)
	<-done
	return batch
}

// A drained batch is bounded by about writeBufferSize bytes (what is
// left stays queued, in order, with its bytes still counted), and the
// frames of one write keep their boundaries on the stream.
func TestDrainBatchBoundedAndFramesKeepBoundaries(t *testing.T) {
	const size = writeBufferSize / 4
	q := newFrameQueue(64, 64*size)
	for i := range 10 {
		if !q.push(bytes.Repeat([]byte{byte(i)}, size)) {
			t.Fatalf("push %d refused", i)
		}
	}
	first := <-q.frames
	q.taken(first)
	batch := drainBatch([][]byte{first}, q)
	if len(batch) != 4 {
		t.Fatalf("drained %d frames of %d bytes, want 4 (writeBufferSize %d)", len(batch), size, writeBufferSize)
	}
	if got := q.bytes.Load(); got != 6*size {
		t.Fatalf("queue holds %d bytes after the drain, want %d", got, 6*size)
	}
	if next := <-q.frames; next[0] != 4 {
		t.Fatalf("the next queued frame is frame %d, want 4", next[0])
	}
	var stream bytes.Buffer
	w := bufio.NewWriterSize(&stream, writeBufferSize)
	for _, f := range batch {
		if err := WriteFrame(w, f, DefaultMaxFrameSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(&stream)
	for i := range batch {
		f, err := ReadFrame(r, DefaultMaxFrameSize)
		if err != nil || len(f) != size || f[0] != byte(i) || f[size-1] != byte(i) {
			t.Fatalf("frame %d read back as %d bytes (first %v), err %v", i, len(f), f[:min(1, len(f))], err)
		}
	}
}
