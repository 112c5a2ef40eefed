package pbft

import (
	"context"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
)

// QueryHistory asks, as n's joiner would, the members n knows for the
// configuration history and returns the longest answer verified from the
// genesis.
func QueryHistory(ctx context.Context, n *Node) (membership.History, bool, error) {
	q, err := node.NewConfigQuerier(nil)
	if err != nil {
		return membership.History{}, false, err
	}
	h, ok := n.queryHistory(ctx, q)
	return h, ok, nil
}
