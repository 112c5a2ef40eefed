package pbft

import (
	"errors"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/wire"
)

// errNoReconfiguration: the PBFT runtime keeps the cluster file's
// membership (epoch 0) for good; configuration epochs are not built yet
// (docs/reconfiguration.md), so it cannot start a spare, and the executor
// refuses configuration changes.
var errNoReconfiguration = errors.New("the PBFT runtime does not change its membership yet")

// answerConfigQuery answers a read-only request that sets config_query
// with the configuration history this replica knows: no certificates, and
// the genesis as the current configuration (the PBFT runtime stays in
// epoch 0). It reports whether req was a config_query (answered here; the
// read-only path must not run it as an operation).
func (n *Node) answerConfigQuery(req *wire.Request) bool {
	if !req.GetConfigQuery() {
		return false
	}
	node.ReplyToClient(n.Host, n.metrics, &wire.Reply{
		View: n.lastCore.View, ClientId: req.ClientId, RequestNumber: req.RequestNumber, Replica: n.cfg.Index,
		Result: membership.History{}.Encode(n.cfg.Genesis), ReadOnly: true, Epoch: n.cfg.Genesis.Epoch,
	})
	return true
}
