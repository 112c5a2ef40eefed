package client

import (
	"context"
	"fmt"
	"runtime"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pbftnode/pbftnode/wire"
)

// Batched reads. The reads a client has outstanding together share a
// frame: one wire.ReadBatch instead of one ClientFrame per read, sent to
// the Raft leader (ReadQuorum 1: its answer is the one) or, in PBFT, to a
// read quorum of replicas (readTargets), each answering the reads it
// executed in one step in one Reply with read_answers; the client counts
// each answer as a reply of its own toward the read's quorum. Read
// requests are never signed (a replica takes them from the client's own
// stream), so a batch needs no signature either. Per read that saves a frame
// on each side (queue hand-off, decode, the replica's inbox), the client
// id's bytes in the request and the reply, and the replica's per-reply
// encode and queueing; the transport already wrote the frames queued
// together in one write. Batching changes no answer: each read is still
// a read-only request with its own number, answered by the leader from a
// state at least as new as its commit index when the read arrived.

// maxBatchedReadBytes is the largest operation a read may have to go in a
// ReadBatch; a larger one goes in a frame of its own. readBatchBytes
// bounds the encoded reads of one ReadBatch.
const (
	maxBatchedReadBytes = 4 << 10
	readBatchBytes      = 64 << 10
)

// readBatched sends cl's read of op in a ReadBatch frame (queueRead) and
// waits for its answer, or for ReadTimeout after the frame left (one
// timer per frame, not per read).
func (c *Client) readBatched(ctx context.Context, cl *call, op []byte) ([]byte, error) {
	c.queueRead(cl, op)
	return c.waitRead(ctx, cl)
}

// queueRead queues cl's read of op for the next ReadBatch frame and sees
// that the frame is sent: the first read queued after a frame went out
// becomes the flusher. It yields the processor (gatherReads), so the
// client's other goroutines about to read queue theirs first, then sends
// what is queued. With nothing else runnable the yield returns at once
// and the queue has not grown, so a lone read waits for nothing. A read
// that fills the batch (wire.MaxReadBatch reads or readBatchBytes) sends
// it at once. The read is encoded before queueRead returns.
func (c *Client) queueRead(cl *call, op []byte) {
	c.mu.Lock()
	r := &c.reads
	r.queued = appendReadItem(r.queued, cl.number, op)
	r.queuedCalls = append(r.queuedCalls, cl)
	if len(r.queuedCalls) >= wire.MaxReadBatch || len(r.queued) >= readBatchBytes {
		frame, calls := c.takeQueuedLocked()
		c.mu.Unlock()
		c.sendReadBatch(frame, calls)
		return
	}
	if r.flushing {
		c.mu.Unlock()
		return // the flusher sends it
	}
	r.flushing = true
	c.mu.Unlock()
	c.gatherReads()
	c.mu.Lock()
	r.flushing = false
	frame, calls := c.takeQueuedLocked()
	c.mu.Unlock()
	c.sendReadBatch(frame, calls)
}

// readGatherYields bounds how many times a read flusher yields
// (gatherReads).
const readGatherYields = 4

// gatherReads yields the processor to the goroutines ready to run, once,
// and again after each yield that let more reads queue, up to
// readGatherYields times: the reads woken by one round of answers reach
// one frame (at 90% reads, 16 x 64: 4 to 17% more throughput than a
// single yield in five pairs of six, docs/profile.md).
func (c *Client) gatherReads() {
	c.mu.Lock()
	queued := len(c.reads.queuedCalls)
	c.mu.Unlock()
	for range readGatherYields {
		runtime.Gosched()
		c.mu.Lock()
		n := len(c.reads.queuedCalls)
		c.mu.Unlock()
		if n <= queued {
			return
		}
		queued = n
	}
}

// sendReadBatch sends frame, the reads of calls, to the leader the client
// believes in (sendFirst), and fails those still unanswered ReadTimeout
// later with errReadTimeout (Read then orders them).
func (c *Client) sendReadBatch(frame []byte, calls []*call) {
	if len(calls) == 0 {
		return
	}
	if c.cfg.ReadQuorum == 1 {
		c.sendFirst(frame)
	} else {
		c.sendReadQuorum(frame, calls)
	}
	time.AfterFunc(c.cfg.ReadTimeout, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cl := range calls {
			c.timeOutReadLocked(cl)
		}
	})
}

// sendReadQuorum sends frame, the reads of calls, to a read quorum
// (readTargets), and to the other replicas too once ReadSpreadTimeout
// passed with any of the reads still waiting, marking the replicas of the
// quorum that had not answered them (as awaitRead does for one read).
func (c *Client) sendReadQuorum(frame []byte, calls []*call) {
	first, rest := c.readTargets()
	for _, i := range first {
		c.send(uint32(i), frame)
	}
	if len(rest) == 0 {
		return
	}
	time.AfterFunc(c.cfg.ReadSpreadTimeout, func() {
		waiting := false
		for _, cl := range calls {
			if c.noteSilent(cl, first) {
				waiting = true
			}
		}
		if waiting {
			for _, i := range rest {
				c.send(uint32(i), frame)
			}
		}
	})
}

