// Package raftsim is the deterministic simulator of pbftnode's crash-fault
// Raft mode. It drives the real replica logic (raftmode.Core) through the
// runtime's own driver (raftreplica.Driver) on a real raftlog.Log (storage/raftlog) and
// execution.Executor with the KV application, each
// replica on its own in-memory goleveldb (storage.OpenMem), over a seeded
// virtual network in virtual time (ticks), in one goroutine.
//
// One seed decides everything: message delays, drops, duplicates and
// reordering, partitions that form and heal, replica crashes and restarts
// (a restart rebuilds the executor, the raft log and the Core from exactly
// what the replica's database holds), optionally the loss of one replica's
// whole database once the cluster is calm (a wipe, followed by a rejoin
// through snapshot state transfer), the client load, the Core's batching
// and message limits, the snapshot interval, and every replica's election
// randomness (raftmode.Config.Rand). A run reads no clock, so a seed
// replays exactly.
//
// State transfer is the runtime's (the statetransfer.Fetcher the
// raftreplica.Driver owns, with the runtime's idle timeout) carried
// over the simulated network: a replica whose Core reports NeedState asks
// one peer at a time for a snapshot at the needed index or later, chunk by chunk,
// restores it into its executor (RestoreBegin, RestoreChunk,
// RestoreFinish or RestoreFinishExpect) and calls StateInstalled; peers
// serve their two latest snapshots (Output.Snapshot, plus the state a
// replica starts with).
//
// Every run is checked: agreement (every applied log entry, and the state
// digest after every index, is the same on every replica), validity (only
// issued requests execute, each at most once per replica),
// linearizability of the client histories (github.com/anishathalye/porcupine,
// against internal/kvmodel, the key-value model internal/sim uses too, or
// internal/ledgermodel with Config.Ledger, whose runs also check every
// replica's ledger invariants around every applied index), liveness (once the
// schedule is calm every pending operation completes within LivenessBound
// ticks) and convergence (at the end every replica has applied the same
// log and holds the same state digest). See docs/testing.md.
//
// The scaffolding it shares with internal/sim is internal/simkit's: the
// event queue, the network's fault plan (rates, partitions, crash timing,
// calm), the client workload and its porcupine history, the validity
// checker, and RunMany. What is the Raft mode's stays here.
//
// Files: config.go (Config, Counters, Summary, timing), world.go (events,
// virtual network, main loop), host.go, app.go and transfer.go (one
// replica: Core and driver, storage, executor, crash, restart, wipe, the
// driver's Network, Snapshots and Observer, serving state),
// client.go (the clients' Raft-mode rules: leader hints, first reply),
// schedule.go (asymmetric partitions, leader crashes, wipes), reconfig.go
// (Config.Reconfigure: spares added, a key rotated, a member removed by an
// administrator's signed requests), joint.go (the joint configurations
// counted, a leader crashed in one), check.go
// and liveness.go (the checkers), run.go (Result, Run and RunMany).
package raftsim
