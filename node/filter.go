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

// Injector is an optional hook of a Filter, found by type assertion: the
// event loop calls Inject once per tick (tick counts the loop's ticks
// from 1; st is the core's status after the tick: view, primary, window)
// and encodes, sends through the host and counts every message it
// returns, as it does the core's. Fault injection uses it to send traffic
// of its own (floods) on the protocol's clock, not a wall-clock timer.
type Injector interface {
	Inject(tick uint64, st protocol.Status) []protocol.Outbound
}

// Delayer is an optional hook of a Filter, found by type assertion: for
// each message the Filter lets out, Delay returns how many ticks the node
// holds it before sending (0: send now). Held frames wait in a
// tick-ordered queue bounded by maxHeldFrames and maxHeldBytes; a frame
// that does not fit goes at once.
type Delayer interface {
	Delay(out protocol.Outbound) uint64
}
