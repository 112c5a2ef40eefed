package protocol

import (
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// TestRestartedPrimaryAbdicates: a primary restarted in its own view moves
// to the next view at once, the others follow its Suspect without waiting
// for their timers, and the cluster goes on ordering under the new
// primary.
func TestRestartedPrimaryAbdicates(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	submitN(t, c, 0, 3, 1)
	c.run()
	c.restart(0)
	if st := c.replicas[0].Status(); st.View != 1 || st.ViewActive {
		t.Fatalf("restarted primary: view %d active %v; want changing to view 1", st.View, st.ViewActive)
	}
	c.run()
	for i, r := range c.replicas {
		if st := r.Status(); st.View != 1 || !st.ViewActive {
			t.Fatalf("replica %d: view %d active %v after the abdication; want view 1 active (no timer fired)", i, st.View, st.ViewActive)
		}
	}
	for i := range 3 {
		if err := c.replicas[1].Submit(request(2, uint64(i+1), "after")); err != nil {
			t.Fatal(err)
		}
	}
	c.run()
	c.assertAgreement()
	for i := range c.replicas {
		if got := len(c.executedRequests(i)); got != 6 {
			t.Fatalf("replica %d executed %d requests, want 6", i, got)
		}
	}
}

// TestPrePrepareSentBeforePersistIsNeverContradicted: the primary sends a
// PRE-PREPARE (BeforePersist) and crashes before persisting it. Restarted
// without it, it must not assign that sequence to another batch; the
// batch the backups prepared is the one every replica executes.
func TestPrePrepareSentBeforePersistIsNeverContradicted(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	primary := c.replicas[0]
	if err := primary.Submit(request(1, 1, "sent")); err != nil {
		t.Fatal(err)
	}
	rd := primary.Ready()
	sent := 0
	for _, m := range rd.Messages {
		if !m.BeforePersist {
			continue
		}
		if m.Kind != KindPrePrepare {
			t.Fatalf("message of kind %v marked BeforePersist; only the primary's PRE-PREPAREs may be", m.Kind)
		}
		frame, err := EncodeFrame(m.Signed, m.Batch)
		if err != nil {
			t.Fatal(err)
		}
		for to := 1; to < 4; to++ {
			c.queue = append(c.queue, pending{from: 0, to: uint32(to), kind: m.Kind, frame: frame})
		}
		sent++
	}
	if sent != 1 {
		t.Fatalf("%d PRE-PREPAREs marked BeforePersist, want 1", sent)
	}
	// The crash: rd.Persist never reached storage (c.persisted[0] stays
	// empty), and nothing else of rd went out.
	c.restart(0)
	// The restarted primary is offered another request: it must not put
	// it at sequence 1 of view 0.
	_ = c.replicas[0].Submit(request(2, 1, "other"))
	c.outFilter = func(from, _ uint32, m Outbound) (Outbound, bool) {
		if from == 0 && m.Kind == KindPrePrepare {
			if pp := c.decode(m).Body.GetPrePrepare(); pp.View == 0 {
				t.Errorf("restarted primary sent a PRE-PREPARE in view 0 (sequence %d)", pp.Sequence)
			}
		}
		return m, true
	}
	c.run()
	c.assertAgreement()
	for i := range c.replicas {
		ex := c.executed[i]
		if len(ex) == 0 || len(ex[0].Requests) != 1 || string(ex[0].Requests[0].Operation) != "sent" {
			t.Fatalf("replica %d: sequence 1 is %v; want the batch the crashed primary sent", i, ex)
		}
	}
}

// TestOnlyTheCurrentPrimaryCanAbdicate: a Suspect for the next view from
// the primary of this view moves a backup at once; the same from another
// replica is one vote of the f+1 needed.
func TestOnlyTheCurrentPrimaryCanAbdicate(t *testing.T) {
	suspect := func(c *cluster, from uint32, v uint64) VerifiedMessage {
		return c.signedBy(from, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Suspect{Suspect: &wire.Suspect{NewView: v}}})
	}
	c := newCluster(t, 4, nil)
	backup := c.replicas[2]
	if err := backup.Step(suspect(c, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if st := backup.Status(); st.View != 0 {
		t.Fatalf("one Suspect from a backup moved replica 2 to view %d", st.View)
	}
	if err := backup.Step(suspect(c, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if st := backup.Status(); st.View != 1 {
		t.Fatalf("Suspects for views 1 and 2 from two replicas: view %d, want 1 (f+1 want more than 0)", st.View)
	}
	c = newCluster(t, 4, nil)
	backup = c.replicas[2]
	if err := backup.Step(suspect(c, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if st := backup.Status(); st.View != 1 || st.ViewActive {
		t.Fatalf("the primary's Suspect for view 1: view %d active %v, want changing to 1", st.View, st.ViewActive)
	}
	c = newCluster(t, 4, nil)
	backup = c.replicas[2]
	if err := backup.Step(suspect(c, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if st := backup.Status(); st.View != 0 {
		t.Fatalf("the primary suspecting view 2 (not the next) moved replica 2 to view %d", st.View)
	}
}

// TestPrepareSentBeforePersistIsNeverContradicted: a backup sends its
// PREPARE for a faulty primary's PRE-PREPARE before persisting either
// (BeforePersist) and crashes with neither durable. Restarted, it is
// offered a conflicting PRE-PREPARE for the same view and sequence: it
// must not prepare that one (it cannot know what it prepared before), and
// it keeps asking for the next view, where it prepares again.
func TestPrepareSentBeforePersistIsNeverContradicted(t *testing.T) {
	c := newCluster(t, 4, nil)
	prePrepare := func(view uint64, op string) VerifiedMessage {
		batch := []*wire.Signed{request(1, 1, op).Signed}
		d := crypto.BatchDigest(batch)
		return c.prePrepareFrom(uint32(view%4), &wire.PrePrepare{View: view, Sequence: 1, Digest: digestBytes(d)}, batch)
	}
	prepares := func(rd Ready) (early, late int) {
		for _, m := range rd.Messages {
			if m.Kind == KindPrepare && m.BeforePersist {
				early++
			} else if m.Kind == KindPrepare {
				late++
			}
		}
		return early, late
	}
	backup := c.replicas[1]
	if err := backup.Step(prePrepare(0, "a")); err != nil {
		t.Fatal(err)
	}
	if early, late := prepares(backup.Ready()); early != 1 || late != 0 {
		t.Fatalf("backup's PREPARE: %d sent before persisting, %d after; want 1 before", early, late)
	}
	// The crash: that Ready's Persist never became durable (it never
	// reached c.persisted[1]).
	c.restart(1)
	backup = c.replicas[1]
	backup.Ready()
	if err := backup.Step(prePrepare(0, "b")); err != nil {
		t.Fatal(err)
	}
	if early, late := prepares(backup.Ready()); early+late != 0 {
		t.Fatal("restarted backup prepared a second PRE-PREPARE for view 0, sequence 1")
	}
	if st := backup.Status(); st.PreparesWithheld != 1 {
		t.Fatalf("PreparesWithheld = %d, want 1", st.PreparesWithheld)
	}
	suspected := false
	for range backup.cfg.ViewChangeTimeoutTicks + 1 {
		backup.Tick()
		for _, m := range backup.Ready().Messages {
			if m.Kind == KindSuspect && c.decode(m).Body.GetSuspect().GetNewView() == 1 {
				suspected = true
			}
		}
	}
	if !suspected {
		t.Fatal("a backup withholding its PREPAREs did not ask for view 1 within the view timeout")
	}
	// Another replica that finds the view failing joins it: f+1.
	if err := backup.Step(c.signedBy(2, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Suspect{Suspect: &wire.Suspect{NewView: 1}}})); err != nil {
		t.Fatal(err)
	}
	if st := backup.Status(); st.View != 1 {
		t.Fatalf("backup in view %d after f+1 Suspects, want 1", st.View)
	}
}

// TestRestartedBackupWithholdsOnlyWhatItMayHavePrepared: a backup sends a
// PREPARE early only up to a span above a durable base (its stable
// checkpoint or its last COMMIT of the view), so a restarted one withholds
// only up to its restored base plus that span, and prepares the sequences
// beyond (those, too far above the base to go early, after its append).
func TestRestartedBackupWithholdsOnlyWhatItMayHavePrepared(t *testing.T) {
	c := newCluster(t, 4, nil)
	backup := c.replicas[1]
	span := backup.early.span
	prePrepare := func(seq uint64) VerifiedMessage {
		batch := []*wire.Signed{request(1, seq, "op").Signed}
		d := crypto.BatchDigest(batch)
		return c.prePrepareFrom(0, &wire.PrePrepare{View: 0, Sequence: seq, Digest: digestBytes(d)}, batch)
	}
	prepared := func(seq uint64) (sent, early bool) {
		if err := backup.Step(prePrepare(seq)); err != nil {
			t.Fatalf("pre-prepare %d: %v", seq, err)
		}
		for _, m := range backup.Ready().Messages {
			if m.Kind == KindPrepare && c.decode(m).Body.GetPrepare().GetSequence() == seq {
				return true, m.BeforePersist
			}
		}
		return false, false
	}
	if sent, early := prepared(span + 1); !sent || early {
		t.Fatalf("PREPARE %d, beyond base 0 + span %d: sent %v, early %v; want sent after the append", span+1, span, sent, early)
	}
	if sent, early := prepared(span); !sent || !early {
		t.Fatalf("PREPARE %d, within the span: sent %v, early %v; want sent early", span, sent, early)
	}
	c.restart(1) // nothing of it was persisted: the base is 0 again
	backup = c.replicas[1]
	backup.Ready()
	if sent, _ := prepared(span - 1); sent {
		t.Fatalf("restarted backup prepared %d, within the span it may have prepared early", span-1)
	}
	if sent, early := prepared(span + 2); !sent || early {
		t.Fatalf("restarted backup, PREPARE %d beyond its restored base + span: sent %v, early %v; want sent after the append", span+2, sent, early)
	}
}
