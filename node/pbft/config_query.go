package pbft

import (
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/wire"
)

// answerConfigQuery answers a read-only request that sets config_query
// with the configuration history this replica knows: the certificates
// from the genesis to the epoch in force (clients verify them with
// membership.VerifyHistory) and that epoch's configuration. It reports
// whether req was a config_query (answered here; the read-only path must
// not run it as an operation).
func (n *Node) answerConfigQuery(req *wire.Request) bool {
	if !req.GetConfigQuery() {
		return false
	}
	node.ReplyToClient(n.Host, n.metrics, &wire.Reply{
		View: n.lastCore.View, ClientId: req.ClientId, RequestNumber: req.RequestNumber, Replica: n.cfg.Index,
		Result: n.driver.ConfigHistory().Encode(n.cfg.Genesis), ReadOnly: true, Epoch: n.driver.Epoch(),
	})
	return true
}
