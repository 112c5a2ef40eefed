package raftnode

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// membershipRules are the executor's rules on configuration changes in
// the Raft mode: a change is in force from the next entry on. ok is false
// when the genesis is not a valid configuration (a test cluster without
// addresses): configuration changes are then refused.
func membershipRules(cfg node.Config) (execution.MembershipRules, bool) {
	if err := cfg.Genesis.Check(); err != nil {
		return execution.MembershipRules{}, false
	}
	return execution.MembershipRules{
		ClusterID:  cfg.ClusterID,
		Genesis:    cfg.Genesis,
		Rules:      config.MembershipRules(config.ConsensusRaft),
		ActiveFrom: func(sequence uint64) uint64 { return sequence + 1 },
	}, true
}

// hostReplicas are the replicas the transport admits: the applied
// configuration's members when this replica is one of them; otherwise
// (a spare that has not joined, or a removed replica) itself only.
func (n *Node) hostReplicas(cur membership.Config) []node.Replica {
	if _, ok := cur.Member(n.cfg.Index); !ok || len(cur.Members) == 0 {
		if len(cur.Members) == 0 && !n.cfg.Spare {
			return n.cfg.Replicas // no membership rules: the cluster file
		}
		return []node.Replica{{Index: n.cfg.Self.Index, PublicKey: n.cfg.Self.PublicKey, Addr: n.cfg.Self.Address}}
	}
	out := make([]node.Replica, len(cur.Members))
	for i, m := range cur.Members {
		out[i] = node.Replica{Index: m.Index, PublicKey: m.PublicKey, Addr: m.Address}
	}
	return out
}

// transportReplicas are the replicas the transport admits: those of
// hostReplicas, and while raft's configuration is joint the members
// removed by the change that entered it, which still vote in C_old
// (outgoing: raftmode.Core.OutgoingMembers) until the leave is applied.
// A removed replica that still votes there keeps its links to them all.
func (n *Node) transportReplicas(cur membership.Config, outgoing []membership.Member) []node.Replica {
	_, member := cur.Member(n.cfg.Index)
	if len(outgoing) == 0 || (!member && !votesIn(outgoing, n.cfg.Index)) {
		return n.hostReplicas(cur)
	}
	out := make([]node.Replica, 0, len(cur.Members)+len(outgoing))
	for _, m := range append(slices.Clone(cur.Members), outgoing...) {
		out = append(out, node.Replica{Index: m.Index, PublicKey: m.PublicKey, Addr: m.Address})
	}
	return out
}

func votesIn(members []membership.Member, index uint32) bool {
	return slices.ContainsFunc(members, func(m membership.Member) bool { return m.Index == index })
}

// syncMembers hands the transport the applied configuration's members
// (transportReplicas) when its epoch, or whether raft's configuration is
// joint, changed since the last call (on the event loop, before the
// Process output that follows a change is sent). A removed replica keeps
// its links while it votes in a joint configuration's C_old, then only
// itself (its links stop, the members no longer hear from it): it takes
// no further part and idles.
func (n *Node) syncMembers() {
	cur := n.core.Membership()
	outgoing := n.core.OutgoingMembers()
	joint := len(outgoing) > 0
	if cur.Epoch == n.hostEpoch && joint == n.hostJoint && !n.joinPending {
		return
	}
	if n.core.Removed() && !votesIn(outgoing, n.cfg.Index) {
		if n.core.Status().IsLeader {
			return // it hands leadership over first, over its links
		}
		if !n.removedLogged {
			n.log.Warn("this replica was removed from the cluster: it idles (stop it)", "epoch", cur.Epoch)
			n.removedLogged = true
		}
		if err := n.setHostMembers(n.hostReplicas(cur)); err != nil {
			n.log.Error("transport: member set", "epoch", cur.Epoch, "err", err)
		}
		n.hostEpoch, n.hostJoint = cur.Epoch, joint
		return
	}
	if _, ok := cur.Member(n.cfg.Index); !ok && !votesIn(outgoing, n.cfg.Index) {
		return // a spare not yet added: it learns the configuration first
	}
	if err := n.setHostMembers(n.transportReplicas(cur, outgoing)); err != nil {
		n.log.Error("transport: member set", "epoch", cur.Epoch, "err", err)
		return
	}
	n.hostEpoch, n.hostJoint, n.joinPending = cur.Epoch, joint, false
	if joint {
		n.log.Info("configuration applied; joint until its leave", "epoch", cur.Epoch, "members", cur.Indices(), "outgoing_removed", len(outgoing))
		return
	}
	n.log.Info("configuration applied", "epoch", cur.Epoch, "members", cur.Indices())
}

