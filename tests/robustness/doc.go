// Package robustness holds the process-level robustness test, in the
// spirit of etcd's tests/robustness: a real 4-replica PBFT testnet of
// `pbftnode run` processes on 127.0.0.1, concurrent clients of the Go
// client library in the test process, a nemesis that SIGKILLs and
// restarts one replica, kills all of them at once and restarts them, and
// switches one replica's Byzantine strategy (`run --byzantine S
// --byzantine-toggle`) on and off; then a porcupine check of the whole
// client history against internal/kvmodel (an operation that timed out is
// pending: it may or may not have taken effect) and a check that, once
// the nemesis stops, every replica reaches the same executed sequence and
// state digest.
//
// `go test ./tests/robustness/` runs for 30 s of nemesis (skipped under
// -short). PBFTNODE_ROBUSTNESS=5m runs longer, PBFTNODE_ROBUSTNESS_SEED
// replays a seed's fault schedule, PBFTNODE_ROBUSTNESS_STRATEGY picks the
// Byzantine strategy; see docs/testing.md.
package robustness
