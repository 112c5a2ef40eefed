// Package statetransfer fetches a replica's application state from its
// peers, chunk by chunk, and answers such requests from a snapshot. It is
// the one state-transfer fetcher of both consensus modes (PBFT and Raft)
// and of both simulators.
//
// A Fetcher is goroutine-free and tick-driven: its owner (a runtime's event
// loop, a driver, a simulator) calls Start, Tick, Chunk, Fail and Stop on one
// goroutine, and the Fetcher calls back Config.Request to send a
// wire.StateRequest and Config.Restorer (the executor's restore side) to
// install what arrives. Time comes only from Tick: after Config.IdleTicks
// ticks without an expected chunk the Fetcher gives up on the peer. It keeps
// no clock; callers that want durations time them around Start and the
// Chunk that reports done.
//
// Contracts the Fetcher keeps:
//   - It asks for Config.Window consecutive chunks per request
//     (StateRequest.Chunks, at most MaxChunksPerRequest) and sends the next
//     request once the window's last chunk is restored: one round trip per
//     window, not per chunk. A server answers a window chunk by chunk
//     (ServeChunks, or Rest admitted against its byte budget), so a
//     request never makes it send more than MaxChunksPerRequest chunks.
//   - It asks one peer at a time, Target.Peers[Target.First] first, and
//     moves to the next one in Peers (wrapping) on a timeout, an
//     Unavailable answer, a chunk the Restorer refuses, a NextKey that does
//     not advance, a sequence that does not fit (Raft mode), a restored
//     state whose digest or index is wrong, or Fail.
//   - After a timeout or an Unavailable answer the next peer continues the
//     restore from the key the last one stopped at: every correct peer
//     serves the same snapshot at one sequence, and the final digest check
//     covers every chunk whoever served it. After any other reason it
//     starts the restore over with RestoreBegin, which replaces what the
//     restore installed so far (no RestoreAbort wipe first: the executor
//     merges the new chunks into what it holds and deletes the rest); once
//     a restore failed its final check (or Fail), every later restore of
//     that target takes all its chunks from one peer, so a peer that
//     serves forged chunks cannot spoil another's.
//   - Backoff, in ticks: the first round of peers since the last chunk
//     restored is asked at once; after that each request waits
//     Config.BackoffTicks, doubling per round up to Config.MaxBackoffTicks.
//     A chunk restored resets it.
//   - A new, higher target (Start) starts over the same way: a snapshot at
//     another sequence has other content, and only the whole state's
//     digest is certified, so no chunk of the old one can be re-checked.
//     With Config.KeepTarget, Start leaves a fetch that is not Stalled
//     (some peer still serves its target) as it is (Keeps), so a transfer
//     longer than one checkpoint interval finishes; the caller retargets
//     once it is Stalled, and fetches what follows after it lands.
//   - A chunk from another peer, for another start key, or (Exact mode) for
//     another sequence is ignored and reported as Observer.Rejected
//     ("unexpected"); it neither resets the idle count nor moves on.
//   - Chunk reports done only once the Restorer finished the restore, the
//     digest matched (when the Target has one at the fetched sequence) and
//     the executor's last executed sequence is the one fetched. The caller
//     then tells its core; if the core refuses a state another peer could
//     serve differently (Raft: any snapshot at or above the need), Fail
//     starts over with the next peer. A PBFT core that refuses a certified
//     checkpoint would refuse it from every peer (the state is fixed by the
//     certified digest), so the PBFT driver logs the refusal instead.
//
// Serve is the server side: it answers one StateRequest from a Snapshot,
// and Pick chooses which of the snapshots a replica holds serves it.
package statetransfer
