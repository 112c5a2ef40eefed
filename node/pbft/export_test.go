package pbft

import (
	"context"

	"github.com/pbftnode/pbftnode/membership"
)

// QueryHistory asks, as n's joiner would, the members n knows for the
// configuration history and returns the longest answer verified from the
// genesis.
func QueryHistory(ctx context.Context, n *Node) (membership.History, bool, error) {
	q, err := newJoinerClient(n.cfg.ClusterID)
	if err != nil {
		return membership.History{}, false, err
	}
	h, ok := n.queryHistory(ctx, q, 1)
	return h, ok, nil
}
