// Package raftlog owns the Raft mode's durable log: Log, an implementation
// of raft.Storage (go.etcd.io/raft/v3) kept in the replica's database
// (storage.DB) under storage.PrefixRaft, with the semantics of
// raft.MemoryStorage made durable.
//
// Keys, all under storage.PrefixRaft ("r/"):
//
//	r/e/<index BE8>  an entry, proto-encoded raftpb.Entry
//	r/hs             the hard state, proto-encoded raftpb.HardState
//	r/snap           the latest snapshot (metadata and its small data)
//	r/first          the log boundary: <index BE8><term BE8>
//
// Log.Save writes one raft Ready (snapshot, entries, hard state) in a
// single goleveldb batch, fsynced when the database's Options.Sync is on;
// CreateSnapshot and Compact write synced the same way. Entries below the
// boundary are removed in unsynced batches, and Open removes any a crash
// left behind. Stored state that does not decode or is inconsistent makes
// the methods fail with an error wrapping ErrCorrupt; they never panic on
// it.
//
// The package lives apart from storage so that what imports storage (the
// executor, the PBFT runtime) does not depend on etcd raft.
package raftlog