func (n *Node) setHostMembers(replicas []node.Replica) error {
	var members []p2p.Member
	for _, r := range replicas {
		m, err := node.Member(r)
		if err != nil {
			return err
		}
		members = append(members, m)
	}
	return n.Host.SetMembers(members)
}

// joined takes the configuration a spare learned: once it names this
// replica (same index and key), the transport admits its members, so the
// leader can reach it and send it the log or a snapshot.
func (n *Node) joined(cur membership.Config) {
	if n.hostEpoch > 0 || n.core.Membership().Position(n.cfg.Index) >= 0 {
		return // the applied configuration rules already
	}
	if err := n.setHostMembers(n.hostReplicas(cur)); err != nil {
		n.log.Error("transport: member set of the learned configuration", "epoch", cur.Epoch, "err", err)
		return
	}
	n.joinPending = true
	n.log.Info("this spare is a member of the learned configuration; joining", "epoch", cur.Epoch, "members", cur.Indices())
}

// spareQueryInterval is how often a spare asks for the configuration.
const spareQueryInterval = time.Second

// learnMembership runs on a spare until it knows a configuration that
// names it: it asks the members it knows (the cluster file's, then those
// of each configuration it learns) for the configuration with a
// config_query read, as a client with its own key, and hands a
// configuration naming it to the event loop. The leader's answer counts
// (a crash-fault cluster: no certificate).
func (n *Node) learnMembership(ctx context.Context) {
	if !n.mustLearn {
		return
	}
	q, err := node.NewConfigQuerier(n.log)
	if err != nil {
		n.log.Error("spare: cannot ask for the configuration", "err", err)
		return
	}
	known := n.cfg.Genesis
	n.log.Info("spare: not a member yet; asking the members for the configuration")
	for ctx.Err() == nil {
		if cur, ok := n.queryMembership(ctx, q, known); ok {
			if m, member := cur.Member(n.cfg.Index); member && bytes.Equal(m.PublicKey, n.cfg.Self.PublicKey) {
				node.Push(ctx, n.inbox, raftInput{joined: &cur})
				return
			}
			if cur.Epoch > known.Epoch {
				known = cur
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(spareQueryInterval):
		}
	}
}

// queryMembership asks every member of known (but this replica) once for
// the configuration and returns the first answer that decodes, within
// spareQueryInterval. The answer is a Raft member's applied configuration,
// taken on trust: a crash-fault cluster has no certificates.
func (n *Node) queryMembership(ctx context.Context, q *node.ConfigQuerier, known membership.Config) (membership.Config, bool) {
	var cur membership.Config
	ok := q.Ask(ctx, known.Members, n.cfg.Index, spareQueryInterval, func(result []byte) bool {
		var hist wire.ConfigHistory
		if proto.Unmarshal(result, &hist) != nil {
			return false
		}
		c, err := membership.Decode(hist.GetCurrent())
		if err != nil {
			return false
		}
		cur = c
		return true
	})
	return cur, ok
}

// newJointGauge registers pbftnode_raft_config_joint on reg: 1 while
// raft's configuration is joint (a change of the voters entered it and its
// leave is not applied yet), 0 otherwise.
func newJointGauge(reg *prometheus.Registry) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pbftnode_raft_config_joint",
		Help: "1 while the Raft configuration is joint (a change of the voters is between its enter and leave entries), 0 otherwise.",
	})
	reg.MustRegister(g)
	return g
}
