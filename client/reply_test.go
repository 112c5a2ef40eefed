package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// testDeadline bounds every wait on another goroutine in these tests.
const testDeadline = 5 * time.Second

// newTestClient builds a Client for n=4 replicas without a network: just
// the fields begin, end and handleReply use.
func newTestClient(t *testing.T, window uint64) *Client {
	t.Helper()
	var seed [ed25519.SeedSize]byte
	seed[0] = 7
	key := ed25519.NewKeyFromSeed(seed[:])
	c := &Client{
		cfg:         Config{ReplyQuorum: 2, Window: window, Replicas: []p2p.Member{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 3}}},
		id:          key.Public().(ed25519.PublicKey),
		n:           4,
		span:        4,
		member:      []bool{true, true, true, true},
		log:         slog.New(slog.DiscardHandler),
		next:        1,
		outstanding: make(map[uint64]*call),
		done:        make(chan struct{}),
	}
	c.windowFree = sync.NewCond(&c.mu)
	return c
}

func mustBegin(t *testing.T, c *Client) *call {
	t.Helper()
	cl, err := c.begin(context.Background())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	return cl
}

// replyFrame encodes r as a frame authenticated as replica from.
func replyFrame(t *testing.T, from int, r *wire.Reply) p2p.Frame {
	t.Helper()
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatalf("marshal reply: %v", err)
	}
	return p2p.Frame{FromIndex: from, Data: data}
}

// testReply is a Reply from replica `from` (also authenticated as from)
// to c for request number with result.
func (c *Client) testReply(t *testing.T, from int, number uint64, result string) p2p.Frame {
	return replyFrame(t, from, &wire.Reply{
		ClientId: c.id, RequestNumber: number, Replica: uint32(from), Result: []byte(result),
	})
}

func isDone(cl *call) bool {
	select {
	case <-cl.done:
		return true
	default:
		return false
	}
}

func TestOneReplyDoesNotComplete(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	c.handleReply(c.testReply(t, 0, cl.number, "X"))
	if isDone(cl) {
		t.Fatal("one reply completed the call; f+1 = 2 are needed")
	}
}

func TestTwoMatchingRepliesComplete(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	c.handleReply(c.testReply(t, 0, cl.number, "X"))
	c.handleReply(c.testReply(t, 2, cl.number, "X"))
	if !isDone(cl) {
		t.Fatal("two matching replies from distinct replicas did not complete the call")
	}
	if cl.err != nil || string(cl.result) != "X" {
		t.Fatalf("result = %q, err = %v; want X", cl.result, cl.err)
	}
	// A later, different reply does not change the outcome.
	c.handleReply(c.testReply(t, 1, cl.number, "Z"))
	c.handleReply(c.testReply(t, 3, cl.number, "Z"))
	if string(cl.result) != "X" || cl.err != nil {
		t.Fatalf("result changed after completion to %q (err %v)", cl.result, cl.err)
	}
}

func TestEmptyResultCompletes(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	c.handleReply(c.testReply(t, 0, cl.number, ""))
	c.handleReply(c.testReply(t, 1, cl.number, ""))
	if !isDone(cl) || cl.err != nil || len(cl.result) != 0 {
		t.Fatalf("done=%v result=%q err=%v; want an empty result", isDone(cl), cl.result, cl.err)
	}
}

func TestSameReplicaNeverCountsTwice(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	for range 5 {
		c.handleReply(c.testReply(t, 1, cl.number, "X"))
	}
	if isDone(cl) {
		t.Fatal("repeated replies from one replica completed the call")
	}
	// The replica's first reply stands: a second, different one from it
	// does not replace it.
	c.handleReply(c.testReply(t, 1, cl.number, "Y"))
	c.handleReply(c.testReply(t, 2, cl.number, "Y"))
	if isDone(cl) {
		t.Fatalf("replica 1 changed its reply to Y and it counted: result %q", cl.result)
	}
	c.handleReply(c.testReply(t, 3, cl.number, "X"))
	if !isDone(cl) || string(cl.result) != "X" {
		t.Fatalf("done=%v result=%q; want X from replicas 1 and 3", isDone(cl), cl.result)
	}
}

func TestReplicaFieldMustMatchAuthenticatedSender(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	// Replica 0 sends a reply claiming to be replica 1; it must not count
	// at all, neither for replica 1 nor for replica 0.
	c.handleReply(replyFrame(t, 0, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: 1, Result: []byte("X")}))
	c.handleReply(c.testReply(t, 2, cl.number, "X"))
	if isDone(cl) {
		t.Fatal("a reply whose Replica field differs from the authenticated sender counted")
	}
	// Replica 0's genuine reply still counts: the lie did not take its slot.
	c.handleReply(c.testReply(t, 0, cl.number, "X"))
	if !isDone(cl) || string(cl.result) != "X" {
		t.Fatalf("done=%v result=%q; replica 0's genuine reply should complete the call", isDone(cl), cl.result)
	}
}

