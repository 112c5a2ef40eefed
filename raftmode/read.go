package raftmode

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// Errors of the read-only path (Read, and ReadReply.Err).
var (
	// ErrNotLeader: only the leader serves reads; the reply carries the
	// leader hint and the client retries there.
	ErrNotLeader = errors.New("raftmode: read-only request at a replica that does not lead")
	// ErrReadsFull: the pending reads are at their bound (count or bytes).
	ErrReadsFull = errors.New("raftmode: too many pending reads")
	// ErrReadAborted: leadership changed (or the replica began fetching
	// state) before the read was answered; its read index proves nothing
	// any more, so it fails rather than risk stale data.
	ErrReadAborted = errors.New("raftmode: leadership changed before the read was answered")
	// ErrReadTimeout: the read index was not confirmed, or not applied,
	// within ReadTimeoutTicks.
	ErrReadTimeout = errors.New("raftmode: read not confirmed in time")
	// ErrReadOnlyOrdered: Submit was given a read-only request; those go
	// through Read and are never put in the log.
	ErrReadOnlyOrdered = errors.New("raftmode: read-only request on the ordering path")
)

// ReadReply is the outcome of one read-only request: a result, or Err
// (one of the read errors above, or execution.ErrNotReadOnly) when it was
// refused or failed.
type ReadReply struct {
	ClientID      []byte
	RequestNumber uint64
	Result        []byte
	Err           error
}

// readBatch is the reads that share one ReadIndex request: they are
// answered together once the leader confirmed index and the executor
// applied it.
type readBatch struct {
	ctx       string
	reads     []*wire.Request
	bytes     int
	index     uint64
	confirmed bool
	// age counts the ticks since the ReadIndex request.
	age int
}

// readQueue holds the leader's pending reads: queued ones wait for the
// next Process to share one ReadIndex request; batches wait for their
// read index. count and bytes bound both together.
type readQueue struct {
	queued      []*wire.Request
	queuedBytes int
	// queuedAge counts the ticks the oldest queued read has waited; the
	// batch it joins starts at that age, so a read waiting behind a stuck
	// request still fails within ReadTimeoutTicks.
	queuedAge int
	batches   []*readBatch
	count     int
	bytes     int
	// nonce makes this incarnation's request contexts unique, so a
	// confirmation meant for an earlier incarnation (or another replica)
	// never matches a read of this one; next numbers the batches.
	nonce, next uint64
	// done are answers waiting for Process to hand them out.
	done []ReadReply
}

// Read takes a read-only request. The leader answers it (in a later
// Output.ReadReplies) without a log append: after a ReadIndex round
// confirms its leadership at commit index i, once the executor applied i,
// executing the operation on the state then (execution.Executor.Read; an
// operation the application does not classify as read-only fails with
// execution.ErrNotReadOnly). An error means
// it was refused at once (ErrNotLeader, ErrReadsFull, ErrWaitingOnState,
// ErrTooLarge); the caller answers the client with it. Reads of a leader
// that loses leadership fail (ErrReadAborted) and so do reads not answered
// within ReadTimeoutTicks (ErrReadTimeout): a read is never answered from
// a state older than a write that completed before it arrived.
func (c *Core) Read(req *wire.Request) error {
	size := proto.Size(req)
	switch {
	case c.need != nil:
		return ErrWaitingOnState
	case !c.isLeader:
		return ErrNotLeader
	case size > c.cfg.MaxEntryBytes:
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	case c.reads.count >= c.cfg.MaxPendingReads:
		return fmt.Errorf("%w: %d reads", ErrReadsFull, c.reads.count)
	case c.reads.bytes+size > c.cfg.MaxPendingReadBytes:
		return fmt.Errorf("%w: %d bytes", ErrReadsFull, c.reads.bytes)
	}
	c.reads.queued = append(c.reads.queued, req)
	c.reads.queuedBytes += size
	c.reads.count++
	c.reads.bytes += size
	return nil
}

