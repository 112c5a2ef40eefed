// Package membership owns the cluster's configuration as it changes at run
// time: who the members are (a stable index, an Ed25519 key and an address
// each), which administrators may change that and how many of them must
// agree (k of m), and the rules a change must pass.
//
// A Config is one epoch's configuration; epoch 0 is the cluster file's. A
// Change (add a replica, remove one, rotate a replica's key, replace the
// administrators) names the epoch it changes, so it applies at most once,
// and is valid only with signatures of a threshold of that epoch's
// administrators over its encoding (crypto.DomainConfigChange). Config.Apply
// checks a SignedChange and returns the next epoch's Config, or an error
// saying why the change is refused. Apply is deterministic: every correct
// replica that applies the same change to the same Config gets the same
// result, so replicas can apply it while executing an ordered request.
//
// A Certificate proves a change to anyone who knows the previous
// configuration: the administrators' signed change, the configuration it
// produced, and votes (crypto.DomainConfigVote) from a quorum of the
// previous configuration's members. VerifyHistory walks a chain of them from
// epoch 0, so a client that knows only the cluster file learns the current
// members from any one replica without trusting it.
//
// The package does no I/O and keeps no state; where a runtime stores the
// current Config and when a new epoch takes effect are the runtimes'
// business.
package membership
