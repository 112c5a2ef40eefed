package client

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// tagged is one reply a test feeds a call: from replica from, with
// result (or refusal), view and sequence, tentative or committed.
type tagged struct {
	from      int
	result    string
	refusal   string
	view, seq uint64
	tentative bool
}

// tent and comm are a tentative and a committed reply with result.
func tent(from int, result string, view, seq uint64) tagged {
	return tagged{from: from, result: result, view: view, seq: seq, tentative: true}
}

func comm(from int, result string, view, seq uint64) tagged {
	return tagged{from: from, result: result, view: view, seq: seq}
}

// feed hands r, as replica r.from's reply to request number, to c.
func feed(t *testing.T, c *Client, number uint64, r tagged) {
	t.Helper()
	c.handleReply(replyFrame(t, r.from, &wire.Reply{
		ClientId: c.id, RequestNumber: number, Replica: uint32(r.from), View: r.view,
		Result: []byte(r.result), Error: r.refusal, Sequence: r.seq, Tentative: r.tentative,
	}))
}

// beginTentative begins an ordered call of c that asked for tentative
// replies, as Invoke's would.
func beginTentative(t *testing.T, c *Client) *call {
	t.Helper()
	cl := mustBegin(t, c)
	if !c.askTentative(cl) {
		t.Fatal("an ordered call of a 4-replica PBFT client did not ask for tentative replies")
	}
	return cl
}

// TestTentativeAcceptance feeds an ordered call of a 4-replica client
// (ReplyQuorum 2, so 3 replies of one tag) the replies of each case and
// checks whether and with what result the call completed.
func TestTentativeAcceptance(t *testing.T) {
	cases := []struct {
		name    string
		replies []tagged
		want    string // "": not complete
	}{
		{"three tentative of one tag", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), tent(2, "X", 1, 5)}, "X"},
		{"two tentative", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5)}, ""},
		{"two sequences", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), tent(2, "X", 1, 6)}, ""},
		{"two views", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), tent(2, "X", 2, 5)}, ""},
		{"two results", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), tent(2, "Y", 1, 5)}, ""},
		{"one replica repeating", []tagged{tent(0, "X", 1, 5), tent(0, "X", 1, 5), tent(0, "X", 1, 5), tent(1, "X", 1, 5)}, ""},
		{"two committed", []tagged{comm(0, "X", 1, 5), comm(1, "X", 2, 0)}, "X"},
		{"one committed", []tagged{comm(0, "X", 1, 5)}, ""},
		{"two tentative, a committed of their tag", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), comm(2, "X", 1, 5)}, "X"},
		{"a tentative, a committed of its tag", []tagged{tent(0, "X", 1, 5), comm(1, "X", 1, 5)}, ""},
		{"a tentative, two committed", []tagged{tent(0, "X", 1, 5), comm(1, "X", 1, 5), comm(2, "X", 3, 0)}, "X"},
		{"a committed of a later view has another tag", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), comm(2, "X", 2, 5)}, ""},
		{"then a third tentative", []tagged{tent(0, "X", 1, 5), tent(1, "X", 1, 5), comm(2, "X", 2, 5), tent(3, "X", 1, 5)}, "X"},
		{"sequence 0 tentative", []tagged{tent(0, "X", 1, 0), tent(1, "X", 1, 0), tent(2, "X", 1, 0)}, ""},
		{"sequence 0 mixed", []tagged{tent(0, "X", 1, 0), tent(1, "X", 1, 0), comm(2, "X", 1, 0)}, ""},
		{"committed replaces tentative", []tagged{tent(0, "X", 1, 5), comm(0, "X", 1, 0), comm(1, "X", 1, 0)}, "X"},
		{"committed replaces tentative of another result", []tagged{tent(0, "Y", 1, 5), comm(0, "X", 2, 0), comm(1, "X", 2, 0)}, "X"},
		{"higher view replaces", []tagged{tent(0, "X", 1, 5), tent(0, "X", 2, 7), tent(1, "X", 1, 5), tent(2, "X", 1, 5)}, ""},
		{"and counts with its new tag", []tagged{tent(0, "X", 1, 5), tent(0, "X", 2, 7), tent(1, "X", 2, 7), tent(2, "X", 2, 7)}, "X"},
		{"lower view does not replace", []tagged{tent(0, "X", 2, 7), tent(0, "X", 1, 5), tent(1, "X", 1, 5), tent(2, "X", 1, 5)}, ""},
		{"same view, new sequence replaces", []tagged{tent(0, "X", 1, 5), tent(0, "X", 1, 6), tent(1, "X", 1, 5), tent(2, "X", 1, 5)}, ""},
		{"committed stands", []tagged{comm(0, "X", 1, 0), tent(0, "Y", 2, 7), tent(1, "Y", 2, 7), tent(2, "Y", 2, 7)}, ""},
		{"committed stands, then completes", []tagged{comm(0, "X", 1, 0), tent(0, "Y", 2, 7), tent(1, "Y", 2, 7), comm(1, "X", 2, 0)}, "X"},
	}
	for _, tc := range cases {
		c := newTestClient(t, 64)
		cl := beginTentative(t, c)
		for _, r := range tc.replies {
			feed(t, c, cl.number, r)
		}
		switch {
		case tc.want == "" && isDone(cl):
			t.Errorf("%s: completed with %q (err %v); want no outcome yet", tc.name, cl.result, cl.err)
		case tc.want != "" && (!isDone(cl) || cl.err != nil || string(cl.result) != tc.want):
			t.Errorf("%s: done=%v result=%q err=%v; want %q", tc.name, isDone(cl), cl.result, cl.err, tc.want)
		}
	}
}

