package replica

import (
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/protocol"
)

// deliverHolding delivers every queued frame, as deliver does, except
// those to replica to that hold picks: it returns those, verified, in the
// order they came.
func (c *testCluster) deliverHolding(to uint32, hold func(m protocol.VerifiedMessage) bool) []protocol.VerifiedMessage {
	c.t.Helper()
	var held []protocol.VerifiedMessage
	for _, k := range c.deliverAllHolding(func(dest uint32, m protocol.VerifiedMessage) bool { return dest == to && hold(m) }) {
		held = append(held, k.m)
	}
	return held
}

// commitOneWhileLoggingTwo has backup 1 handle, in one Ready, the COMMITs
// that commit sequence 1 and everything of sequence 2 (which it logs,
// prepares and commits there), and returns the steps of that Ready. With
// background, replica 1's storage is a BackgroundAppender.
func commitOneWhileLoggingTwo(t *testing.T, background bool) []step {
	t.Helper()
	c := newTestCluster(t, 4)
	if background {
		c.replicas[1].background = true
		c.replicas[1].start()
		c.deliver() // what a restarted replica asks its peers, answered
	}
	for i := uint64(1); i <= 2; i++ {
		if err := c.submit(0, c.request(i, string(rune('a'+i)))); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	// Backup 1 gets everything but the COMMITs of sequence 1 and all of
	// sequence 2; the others commit both. Their CHECKPOINTs (at 2) are
	// lost: replica 1 is to commit 2 itself, not to fall behind.
	held := c.deliverHolding(1, func(m protocol.VerifiedMessage) bool {
		switch {
		case m.Body.GetCheckpoint() != nil:
			return true
		case m.Body.GetCommit() != nil:
			return true
		case m.Body.GetPrePrepare() != nil:
			return m.Body.GetPrePrepare().Sequence == 2
		case m.Body.GetPrepare() != nil:
			return m.Body.GetPrepare().Sequence == 2
		}
		return false
	})
	if len(held) != 3+1+2+3+3 {
		t.Fatalf("held %d frames for replica 1, want 3 COMMITs of 1, a PRE-PREPARE, 2 PREPAREs and 3 COMMITs of 2, and 3 CHECKPOINTs", len(held))
	}
	held = slices.DeleteFunc(held, func(m protocol.VerifiedMessage) bool { return m.Body.GetCheckpoint() != nil })
	r := c.replicas[1]
	for _, m := range held {
		if err := r.driver.Step(m); err != nil {
			t.Fatalf("step %v: %v", m.Body, err)
		}
	}
	mark := len(r.trace)
	if err := r.driver.Process(); err != nil {
		t.Fatal(err)
	}
	rd := r.trace[mark:]
	if len(rd) == 0 || rd[0].what != "ready" {
		t.Fatalf("no Ready: %v", rd)
	}
	if next := slices.IndexFunc(rd[1:], func(s step) bool { return s.what == "ready" }); next >= 0 {
		rd = rd[:next+1]
	}
	if got := r.exec.LastExecuted(); got != 2 {
		t.Errorf("replica 1 executed %d, want 2", got)
	}
	return rd
}

// stepAt is the index in rd of the first step what (at seq, unless 0).
func stepAt(rd []step, what string, seq uint64) int {
	return slices.IndexFunc(rd, func(s step) bool { return s.what == what && (seq == 0 || s.seq == seq) })
}

// TestCommittedBatchExecutesBeforeLaterSequencesPersist: a Ready that
// commits sequence 1 and also logs sequence 2 executes and answers 1
// before its log append, and 2, whose own entries are in that append,
// only after it; the COMMIT of 2 leaves after the append.
func TestCommittedBatchExecutesBeforeLaterSequencesPersist(t *testing.T) {
	rd := commitOneWhileLoggingTwo(t, false)
	apply1, reply1, appendAt, apply2 := stepAt(rd, "apply", 1), stepAt(rd, "reply", 1), stepAt(rd, "append", 0), stepAt(rd, "apply", 2)
	if apply1 < 0 || reply1 < 0 || appendAt < 0 || apply2 < 0 {
		t.Fatalf("the Ready does not execute 1 and 2 and append the log: %v", rd)
	}
	if apply1 > appendAt || reply1 > appendAt {
		t.Errorf("sequence 1 executed or answered after the log append of sequence 2: %v", rd)
	}
	if apply2 < appendAt {
		t.Errorf("sequence 2 executed before its own log entries were appended: %v", rd)
	}
	if send := slices.IndexFunc(rd, func(s step) bool { return s.what == "send" && !s.early }); send < appendAt {
		t.Errorf("a message not marked BeforePersist left before the log append: %v", rd)
	}
}

// TestEarlyExecutionOverlapsABackgroundAppend: with a BackgroundAppender
// the append starts before sequence 1 executes and is waited for after
// it, before any send and before sequence 2 executes.
func TestEarlyExecutionOverlapsABackgroundAppend(t *testing.T) {
	rd := commitOneWhileLoggingTwo(t, true)
	start, apply1, reply1, appendAt := stepAt(rd, "append-start", 0), stepAt(rd, "apply", 1), stepAt(rd, "reply", 1), stepAt(rd, "append", 0)
	send, apply2 := stepAt(rd, "send", 0), stepAt(rd, "apply", 2)
	if start < 0 || apply1 < 0 || reply1 < 0 || appendAt < 0 || send < 0 || apply2 < 0 {
		t.Fatalf("the Ready lacks a step: %v", rd)
	}
	if start > apply1 || appendAt < reply1 {
		t.Errorf("the append did not overlap the execution of sequence 1: %v", rd)
	}
	if send < appendAt || apply2 < appendAt {
		t.Errorf("a send or sequence 2's execution did not wait for the append: %v", rd)
	}
}

// TestExecutableBeforePersist: the rule itself, on hand-made Readies.
func TestExecutableBeforePersist(t *testing.T) {
	view := uint64(1)
	batches := []protocol.CommittedBatch{{Sequence: 1}, {Sequence: 2}, {Sequence: 3}}
	cases := []struct {
		name string
		rd   protocol.Ready
		want int
	}{
		{"nothing to persist", protocol.Ready{Committed: batches}, 0},
		{"later sequences only", protocol.Ready{Committed: batches, Persist: []protocol.LogEntry{{Sequence: 4}}}, 3},
		{"stops at its own entry", protocol.Ready{Committed: batches, Persist: []protocol.LogEntry{{Sequence: 4}, {Sequence: 2}}}, 1},
		{"view change", protocol.Ready{View: &view, Committed: batches, Persist: []protocol.LogEntry{{Sequence: 4}}}, 0},
	}
	for _, tc := range cases {
		if got := executableBeforePersist(&tc.rd); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
