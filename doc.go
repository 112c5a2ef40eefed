// Package pbftnode runs a replica of your own application: a program
// implements app.Application (a deterministic state machine; package app
// states the whole contract: determinism, the state digest, snapshots,
// what the replica keeps for it) and StartReplica runs it as one member of
// a PBFT cluster (tolerating f Byzantine replicas out of 3f+1) or of a Raft
// cluster (crash faults only), as the replica's configuration file says.
// Clients reach the cluster with Dial.
//
// A library replica is the replica `pbftnode run` starts, with the
// application it is given in place of the built-in key-value store: the
// same configuration file and rules (LoadHome in node/launch is the one
// loader both use), the same protocol log and durability, checkpoints,
// state transfer, /metrics, /readyz and /status, and the same client
// guarantees. The replica keeps the application's durable state for it
// (package apphost: snapshots and a journal of executed batches in the
// replica's database), so the application may live in memory: after a
// restart the replica restores it and executes again what it had
// executed.
//
// Defaults are the safe ones: the replica fsyncs its database before it
// acts on what it wrote, unless the configuration file sets
// unsafe_no_fsync (benchmarks only; a machine crash can then break
// safety). A configuration without that key keeps fsync on.
//
// The surface is small on purpose: StartReplica and Replica, Dial and
// ClientConfig, WriteTestnet, TestnetHome and FreeBasePort for local
// clusters. Everything else is the packages it names (app, client, config,
// apphost). See docs/applications.md for a guide and examples/embedded for
// a complete program.
package pbftnode
