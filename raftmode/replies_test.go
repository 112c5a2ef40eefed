package raftmode_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
)

// Only the leader answers the requests it applies, and a follower those a
// client sent to it: every client keeps a stream to every replica, so
// answering from all sent each result n times. A retransmission of an
// applied request is answered by any replica from its reply cache.
func TestFollowersAnswerOnlyRequestsSentToThem(t *testing.T) {
	c := newCluster(t, 3, 1000)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	f := (l + 1) % 3
	key := func(n uint64) string { return fmt.Sprintf("%x/%d", client, n) }
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.submit(f, 2, execution.EncodePut([]byte("k"), []byte("v2"))) // a stale leader hint
	c.runUntil(200, func() bool { return c.replied(1) && c.replied(2) && c.converged() })
	for range 20 { // let every replica apply both
		c.round()
	}
	if got := c.repliedBy[key(1)]; len(got) != 1 || got[0] != uint32(l) {
		t.Fatalf("request 1, sent to the leader %d, answered by %v", l, got)
	}
	if got := c.repliedBy[key(2)]; len(got) != 2 || !slices.Contains(got, uint32(l)) || !slices.Contains(got, uint32(f)) {
		t.Fatalf("request 2, sent to follower %d, answered by %v; want it and the leader %d", f, got, l)
	}
	// A retransmission to every replica: each answers from its cache.
	for i := range c.n {
		c.submit(i, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	}
	if got := c.repliedBy[key(1)]; len(got) != 4 {
		t.Fatalf("retransmitted request 1 answered by %v; want every replica once more", got)
	}
}
