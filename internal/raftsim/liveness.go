package raftsim

import (
	"fmt"

	"github.com/pbftnode/pbftnode/internal/simkit"
)

// KindConvergence is the violation of replicas that did not converge
// once the clients were done (see checkLiveness).
const KindConvergence = "convergence"

func (w *world) pendingOps() int { return w.work.Pending() }

// settledAt is when the schedule stopped injecting faults: calm, or the
// last wipe after it.
func (w *world) settledAt() int64 { return max(w.sched.CalmAt, w.sched.wipedAt) }

// checkLiveness fails the run when, after calm, an operation is pending
// past its deadline (LivenessBound ticks after the later of calm, the last
// wipe and its call), when the replicas do not converge within the bound
// once the clients are done, or when a planned wipe never finds a stable
// leader.
func (w *world) checkLiveness(clientsDone bool) {
	if !w.calm() {
		return
	}
	bound := LivenessBound(w.n)
	settled := w.settledAt()
	if d := w.work.Overdue(w.now, settled, bound); d != "" {
		w.violate(simkit.KindLiveness, d+"; "+w.describeReplicas())
		return
	}
	if d := w.reconf.overdue(w.now, settled, bound); d != "" {
		w.violate(simkit.KindLiveness, d+"; "+w.describeReplicas())
		return
	}
	if w.sched.wipePending() && w.now > w.sched.wipeFrom+bound {
		w.violate(simkit.KindLiveness, fmt.Sprintf("no stable leader with caught-up followers within %d ticks of tick %d (the planned wipe never happened); %s",
			bound, w.sched.wipeFrom, w.describeReplicas()))
		return
	}
	if clientsDone && !w.sched.wipePending() {
		if start := max(settled, w.clientsDoneAt); w.now > start+bound {
			w.violate(KindConvergence, fmt.Sprintf("replicas did not converge within %d ticks of tick %d (clients done and calm); %s",
				bound, start, w.describeReplicas()))
		}
	}
}

// converged reports whether every replica is up, not transferring state,
// and has applied everything the leader has in its log, with equal state
// digests.
func (w *world) converged() bool {
	leader := w.stableLeader()
	if leader == nil {
		return false
	}
	st := leader.core.Status()
	digest := leader.exec.StateDigest()
	for _, h := range w.hosts {
		if !w.participates(h) {
			continue
		}
		if h.exec.LastExecuted() != st.LastIndex || h.exec.StateDigest() != digest {
			return false
		}
	}
	return true
}

// stableLeader returns the leader when every replica is up, follows it in
// its term, waits for no state, and holds the leader's whole log, all of
// it committed; nil otherwise.
func (w *world) stableLeader() *host {
	var leader *host
	for _, h := range w.hosts {
		if !w.participates(h) {
			continue
		}
		if h.down || h.driver.Transferring() || h.core.WaitingForState() != nil {
			return nil
		}
		if h.core.Status().IsLeader {
			leader = h
		}
	}
	if leader == nil {
		return nil
	}
	ls := leader.core.Status()
	if ls.Commit != ls.LastIndex {
		return nil
	}
	for _, h := range w.hosts {
		if !w.participates(h) {
			continue
		}
		st := h.core.Status()
		if st.Term != ls.Term || st.Leader != int(leader.id) || st.LastIndex != ls.LastIndex || st.Commit != ls.Commit {
			return nil
		}
	}
	return leader
}

func (w *world) describeReplicas() string {
	s := "replicas:"
	for _, h := range w.hosts {
		if h.down || h.core == nil {
			s += fmt.Sprintf(" [%d down]", h.id)
			continue
		}
		st := h.core.Status()
		s += fmt.Sprintf(" [%d term %d leader %d commit %d applied %d last %d snapshot %d pending %d waiting %v transferring %v]",
			h.id, st.Term, st.Leader, st.Commit, st.Applied, st.LastIndex, st.SnapshotIndex, st.PendingRequests, st.WaitingForState, h.driver.Transferring())
		if w.reconf != nil {
			cs := h.core.ConfState()
			s += fmt.Sprintf("{epoch %d voters %v outgoing %v learners %v}", st.Epoch, cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners())
		}
		if w.cfg.Verbose && h.driver.Transferring() {
			s += fmt.Sprintf("{%v}", h.driver.Fetcher())
		}
	}
	return s
}
