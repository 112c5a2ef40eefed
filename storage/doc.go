// Package storage owns a replica's single goleveldb database and the PBFT
// protocol log kept beside it.
//
// One database per replica lives in <dir>/db, and the protocol log in a
// write-ahead log in <dir>/wal (package storage/wal: preallocated segments,
// one write and one fdatasync per AppendLog, whole segments removed by
// DeleteLogBelow). OpenMem keeps the log in the database under p/log/, and
// LoadLog reads both (a database written before the WAL holds its log
// there). Every owner of the database writes under its own key prefix so
// owners never collide:
//
//	PrefixProtocol ("p/")  view, checkpoints, markers (this package)
//	PrefixApp      ("a/")  application state (execution.KV)
//	PrefixExecutor ("e/")  last executed sequence and reply cache (execution.Executor)
//	PrefixRaft     ("r/")  Raft log, hard state and snapshot metadata (package storage/raftlog)
//
// Under PrefixRaft, raftlog.Log (raftlog.Open) is the Raft mode's durable
// raft.Storage: entries, hard state, latest snapshot metadata and the log
// boundary. It lives in its own package so that this one, and what imports
// it, do not depend on etcd raft.
//
// Besides the view (p/view), PrefixProtocol
// holds the latest stable checkpoint certificate (p/stable, an encoded
// wire.CheckpointCertificate stored opaquely; SaveStableCheckpoint,
// LoadStableCheckpoint) and the state-transfer marker (p/transfer;
// SetTransferInProgress, TransferInProgress), which package execution sets
// while it replaces the a/ and e/ state with a snapshot fetched from peers.
//
// Writes that protect safety (AppendLog, SaveView, SaveStableCheckpoint,
// SetTransferInProgress) are fsynced when Options.Sync is true, which
// DefaultOptions sets. WriteLog stores log entries in the same order
// without a sync, for entries nothing sent depends on yet: the next
// AppendLog makes them durable with its own. Turning Sync off is meant for benchmarks only; Open
// logs a warning when it is off.
//
// A DB is safe for concurrent use by multiple goroutines, as goleveldb is.
package storage
