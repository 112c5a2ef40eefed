package checkpoint

import (
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/wire"
)

// Errors returned by Tracker.Add. A vote rejected with one of them changes
// nothing.
var (
	ErrNotCheckpointSequence = errors.New("checkpoint: sequence is not a multiple of the interval")
	ErrBelowStable           = errors.New("checkpoint: sequence at or below the stable checkpoint")
	ErrBeyondHorizon         = errors.New("checkpoint: sequence beyond the tracked horizon")
	ErrDuplicateVote         = errors.New("checkpoint: replica already voted for this sequence")
	ErrUnknownReplica        = errors.New("checkpoint: vote from a replica outside the cluster")
)

// Vote is one replica's signed CHECKPOINT(sequence, state digest).
type Vote struct {
	Replica     uint32
	Sequence    uint64
	StateDigest [32]byte
	// Signed is the vote as it travelled (kept as proof for certificates).
	Signed *wire.Signed
}

// Certificate proves a stable checkpoint: Quorum votes from distinct
// replicas for the same sequence and state digest.
type Certificate struct {
	Sequence    uint64
	StateDigest [32]byte
	Proof       []Vote
}

// Tracker collects checkpoint votes and reports when one becomes stable.
//
// Bounds: it keeps votes only for sequences in (stable, stable+Horizon], at
// most one vote per replica per sequence, so memory is at most
// N * Horizon/Interval votes.
type Tracker struct {
	n        int
	quorum   int
	interval uint64
	horizon  uint64
	stable   Certificate
	votes    map[uint64]map[uint32]Vote
}

// NewTracker returns a tracker for a cluster of n replicas where quorum
// matching votes make a checkpoint stable, taken every interval sequence
// numbers, accepting votes up to horizon sequences above the stable one.
func NewTracker(n, quorum int, interval, horizon uint64) (*Tracker, error) {
	if n <= 0 || quorum <= 0 || quorum > n {
		return nil, fmt.Errorf("checkpoint: quorum %d invalid for %d replicas", quorum, n)
	}
	if interval == 0 || horizon < interval {
		return nil, fmt.Errorf("checkpoint: interval %d and horizon %d invalid", interval, horizon)
	}
	return &Tracker{
		n: n, quorum: quorum, interval: interval, horizon: horizon,
		votes: make(map[uint64]map[uint32]Vote),
	}, nil
}

// Restore sets the stable checkpoint (after recovery or state transfer)
// and drops every vote at or below it.
func (t *Tracker) Restore(c Certificate) {
	t.stable = c
	t.collect()
}

// Stable returns the latest stable checkpoint (sequence 0 before any).
func (t *Tracker) Stable() Certificate { return t.stable }

// Interval returns the checkpoint interval K.
func (t *Tracker) Interval() uint64 { return t.interval }

// Add records a vote. It returns a non-nil certificate when this vote makes
// a new checkpoint stable; the tracker then has already moved its stable
// checkpoint there and garbage-collected older votes. A replica's second
// vote for one sequence is rejected (its first one stands), so a replica
// that equivocates cannot count twice.
func (t *Tracker) Add(v Vote) (*Certificate, error) {
	switch {
	case int(v.Replica) >= t.n:
		return nil, ErrUnknownReplica
	case v.Sequence == 0 || v.Sequence%t.interval != 0:
		return nil, ErrNotCheckpointSequence
	case v.Sequence <= t.stable.Sequence:
		return nil, ErrBelowStable
	case v.Sequence > t.stable.Sequence+t.horizon:
		return nil, ErrBeyondHorizon
	}
	bySeq := t.votes[v.Sequence]
	if bySeq == nil {
		bySeq = make(map[uint32]Vote, t.n)
		t.votes[v.Sequence] = bySeq
	}
	if _, dup := bySeq[v.Replica]; dup {
		return nil, ErrDuplicateVote
	}
	bySeq[v.Replica] = v
	proof := make([]Vote, 0, t.quorum)
	for _, other := range bySeq {
		if other.StateDigest == v.StateDigest {
			proof = append(proof, other)
		}
	}
	if len(proof) < t.quorum {
		return nil, nil
	}
	sortVotes(proof)
	cert := Certificate{Sequence: v.Sequence, StateDigest: v.StateDigest, Proof: proof[:t.quorum]}
	t.stable = cert
	t.collect()
	return &cert, nil
}

// Matching returns how many distinct replicas voted for (sequence, digest).
func (t *Tracker) Matching(sequence uint64, digest [32]byte) int {
	count := 0
	for _, v := range t.votes[sequence] {
		if v.StateDigest == digest {
			count++
		}
	}
	return count
}

// PendingVotes returns the number of votes held above the stable checkpoint.
func (t *Tracker) PendingVotes() int {
	total := 0
	for _, bySeq := range t.votes {
		total += len(bySeq)
	}
	return total
}

func (t *Tracker) collect() {
	for seq := range t.votes {
		if seq <= t.stable.Sequence {
			delete(t.votes, seq)
		}
	}
}

func sortVotes(vs []Vote) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && vs[j].Replica < vs[j-1].Replica; j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}