// TestTentativeViewLearned: a call completed by tentative replies moves
// the client to their view (the view they prepared in), not to the view
// of a committed reply that did not count.
func TestTentativeViewLearned(t *testing.T) {
	c := newTestClient(t, 64)
	cl := beginTentative(t, c)
	for _, r := range []tagged{comm(3, "X", 9, 0), tent(0, "X", 4, 5), tent(1, "X", 4, 5), tent(2, "X", 4, 5)} {
		feed(t, c, cl.number, r)
	}
	if !isDone(cl) || string(cl.result) != "X" {
		t.Fatalf("done=%v result=%q; want X", isDone(cl), cl.result)
	}
	c.mu.Lock()
	view, confirmed := c.view, c.confirmed
	c.mu.Unlock()
	if view != 4 || !confirmed {
		t.Fatalf("view %d (confirmed %v); want 4, the tentative replies' view", view, confirmed)
	}
}

// TestTentativeRefusalIgnored: refusals are never tentative; a tentative
// one neither counts nor takes its replica's place.
func TestTentativeRefusalIgnored(t *testing.T) {
	c := newTestClient(t, 64)
	cl := beginTentative(t, c)
	for from := range 3 {
		feed(t, c, cl.number, tagged{from: from, refusal: "no", view: 1, seq: 5, tentative: true})
	}
	if isDone(cl) {
		t.Fatalf("tentative refusals ended the call: %v", cl.err)
	}
	feed(t, c, cl.number, tagged{from: 0, refusal: "no", view: 1})
	feed(t, c, cl.number, tagged{from: 1, refusal: "no", view: 1})
	if !isDone(cl) || !errors.Is(cl.err, ErrRefused) {
		t.Fatalf("done=%v err=%v; want ErrRefused from the committed refusals", isDone(cl), cl.err)
	}
}

// TestTentativeIgnoredWhenNotAsked: a call whose request did not ask for
// tentative replies (CommittedRepliesOnly, a receipt request) counts none,
// and they do not take their replicas' places.
func TestTentativeIgnoredWhenNotAsked(t *testing.T) {
	c := newTestClient(t, 64)
	c.cfg.CommittedRepliesOnly = true
	cl := mustBegin(t, c)
	if c.askTentative(cl) {
		t.Fatal("a client with CommittedRepliesOnly asked for tentative replies")
	}
	for from := range 4 {
		feed(t, c, cl.number, tent(from, "X", 1, 5))
	}
	if isDone(cl) {
		t.Fatalf("tentative replies completed a call that did not ask: %q", cl.result)
	}
	feed(t, c, cl.number, comm(0, "X", 1, 0))
	feed(t, c, cl.number, comm(1, "X", 1, 0))
	if !isDone(cl) || string(cl.result) != "X" {
		t.Fatalf("done=%v result=%q; want X from two committed replies", isDone(cl), cl.result)
	}
}

