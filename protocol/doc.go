// Package protocol owns the PBFT replica: a deterministic state machine in
// the style of etcd-io/raft. It has no goroutines, no clock, no I/O and no
// randomness. Inputs go in one at a time (Step for a verified replica
// message, Submit for a verified client request, Tick for time,
// CheckpointExecuted for an execution result) and a Ready of actions comes
// out (entries to persist, messages to send, committed batches to execute,
// stable checkpoints to garbage-collect).
//
// Contract with its driver (replica.Driver, which the runtime node/pbft,
// the simulator and the golden tests all use):
//   - Every message given to Step has had its Ed25519 signature checked
//     against the key of the replica named in its From field, and every
//     client request inside it (or given to Submit) has had its client
//     signature checked. The core checks everything else (view, sender
//     role, window, digest, duplicates) and drops what does not check out,
//     returning the reason as an error.
//   - Ready.Persist must be durable BEFORE any of Ready.Messages is sent,
//     except those marked Outbound.BeforePersist (the primary's
//     PRE-PREPAREs, a backup's PREPAREs), which may go first; a Ready
//     whose messages are all marked so may leave Persist undurable until
//     a later Ready's Persist is made durable, which must then cover it
//     (every later message not so marked waits for that).
//   - Ready.Committed batches must be executed in order, each exactly once,
//     and for every executed sequence that is a multiple of the checkpoint
//     interval the runtime calls CheckpointExecuted with the state digest.
//
// The pure checkpoint/ package decides stability and watermarks; view
// changes (viewchange/) plug in at the seams marked in replica.go.
package protocol
