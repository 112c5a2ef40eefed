// Package kvmodel is the simulators' model of the built-in key-value
// application (put, get, compare-and-swap): the operations their clients
// issue, the results they observe, and the sequential specification that
// porcupine checks client histories against for linearizability. Both
// internal/sim (PBFT) and internal/raftsim (Raft) use it, so both modes are
// held to the same specification.
package kvmodel
