package pbft

import "github.com/pbftnode/pbftnode/replica"

// Filter rewrites what a PBFT replica sends (see replica.Filter); the
// byzantine package implements the fault-injection strategies with it.
// It is the PBFT runtime's own option (Start's filter): the other
// runtimes have no fault injection.
type Filter = replica.Filter

// CountingFilter is a Filter that counts the faults it injected; the node
// runtime exports the count as pbftnode_fault_injections_total.
type CountingFilter interface {
	Filter
	Actions() uint64
}

// Injector is replica.Injector: an optional hook of a Filter that sends
// traffic of its own on each tick.
type Injector = replica.Injector

// Delayer is replica.Delayer: an optional hook of a Filter that holds
// messages for some ticks before sending them.
type Delayer = replica.Delayer
