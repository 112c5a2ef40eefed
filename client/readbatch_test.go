package client

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// newRaftReadClient is a Raft-mode client (ReplyQuorum 1) of 4 replicas
// whose leader is replica 0, with no network: the frames it sends go to
// the returned channel, and timeouts are far beyond the tests' waits.
func newRaftReadClient(t *testing.T) (*Client, chan []byte) {
	t.Helper()
	c := newBenchClient(64)
	c.cfg.ReplyQuorum, c.crashFaults = 1, true
	c.cfg.ReadTimeout = time.Minute
	c.known, c.confirmed, c.leader = true, true, 0
	if err := defaultReadConfig(&c.cfg, c.n); err != nil {
		t.Fatal(err)
	}
	frames := make(chan []byte, 64)
	c.send = func(_ uint32, frame []byte) bool {
		frames <- frame
		return true
	}
	return c, frames
}

// queueReadsHeld starts n reads ("get kI") while a flush is marked in
// progress, so none is sent until flushHeld, and waits until all n are
// queued. It returns each read's outcome channel.
func queueReadsHeld(t *testing.T, c *Client, n int) []chan string {
	t.Helper()
	c.mu.Lock()
	c.reads.flushing = true
	c.mu.Unlock()
	outs := make([]chan string, n)
	for i := range outs {
		outs[i] = make(chan string, 1)
		go func() {
			r, err := c.Read(context.Background(), fmt.Appendf(nil, "get k%d", i))
			if err != nil {
				outs[i] <- "error: " + err.Error()
				return
			}
			outs[i] <- string(r)
		}()
	}
	deadline := time.Now().Add(testDeadline)
	for {
		c.mu.Lock()
		queued := len(c.reads.queuedCalls)
		c.mu.Unlock()
		if queued == n {
			return outs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reads queued within %v", queued, n, testDeadline)
		}
		time.Sleep(time.Millisecond)
	}
}

// flushHeld sends what queueReadsHeld queued, as the flusher would.
func flushHeld(c *Client) {
	c.mu.Lock()
	c.reads.flushing = false
	frame, calls := c.takeQueuedLocked()
	c.mu.Unlock()
	c.sendReadBatch(frame, calls)
}

// nextReadBatch decodes the next frame the client sends as a ReadBatch.
func nextReadBatch(t *testing.T, frames chan []byte) *wire.ReadBatch {
	t.Helper()
	select {
	case frame := <-frames:
		var f wire.ClientFrame
		if err := proto.Unmarshal(frame, &f); err != nil || f.GetReads() == nil {
			t.Fatalf("client sent %x, not a ReadBatch (%v)", frame, err)
		}
		return f.GetReads()
	case <-time.After(testDeadline):
		t.Fatalf("nothing sent within %v", testDeadline)
		return nil
	}
}

// Reads outstanding together go in one ReadBatch frame, and one reply with
// read_answers answers each read with its own result.
func TestReadsShareOneFrameAndOneReply(t *testing.T) {
	c, frames := newRaftReadClient(t)
	const n = 10
	outs := queueReadsHeld(t, c, n)
	flushHeld(c)
	b := nextReadBatch(t, frames)
	if !bytes.Equal(b.GetClientId(), c.id) || len(b.GetReads()) != n {
		t.Fatalf("batch of client %x with %d reads, want %x with %d", b.GetClientId(), len(b.GetReads()), c.id, n)
	}
	env := &wire.Reply{ClientId: c.id, Replica: 0, ReadOnly: true, LeaderHint: 1}
	ops := make(map[string]bool)
	for _, it := range b.GetReads() {
		ops[string(it.GetOperation())] = true
		env.ReadAnswers = append(env.ReadAnswers, &wire.ReadAnswer{RequestNumber: it.GetRequestNumber(), Result: append([]byte("value of "), it.GetOperation()...)})
	}
	if len(ops) != n {
		t.Fatalf("batch holds %d distinct operations, want %d", len(ops), n)
	}
	c.handleReply(replyFrame(t, 0, env))
	for i, out := range outs {
		select {
		case got := <-out:
			if want := fmt.Sprintf("value of get k%d", i); got != want {
				t.Errorf("read %d returned %q, want %q", i, got, want)
			}
		case <-time.After(testDeadline):
			t.Fatalf("read %d not answered within %v", i, testDeadline)
		}
	}
	if got := c.ReadCounts(); got.Fast != n || got.Fallback != 0 {
		t.Errorf("read counts %+v, want %d fast", got, n)
	}
}

