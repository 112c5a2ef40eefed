package protocol

import (
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// TestPreparedRun: consecutive sequences of one view extend the run; a
// gap or another view starts a new one; an older sequence leaves it.
func TestPreparedRun(t *testing.T) {
	var p PreparedRun
	if p.Holds(0, 0) || p.Holds(0, 1) {
		t.Fatal("the empty run holds a sequence")
	}
	for _, step := range []struct {
		view, seq     uint64
		from, through uint64
	}{
		{0, 1, 1, 1}, {0, 2, 1, 2}, {0, 3, 1, 3}, // consecutive
		{0, 2, 1, 3}, // older: unchanged
		{0, 5, 5, 5}, // past a gap
		{1, 6, 6, 6}, // another view
		{1, 7, 6, 7},
	} {
		p.add(step.view, step.seq)
		if p.View != step.view || p.From != step.from || p.Through != step.through {
			t.Fatalf("after %d in view %d: run %+v, want view %d, %d..%d", step.seq, step.view, p, step.view, step.from, step.through)
		}
	}
	if !p.Holds(1, 6) || !p.Holds(1, 7) || p.Holds(0, 6) || p.Holds(1, 5) || p.Holds(1, 8) {
		t.Fatalf("run %+v holds the wrong sequences", p)
	}
}

// TestAdmitNormalCaseRefusesPreparesOfPreparedSequences: a PREPARE for
// a sequence in the published prepared run of its view is refused
// unchecked (ErrAlreadyPrepared); the same sequence's COMMIT, another
// view's PREPARE and sequences outside the run are admitted.
func TestAdmitNormalCaseRefusesPreparesOfPreparedSequences(t *testing.T) {
	w := Watermarks{View: 2, Low: 0, Window: 64, Prepared: PreparedRun{View: 2, From: 5, Through: 7}}
	prepare := func(view, seq uint64) *wire.ReplicaMessage {
		return &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: view, Sequence: seq}}}
	}
	commit := &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{View: 2, Sequence: 6}}}
	for _, seq := range []uint64{5, 6, 7} {
		err := AdmitNormalCase(prepare(2, seq), w)
		if !errors.Is(err, ErrNotAdmitted) || !errors.Is(err, ErrAlreadyPrepared) {
			t.Fatalf("PREPARE for prepared sequence %d: %v, want ErrAlreadyPrepared", seq, err)
		}
	}
	for name, m := range map[string]*wire.ReplicaMessage{
		"PREPARE below the run": prepare(2, 4), "PREPARE above the run": prepare(2, 8),
		"PREPARE of a later view": prepare(3, 6), "COMMIT of a prepared sequence": commit,
	} {
		if err := AdmitNormalCase(m, w); err != nil {
			t.Fatalf("%s refused: %v", name, err)
		}
	}
}

// TestStatusReportsPreparedRun: the core publishes the sequences it
// prepared in the current view.
func TestStatusReportsPreparedRun(t *testing.T) {
	c := newCluster(t, 4, nil)
	for i := range 3 {
		if err := c.replicas[0].Submit(request(1, uint64(i+1), "op")); err != nil {
			t.Fatal(err)
		}
		c.run()
	}
	for i, r := range c.replicas {
		run := r.Status().PreparedRun
		if !run.Holds(0, 1) || !run.Holds(0, 3) || run.Holds(0, 4) {
			t.Fatalf("replica %d reports prepared run %+v, want view 0, 1..3", i, run)
		}
	}
}