func TestRepliesFromOutsideTheClusterIgnored(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	for _, from := range []int{-1, 4, 100} {
		c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: uint32(from), Result: []byte("X")}))
	}
	c.handleReply(p2p.Frame{FromIndex: 0, Data: []byte{0xff, 0xff, 0xff}}) // malformed
	c.handleReply(c.testReply(t, 0, cl.number, "X"))
	if isDone(cl) {
		t.Fatal("replies from non-members or malformed frames counted towards the quorum")
	}
}

func TestReplyForAnotherClientIgnored(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	other := bytes.Repeat([]byte{9}, ed25519.PublicKeySize)
	for from := range 4 {
		c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: other, RequestNumber: cl.number, Replica: uint32(from), Result: []byte("X")}))
	}
	if isDone(cl) {
		t.Fatal("replies addressed to another client completed the call")
	}
	// Those replies did not occupy the replicas' slots either.
	c.handleReply(c.testReply(t, 0, cl.number, "Y"))
	c.handleReply(c.testReply(t, 1, cl.number, "Y"))
	if !isDone(cl) || string(cl.result) != "Y" {
		t.Fatalf("done=%v result=%q; want Y", isDone(cl), cl.result)
	}
}

func TestReplyForUnknownRequestIgnored(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	c.handleReply(c.testReply(t, 0, cl.number+1, "X"))
	c.handleReply(c.testReply(t, 1, cl.number+1, "X"))
	if isDone(cl) {
		t.Fatal("replies for another request number completed the call")
	}
}

func TestConflictingRepliesResultNeedsDistinctMatches(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	c.handleReply(c.testReply(t, 1, cl.number, "X"))
	c.handleReply(c.testReply(t, 2, cl.number, "Y"))
	if isDone(cl) {
		t.Fatalf("two conflicting replies completed the call with %q", cl.result)
	}
	c.handleReply(c.testReply(t, 3, cl.number, "Y"))
	if !isDone(cl) || cl.err != nil || string(cl.result) != "Y" {
		t.Fatalf("done=%v result=%q err=%v; want Y (replicas 2 and 3)", isDone(cl), cl.result, cl.err)
	}
	// Replica 0 agreeing with X afterwards changes nothing.
	c.handleReply(c.testReply(t, 0, cl.number, "X"))
	if string(cl.result) != "Y" {
		t.Fatalf("result changed to %q", cl.result)
	}
}

func TestMatchingErrorRepliesEndCallWithError(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	refuse := func(from int, msg string) p2p.Frame {
		return replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: uint32(from), Error: msg})
	}
	c.handleReply(refuse(0, "request too large"))
	if isDone(cl) {
		t.Fatal("one refusal ended the call")
	}
	// A refusal with a different message does not match it.
	c.handleReply(refuse(1, "something else"))
	if isDone(cl) {
		t.Fatal("two different refusals ended the call")
	}
	c.handleReply(refuse(2, "request too large"))
	if !isDone(cl) {
		t.Fatal("two matching refusals did not end the call")
	}
	if cl.err == nil || cl.result != nil {
		t.Fatalf("result=%q err=%v; want an error", cl.result, cl.err)
	}
	if !strings.Contains(cl.err.Error(), "request too large") {
		t.Fatalf("error %q does not carry the replicas' refusal", cl.err)
	}
}

func TestErrorAndResultRepliesDoNotMatch(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	// A result that spells like an error outcome must not match an error.
	c.handleReply(replyFrame(t, 0, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: 0, Error: "x"}))
	c.handleReply(c.testReply(t, 1, cl.number, "error:x"))
	c.handleReply(replyFrame(t, 2, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: 2, Result: []byte("x")}))
	if isDone(cl) {
		t.Fatalf("an error and results matched each other: result=%q err=%v", cl.result, cl.err)
	}
}

