package raftnode

import (
	"context"
	"time"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
)

// A member removed while it was cut off (or a follower that had not yet
// applied its removal when the others, having applied it, stopped
// admitting it) never learns from raft that it was removed: nobody sends
// it anything any more. watchRemoval notices the silence and asks.

// removalCheckAfter is how long a member knows no leader before it asks
// the others for the configuration, and again after each unanswered or
// unremarkable query, doubling up to removalCheckMax;
// removalCheckInterval is how often it looks.
const (
	removalCheckInterval = time.Second
	removalCheckAfter    = 3 * time.Second
	removalCheckMax      = 30 * time.Second
)

// watchRemoval runs on a member: whenever it has known no leader for
// removalCheckAfter, it asks the other members of its applied
// configuration for theirs (config_query, as learnMembership does), and
// hands a configuration that retired it to the event loop.
func (n *Node) watchRemoval(ctx context.Context) {
	if n.mustLearn {
		return // a spare: learnMembership
	}
	q, err := node.NewConfigQuerier(n.log)
	if err != nil {
		n.log.Error("cannot watch for a removal", "err", err)
		return
	}
	t := time.NewTicker(removalCheckInterval)
	defer t.Stop()
	var leaderless time.Duration
	after := removalCheckAfter
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.Status().Leader >= 0 {
			leaderless, after = 0, removalCheckAfter
			continue
		}
		if leaderless += removalCheckInterval; leaderless < after {
			continue
		}
		leaderless, after = 0, min(2*after, removalCheckMax)
		applied := n.applied.Load()
		if applied == nil || applied.IsRetired(n.cfg.Index) {
			continue
		}
		if cur, ok := n.queryMembership(ctx, q, *applied); ok && cur.IsRetired(n.cfg.Index) {
			node.Push(ctx, n.inbox, raftInput{retired: &cur})
			return
		}
	}
}

// retired takes a configuration, learned from the members, that removed
// this replica before it applied the removal itself: it keeps only itself
// in its transport, reports that configuration's epoch and members, and
// idles.
func (n *Node) retired(cur membership.Config) {
	if n.core.Removed() || cur.Epoch <= n.core.Epoch() {
		return
	}
	n.log.Warn("this replica was removed from the cluster (learned from the members): it idles (stop it)", "epoch", cur.Epoch, "members", cur.Indices())
	n.removedLogged = true
	if err := n.setHostMembers(n.hostReplicas(cur)); err != nil {
		n.log.Error("transport: member set", "epoch", cur.Epoch, "err", err)
	}
	n.learnedRetired = &cur
}
