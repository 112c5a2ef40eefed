package raftmode

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// Process proposes the queued requests, then handles every Ready raft
// has: it persists the Ready (one synced write), applies the committed
// entries and takes snapshots, and returns the messages and replies to
// send. An error means storage or execution failed and the replica must
// stop.
//
// early, when not nil, receives what may leave before Process returns
// (Early), on the caller's goroutine. Before a Ready's synced write: a
// leader's appends and heartbeats, so that its own log write runs in
// parallel with its followers' (Raft thesis §10.2.1), a follower's
// heartbeat answers, so that a ReadIndex round does not wait for its
// write, and the replies of
// committed entries that an earlier Ready persisted, so that they do not
// wait for the write of the entries proposed since. After the write and
// before the Ready's entries are applied: its other messages but
// snapshots (a follower's acknowledgement does not wait for applying).
// early must send them and must not call back into the Core. With early
// nil, everything is in the returned Output, after its Ready was
// persisted and applied.
func (c *Core) Process(early func(*Early)) (out Output, err error) {
	defer c.handOutReads(&out)
	if c.need != nil {
		return out, nil
	}
	if c.held != nil {
		rd := c.held
		c.held = nil
		if err := c.finishReady(rd, &out, nil, false); err != nil {
			return out, err
		}
	}
	c.propose()
	c.proposeConfChanges()
	c.requestReadIndex()
	for c.rn.HasReady() {
		rd := c.rn.Ready()
		// c.term and c.vote are what the log holds until observe takes
		// this Ready's hard state.
		persistedTerm, persistedVote := c.term, c.vote
		c.observe(&rd)
		c.confirmReadStates(rd.ReadStates)
		if snap := rd.Snapshot; !raft.IsEmptySnap(snap) && snap.GetMetadata().GetIndex() > c.exec.LastExecuted() {
			// The leader sent a snapshot: fetch its state before the
			// snapshot is recorded, so that the log never starts after
			// what this replica can apply.
			need := &StateNeed{Index: snap.GetMetadata().GetIndex(), From: c.snapFrom, Peers: peersOf(snap.GetMetadata().GetConfState(), c.cfg.Index)}
			need.Digest, need.HasDigest = decodeSnapshotData(snap.GetData())
			c.need, c.held = need, &rd
			c.failReads(ErrReadAborted)
			out.NeedState = need
			c.log.Info("snapshot from leader; fetching state", "index", need.Index, "from", need.From)
			return out, nil
		}
		overtake := c.overtakesPersist(&rd, persistedTerm, persistedVote)
		if err := c.finishReady(&rd, &out, early, overtake); err != nil {
			return out, err
		}
		// A confirmed read index lets the reads queued behind it go.
		c.requestReadIndex()
	}
	c.answerReads()
	return out, nil
}

// handOutReads moves the read answers ready so far into out.
func (c *Core) handOutReads(out *Output) {
	if len(c.reads.done) > 0 {
		out.ReadReplies = append(out.ReadReplies, c.reads.done...)
		clear(c.reads.done)
		c.reads.done = c.reads.done[:0]
	}
}

// confirmReadStates hands raft's read states to confirmReads.
func (c *Core) confirmReadStates(states []raft.ReadState) {
	if len(states) == 0 {
		return
	}
	rs := make([]readState, len(states))
	for i, s := range states {
		rs[i] = readState{index: s.Index, ctx: s.RequestCtx}
	}
	c.confirmReads(rs)
}

// StateInstalled tells the Core that the runtime restored the application
// state the last NeedState asked for. The next Process resumes.
func (c *Core) StateInstalled() error {
	if c.need == nil {
		return errors.New("raftmode: state installed but none was needed")
	}
	if got := c.exec.LastExecuted(); got < c.need.Index {
		return fmt.Errorf("raftmode: installed state at %d, need at least %d", got, c.need.Index)
	}
	c.log.Info("state installed", "executed", c.exec.LastExecuted(), "needed", c.need.Index)
	c.need = nil
	return nil
}

// WaitingForState returns the state the Core waits for, or nil.
func (c *Core) WaitingForState() *StateNeed { return c.need }

func (c *Core) observe(rd *raft.Ready) {
	term, leader := c.term, c.isLeader
	defer func() {
		if leader && (!c.isLeader || c.term != term) {
			// Deposed: the pending reads' indexes prove nothing now.
			c.failReads(ErrReadAborted)
		}
	}()
	if hs := rd.HardState; !raft.IsEmptyHardState(hs) {
		if hs.GetVote() != c.vote && hs.GetVote() != raft.None && !c.isLeader {
			c.electionElapsed = 0 // granted a vote: give the candidate time
		}
		c.term, c.vote, c.commit = hs.GetTerm(), hs.GetVote(), hs.GetCommit()
	}
	if ss := rd.SoftState; ss != nil {
		if ss.Lead != c.lead {
			c.log.Info("leader", "leader", int64(ss.Lead)-1, "term", c.term)
		}
		c.lead = ss.Lead
		c.isLeader = ss.RaftState == raft.StateLeader
		if !c.isLeader {
			c.transferTicks = 0
		}
	}
	if c.isLeader {
		c.trackConfEntries(rd, !leader || c.term != term)
	}
}

