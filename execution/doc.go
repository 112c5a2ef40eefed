// Package execution owns the execution layer shared by the PBFT and Raft
// modes: the Application interface, the built-in key-value application
// (KV), and the Executor that applies committed batches in sequence order,
// each client request exactly once, with a reply cache.
//
// The application interface names no storage library type: a
// BatchApplication stages its writes into a Batch (Put, Delete), which the
// executor backs with its goleveldb batch. goleveldb stays the executor's
// own store.
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
// Client windows are bounded (WithMaxClientWindows, default
// DefaultMaxClientWindows = 65536), since every client ID ever seen would
// otherwise keep one forever. Each window records lastSeq, the sequence of
// the last batch that executed one of the client's requests (a cached
// reply does not count). After a batch, while more windows exist than the
// limit, the window with the smallest (lastSeq, client ID) among those
// the batch executed no request of is evicted whole: a total order over
// the replicated state, so every correct replica evicts the same windows
// at the same sequence. A batch that executes requests of more clients
// than the limit keeps them all; later batches evict the excess. The limit
// must be the same on every replica. Exactly-once is therefore guaranteed
// only while a client's window is kept, i.e. for the limit's number of
// most recently active clients: a request of an evicted client is treated as
// one of a client never seen (executed, even if it executed before the
// eviction), which is why the limit is large. Finding the victims
// costs O(log n) per eviction (a min-heap of (lastSeq, client ID) with
// lazy deletion of stale entries, compacted when it outgrows twice the
// window count), not a scan of the windows. Before that global step each
// client key (the ID's first 32 bytes; the rest names a session) is held
// to WithMaxWindowsPerKey windows (default 1024): a key over it loses its
// own least recently active windows, down to three quarters of the bound,
// so one key opening sessions cannot push out other clients' windows
// (keywindows.go).
//
// Storage layout inside the replica's database (see package storage):
//
//	a/k/<key>      KV entry (value bytes)
//	a/m/digest     KV digest accumulator (32 bytes)
//	e/last         last executed sequence (8 bytes, big-endian)
//	e/reply/<id>   client window, compact form (windowrecord.go):
//	               uvarint(H) || 0x00 || 8-byte bitmap of the executed
//	               numbers below H || one shared result or each entry's
//	               [|| uvarint(lastSeq)]; or the listed form of earlier
//	               versions, still read: uvarint(H) || uvarint(count) ||
//	               count x (uvarint(n) || uvarint(len result) || result)
//	               [|| uvarint(lastSeq)], n ascending, the last entry
//	               being H; lastSeq is present iff it is nonzero (minimal
//	               encoding, at most e/last); records written before it
//	               existed have none and load with lastSeq 0
//
// Crash atomicity: when the application implements BatchApplication (KV
// does), the application's writes for a batch, the reply cache updates
// (including the deletion of evicted windows) and the new last executed
// sequence go to goleveldb in one write, so after a crash either all of a
// batch is visible or none of it.
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
// Checkpoint state transfer: a replica that fell behind fetches the state
// snapshot of a stable checkpoint from peers. On a peer, the runtime calls
// Executor.TakeSnapshot on its loop goroutine right after executing a
// checkpoint sequence; the StateSnapshot wraps a goleveldb snapshot, so it
// is unaffected by later Applies and serves Chunk calls from any goroutine
// without stalling ordering. A snapshot's entries are, in key order, the
// application entries the application transfers (for KV a/k/*; derived
// values such as a/m/digest are left out) and the executor records
// (e/last, e/reply/*). The receiver, on its loop goroutine, calls
// RestoreBegin (durably sets the transfer marker of package storage and
// deletes e/; the a/ entries stay, to be merged into), RestoreChunk for
// each chunk (every entry validated: known key shape, size limits,
// strictly increasing keys across chunks, decodable executor records, no
// window lastSeq above e/last, which sorts before every window; a chunk is
// written whole or not at all, with the deletion of the local a/ entries
// in its key range that it lacks; the finish deletes those after the last
// chunk),
// then RestoreFinishExpect(certified digest) (or RestoreFinish and its own
// comparison): the application recomputes its digest from the entries and
// the executor reloads and validates its records, so no digest value from
// the peer is trusted; the marker is cleared only on success. A retry
// with another peer calls RestoreBegin again; RestoreAbort wipes a/ and
// e/ and leaves an empty state. Restore writes are fsynced
// per storage.Options.Sync, so once the marker is cleared the state is
// durable; if a crash leaves the marker set, NewExecutor discards the
// partial state and starts empty. Only a TransferableApplication (KV is
// one) supports state transfer.
//
// Preload (preload.go): Preload writes N key-value entries and their
// digest accumulator into a fresh database, the state a KV has after
// executing those puts before sequence 1 (no reply cache, LastExecuted 0);
// `pbftnode testnet --preload-keys` writes it once and copies the database
// to every replica, for benchmarks at a given state size. State transfer
// carries the preloaded entries like any others.
//
// Rollback records (rollback.go): those goleveldb snapshots die with the
// process, and a restarted replica has usually executed past its stable
// checkpoint. With TrackRollback on (the PBFT driver turns it on), each
// Apply also writes, in its atomic batch, the previous value of every
// transferred key it writes (e/u/<sequence><key>), and SnapshotAt rebuilds
// the state at any executed sequence above the last one TrackRollback was
// given, across restarts, from the current state and those records. With
// SetRollbackInterval(k) (the PBFT driver sets its checkpoint interval) a
// key is recorded only at its first write in each interval of k
// sequences, and only the multiples of k can be rebuilt.
//
// KV keeps a bounded LRU read cache of its committed entries (present
// values, absent keys and entry hashes; see kvCache), so a write, which
// subtracts the old entry's hash from the digest, or a read of a recently
// used key needs no database read. It holds committed state only: a
// batch's writes enter it on Commit, Rollback leaves it alone, and it is
// emptied whenever entries change in the database behind KV (Restore,
// Reload, and state transfer before its direct writes). Apply changes the
// client windows in place and keeps an undo log to revert them if the
// batch is not written. Neither is observable: results, digests and
// written keys and values are those of a plain read of the database.
// Evictions are undone too: the evicted windows return to the map and the
// heap entries popped to find them return to the heap.
//
// State digests are incremental multiset hashes (AdHash: a sum modulo
// 2^256 of per-entry SHA-256 digests), so computing a checkpoint digest
// costs O(1) and never stalls ordering. The reply-cache digest has one
// element per cached (client, n, result), added when the entry is cached
// and subtracted when it is evicted, and one element per window, hashing
// (client ID, lastSeq), replaced when lastSeq changes and subtracted with
// the entries' when the window is evicted. It covers H implicitly (H is
// always the largest cached number of its client) and lastSeq explicitly,
// so a state-transfer peer cannot make a replica evict differently later.
// (The window elements make these digests differ from those of executors
// without eviction: all replicas of a cluster must run the same version,
// switched at the same executed sequence.)
package execution