// requestReadIndex sends the queued reads' ReadIndex request, one for all
// of them (or fails them if this replica no longer leads). At most
// Config.ReadIndexesInFlight requests are unconfirmed at a time: reads
// arriving meanwhile wait for the next, so a heavy read load costs a
// bounded number of heartbeat rounds per round trip, not one per Process.
func (c *Core) requestReadIndex() {
	q := &c.reads
	if len(q.queued) == 0 {
		return
	}
	if !c.isLeader {
		c.failReads(ErrReadAborted)
		return
	}
	if q.unconfirmed() >= c.cfg.ReadIndexesInFlight {
		return
	}
	var ctx [16]byte
	binary.BigEndian.PutUint64(ctx[:8], q.nonce)
	binary.BigEndian.PutUint64(ctx[8:], q.next)
	q.next++
	q.batches = append(q.batches, &readBatch{ctx: string(ctx[:]), reads: q.queued, bytes: q.queuedBytes, age: q.queuedAge})
	q.queued, q.queuedBytes, q.queuedAge = nil, 0, 0
	c.rn.ReadIndex(ctx[:])
}

// unconfirmed counts the batches whose ReadIndex request raft has not
// confirmed yet.
func (q *readQueue) unconfirmed() int {
	n := 0
	for _, b := range q.batches {
		if !b.confirmed {
			n++
		}
	}
	return n
}

// confirmReads records the read indexes a Ready carries. A context that
// matches no batch (one failed since, or not this incarnation's) is
// ignored.
func (c *Core) confirmReads(states []readState) {
	for _, rs := range states {
		for _, b := range c.reads.batches {
			if b.ctx == string(rs.ctx) && !b.confirmed {
				b.index, b.confirmed = rs.index, true
			}
		}
	}
}

// readState is the part of a raft.ReadState the Core uses.
type readState struct {
	index uint64
	ctx   []byte
}

// answerReads answers, in order, the confirmed batches whose read index
// the executor has applied.
func (c *Core) answerReads() {
	q := &c.reads
	applied := c.exec.LastExecuted()
	kept := q.batches[:0]
	for _, b := range q.batches {
		if !b.confirmed || b.index > applied {
			kept = append(kept, b)
			continue
		}
		for _, req := range b.reads {
			r := ReadReply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber()}
			if req.GetConfigQuery() {
				r.Result, r.Err = c.configHistory()
			} else {
				r.Result, r.Err = c.exec.Read(req.GetClientId(), req.GetOperation())
			}
			q.done = append(q.done, r)
		}
		q.count -= len(b.reads)
		q.bytes -= b.bytes
	}
	clear(q.batches[len(kept):])
	q.batches = kept
}

// tickReads ages the pending batches and fails those past the deadline.
func (c *Core) tickReads() {
	q := &c.reads
	if len(q.queued) > 0 {
		q.queuedAge++
	}
	kept := q.batches[:0]
	for _, b := range q.batches {
		b.age++
		if b.age > c.cfg.ReadTimeoutTicks {
			c.failBatch(b.reads, b.bytes, ErrReadTimeout)
			continue
		}
		kept = append(kept, b)
	}
	clear(q.batches[len(kept):])
	q.batches = kept
}

// failReads fails every pending read with err.
func (c *Core) failReads(err error) {
	q := &c.reads
	c.failBatch(q.queued, q.queuedBytes, err)
	q.queued, q.queuedBytes, q.queuedAge = nil, 0, 0
	for _, b := range q.batches {
		c.failBatch(b.reads, b.bytes, err)
	}
	clear(q.batches)
	q.batches = q.batches[:0]
}

func (c *Core) failBatch(reads []*wire.Request, bytes int, err error) {
	q := &c.reads
	for _, req := range reads {
		q.done = append(q.done, ReadReply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Err: err})
	}
	q.count -= len(reads)
	q.bytes -= bytes
}

// PendingReads returns how many reads wait for an answer.
func (c *Core) PendingReads() int { return c.reads.count }