func TestViewLearnedIsQuorumthHighest(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	withView := func(from int, view uint64, result string) p2p.Frame {
		return replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: uint32(from), View: view, Result: []byte(result)})
	}
	// A liar claims view 1000 with the correct result; another replica
	// with a wrong result claims view 500.
	c.handleReply(withView(3, 1000, "X"))
	c.handleReply(withView(2, 500, "W"))
	c.handleReply(withView(1, 5, "X"))
	if !isDone(cl) {
		t.Fatal("call not complete")
	}
	c.mu.Lock()
	view := c.view
	c.mu.Unlock()
	if view != 5 {
		t.Fatalf("client view = %d; want 5 (the 2nd highest among matching replies 1000 and 5)", view)
	}

	// With three matching replies the second highest wins.
	cl2 := mustBegin(t, c)
	c.handleReply(replyFrame(t, 0, &wire.Reply{ClientId: c.id, RequestNumber: cl2.number, Replica: 0, View: 9, Result: []byte("A")}))
	c.handleReply(replyFrame(t, 1, &wire.Reply{ClientId: c.id, RequestNumber: cl2.number, Replica: 1, View: 7, Result: []byte("B")}))
	c.handleReply(replyFrame(t, 2, &wire.Reply{ClientId: c.id, RequestNumber: cl2.number, Replica: 2, View: 8, Result: []byte("A")}))
	c.mu.Lock()
	view = c.view
	c.mu.Unlock()
	if view != 8 {
		t.Fatalf("client view = %d; want 8", view)
	}

	// The view never moves backwards.
	cl3 := mustBegin(t, c)
	c.handleReply(replyFrame(t, 0, &wire.Reply{ClientId: c.id, RequestNumber: cl3.number, Replica: 0, View: 1, Result: []byte("A")}))
	c.handleReply(replyFrame(t, 1, &wire.Reply{ClientId: c.id, RequestNumber: cl3.number, Replica: 1, View: 2, Result: []byte("A")}))
	c.mu.Lock()
	view = c.view
	c.mu.Unlock()
	if view != 8 {
		t.Fatalf("client view moved back to %d; want 8", view)
	}
}

// beginAsync runs begin in a goroutine and delivers its outcome.
type beginResult struct {
	cl  *call
	err error
}

func beginAsync(ctx context.Context, c *Client) <-chan beginResult {
	ch := make(chan beginResult, 1)
	go func() {
		cl, err := c.begin(ctx)
		ch <- beginResult{cl, err}
	}()
	return ch
}

// assertStillBlocked checks begin has not returned within a short grace
// period. It cannot fail spuriously: a blocked begin stays blocked.
func assertStillBlocked(t *testing.T, ch <-chan beginResult, why string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("begin returned (number %v, err %v) %s", r.cl, r.err, why)
	case <-time.After(50 * time.Millisecond):
	}
}

func awaitBegin(t *testing.T, ch <-chan beginResult) beginResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testDeadline):
		t.Fatal("begin still blocked after the deadline")
		return beginResult{}
	}
}

func TestWindowBlocksUntilOldestEnds(t *testing.T) {
	c := newTestClient(t, 4)
	calls := make([]*call, 4)
	for i := range calls {
		calls[i] = mustBegin(t, c)
		if calls[i].number != uint64(i+1) {
			t.Fatalf("call %d has number %d", i, calls[i].number)
		}
	}
	ch := beginAsync(context.Background(), c)
	assertStillBlocked(t, ch, "with 4 requests outstanding in a window of 4")

	// Ending a call that is not the oldest does not open the window.
	c.end(calls[2])
	assertStillBlocked(t, ch, "after a non-oldest call ended")

	c.end(calls[0])
	r := awaitBegin(t, ch)
	if r.err != nil {
		t.Fatalf("begin: %v", r.err)
	}
	if r.cl.number != 5 {
		t.Fatalf("unblocked begin got number %d; want 5", r.cl.number)
	}
	c.mu.Lock()
	_, ok := c.outstanding[5]
	c.mu.Unlock()
	if !ok {
		t.Fatal("new call not registered as outstanding")
	}
}

func TestBeginReturnsWhenContextCancelledWhileWaiting(t *testing.T) {
	c := newTestClient(t, 4)
	for range 4 {
		mustBegin(t, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := beginAsync(ctx, c)
	assertStillBlocked(t, ch, "with a full window")
	cancel()
	r := awaitBegin(t, ch)
	if r.err == nil || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("begin after cancel: call %v, err %v; want context.Canceled", r.cl, r.err)
	}
	c.mu.Lock()
	n := len(c.outstanding)
	next := c.next
	c.mu.Unlock()
	if n != 4 || next != 5 {
		t.Fatalf("cancelled begin changed state: %d outstanding, next %d", n, next)
	}
}

func TestBeginWithCancelledContextFailsAtOnce(t *testing.T) {
	c := newTestClient(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if cl, err := c.begin(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("begin with a cancelled context: call %v, err %v", cl, err)
	}
}

func TestBeginReturnsErrClosedWhenClosedWhileWaiting(t *testing.T) {
	c := newTestClient(t, 4)
	for range 4 {
		mustBegin(t, c)
	}
	ch := beginAsync(context.Background(), c)
	assertStillBlocked(t, ch, "with a full window")
	// What Close does to the client's state, without a host.
	c.mu.Lock()
	c.closed = true
	c.windowFree.Broadcast()
	c.mu.Unlock()
	if r := awaitBegin(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("begin after close: %v; want ErrClosed", r.err)
	}
}

// replyFrameRaw wraps raw bytes as a frame from replica from.
func replyFrameRaw(from int, data []byte) p2p.Frame { return p2p.Frame{FromIndex: from, Data: data} }
