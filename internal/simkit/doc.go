// Package simkit is the scaffolding the two deterministic simulators
// (internal/sim for PBFT, internal/raftsim for the Raft mode) share: the
// event queue of a virtual network in virtual time (Queue), the common
// part of a seed's fault plan (Faults: network fault rates, partitions,
// crash timing, the calm tick), the client workload and its history for
// the linearizability check (Client, Workload; the operations come from a
// Source: kvmodel's or, in a ledger run, ledgermodel's), the application a
// run uses (Application) and the history check (CheckHistory), the
// validity checker (Validity), and running seeds on workers (RunMany,
// Violation, Tally).
//
// Contracts: nothing here reads a clock, starts a goroutine (except
// RunMany, whose runs share nothing) or iterates a map where order
// matters. Every function that takes a *rand.Rand draws from it in a
// fixed, documented order, so that a simulator built on this package
// replays a seed exactly; a change to the number or order of draws here
// changes every seed's run, and must be said in the change.
//
// The simulators keep what differs: their events' payloads, their
// replicas (host), their own schedule additions (torn crashes, wipes),
// their client rules (f+1 matching replies, leader hints) and their
// agreement checks. internal/simkit/simtest holds the tests' helpers.
package simkit
