// Package raftreplica is the one driver of the Raft mode's core
// (raftmode.Core): the order of operations around it, used alike by the
// Raft runtime (node/raftnode) and the Raft simulator (internal/raftsim), in the
// style of etcd raft's RawNode users. It sits beside replica/ (the PBFT
// driver) rather than inside raftmode/, so that raftmode stays the core
// and its tests need no network, and the driver's fakes need no etcd raft.
//
// A Driver is goroutine-free and reads no clock. Its owner (a runtime's
// event loop, a simulated host) calls Start once, then Tick, Step, Chunk,
// Submit and Process on one goroutine. The outside is reached through
// three small interfaces: Network (raft messages, state requests and
// client replies), Snapshots (where the snapshots to serve go) and
// Observer (hooks the runtime turns into metrics and the simulator into
// checks). The Driver owns the state-transfer fetcher
// (statetransfer.Fetcher) from the moment the core needs state until the
// core accepts it; serving state to peers stays with the owner.
//
// Contracts the Driver keeps:
//   - Messages leave only after the core persisted them: Process calls
//     Core.Process (which makes the Ready durable and applies committed
//     entries), then Observer.Persisted, and only then Network.SendRaft.
//     What the core hands to Process's early callback goes out at once
//     (raftmode.Early): before a Ready is persisted, a leader's appends
//     and heartbeats and a follower's heartbeat answers of a Ready that
//     changes neither term nor vote, which etcd raft lets go while the
//     same Ready's entries are written, and
//     the replies of entries committed and persisted by earlier Readys;
//     after it is persisted and before its entries are applied, its
//     other messages but snapshots (see raftmode.Core.Process).
//     Acknowledgements and votes never go before the write. An early
//     message the transport did not take is reported with
//     Core.ReportUnreachable once Core.Process has returned.
//   - Every sent raft message is reported back: a MsgSnap with
//     Core.ReportSnapshot(to, sent), any other unsent message with
//     Core.ReportUnreachable(to).
//   - After the messages: the replies of applied requests go to
//     Network.Reply, a new snapshot to Snapshots.Keep (the owner then owns
//     it and releases it when it drops it), and a NeedState starts (or
//     retargets) the fetcher.
//   - Start fetches the state a restarted core waits for
//     (Core.WaitingForState); otherwise it hands the application's current
//     state to Snapshots.Keep, so a peer that lost its data can catch up
//     before the next snapshot index.
//   - A Chunk that completes the fetch calls Core.StateInstalled; if the
//     core refuses the state the fetcher moves on to the next peer
//     (Fetcher.Fail) and Chunk returns the error; if it accepts,
//     Observer.StateInstalled is called and the fetcher is dropped.
//   - Submit replies at once when the core has the request's result
//     already (a retransmission of an applied request).
//   - Read hands a read-only request to the core; a refusal is answered at
//     once (an error reply with the leader hint), the rest by the
//     Process that follows the core's answer (Output.ReadReplies, sent
//     after the replies of applied requests). Read replies are marked
//     read_only.
//   - Replies carry the core's term as View and the leader hint (the
//     leader's index + 1, 0 when unknown).
package raftreplica
