package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/wire"
)

// sendLog records which replicas a client sent frames to, and signals
// each send.
type sendLog struct {
	mu    sync.Mutex
	to    []uint32
	sends chan uint32
}

// recordSends makes c's sends go to a sendLog instead of a network.
func recordSends(c *Client) *sendLog {
	l := &sendLog{sends: make(chan uint32, 1024)}
	c.send = func(to uint32, _ []byte) bool {
		l.mu.Lock()
		l.to = append(l.to, to)
		l.mu.Unlock()
		l.sends <- to
		return true
	}
	return l
}

// await waits for n more sends and returns their targets, sorted.
func (l *sendLog) await(t *testing.T, n int) []uint32 {
	t.Helper()
	var got []uint32
	deadline := time.After(testDeadline)
	for len(got) < n {
		select {
		case to := <-l.sends:
			got = append(got, to)
		case <-deadline:
			t.Fatalf("%d of %d sends within %v: %v", len(got), n, testDeadline, got)
		}
	}
	slices.Sort(got)
	return got
}

// invokeAsync runs Invoke on its own goroutine.
func invokeAsync(ctx context.Context, c *Client) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Invoke(ctx, []byte("op"))
		errc <- err
	}()
	return errc
}

// answer makes replicas reply to the oldest outstanding request with
// result in view.
func answer(t *testing.T, c *Client, view uint64, result string, replicas ...int) {
	t.Helper()
	c.mu.Lock()
	number := c.lowest
	c.mu.Unlock()
	for _, from := range replicas {
		c.handleReply(replyFrame(t, from, &wire.Reply{View: view, ClientId: c.id, RequestNumber: number, Replica: uint32(from), Result: []byte(result)}))
	}
}

func awaitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(testDeadline):
		t.Fatalf("Invoke did not return within %v", testDeadline)
		return nil
	}
}

// TestNoHintAsksEveryReplicaAtOnce: a client with no idea of the primary
// and BroadcastWhenUnknown sends its first request to all replicas without waiting for a
// retransmission (RetransmitTimeout is a minute here); once replies named
// a view, the next request goes to that view's primary only.
func TestNoHintAsksEveryReplicaAtOnce(t *testing.T) {
	c := newBenchClient(64)
	c.cfg.BroadcastWhenUnknown = true
	sends := recordSends(c)
	if _, ok := c.Hint(); ok {
		t.Fatal("a new client without Config.Hint claims to know the primary")
	}
	errc := invokeAsync(context.Background(), c)
	if got := sends.await(t, 4); !slices.Equal(got, []uint32{0, 1, 2, 3}) {
		t.Fatalf("first request went to %v, want every replica", got)
	}
	answer(t, c, 6, "X", 0, 3)
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if h, ok := c.Hint(); !ok || h.View != 6 || h.Leader != -1 {
		t.Fatalf("hint after replies in view 6: %+v ok=%v", h, ok)
	}
	errc = invokeAsync(context.Background(), c)
	if got := sends.await(t, 1); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("second request went to %v, want the primary of view 6 (replica 2)", got)
	}
	answer(t, c, 6, "Y", 1, 2)
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if extra := len(sends.sends); extra != 0 {
		t.Fatalf("%d more sends after the primary answered", extra)
	}
}

// TestRememberedHintAsksItsPrimaryThenEveryone: a client started from a
// Hint sends to that view's primary only, and to everyone after
// HintTimeout (not the minute-long RetransmitTimeout) when it is silent.
func TestRememberedHintAsksItsPrimaryThenEveryone(t *testing.T) {
	c := newBenchClient(64)
	c.cfg.HintTimeout = 20 * time.Millisecond
	c.adoptHint(&Hint{View: 5, Leader: 3}) // PBFT (quorum 2): the leader is not trusted
	sends := recordSends(c)
	if h, ok := c.Hint(); !ok || h.View != 5 || h.Leader != -1 {
		t.Fatalf("hint adopted as %+v ok=%v, want view 5, no leader", h, ok)
	}
	errc := invokeAsync(context.Background(), c)
	if got := sends.await(t, 1); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("first request went to %v, want the primary of view 5 (replica 1)", got)
	}
	if got := sends.await(t, 4); !slices.Equal(got, []uint32{0, 1, 2, 3}) {
		t.Fatalf("after the remembered primary stayed silent the request went to %v, want everyone", got)
	}
	answer(t, c, 2, "X", 2, 3)
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	// The replies' view replaces the remembered one, even a lower one
	// (the cluster was rewritten since); then it only rises.
	if h, _ := c.Hint(); h.View != 2 {
		t.Fatalf("hint after replies in view 2 replaced a remembered view 5: %+v", h)
	}
	errc = invokeAsync(context.Background(), c)
	if got := sends.await(t, 1); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("next request went to %v, want the primary of view 2", got)
	}
	answer(t, c, 1, "Y", 2, 3)
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if h, _ := c.Hint(); h.View != 2 {
		t.Fatalf("a late reply in view 1 lowered the view to %+v", h)
	}
}

