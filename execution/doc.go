// Package execution owns the execution layer shared by the PBFT and Raft
// modes: the Application interface, the built-in key-value application
// (KV), and the Executor that applies committed batches in sequence order,
// each client request exactly once, with a reply cache.
//
// Storage layout inside the replica's database (see package storage):
//
//	a/k/<key>      KV entry (value bytes)
//	a/m/digest     KV digest accumulator (32 bytes)
//	e/last         last executed sequence (8 bytes, big-endian)
//	e/reply/<id>   last reply per client: uvarint(request number) || result
//
// Crash atomicity: when the application implements BatchApplication (KV
// does), the application's writes for a batch, the reply cache updates and
// the new last executed sequence go to goleveldb in one write, so after a
// crash either all of a batch is visible or none of it.
//
// Durability: execution writes are not fsynced. They are derived state: the
// protocol log (fsynced by package storage) holds the committed batches
// above the last stable checkpoint, and peers can serve a certified
// checkpoint for anything below it. A process crash loses nothing (the
// writes are in the OS page cache); an OS crash or power loss can roll the
// executor back to an earlier, consistent sequence, from which the replica
// re-executes the committed log or fetches state from peers. Syncing here
// would add an fsync per batch to the ordering critical path for no safety
// gain.
//
// State digests are incremental multiset hashes (AdHash: a sum modulo
// 2^256 of per-entry SHA-256 digests), so computing a checkpoint digest
// costs O(1) and never stalls ordering.
package execution
