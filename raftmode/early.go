package raftmode

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
)

// Early is what Core.Process hands out of a Ready before it returns:
// before persisting it, Messages, a leader's appends and heartbeats and a
// follower's heartbeat answers (overtakesPersist, earlyMessage), Reads,
// the answers of reads confirmed and applied (answerReadsEarly), and
// Replies, the results of committed entries that earlier Readys persisted
// (appliesBeforePersist); after persisting it and
// before applying its entries, its other Messages but snapshots. The
// runtime sends them at once; an unsent message is reported with
// Core.ReportUnreachable after Process returns.
type Early struct {
	Messages []*raftpb.Message
	Replies  []execution.Reply
	// Reads are the answers of the reads whose read index was confirmed
	// and applied (answerReadsEarly).
	Reads []ReadReply
}

// answerReadsEarly answers the reads that may go before the Ready being
// finished is persisted, and returns all answers waiting to be handed
// out: the confirmed batches whose read index the executor has applied.
// Process calls it only for a Ready that changes neither term nor vote
// (overtakesPersist), after applying what appliesBeforePersist allows.
// A read's answer depends on nothing the Ready writes: raft confirmed the
// read index by a heartbeat quorum of the current term (persisted by an
// earlier Ready), and the executor's state holds only committed entries,
// durable on a majority; the entries this Ready persists are not
// committed yet and are not read. Waiting for the Ready's fsync would
// only add it to every read's latency.
func (c *Core) answerReadsEarly() []ReadReply {
	c.answerReads()
	if len(c.reads.done) == 0 {
		return nil
	}
	done := c.reads.done
	c.reads.done = nil
	return done
}

// appliesBeforePersist reports whether rd's committed entries may be
// applied, and their replies sent, before rd is persisted: on a leader
// (its clients wait for the replies, and it sent the Ready's appends
// already; a follower's acknowledgement waits for its write, which
// applying first would only delay, and its clients are few), when every one
// of them is in the log already and rd replaces none of them (an earlier
// Ready persisted it; etcd raft in this synchronous mode may otherwise
// hand out as committed entries that this very Ready persists, possibly
// over a stale entry of an older term at the same index, which must not
// be applied before they are durable here), none is a configuration change (those stay in the
// Ready's order) or at a snapshot index (the snapshot is recorded with
// the stored commit index, which must not be below it: that index is in
// this Ready's hard state, written by its Save), and rd installs no
// snapshot. etcd raft's contract lets
// applying run in parallel with persisting (its doc.go: the Ready steps
// "may be performed in parallel, except as noted in step 2", which is
// about sending). A committed entry is durable on a majority, so its
// result may be announced before this replica's write of later entries;
// the executor's write lands in the database's journal before the Ready's
// synced write, so that sync covers it as before.
func (c *Core) appliesBeforePersist(rd *raft.Ready) bool {
	ents := rd.CommittedEntries
	if !c.isLeader || len(ents) == 0 || !raft.IsEmptySnap(rd.Snapshot) {
		return false
	}
	last, err := c.cfg.Log.LastIndex()
	if err != nil {
		return false
	}
	if len(rd.Entries) > 0 {
		// Entries from rd.Entries[0] on are replaced by this Ready's:
		// what the log holds there is not what was committed.
		last = min(last, rd.Entries[0].GetIndex()-1)
	}
	if ents[len(ents)-1].GetIndex() > last {
		return false
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryType_EntryNormal || e.GetIndex()%c.cfg.SnapshotInterval == 0 {
			return false
		}
	}
	return true
}

// overtakesPersist reports whether some of rd's messages may leave before
// rd is persisted (earlyMessage says which): only when rd changes neither
// the term nor the vote (persistedTerm and persistedVote are what the log
// holds) and carries no snapshot.
//
// The contract relied on is etcd raft's (go.etcd.io/raft/v3 doc.go, the
// Ready steps): no message may be sent until the latest HardState is
// persisted and all entries of every previous Ready are, but messages may
// be sent while the entries of the same Ready are being persisted, which
// lets a leader write to its disk in parallel with its followers (Raft
// thesis §10.2.1). Process persists every Ready before it takes the next,
// so the previous Readys are durable; a Ready whose hard state differs
// from the persisted one only in its commit index needs nothing of it
// durable before its appends, heartbeats or heartbeat answers go out (the
// commit index is recomputed from the followers' acknowledgements after a
// restart, and raft's MustSync does not sync for it either). A Ready that
// changes the term or the vote (an election) or installs a snapshot keeps
// the persist-then-send order for all its messages.
//
// Why the leader's own entries are safe: raft counts the leader's own
// copy of an entry towards the commit quorum only when the Ready is
// advanced (RawNode.Advance steps the leader's self-acknowledgement),
// which Process does after Save returned; so an entry is committed only
// by replicas that hold it durably, whatever the leader had sent.
func (c *Core) overtakesPersist(rd *raft.Ready, persistedTerm, persistedVote uint64) bool {
	if !raft.IsEmptySnap(rd.Snapshot) {
		return false
	}
	hs := rd.HardState
	return raft.IsEmptyHardState(hs) || (hs.GetTerm() == persistedTerm && hs.GetVote() == persistedVote)
}

// earlyMessage reports whether a message may leave before the Ready that
// carries it is persisted: a leader's appends and heartbeats, which vouch
// for nothing of the sender's storage, and a follower's heartbeat
// answers, which vouch only for its term (persisted already, by
// overtakesPersist) and confirm a leader's ReadIndex round. etcd raft
// sorts its messages the same way when its storage writes are
// asynchronous (raft.go, send: only MsgAppResp, MsgVoteResp and
// MsgPreVoteResp wait for the append). A follower's heartbeat answer thus
// need not wait for the synced write of the entries it received with the
// heartbeat, so a read waits for one heartbeat round trip, not for a
// follower's disk. Acknowledgements and votes never go early, nor does
// anything else (snapshots, leadership transfers, read index answers, the
// Core's own extra messages), which keeps the persist-then-send order.
func earlyMessage(m *raftpb.Message) bool {
	switch m.GetType() {
	case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgHeartbeatResp:
		return true
	}
	return false
}

// splitPersisted splits the messages of a persisted Ready into those that
// may go at once (all but snapshots) and the snapshots, which go in the
// Output for the runtime to report with Core.ReportSnapshot.
func splitPersisted(msgs []*raftpb.Message) (now, snaps []*raftpb.Message) {
	for i, m := range msgs {
		if m.GetType() == raftpb.MessageType_MsgSnap {
			now = append(now, msgs[:i]...)
			for _, m := range msgs[i:] {
				if m.GetType() == raftpb.MessageType_MsgSnap {
					snaps = append(snaps, m)
				} else {
					now = append(now, m)
				}
			}
			return now, snaps
		}
	}
	return msgs, nil
}

// splitEarly splits msgs into those earlyMessage accepts and the others,
// each in its original order. It reuses msgs's backing array for the
// early ones when all of msgs go early (the common case: a leader's
// appends), and allocates otherwise.
func splitEarly(msgs []*raftpb.Message) (early, late []*raftpb.Message) {
	n := 0
	for _, m := range msgs {
		if earlyMessage(m) {
			n++
		}
	}
	switch n {
	case 0:
		return nil, msgs
	case len(msgs):
		return msgs, nil
	}
	early = make([]*raftpb.Message, 0, n)
	late = make([]*raftpb.Message, 0, len(msgs)-n)
	for _, m := range msgs {
		if earlyMessage(m) {
			early = append(early, m)
		} else {
			late = append(late, m)
		}
	}
	return early, late
}
