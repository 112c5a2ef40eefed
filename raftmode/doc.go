// Package raftmode is the crash-fault Raft mode's replica logic: an etcd
// raft RawNode (go.etcd.io/raft/v3) plus what the Raft mode adds around it,
// batching client requests into log entries, applying committed entries to
// the shared execution layer, applying configuration changes (etcd raft's
// ConfChangeV2 with learners and joint consensus, decided by the
// executor's membership rules: confchange.go, joint.go), taking and installing snapshots, and driving elections
// from a seeded timer.
//
// Like protocol/ for PBFT, a Core does no network I/O, starts no goroutine
// and reads no clock: time arrives as Tick, messages as Step, client
// requests as Submit, and Process returns what to send. Unlike protocol/,
// it writes to the replica's storage (the raft log through LogStorage, the
// application through execution.Executor) itself, because etcd raft's
// Ready/Advance contract ties persisting and applying to one call; both are
// deterministic goleveldb writes, so the same Core, driven by the same
// driver (raftreplica.Driver), runs under the libp2p runtime (node/raftnode) and
// under the simulator (internal/raftsim) on an in-memory database.
//
// Elections: etcd raft randomises election timeouts with crypto/rand,
// which would make simulator runs impossible to replay. The Core therefore
// turns raft's own election timer off and campaigns from a timer of its own
// whose randomisation comes from Config.Rand.
package raftmode