// TestReadIgnoresTentativeReplies: a read-only call takes no tentative
// answer, neither toward its quorum nor in its replica's place.
func TestReadIgnoresTentativeReplies(t *testing.T) {
	c, _ := newReadTestClient(t) // ReadQuorum 3
	read := func(from int, result string, tentative bool) tagged {
		return tagged{from: from, result: result, view: 1, seq: 5, tentative: tentative}
	}
	feedRead := func(number uint64, r tagged) {
		c.handleReply(replyFrame(t, r.from, &wire.Reply{ClientId: c.id, RequestNumber: number, Replica: uint32(r.from),
			View: r.view, Result: []byte(r.result), Sequence: r.seq, Tentative: r.tentative, ReadOnly: true}))
	}
	cl, err := c.beginRead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.askTentative(cl) {
		t.Fatal("a read-only call asked for tentative replies")
	}
	for from := range 4 {
		feedRead(cl.number, read(from, "X", true))
	}
	if isDone(cl) {
		t.Fatalf("tentative answers completed a read: %q", cl.result)
	}
	// Tentative answers Y from replicas 0 and 1 leave their places free:
	// X from 2 and 3, then from 0, still make the read's quorum of 3.
	cl2, err := c.beginRead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []tagged{read(0, "Y", true), read(1, "Y", true), read(2, "X", false), read(3, "X", false)} {
		feedRead(cl2.number, r)
	}
	if isDone(cl2) {
		t.Fatalf("read ended early: result %q err %v", cl2.result, cl2.err)
	}
	feedRead(cl2.number, read(0, "X", false))
	if !isDone(cl2) || cl2.err != nil || string(cl2.result) != "X" {
		t.Fatalf("done=%v result=%q err=%v; want X", isDone(cl2), cl2.result, cl2.err)
	}
}

// firstRequest runs do with a context that ends as the client sends its
// first frame, and returns that frame's request.
func firstRequest(t *testing.T, c *Client, do func(ctx context.Context) error) *wire.Request {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first *wire.Request
	c.send = func(_ uint32, frame []byte) bool {
		// Called on do's goroutine (Invoke's sendFirst).
		if first == nil {
			if reqs := sentRequests(t, frame); len(reqs) == 1 {
				first = reqs[0]
			}
		}
		cancel()
		return true
	}
	if err := do(ctx); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("call ended with %v; want ErrUnknownOutcome as its context ended", err)
	}
	if first == nil {
		t.Fatal("no request sent")
	}
	return first
}

// TestRequestAsksForTentativeReplies: an ordered request carries
// Request.tentative (field 8) unless CommittedRepliesOnly is set, it asks
// for a receipt, the client is in crash-faults mode, or 2*ReplyQuorum-1
// exceeds the members.
func TestRequestAsksForTentativeReplies(t *testing.T) {
	invoke := func(c *Client) func(context.Context) error {
		return func(ctx context.Context) error { _, err := c.Invoke(ctx, []byte("put")); return err }
	}
	cases := []struct {
		name    string
		setup   func(c *Client)
		receipt bool
		want    bool
	}{
		{"default", func(*Client) {}, false, true},
		{"CommittedRepliesOnly", func(c *Client) { c.cfg.CommittedRepliesOnly = true }, false, false},
		{"receipt", func(*Client) {}, true, false},
		{"crash faults", func(c *Client) { c.cfg.ReplyQuorum, c.crashFaults = 1, true }, false, false},
		{"2q-1 above n", func(c *Client) { c.cfg.ReplyQuorum = 3 }, false, false},
	}
	for _, tc := range cases {
		c := newBenchClient(64)
		tc.setup(c)
		do := invoke(c)
		if tc.receipt {
			do = func(ctx context.Context) error { _, _, err := c.InvokeWithReceipt(ctx, []byte("put")); return err }
		}
		req := firstRequest(t, c, do)
		if req.Tentative != tc.want || req.Receipt != tc.receipt || req.ReadOnly {
			t.Errorf("%s: request tentative=%v receipt=%v read_only=%v; want tentative=%v receipt=%v",
				tc.name, req.Tentative, req.Receipt, req.ReadOnly, tc.want, tc.receipt)
		}
	}
}

// TestParseReplySlowPathTentative: a reply the fast decoder leaves to the
// proto runtime keeps its sequence and tentative mark.
func TestParseReplySlowPathTentative(t *testing.T) {
	data, err := proto.Marshal(&wire.Reply{View: 2, RequestNumber: 7, Result: []byte("X"), Sequence: 9, Tentative: true})
	if err != nil {
		t.Fatal(err)
	}
	var fast reply
	if !parseReplyFast(data, &fast) || fast.sequence != 9 || !fast.tentative {
		t.Fatalf("fast decoder: sequence %d tentative %v; want 9, true", fast.sequence, fast.tentative)
	}
	data = protowire.AppendVarint(protowire.AppendTag(data, 42, protowire.VarintType), 1) // unknown field
	var slow reply
	if err := parseReply(data, &slow); err != nil || slow.sequence != 9 || !slow.tentative {
		t.Fatalf("parseReply: sequence %d tentative %v err %v; want 9, true", slow.sequence, slow.tentative, err)
	}
	if string(slow.result) != "X" || slow.view != 2 {
		t.Fatalf("parseReply: result %q view %d; want X, 2", slow.result, slow.view)
	}
}
