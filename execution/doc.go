// Package execution owns the execution layer shared by the PBFT and Raft
// modes: the Application interface, the built-in key-value application
// (KV), and the Executor that applies committed batches in sequence order,
// each client request exactly once, with a reply cache.
//
// Exactly-once uses a per-client sliding window of ClientWindow request
// numbers, so a client may have many requests in flight and consensus may
// order them in any order. Per client the executor keeps H, the highest
// executed request number, and the executed numbers in (H-ClientWindow, H]
// with their results (at most ClientWindow entries). A request numbered n
// is too old (skipped, no reply) if H >= ClientWindow and
// n <= H-ClientWindow; a duplicate if n is in the window (not executed
// again, the cached reply is output); otherwise new: executed and cached,
// and if n > H it becomes H and the entries that fall out of the window are
// evicted. The client library keeps all of its outstanding numbers within
// ClientWindow of the highest number it issued, so none of them can become
// too old before it executes. Executor.Status classifies a request before
// the runtime hands it to consensus.
//
// Storage layout inside the replica's database (see package storage):
//
//	a/k/<key>      KV entry (value bytes)
//	a/m/digest     KV digest accumulator (32 bytes)
//	e/last         last executed sequence (8 bytes, big-endian)
//	e/reply/<id>   client window: uvarint(H) || uvarint(count) ||
//	               count x (uvarint(n) || uvarint(len result) || result),
//	               n ascending, the last entry being H
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
// costs O(1) and never stalls ordering. The reply-cache digest has one
// element per cached (client, n, result), added when the entry is cached
// and subtracted when it is evicted; it covers H implicitly (H is always
// the largest cached number of its client).
package execution
