// Package cryptoceiling measures the crypto ceiling (Measure): how many
// client requests per second this machine can sign once and verify once
// per replica, through the same verification kernel the replicas run
// (crypto.Verifier's batch verification). pbftnode bench reports it beside
// each PBFT run, and the throughput benchmark in node compares its rate
// with it.
//
// The measurement uses a fixed key and its own goroutines, which it waits
// for before returning; it keeps no state between calls, does not log and
// uses no global randomness.
package cryptoceiling