// appendReadItem appends the ReadBatch.reads field of one read.
func appendReadItem(buf []byte, number uint64, op []byte) []byte {
	n := 0
	if number != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(number)
	}
	if len(op) > 0 {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(op))
	}
	buf = protowire.AppendTag(buf, 2, protowire.BytesType) // ReadBatch.reads
	buf = protowire.AppendVarint(buf, uint64(n))
	if number != 0 {
		buf = protowire.AppendTag(buf, 1, protowire.VarintType) // ReadItem.request_number
		buf = protowire.AppendVarint(buf, number)
	}
	if len(op) > 0 {
		buf = protowire.AppendTag(buf, 2, protowire.BytesType) // ReadItem.operation
		buf = protowire.AppendBytes(buf, op)
	}
	return buf
}

// takeQueuedLocked returns the queued reads as one frame,
// ClientFrame{reads: ReadBatch{client_id, reads}} (byte for byte what
// proto.Marshal makes of it), with their calls, and empties the queue;
// no calls when nothing is queued. c.mu must be held.
func (c *Client) takeQueuedLocked() ([]byte, []*call) {
	r := &c.reads
	calls := r.queuedCalls
	if len(calls) == 0 {
		return nil, nil
	}
	batchLen := len(r.queued)
	if len(c.id) > 0 {
		batchLen += protowire.SizeTag(1) + protowire.SizeBytes(len(c.id))
	}
	buf := make([]byte, 0, protowire.SizeTag(2)+protowire.SizeBytes(batchLen))
	buf = protowire.AppendTag(buf, 2, protowire.BytesType) // ClientFrame.reads
	buf = protowire.AppendVarint(buf, uint64(batchLen))
	if len(c.id) > 0 {
		buf = protowire.AppendTag(buf, 1, protowire.BytesType) // ReadBatch.client_id
		buf = protowire.AppendBytes(buf, c.id)
	}
	buf = append(buf, r.queued...)
	r.queued, r.queuedCalls = r.queued[:0], nil
	return buf, calls
}

// readAnswer is one of a reply's read_answers. Its slices may alias the
// frame.
type readAnswer struct {
	number  uint64
	result  []byte
	refusal []byte
}

// errTooManyAnswers: a reply carried more than wire.MaxReadBatch
// read_answers; the client drops it.
var errTooManyAnswers = fmt.Errorf("client: reply with more than %d read answers", wire.MaxReadBatch)

// wire.ReadAnswer field numbers.
const (
	answerNumber protowire.Number = 1
	answerResult protowire.Number = 2
	answerError  protowire.Number = 3
)

// appendAnswerFast decodes data, one encoded wire.ReadAnswer, onto
// r.answers without the proto runtime, as parseReplyFast decodes a
// reply: it reports false, for proto.Unmarshal to judge the frame, on
// anything but ReadAnswer's own fields with their declared wire types
// and a valid UTF-8 error, and on a reply's wire.MaxReadBatch+1st answer.
func appendAnswerFast(r *reply, data []byte) bool {
	if len(r.answers) >= wire.MaxReadBatch {
		return false
	}
	var a readAnswer
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return false
		}
		data = data[n:]
		switch {
		case num == answerNumber && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(data)
			if m < 0 {
				return false
			}
			data, a.number = data[m:], v
		case (num == answerResult || num == answerError) && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return false
			}
			data = data[m:]
			if num == answerResult {
				a.result = v
			} else if utf8.Valid(v) {
				a.refusal = v
			} else {
				return false
			}
		default:
			return false
		}
	}
	if r.answers == nil {
		r.answers = make([]readAnswer, 0, 16)
	}
	r.answers = append(r.answers, a)
	return true
}

// takeAnswers sets r.answers from a reply proto.Unmarshal decoded,
// refusing more than wire.MaxReadBatch.
func takeAnswers(r *reply, answers []*wire.ReadAnswer) error {
	if len(answers) > wire.MaxReadBatch {
		return errTooManyAnswers
	}
	if len(answers) == 0 {
		return nil
	}
	r.answers = make([]readAnswer, len(answers))
	for i, a := range answers {
		r.answers[i] = readAnswer{number: a.GetRequestNumber(), result: a.GetResult(), refusal: []byte(a.GetError())}
	}
	return nil
}

// takeAnswersLocked counts each of r's read answers toward its call as a
// reply of its own from replica, with r's view, leader hint and epoch.
// Answers count only in a read-only reply: an ordered call never takes
// one. c.mu must be held.
func (c *Client) takeAnswersLocked(replica uint32, r *reply) {
	if !r.readOnly {
		return
	}
	one := *r
	one.answers, one.receipt = nil, nil
	for i := range r.answers {
		a := &r.answers[i]
		one.number, one.result, one.refusal = a.number, a.result, a.refusal
		c.takeReplyLocked(replica, &one)
	}
}
