// Package sim is pbftnode's deterministic simulator. It drives the real
// PBFT core through the production driver (replica.Driver, as node/ does:
// same order of persist, send, execute, checkpoint, recovery and state
// transfer), with a real execution.Executor and KV application on an
// in-memory goleveldb and replica.MemoryStorage, over a seeded virtual
// network in virtual time (ticks), in one goroutine.
//
// One seed decides everything: message delays, drops, duplicates and
// reordering, partitions that form and heal, replica crashes and restarts
// (a restarted replica recovers exactly what its storage would hold), the
// client load, and which replicas (at most --byzantine K <= f) are
// Byzantine and how (the byzantine package's strategies, the simulator's
// own filters of the same shape, and Twins: two copies of one replica with
// the same key, each connected to part of the network; Config.Strategy
// forces one). The byzantine floods and slow-primary act through the
// driver's Injector and Delayer hooks (replica.Filter), which the simulator drives from its
// own ticks (FloodFramesPerTick; 90% of the view-change timeout). A run is
// single-threaded and reads no clock, so a seed replays exactly; the
// replicas emit nothing in map order. Config.Trace records every message
// sent and delivered, to find where two runs diverge.
//
// Every run is checked: agreement (at every execution step), validity,
// linearizability of the client histories (github.com/anishathalye/porcupine)
// and liveness (after the schedule turns calm, every pending operation
// completes within LivenessBound ticks). With Config.Ledger the replicas
// run the built-in ledger instead of the key-value store, the history is
// checked against internal/ledgermodel, and every correct replica's
// ledger invariants after every batch it executes, state it installs and
// restart. See docs/testing.md.
//
// The scaffolding it shares with internal/raftsim is internal/simkit's:
// the event queue, the network's fault plan (rates, partitions, crash
// timing, calm), the client workload and its porcupine history, the
// validity checker, and RunMany. What is PBFT's stays here.
//
// Files: config.go (Config, Counters, Summary), world.go (the events,
// virtual network and main loop), host.go (one simulated replica: the
// driver and what it plugs in, crash and restart, torn writes),
// statexfer.go (serving state requests from checkpoint snapshots),
// client.go (the clients' PBFT rules: signed requests, f+1 matching
// replies), faults.go and schedule.go (Byzantine strategies, Twins, the
// attack scenario, torn crashes), check.go and equivocation.go (agreement
// and equivocation checks), run.go (Result, Run and RunMany).
package sim
