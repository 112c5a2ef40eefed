// Package byzantine holds the fault-injection strategies that make a
// replica misbehave on purpose: silent, equivocate, withhold, bad-new-view
// and wrong-results rewrite what the replica sends (the runtime's
// pbft.Filter); bad-signature-flood, stale-flood and batch-request-flood
// also send traffic of their own on every tick (the node's optional
// Injector hook), and slow-primary holds its PRE-PREPAREs (the Delayer
// hook). Each holds the replica's key so it can sign what it forges, and
// each can be switched off and on (SetActive). The protocol core carries
// no fault code: `pbftnode run --byzantine STRATEGY [--byzantine-toggle]`,
// the demo, the simulator and the tests wrap a correct replica in one of
// these filters.
//
// These are testing tools. A replica running one is, by design, one of the
// f faulty replicas the cluster tolerates.
package byzantine
