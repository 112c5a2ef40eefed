package node

import (
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Filter rewrites what a replica sends. A correct replica has none; the
// byzantine package implements the fault-injection strategies with it, so
// the protocol core carries no fault code.
type Filter interface {
	// Outbound returns the messages to send instead of out (none to drop
	// it, several to equivocate).
	Outbound(out protocol.Outbound) []protocol.Outbound
	// Reply may change a reply before it goes to the client; false drops it.
	Reply(r *wire.Reply) bool
}

// CountingFilter is a Filter that counts the faults it injected; the node
// exports the count as pbftnode_fault_injections_total.
type CountingFilter interface {
	Filter
	Actions() uint64
}
