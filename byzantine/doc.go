// Package byzantine holds the fault-injection strategies that make a
// replica misbehave on purpose: silent, equivocate, withhold, bad-new-view
// and wrong-results. Each is a filter on what the replica sends (the
// runtime's node.Filter), holding the replica's key so it can sign what it
// forges. The protocol core carries no fault code: `pbftnode run
// --byzantine STRATEGY`, the demo and the tests wrap a correct replica in
// one of these filters.
//
// These are testing tools. A replica running one is, by design, one of the
// f faulty replicas the cluster tolerates.
package byzantine
