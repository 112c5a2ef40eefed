package checkpoint

import (
	"errors"
	"testing"
)

func digest(b byte) [32]byte { return [32]byte{b} }

func newTestTracker(t *testing.T) *Tracker {
	t.Helper()
	tr, err := NewTracker(4, 3, 10, 40)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestStableOnlyWithQuorumOfDistinctMatchingVotes(t *testing.T) {
	tr := newTestTracker(t)
	for _, r := range []uint32{0, 1} {
		if cert, err := tr.Add(Vote{Replica: r, Sequence: 10, StateDigest: digest(1)}); err != nil || cert != nil {
			t.Fatalf("vote %d: cert=%v err=%v, want neither", r, cert, err)
		}
	}
	// A duplicate vote from replica 1 must not count as a third.
	if _, err := tr.Add(Vote{Replica: 1, Sequence: 10, StateDigest: digest(1)}); !errors.Is(err, ErrDuplicateVote) {
		t.Fatalf("duplicate vote: err=%v, want ErrDuplicateVote", err)
	}
	if tr.Stable().Sequence != 0 {
		t.Fatalf("stable after 2 distinct votes: %d", tr.Stable().Sequence)
	}
	cert, err := tr.Add(Vote{Replica: 3, Sequence: 10, StateDigest: digest(1)})
	if err != nil || cert == nil {
		t.Fatalf("third vote: cert=%v err=%v, want a certificate", cert, err)
	}
	if cert.Sequence != 10 || len(cert.Proof) != 3 || tr.Stable().Sequence != 10 {
		t.Fatalf("certificate %+v, stable %d", cert, tr.Stable().Sequence)
	}
	seen := map[uint32]bool{}
	for _, v := range cert.Proof {
		if seen[v.Replica] || v.StateDigest != digest(1) {
			t.Fatalf("proof has duplicate or mismatching vote: %+v", cert.Proof)
		}
		seen[v.Replica] = true
	}
}

func TestConflictingDigestsNeverStable(t *testing.T) {
	tr := newTestTracker(t)
	votes := []Vote{
		{Replica: 0, Sequence: 10, StateDigest: digest(1)},
		{Replica: 1, Sequence: 10, StateDigest: digest(2)},
		{Replica: 2, Sequence: 10, StateDigest: digest(1)},
		{Replica: 3, Sequence: 10, StateDigest: digest(3)},
		// An equivocating second vote from replica 1 for digest 1 is refused.
		{Replica: 1, Sequence: 10, StateDigest: digest(1)},
	}
	for _, v := range votes {
		if cert, _ := tr.Add(v); cert != nil {
			t.Fatalf("conflicting votes became stable: %+v", cert)
		}
	}
	if got := tr.Matching(10, digest(1)); got != 2 {
		t.Fatalf("matching digest 1 = %d, want 2", got)
	}
}

func TestRejectsBadSequencesAndReplicas(t *testing.T) {
	tr := newTestTracker(t)
	cases := []struct {
		v    Vote
		want error
	}{
		{Vote{Replica: 0, Sequence: 5}, ErrNotCheckpointSequence},
		{Vote{Replica: 0, Sequence: 0}, ErrNotCheckpointSequence},
		{Vote{Replica: 0, Sequence: 50}, ErrBeyondHorizon},
		{Vote{Replica: 4, Sequence: 10}, ErrUnknownReplica},
	}
	for _, c := range cases {
		if _, err := tr.Add(c.v); !errors.Is(err, c.want) {
			t.Errorf("Add(%+v) = %v, want %v", c.v, err, c.want)
		}
	}
	if tr.PendingVotes() != 0 {
		t.Fatalf("rejected votes were kept: %d", tr.PendingVotes())
	}
}

func TestGarbageCollectionAndBounds(t *testing.T) {
	tr := newTestTracker(t)
	// Votes for 10, 20, 30, 40 from replica 0, then 20 becomes stable.
	for _, s := range []uint64{10, 20, 30, 40} {
		if _, err := tr.Add(Vote{Replica: 0, Sequence: s, StateDigest: digest(byte(s))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []uint32{1, 2} {
		if _, err := tr.Add(Vote{Replica: r, Sequence: 20, StateDigest: digest(20)}); err != nil {
			t.Fatal(err)
		}
	}
	if tr.Stable().Sequence != 20 {
		t.Fatalf("stable = %d, want 20", tr.Stable().Sequence)
	}
	if got := tr.PendingVotes(); got != 2 {
		t.Fatalf("pending votes after GC = %d, want 2 (for 30 and 40)", got)
	}
	if _, err := tr.Add(Vote{Replica: 3, Sequence: 10, StateDigest: digest(10)}); !errors.Is(err, ErrBelowStable) {
		t.Fatalf("vote below stable: %v", err)
	}
	// The horizon moved with the stable checkpoint.
	if _, err := tr.Add(Vote{Replica: 3, Sequence: 60, StateDigest: digest(60)}); err != nil {
		t.Fatalf("vote inside the moved horizon: %v", err)
	}
	// Memory bound: no more than n votes per tracked sequence.
	for r := uint32(0); r < 4; r++ {
		_, _ = tr.Add(Vote{Replica: r, Sequence: 30, StateDigest: digest(99)})
	}
	if got := tr.PendingVotes(); got > 4*4 {
		t.Fatalf("pending votes %d exceed n*horizon/interval", got)
	}
}

func TestWindow(t *testing.T) {
	w := Window{Low: 10, Size: 5}
	for seq, want := range map[uint64]bool{10: false, 11: true, 15: true, 16: false} {
		if w.Contains(seq) != want {
			t.Errorf("Contains(%d) = %v", seq, !want)
		}
	}
}
