// Package storage owns a replica's single goleveldb database and the PBFT
// protocol log kept in it.
//
// One database per replica lives in <dir>/db. Every owner writes under its
// own key prefix so owners never collide:
//
//	PrefixProtocol ("p/")  protocol log and current view (this package)
//	PrefixApp      ("a/")  application state (execution.KV)
//	PrefixExecutor ("e/")  last executed sequence and reply cache (execution.Executor)
//	PrefixRaft     ("r/")  Raft log, hard state and snapshot metadata (package storage/raftlog)
//
// Under PrefixRaft, raftlog.Log (raftlog.Open) is the Raft mode's durable
// raft.Storage: entries, hard state, latest snapshot metadata and the log
// boundary. It lives in its own package so that this one, and what imports
// it, do not depend on etcd raft.
//
// Besides the protocol log (p/log/...) and the view (p/view), PrefixProtocol
// holds the latest stable checkpoint certificate (p/stable, an encoded
// wire.CheckpointCertificate stored opaquely; SaveStableCheckpoint,
// LoadStableCheckpoint) and the state-transfer marker (p/transfer;
// SetTransferInProgress, TransferInProgress), which package execution sets
// while it replaces the a/ and e/ state with a snapshot fetched from peers.
//
// Writes that protect safety (AppendLog, SaveView, SaveStableCheckpoint,
// SetTransferInProgress) are fsynced when Options.Sync is true, which
// DefaultOptions sets. Turning Sync off is meant for benchmarks only; Open
// logs a warning when it is off.
//
// A DB is safe for concurrent use by multiple goroutines, as goleveldb is.
package storage