// Answers count only in a read-only reply to this client, of at most
// wire.MaxReadBatch answers; the others are dropped and the reads wait.
func TestReadAnswersRefusedUnlessWellFormed(t *testing.T) {
	c, frames := newRaftReadClient(t)
	outs := queueReadsHeld(t, c, 1)
	flushHeld(c)
	number := nextReadBatch(t, frames).GetReads()[0].GetRequestNumber()
	answers := func(k int, result string) []*wire.ReadAnswer {
		as := []*wire.ReadAnswer{{RequestNumber: number, Result: []byte(result)}}
		for i := 1; i < k; i++ {
			as = append(as, &wire.ReadAnswer{RequestNumber: number + uint64(i)})
		}
		return as
	}
	for name, r := range map[string]*wire.Reply{
		"too many answers": {ClientId: c.id, ReadOnly: true, ReadAnswers: answers(wire.MaxReadBatch+1, "bad")},
		"not read-only":    {ClientId: c.id, ReadAnswers: answers(2, "bad")},
		"another client":   {ClientId: []byte("someone else"), ReadOnly: true, ReadAnswers: answers(2, "bad")},
	} {
		c.handleReply(replyFrame(t, 0, r))
		c.mu.Lock()
		cl := c.reads.calls[number]
		answered := cl == nil || cl.result != nil || cl.err != nil
		c.mu.Unlock()
		if answered {
			t.Fatalf("%s: the read was answered", name)
		}
	}
	c.handleReply(replyFrame(t, 0, &wire.Reply{ClientId: c.id, ReadOnly: true, ReadAnswers: answers(wire.MaxReadBatch, "good")}))
	select {
	case got := <-outs[0]:
		if got != "good" {
			t.Fatalf("read returned %q, want the answer of a well-formed reply", got)
		}
	case <-time.After(testDeadline):
		t.Fatalf("read not answered within %v", testDeadline)
	}
}

// parseReplyFast decodes read_answers as proto.Unmarshal does, and leaves
// anything else in them to proto.Unmarshal.
func TestParseReplyFastReadAnswers(t *testing.T) {
	m := &wire.Reply{ClientId: []byte("c"), ReadOnly: true, View: 3, ReadAnswers: []*wire.ReadAnswer{
		{RequestNumber: 7, Result: []byte("x")}, {RequestNumber: 8, Error: "refused"}, {}}}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fast, slow reply
	if !parseReplyFast(data, &fast) {
		t.Fatalf("parseReplyFast refused a well-formed reply with answers")
	}
	if err := parseReply(append(data, 0x60, 1), &slow); err != nil { // field 12 (unknown): the slow path
		t.Fatal(err)
	}
	if len(fast.answers) != 3 || len(slow.answers) != 3 {
		t.Fatalf("answers: fast %d, slow %d, want 3", len(fast.answers), len(slow.answers))
	}
	for i := range fast.answers {
		f, s := fast.answers[i], slow.answers[i]
		if f.number != s.number || !bytes.Equal(f.result, s.result) || !bytes.Equal(f.refusal, s.refusal) {
			t.Errorf("answer %d: fast %+v, slow %+v", i, f, s)
		}
	}
	// An answer (field 11, 3 bytes) whose error (field 3) is one byte of
	// invalid UTF-8.
	bad := append(data[:len(data):len(data)], 0x5a, 3, 0x1a, 1, 0xff)
	if parseReplyFast(bad, &reply{}) {
		t.Errorf("parseReplyFast accepted an answer with an invalid UTF-8 error")
	}
}
