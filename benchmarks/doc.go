// Package benchmarks is the harness behind `pbftnode bench`: it compares
// the PBFT mode with the crash-fault Raft mode on one machine, in one run,
// with the same workload, transport, storage and execution.
//
// Replicas run as separate `pbftnode run` processes, exactly as an
// operator runs them (the harness execs its own binary: `testnet` writes
// the cluster, `run --home` starts each replica). The clients run inside
// the bench process on the client library, closed-loop (C clients with W
// operations outstanding each) or open-loop at a target rate. The harness
// records every completed operation's latency and completion time,
// samples each replica's CPU time from /proc/PID/stat and its byte
// counters from /metrics, injects the scenario's fault (a crashed
// backup, a crashed leader, a Byzantine replica) and, for PBFT, measures
// the crypto ceiling (cryptoceiling.Measure) before starting the cluster.
//
// With Config.Peer, Run measures a peer system a user would pick instead
// (PeerEtcd, PeerCometBFT: peer.go) under the same load and statistics:
// the peer starts its own processes on loopback and supplies one
// operation runner per client to the same load loop.
//
// Run measures one configuration; Compare runs the standard matrix (and
// the installed peers) and writes a table, JSON and plots (WriteTable,
// WriteJSON, WritePlots). Scale runs the sweeps of how the cost grows
// (`bench --scale`): throughput against n, and throughput, memory and a
// wiped replica's catch-up time against a preloaded state's size
// (WriteScaleReport).
package benchmarks
