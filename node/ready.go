package node

import (
	"fmt"

	"github.com/pbftnode/pbftnode/config"
)

// Readiness is what a runtime's replica needs to be ready (/readyz): how
// many replicas there are, how many others make a quorum with it, and
// its consensus protocol.
type Readiness struct {
	Replicas int
	// QuorumPeers is how many other replicas, with this one, make a
	// quorum: 2f for PBFT (n = 3f+1), f for Raft (n = 2f+1).
	QuorumPeers int
	// Consensus names the protocol in the status document:
	// config.ConsensusPBFT, config.ConsensusRaft or "floor". For Raft,
	// Status.View is a term and Status.ViewActive means a known leader,
	// and the reasons use Raft's words.
	Consensus string
}

// PBFTReadiness is the readiness rule of a PBFT replica (or a floor node)
// among replicas: a quorum is 2f+1 of n = 3f+1.
func PBFTReadiness(replicas int) Readiness {
	return Readiness{Replicas: replicas, QuorumPeers: 2 * ((replicas - 1) / 3), Consensus: config.ConsensusPBFT}
}

// RaftReadiness is the readiness rule of a Raft replica among replicas: a
// quorum is f+1 of n = 2f+1.
func RaftReadiness(replicas int) Readiness {
	return Readiness{Replicas: replicas, QuorumPeers: (replicas - 1) / 2, Consensus: config.ConsensusRaft}
}

// decide says whether a replica with status st, connected to peers other
// replicas (peersKnown false when the transport does not report it), is
// ready, and why (or why not). Ready means caught up and able to reach a
// quorum:
//   - PBFT: in an active view, not transferring state, executed up to at
//     least its stable checkpoint, and connected to at least QuorumPeers
//     (2f) other replicas;
//   - Raft: a known leader, not waiting for a snapshot, and connected to
//     at least QuorumPeers (f) other replicas.
//
// A replica whose connections to the others are unknown is not ready.
func (r Readiness) decide(st Status, peers int, peersKnown bool) (bool, string) {
	raft := r.Consensus == config.ConsensusRaft
	view, executed, stable := "view", "executed up to sequence", "stable checkpoint"
	if raft {
		view, executed, stable = "term", "applied up to index", "snapshot index"
	}
	switch {
	case !st.ViewActive && raft:
		return false, fmt.Sprintf("no known leader in term %d", st.View)
	case !st.ViewActive:
		return false, fmt.Sprintf("changing view (to view %d)", st.View)
	case st.Transferring:
		return false, fmt.Sprintf("state transfer in progress (%s %d, %s %d)", executed, st.ExecutedSequence, stable, st.StableCheckpoint)
	case st.ExecutedSequence < st.StableCheckpoint:
		return false, fmt.Sprintf("behind: %s %d, below its %s %d", executed, st.ExecutedSequence, stable, st.StableCheckpoint)
	case !peersKnown:
		return false, "the transport does not report connected replicas"
	case peers < r.QuorumPeers:
		return false, fmt.Sprintf("no quorum: connected to %d of %d other replicas, a quorum needs %d", peers, r.Replicas-1, r.QuorumPeers)
	}
	leader := fmt.Sprintf("%s %d", view, st.View)
	if raft {
		leader = fmt.Sprintf("leader %d in term %d", st.Leader, st.View)
	}
	return true, fmt.Sprintf("%s, connected to %d of %d other replicas (a quorum needs %d), %s %d",
		leader, peers, r.Replicas-1, r.QuorumPeers, executed, st.ExecutedSequence)
}
