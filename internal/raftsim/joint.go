package raftsim

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
)

// Joint configurations in reconfiguration runs. Every change of raft's
// voters (a promotion of learners, a removal) enters a joint
// configuration that the leader leaves with a second entry. The world
// watches every replica's configuration after each Process: it counts
// the joint configurations entered and left (Counters.JointEntered,
// JointLeft), and before calm it crashes the leader that just entered one
// in half of the cases (JointCrashes), while the crash budget allows, so
// that the next leader must find the configuration joint and leave it. A
// run is not over while a member's configuration is joint or holds a
// learner (confSettled): a cluster stuck in a joint configuration, or a
// learner never promoted, fails it on the convergence bound.

// jointKey names a joint configuration by its incoming and outgoing
// voters; "" when cs is not joint.
func jointKey(cs *raftpb.ConfState) string {
	if len(cs.GetVotersOutgoing()) == 0 {
		return ""
	}
	return fmt.Sprintf("%v/%v", slices.Sorted(slices.Values(cs.GetVoters())), slices.Sorted(slices.Values(cs.GetVotersOutgoing())))
}

// jointWatch is the world's record of the joint configurations seen.
type jointWatch struct {
	// entered and left hold the joint configurations some replica entered
	// and some replica left.
	entered, left map[string]bool
}

// watchJoint notes h's configuration after a Process: a joint
// configuration it entered or left, and, before calm, crashes h when it
// leads the one it just entered (half of the cases, within the crash
// budget).
func (w *world) watchJoint(h *host) {
	if w.reconf == nil || h.down || h.core == nil {
		return
	}
	key := jointKey(h.core.ConfState())
	prev := h.jointKey
	h.jointKey = key
	switch {
	case key == prev:
		return
	case prev != "":
		w.joints.left[prev] = true
	}
	if key == "" {
		return
	}
	w.joints.entered[key] = true
	s := w.sched
	if w.calm() || !s.Crashes || !h.core.Status().IsLeader || len(s.DownUntil) >= s.MaxDown || w.rng.IntN(2) != 0 {
		return
	}
	w.log.Debug("crash the leader in a joint configuration", "replica", h.id, "config", key)
	h.crash()
	s.Down(w.rng, h, w.now, 10, 300)
	w.res.Crashes++
	w.res.JointCrashes++
}

// countJoints fills in the run's joint configuration counters.
func (w *world) countJoints() {
	w.res.JointEntered = uint64(len(w.joints.entered))
	for k := range w.joints.entered {
		if w.joints.left[k] {
			w.res.JointLeft++
		}
	}
}

// confSettled reports whether no running member of the latest
// configuration is in a joint configuration or holds a learner: every
// change of the voters is complete (always true outside reconfiguration
// runs).
func (w *world) confSettled() bool {
	if w.reconf == nil {
		return true
	}
	for _, h := range w.hosts {
		if h.down || h.core == nil || !w.participates(h) {
			continue
		}
		if cs := h.core.ConfState(); len(cs.GetVotersOutgoing()) > 0 || len(cs.GetLearners()) > 0 {
			return false
		}
	}
	return true
}
