// Package verifypool owns the signature verification workers of a
// replica: Pool, a fixed number of goroutines that check sets of
// signatures with batch verification (crypto.Verifier), so the goroutine
// that runs the protocol core never spends its time on signature checks.
//
// The runtimes (the PBFT replica and the benchmark floor) create a Pool and
// hand it to protocol.NewMessageVerifier as a protocol.SignaturePool; the
// core only calls it. Contracts: VerifyAll's verdicts are exactly
// crypto.Verify's for each job, whatever the batching; it is safe for
// concurrent use, never blocks behind another caller's batch (the caller
// works too) and keeps working after Close, inline. A Pool must be closed
// to stop its workers. The package does not log and keeps no global state.
package verifypool