// propose turns the queued requests into log entries of at most
// MaxBatchSize requests. Without a known leader the queue waits; a
// follower's proposals are forwarded to the leader by raft.
func (c *Core) propose() {
	if len(c.pending) == 0 || c.lead == raft.None || c.holdProposals() {
		return
	}
	c.heldTicks = 0
	for start := 0; start < len(c.pending); {
		end, size := start, 0
		for end < len(c.pending) && end-start < c.cfg.MaxBatchSize {
			n := proto.Size(c.pending[end]) + entryOverhead
			if end > start && size+n > c.cfg.MaxEntryBytes {
				break
			}
			size += n
			end++
		}
		batch := c.pending[start:end]
		start = end
		data, err := proto.Marshal(&wire.RaftEntry{Requests: batch})
		if err != nil {
			c.log.Warn("encode entry", "err", err)
			continue
		}
		if err := c.rn.Propose(data); err != nil {
			// Dropped (no leader, leadership transfer, too much
			// uncommitted): clients retransmit.
			c.log.Debug("proposal dropped", "requests", len(batch), "err", err)
		}
	}
	clear(c.pending)
	c.pending = c.pending[:0]
	clear(c.pendingSet)
	c.budget.reset()
}

// holdProposals reports whether the leader's queued requests wait for the
// next Process rather than go into an entry now: while its last entry is
// not committed (an append round is out), the queue holds less than a
// full entry (MaxBatchSize), and the queue has waited less than a tick.
// Requests arriving during a round then share one entry, one append and
// one fsync per replica when that round ends, instead of each Process
// cutting its own small entry; a lone request (nothing out) goes at once.
func (c *Core) holdProposals() bool {
	if !c.isLeader || len(c.pending) >= c.cfg.MaxBatchSize || c.heldTicks > 0 {
		return false
	}
	last, err := c.cfg.Log.LastIndex()
	return err == nil && last > c.rn.BasicStatus().GetCommit()
}

// finishReady persists rd, hands out its messages and applies its
// committed entries. With early set, what may go before the Ready is
// persisted goes to early first: the messages earlyMessage accepts when
// overtake is set (overtakesPersist allowed it), and the replies of the
// committed entries when appliesBeforePersist allows applying them first;
// once the Ready is written, its other messages but snapshots go to early
// before the entries are applied; snapshots (which need
// Core.ReportSnapshot) and replies go in the Output.
func (c *Core) finishReady(rd *raft.Ready, out *Output, early func(*Early), overtake bool) error {
	late := rd.Messages
	applied := false
	if early != nil {
		var e Early
		if overtake {
			e.Messages, late = splitEarly(rd.Messages)
		}
		if c.appliesBeforePersist(rd) {
			first := len(out.Replies)
			if err := c.applyAll(rd.CommittedEntries, out); err != nil {
				return err
			}
			applied = true
			e.Replies = out.Replies[first:len(out.Replies):len(out.Replies)]
			out.Replies = out.Replies[:first]
		}
		if overtake {
			e.Reads = c.answerReadsEarly()
		}
		if len(e.Messages) > 0 || len(e.Replies) > 0 || len(e.Reads) > 0 {
			early(&e)
		}
	}
	if err := c.cfg.Log.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return fmt.Errorf("raftmode: save: %w", err)
	}
	if snap := rd.Snapshot; !raft.IsEmptySnap(snap) {
		c.confState = snap.GetMetadata().GetConfState()
		c.snapIndex = snap.GetMetadata().GetIndex()
	}
	late = append(late, c.extra...)
	c.extra = nil
	if early != nil {
		// Persisted: the messages may go now, before the entries are
		// applied (a follower's acknowledgement need not wait for that).
		var e Early
		e.Messages, late = splitPersisted(late)
		if len(e.Messages) > 0 {
			early(&e)
		}
	}
	out.Messages = append(out.Messages, late...)
	if !applied {
		if err := c.applyAll(rd.CommittedEntries, out); err != nil {
			return err
		}
	}
	c.rn.Advance(*rd)
	return nil
}

// applyAll applies committed entries in order.
func (c *Core) applyAll(entries []*raftpb.Entry, out *Output) error {
	for _, e := range entries {
		if err := c.apply(e, out); err != nil {
			return err
		}
	}
	return nil
}

