package raftnode

import (
	"bytes"
	"context"
	"time"

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

// syncMembers hands the transport the applied configuration's members
// when its epoch changed since the last call (on the event loop, before
// the Process output that follows a change is sent). A removed replica
// keeps only itself (its links stop, the members no longer hear from it):
// it takes no further part and idles.
func (n *Node) syncMembers() {
	cur := n.core.Membership()
	if cur.Epoch == n.hostEpoch && !n.joinPending {
		return
	}
	if n.core.Removed() {
		if n.core.Status().IsLeader {
			return // it hands leadership over first, over its links
		}
		if !n.removedLogged {
			n.log.Warn("this replica was removed from the cluster: it idles (stop it)", "epoch", cur.Epoch)
			n.removedLogged = true
		}
		if err := n.setHostMembers(cur); err != nil {
			n.log.Error("transport: member set", "epoch", cur.Epoch, "err", err)
		}
		n.hostEpoch = cur.Epoch
		return
	}
	if _, ok := cur.Member(n.cfg.Index); !ok {
		return // a spare not yet added: it learns the configuration first
	}
	if err := n.setHostMembers(cur); err != nil {
		n.log.Error("transport: member set", "epoch", cur.Epoch, "err", err)
		return
	}
	n.hostEpoch, n.joinPending = cur.Epoch, false
	n.log.Info("configuration applied", "epoch", cur.Epoch, "members", cur.Indices())
}

func (n *Node) setHostMembers(cur membership.Config) error {
	var members []p2p.Member
	for _, r := range n.hostReplicas(cur) {
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
	if err := n.setHostMembers(cur); err != nil {
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
