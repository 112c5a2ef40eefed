package client

import (
	"context"
	"testing"
	"time"
)

// An ordered request that stays outstanding (a write waiting for its
// batch) must not stall the reads begun after it: reads take their
// numbers from their own space, not from the ordered requests' window.
// With a window of 2, a read holding a number there would block the
// second read behind the unanswered write.
func TestReadsDoNotWaitBehindASlowWrite(t *testing.T) {
	c, sent := newReadTestClient(t)
	c.cfg.Window = 2
	go func() { _, _ = c.Invoke(context.Background(), []byte("put k v")) }() // never answered
	write := nextSent(t, sent)
	if write.ReadOnly {
		t.Fatal("Invoke sent a read-only request")
	}
	for i := range 3 {
		results, errs := readAsync(c)
		req := nextSent(t, sent)
		for range c.cfg.ReadQuorum - 1 {
			nextSent(t, sent)
		}
		if req.RequestNumber&readNumberBit == 0 || write.RequestNumber&readNumberBit != 0 {
			t.Fatalf("read number %#x, write number %#x: want the read bit on the read only", req.RequestNumber, write.RequestNumber)
		}
		for from := range c.cfg.ReadQuorum {
			readReply(t, c, from, req.RequestNumber, "v", true)
		}
		if err := <-errs; err != nil || string(<-results) != "v" {
			t.Fatalf("read %d behind an outstanding write: %v", i, err)
		}
	}
}

// Reads are bounded apart from ordered requests: at most Window are
// outstanding; the next waits until one ends, then goes out.
func TestReadsBoundedByWindow(t *testing.T) {
	c, sent := newReadTestClient(t)
	c.cfg.Window = 2
	var numbers []uint64
	for range 2 {
		readAsync(c)
		req := nextSent(t, sent)
		numbers = append(numbers, req.RequestNumber)
		for range c.cfg.ReadQuorum - 1 {
			nextSent(t, sent)
		}
	}
	if numbers[0] == numbers[1] {
		t.Fatalf("two outstanding reads share number %#x", numbers[0])
	}
	_, errs := readAsync(c)
	deadline := time.Now().Add(testDeadline)
	for c.waitingReads() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the third read did not wait for room")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case req := <-sent:
		t.Fatalf("read %#x sent while Window reads were outstanding", req.RequestNumber)
	default:
	}
	for from := range c.cfg.ReadQuorum {
		readReply(t, c, from, numbers[0], "v", true)
	}
	third := nextSent(t, sent)
	if third.RequestNumber == numbers[1] || !third.ReadOnly {
		t.Fatalf("after a read ended, sent %#x (read-only %v)", third.RequestNumber, third.ReadOnly)
	}
	select {
	case err := <-errs:
		t.Fatalf("the third read ended early: %v", err)
	default:
	}
}

// waitingReads is how many calls wait for room, and how many reads are
// outstanding is at its bound.
func (c *Client) waitingReads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if uint64(len(c.reads.calls)) < c.cfg.Window {
		return 0
	}
	return c.waiting
}

// A read that gets no answers within ReadTimeout is ordered instead (the
// deadline is a timer callback that ends the read's call).
func TestReadWithoutAnswersTimesOutAndIsOrdered(t *testing.T) {
	c, sent := newReadTestClient(t)
	c.cfg.ReadTimeout = 50 * time.Millisecond
	c.cfg.ReadSpreadTimeout = time.Minute
	results, errs := readAsync(c)
	req := nextSent(t, sent)
	for range c.cfg.ReadQuorum - 1 {
		nextSent(t, sent)
	}
	ordered := nextSent(t, sent) // after ReadTimeout, with no answer
	if ordered.ReadOnly || ordered.RequestNumber == req.RequestNumber {
		t.Fatalf("after the read timed out, sent %#x (read-only %v)", ordered.RequestNumber, ordered.ReadOnly)
	}
	readReply(t, c, 0, req.RequestNumber, "late", true) // a late answer to the timed-out read: ignored
	readReply(t, c, 0, ordered.RequestNumber, "v", false)
	readReply(t, c, 1, ordered.RequestNumber, "v", false)
	if err := <-errs; err != nil || string(<-results) != "v" {
		t.Fatalf("timed-out read: %v", err)
	}
	if rc := c.ReadCounts(); rc.Fast != 0 || rc.Fallback != 1 {
		t.Fatalf("read counts %+v, want one fallback", rc)
	}
}
