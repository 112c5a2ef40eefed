package client

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// newReadTestClient is a client of 4 replicas (f=1) with the default read
// configuration, no network, and timeouts far beyond the tests' waits:
// every outcome comes from the replies the test injects, not a clock.
func newReadTestClient(t *testing.T) (*Client, chan *wire.Request) {
	t.Helper()
	c := newBenchClient(64)
	c.cfg.ReadTimeout = time.Minute
	if err := defaultReadConfig(&c.cfg, c.n); err != nil {
		t.Fatal(err)
	}
	sent := make(chan *wire.Request, 64)
	c.send = func(_ uint32, frame []byte) bool {
		for _, req := range sentRequests(t, frame) {
			sent <- req
		}
		return true
	}
	return c, sent
}

// sentRequests decodes a frame the client sent into its requests: one, or
// the reads of a ReadBatch as the replica sees them.
func sentRequests(t *testing.T, frame []byte) []*wire.Request {
	t.Helper()
	var f wire.ClientFrame
	if err := proto.Unmarshal(frame, &f); err != nil {
		t.Errorf("client sent an undecodable frame: %v", err)
		return nil
	}
	if b := f.GetReads(); b != nil {
		reqs := make([]*wire.Request, len(b.GetReads()))
		for i, it := range b.GetReads() {
			reqs[i] = &wire.Request{ClientId: b.GetClientId(), RequestNumber: it.GetRequestNumber(), Operation: it.GetOperation(), ReadOnly: true}
		}
		return reqs
	}
	req := new(wire.Request)
	if err := proto.Unmarshal(f.GetRequest().GetPayload(), req); err != nil {
		t.Errorf("client sent an undecodable request: %v", err)
		return nil
	}
	return []*wire.Request{req}
}

// nextSent waits for the next request the client sends.
func nextSent(t *testing.T, sent chan *wire.Request) *wire.Request {
	t.Helper()
	select {
	case req := <-sent:
		return req
	case <-time.After(testDeadline):
		t.Fatalf("nothing sent within %v", testDeadline)
		return nil
	}
}

// readReply is replica from's answer to request number; readOnly marks
// an answer of the read-only path.
func readReply(t *testing.T, c *Client, from int, number uint64, result string, readOnly bool) {
	t.Helper()
	c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: number, Replica: uint32(from),
		Result: []byte(result), ReadOnly: readOnly}))
}

func readAsync(c *Client) (<-chan []byte, <-chan error) {
	results, errs := make(chan []byte, 1), make(chan error, 1)
	go func() {
		r, err := c.Read(context.Background(), []byte("get k"))
		results <- r
		errs <- err
	}()
	return results, errs
}

// TestReadQuorumDefaults: 2f+1 for PBFT, 1 for the crash-fault mode.
func TestReadQuorumDefaults(t *testing.T) {
	for _, tc := range []struct{ n, replyQuorum, want int }{{4, 2, 3}, {7, 3, 5}, {3, 1, 1}, {1, 1, 1}} {
		cfg := Config{ReplyQuorum: tc.replyQuorum, RetransmitTimeout: time.Second}
		if err := defaultReadConfig(&cfg, tc.n); err != nil || cfg.ReadQuorum != tc.want {
			t.Errorf("n=%d reply quorum %d: read quorum %d (%v), want %d", tc.n, tc.replyQuorum, cfg.ReadQuorum, err, tc.want)
		}
	}
}

// A read answered by 2f+1 matching read-only answers returns at once,
// without ordering: one wrong answer (a Byzantine replica) is outvoted.
func TestReadFastPathOutvotesOneWrongAnswer(t *testing.T) {
	c, sent := newReadTestClient(t)
	results, errs := readAsync(c)
	req := nextSent(t, sent)
	if !req.ReadOnly {
		t.Fatal("Read sent a request without read_only")
	}
	readReply(t, c, 3, req.RequestNumber, "forged", true)
	readReply(t, c, 0, req.RequestNumber, "v1", true)
	readReply(t, c, 1, req.RequestNumber, "v1", true)
	readReply(t, c, 2, req.RequestNumber, "v1", true)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if got := string(<-results); got != "v1" {
		t.Fatalf("Read returned %q, want v1", got)
	}
	if rc := c.ReadCounts(); rc.Fast != 1 || rc.Fallback != 0 {
		t.Fatalf("read counts %+v, want one fast read", rc)
	}
}

// A Byzantine replica answering a read with a stale value, together with
// a correct replica that has not executed the latest write yet, makes f+1
// matching answers: not enough. Read must not return them; the answers
// cannot reach 2f+1 once the others disagree, so it orders the read and
// returns the ordered result. (Ordered replies do not count for the read
// and read-only answers do not count for the ordered request.)
func TestByzantineStaleReadNotReturned(t *testing.T) {
	c, sent := newReadTestClient(t)
	results, errs := readAsync(c)
	req := nextSent(t, sent)
	readReply(t, c, 3, req.RequestNumber, "stale", true)  // Byzantine
	readReply(t, c, 2, req.RequestNumber, "stale", true)  // correct, behind
	readReply(t, c, 1, req.RequestNumber, "stale", false) // not a read-only answer: ignored
	readReply(t, c, 0, req.RequestNumber, "v1", true)
	readReply(t, c, 1, req.RequestNumber, "v1", true)
	for range c.cfg.ReadQuorum - 1 { // the rest of the read's first sends (to a quorum)
		nextSent(t, sent)
	}
	ordered := nextSent(t, sent)
	if ordered.ReadOnly || ordered.RequestNumber == req.RequestNumber {
		t.Fatalf("fallback request %d (read-only %v), want an ordered request with a fresh number (read was %d)",
			ordered.RequestNumber, ordered.ReadOnly, req.RequestNumber)
	}
	readReply(t, c, 3, ordered.RequestNumber, "stale", true) // a read-only answer to an ordered request
	readReply(t, c, 2, ordered.RequestNumber, "stale", true)
	readReply(t, c, 0, ordered.RequestNumber, "v1", false)
	readReply(t, c, 1, ordered.RequestNumber, "v1", false)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if got := string(<-results); got != "v1" {
		t.Fatalf("Read returned %q, want the ordered v1", got)
	}
	if rc := c.ReadCounts(); rc.Fast != 0 || rc.Fallback != 1 {
		t.Fatalf("read counts %+v, want one fallback", rc)
	}
}

