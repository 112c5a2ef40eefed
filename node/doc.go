// Package node is the shell the replica runtimes share; each runtime is a
// package of its own on top of it: node/pbft (the PBFT replica),
// node/raftnode (the crash-fault Raft mode) and node/floor (the benchmark
// floor), started by node/launch. No runtime imports another; what two of
// them share lives here.
//
// The shell owns:
//   - Config (config.go, configfile.go): what every runtime is configured
//     with, built from a checked home (config.Load) by LoadHome; each
//     runtime's own options are arguments of its Start.
//   - Shell (shell.go): the transport (StartHost), the database (OpenDB),
//     the operations HTTP server (ServeOps: /metrics, /healthz, /readyz,
//     /status) and the goroutines' lifetime (Run, Shutdown). A runtime
//     embeds it.
//   - Readiness (ready.go): when /readyz says ready (caught up and able to
//     reach a quorum), per protocol, and the reason it gives.
//   - Metrics (metrics.go, metrics_ops.go, inbound.go): one replica's
//     Prometheus metrics, the same names for every runtime.
//   - The inbound path (verify.go, inbound.go): ReceiveLoop takes the
//     frames the host schedules fairly across its sources; NewVerifier,
//     SignedRequestOf, SentByItsClient, ReasonOf and Refused are the
//     verification steps PBFT and the floor share (Refused backs off a
//     sender that signed badly on its own stream).
//   - The event loop (loop.go): EventLoop is the one goroutine a runtime's
//     driver runs on (ticks, bursts of at most MaxBurst inputs, then
//     Process); Push queues inputs without blocking.
//   - Snapshot serving (transfer.go, statebudget.go): StateRequest,
//     StateChunkBytes and ChunkServer, the per-requester budget both
//     runtimes' snapshot servers answer within.
//   - Replies (reply.go): SendReply and ReplyToClient answer a client on
//     its own stream.
//   - Batched reads (readbatch.go): ReadBatchRequests turns a client's
//     ReadBatch frame into its read-only requests, ReadReplies sends one
//     step's read answers a client's together (Reply.read_answers); the
//     PBFT and Raft runtimes both use them.
//   - Status and Runner (status.go): what every runtime reports.
//
// Contracts: a runtime's Start calls Config.ApplyDefaults first; its
// goroutines are started by Shell.Run and stopped by Shell.Shutdown, once
// (Close is idempotent). Metrics and Status are safe to read from any
// goroutine. The shell holds no protocol logic and no wall-clock timers
// of a protocol: the cores count the ticks the event loop feeds them.
package node
