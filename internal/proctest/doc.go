// Package proctest runs a pbftnode testnet as separate operating-system
// processes for tests: it builds the pbftnode binary once per test
// binary, writes a testnet with `pbftnode testnet` on a free block of
// loopback ports, starts, SIGKILLs and signals `pbftnode run` processes
// (each logging to node<i>.log in the testnet directory), scrapes their
// /metrics and /status, and makes Go clients with keys of their own.
//
// The multi-process tests of cmd/pbftnode and the robustness test in
// tests/robustness share it. Nothing here is used outside tests.
package proctest