// TestRememberedRaftLeaderAskedFirst: with ReplyQuorum 1 (Raft) a
// remembered leader is where the first request goes.
func TestRememberedRaftLeaderAskedFirst(t *testing.T) {
	c := newBenchClient(64)
	c.cfg.ReplyQuorum = 1
	c.adoptHint(&Hint{View: 9, Leader: 2})
	sends := recordSends(c)
	errc := invokeAsync(context.Background(), c)
	if got := sends.await(t, 1); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("first request went to %v, want the remembered leader 2", got)
	}
	answer(t, c, 9, "X", 2)
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if h, ok := c.Hint(); !ok || h.Leader != 2 || h.View != 9 {
		t.Fatalf("hint %+v ok=%v, want term 9 leader 2", h, ok)
	}
}

// TestOutcomeClassification: Invoke's errors say whether the operation
// may have taken effect.
func TestOutcomeClassification(t *testing.T) {
	t.Run("timeout after sending is unknown", func(t *testing.T) {
		c := newBenchClient(64)
		recordSends(c)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Invoke(ctx, []byte("op"))
		if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnknownOutcome wrapping the deadline", err)
		}
		if errors.Is(err, ErrRefused) {
			t.Fatalf("a timeout reads as a refusal: %v", err)
		}
	})
	t.Run("f+1 matching refusals are refused", func(t *testing.T) {
		c := newBenchClient(64)
		sends := recordSends(c)
		errc := invokeAsync(context.Background(), c)
		sends.await(t, 1)
		c.mu.Lock()
		number := c.lowest
		c.mu.Unlock()
		for _, from := range []int{1, 2} {
			c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: number, Replica: uint32(from), Error: "too large"}))
		}
		err := awaitErr(t, errc)
		if !errors.Is(err, ErrRefused) || errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("err = %v, want ErrRefused only", err)
		}
	})
	t.Run("close while waiting is unknown", func(t *testing.T) {
		c := newBenchClient(64)
		sends := recordSends(c)
		errc := invokeAsync(context.Background(), c)
		sends.await(t, 1)
		close(c.done) // what Close does to a waiting Invoke
		err := awaitErr(t, errc)
		if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v, want ErrUnknownOutcome and ErrClosed", err)
		}
	})
	t.Run("not sent is not unknown", func(t *testing.T) {
		c := newBenchClient(64)
		sends := recordSends(c)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Invoke(ctx, []byte("op"))
		if err == nil || errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrRefused) {
			t.Fatalf("err = %v for a request never sent, want neither unknown nor refused", err)
		}
		if n := len(sends.sends); n != 0 {
			t.Fatalf("%d frames sent with a cancelled context", n)
		}
	})
}

// TestHintIgnoresLeaderOutsideCluster: a corrupt remembered leader does
// not steer a Raft client outside the cluster.
func TestHintIgnoresLeaderOutsideCluster(t *testing.T) {
	c := newBenchClient(64)
	c.cfg.ReplyQuorum = 1
	c.adoptHint(&Hint{View: 1, Leader: 9})
	if h, ok := c.Hint(); !ok || h.Leader != -1 {
		t.Fatalf("hint %+v ok=%v, want the leader dropped", h, ok)
	}
}

// TestNoHintWithoutBroadcastAsksViewZero: by default a client with no
// idea guesses the primary of view 0, as long-lived clients always did.
func TestNoHintWithoutBroadcastAsksViewZero(t *testing.T) {
	c := newBenchClient(64)
	sends := recordSends(c)
	errc := invokeAsync(context.Background(), c)
	if got := sends.await(t, 1); !slices.Equal(got, []uint32{0}) {
		t.Fatalf("first request went to %v, want replica 0 only", got)
	}
	answer(t, c, 0, "X", 0, 1)
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if extra := len(sends.sends); extra != 0 {
		t.Fatalf("%d more sends before the replies", extra)
	}
}