// Refusals (a replica changing views, an operation that is not
// read-only) send the read down the ordered path once 2f+1 matching
// answers are no longer possible (not before: f faulty replicas refusing
// every read must not force every read to be ordered).
func TestReadRefusalsFallBack(t *testing.T) {
	c, sent := newReadTestClient(t)
	results, errs := readAsync(c)
	req := nextSent(t, sent)
	for from := range 2 {
		c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: req.RequestNumber, Replica: uint32(from),
			Error: "read-only: replica not ready", ReadOnly: true}))
	}
	readReply(t, c, 2, req.RequestNumber, "v", true)
	c.mu.Lock()
	cl := c.callLocked(req.RequestNumber)
	c.mu.Unlock()
	if cl == nil || isDone(cl) {
		t.Fatal("the read gave up while 2f+1 matching answers were still possible")
	}
	readReply(t, c, 3, req.RequestNumber, "w", true)
	for range c.cfg.ReadQuorum - 1 {
		nextSent(t, sent)
	}
	ordered := nextSent(t, sent)
	readReply(t, c, 0, ordered.RequestNumber, "v", false)
	readReply(t, c, 1, ordered.RequestNumber, "v", false)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if got := string(<-results); got != "v" {
		t.Fatalf("Read returned %q, want v", got)
	}
}

// TestReadGoesToAQuorumThenSpreads: a read goes first to 2f+1 replicas
// only; when one of them stays silent past ReadSpreadTimeout the others
// are asked too, and the silent one is left out of the next read's first
// sends.
func TestReadGoesToAQuorumThenSpreads(t *testing.T) {
	c, _ := newReadTestClient(t)
	c.cfg.ReadSpreadTimeout = 20 * time.Millisecond
	type sentTo struct {
		to  uint32
		req *wire.Request
	}
	sent := make(chan sentTo, 64)
	c.send = func(to uint32, frame []byte) bool {
		var f wire.ClientFrame
		req := new(wire.Request)
		if proto.Unmarshal(frame, &f) != nil || proto.Unmarshal(f.GetRequest().GetPayload(), req) != nil {
			t.Errorf("client sent an undecodable frame")
		}
		sent <- sentTo{to, req}
		return true
	}
	next := func() sentTo {
		t.Helper()
		select {
		case s := <-sent:
			return s
		case <-time.After(testDeadline):
			t.Fatalf("nothing sent within %v", testDeadline)
			return sentTo{}
		}
	}
	results, errs := readAsync(c)
	var first []uint32
	for range 3 {
		first = append(first, next().to)
	}
	number := c.lastNumber(t)
	silent := first[2]
	readReply(t, c, int(first[0]), number, "v", true)
	readReply(t, c, int(first[1]), number, "v", true)
	late := next() // the spread to the replica not asked first
	if late.to == first[0] || late.to == first[1] || late.to == silent {
		t.Fatalf("spread went to %d, already asked (first %v)", late.to, first)
	}
	readReply(t, c, int(late.to), number, "v", true)
	if err := <-errs; err != nil || string(<-results) != "v" {
		t.Fatalf("read: %v", err)
	}
	readAsync(c)
	for range 3 {
		if s := next(); s.to == silent {
			t.Fatalf("replica %d, silent on the last read, is asked first again", silent)
		}
	}
}

// lastNumber is the number of the read the client issued last.
func (c *Client) lastNumber(t *testing.T) uint64 {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads.number - 1
}

// After a reconfiguration members are named by indices with gaps: reads
// go to members, never to an index that is not one.
func TestReadTargetsAreMemberIndices(t *testing.T) {
	c, _ := newReadTestClient(t)
	c.cfg.Replicas = []p2p.Member{{Index: 0}, {Index: 2}, {Index: 4}, {Index: 6}}
	span, member, err := memberIndices(c.cfg.Replicas)
	if err != nil {
		t.Fatal(err)
	}
	c.span, c.member = span, member
	seen := map[int]bool{}
	for range 8 {
		first, rest := c.readTargets()
		if len(first) != c.cfg.ReadQuorum || len(first)+len(rest) != 4 {
			t.Fatalf("targets %v + %v", first, rest)
		}
		for _, i := range append(first, rest...) {
			if !c.isMember(i) {
				t.Fatalf("read sent to %d, not a member (targets %v + %v)", i, first, rest)
			}
			seen[i] = true
		}
	}
	if len(seen) != 4 {
		t.Fatalf("reads reached %v only", seen)
	}
}