// apply executes one committed entry. Entries at or below the executor's
// last executed index were applied already (before a restart, or inside
// an installed snapshot) and are skipped.
func (c *Core) apply(e *raftpb.Entry, out *Output) error {
	if e.GetType() != raftpb.EntryType_EntryNormal {
		return c.applyConfEntry(e, out)
	}
	index := e.GetIndex()
	last := c.exec.LastExecuted()
	if index <= last {
		return nil
	}
	if index != last+1 {
		return fmt.Errorf("raftmode: committed entry %d after executed %d: gap", index, last)
	}
	var reqs []execution.Request
	{
		if len(e.GetData()) > 0 {
			var entry wire.RaftEntry
			if err := proto.Unmarshal(e.GetData(), &entry); err != nil {
				// Deterministic on every replica: the entry applies as empty.
				c.log.Warn("undecodable entry applied as empty", "index", index, "err", err)
			}
			reqs = make([]execution.Request, len(entry.GetRequests()))
			for i, r := range entry.GetRequests() {
				reqs[i] = execution.Request{ClientID: r.GetClientId(), RequestNumber: r.GetRequestNumber(), Operation: r.GetOperation()}
			}
		}
	}
	replies, err := c.exec.Apply(index, reqs)
	if err != nil {
		return fmt.Errorf("raftmode: %w", err)
	}
	out.Replies = c.answers(out.Replies, replies)
	if len(reqs) > 0 {
		out.AppliedBatches = append(out.AppliedBatches, len(reqs))
	}
	if index%c.cfg.SnapshotInterval == 0 {
		return c.snapshot(index, out)
	}
	return nil
}

// snapshot records a snapshot at index (just applied) and compacts the
// log below the previous one.
func (c *Core) snapshot(index uint64, out *Output) error {
	state, err := c.exec.TakeSnapshot()
	if err != nil {
		return fmt.Errorf("raftmode: snapshot at %d: %w", index, err)
	}
	digest := state.Digest()
	if _, err := c.cfg.Log.CreateSnapshot(index, c.confState, digest[:]); err != nil {
		state.Release()
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return nil
		}
		return fmt.Errorf("raftmode: snapshot at %d: %w", index, err)
	}
	if compact := c.compactionIndex(index); compact > 0 {
		if err := c.cfg.Log.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			state.Release()
			return fmt.Errorf("raftmode: compact below %d: %w", compact, err)
		}
	}
	c.snapIndex = index
	if out.Snapshot != nil {
		out.Snapshot.Release()
	}
	out.Snapshot = state
	return nil
}

// compactionIndex is where to compact the log after a snapshot at index
// (0: not at all). The log keeps the entries from the previous snapshot on
// (a follower up to one interval behind catches up from entries) and at
// least SnapshotCatchUpEntries of them (a follower that just installed an
// older snapshot, which takes long for a large state, continues from the
// log, as in etcd). The first compaction, at the second snapshot, drops
// the entries below the first as it always did, so that the log stops
// holding entry 1 two intervals in (a preloaded state, execution.Preload,
// is in no entry: a follower must not replay it from entry 1).
func (c *Core) compactionIndex(index uint64) uint64 {
	prev := c.snapIndex
	if prev <= 1 {
		return 0
	}
	if first, err := c.cfg.Log.FirstIndex(); err == nil && first <= c.cfg.SnapshotInterval {
		return prev // the log still holds entries of the first interval
	}
	if index <= c.cfg.SnapshotCatchUpEntries {
		return 0
	}
	return min(prev, index-c.cfg.SnapshotCatchUpEntries)
}

// entryOverhead bounds the bytes one request adds to an encoded
// RaftEntry beyond its own encoding (tag and length).
const entryOverhead = 16

// decodeSnapshotData reads the state digest a snapshot's data carries.
func decodeSnapshotData(data []byte) ([32]byte, bool) {
	var d [32]byte
	if len(data) != len(d) {
		return d, false
	}
	copy(d[:], data)
	return d, true
}

// Target is the statetransfer.Target that fetches need on replica self
// of n: a snapshot at need.Index or above (any snapshot there will do,
// every replica snapshots at the same indexes), its digest checked when
// known, asking the leader that sent the raft snapshot first and then
// every other replica in turn. Servers choose with statetransfer.Pick.
func (need StateNeed) Target(n int, self uint32) statetransfer.Target {
	peers, first := statetransfer.Ring(n, self, need.From)
	if len(need.Peers) > 0 {
		peers, first = need.Peers, 0
		if i := slices.Index(peers, uint32(max(need.From, 0))); need.From >= 0 && i >= 0 {
			first = i
		}
	}
	return statetransfer.Target{Sequence: need.Index, Digest: need.Digest, HasDigest: need.HasDigest, Peers: peers, First: first}
}
