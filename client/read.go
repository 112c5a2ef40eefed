package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// errReadDisagreed: the read-only answers that arrived differ (or some
// replicas refused) so that ReadQuorum of them can no longer match; Read
// orders the operation instead.
var errReadDisagreed = errors.New("client: read-only answers disagree")

// errReadTimeout: ReadQuorum matching read-only answers did not arrive
// within ReadTimeout; Read orders the operation instead.
var errReadTimeout = errors.New("client: read-only answers timed out")

// ReadCounts counts how Read calls ended.
type ReadCounts struct {
	// Fast: answered by ReadQuorum matching read-only answers.
	Fast uint64
	// Fallback: ordered after the read-only path failed (disagreement,
	// refusals, or no quorum within ReadTimeout).
	Fallback uint64
}

type readCounters struct {
	fast, fallback atomic.Uint64
	// Guarded by Client.mu: calls holds the outstanding Read calls by
	// request number, apart from Client.outstanding (see beginRead);
	// number is the next read request number, 0 until the first read.
	calls  map[uint64]*call
	number uint64
	// Guarded by Client.mu: missed marks the replicas that did not answer
	// the last read-only request sent to them before the others were
	// asked (skipped when choosing where reads go first, until they
	// answer one again); next rotates where the choice starts.
	missed []bool
	next   int
	// Guarded by Client.mu: queued holds the encoded ReadItems of the
	// reads waiting to go in the next ReadBatch frame, queuedCalls their
	// calls; flushing is set while a reader is about to send them (see
	// queueRead).
	queued      []byte
	queuedCalls []*call
	flushing    bool
}

// ReadCounts returns how many Read calls the client answered on the
// read-only path and how many it ordered instead.
func (c *Client) ReadCounts() ReadCounts {
	return ReadCounts{Fast: c.reads.fast.Load(), Fallback: c.reads.fallback.Load()}
}

// defaultReadConfig fills ReadQuorum and ReadTimeout for a cluster of n
// replicas (after ReplyQuorum and RetransmitTimeout got theirs).
func defaultReadConfig(cfg *Config, n int) error {
	if cfg.ReadQuorum <= 0 {
		cfg.ReadQuorum = 2*((n-1)/3) + 1
		if cfg.ReplyQuorum == 1 {
			cfg.ReadQuorum = 1
		}
	}
	if cfg.ReadQuorum > n {
		return fmt.Errorf("client: read quorum %d above %d replicas", cfg.ReadQuorum, n)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = cfg.RetransmitTimeout
	}
	if cfg.ReadSpreadTimeout <= 0 {
		cfg.ReadSpreadTimeout = cfg.ReadTimeout / 4
	}
	return nil
}

// Read returns the result of op, an operation that does not change the
// application's state (a get), as Invoke would. It first asks ReadQuorum
// replicas (every replica once ReadSpreadTimeout passed without their
// answers) to execute op at once on its current state, without ordering it
// (Request.read_only), and returns the answer when ReadQuorum replicas
// sent the same one. Replicas answer only after executing every batch
// they prepared before the read arrived, so with ReadQuorum 2f+1 the
// answer reflects every operation that completed before Read was called:
// reads stay linearizable. When the answers disagree, replicas refuse
// (the application does not know op as read-only, a replica is changing
// views or transferring state), or no quorum arrives within ReadTimeout,
// Read orders op with Invoke (a fresh request number) and returns that.
// Errors are Invoke's.
func (c *Client) Read(ctx context.Context, op []byte) ([]byte, error) {
	result, err := c.readOnly(ctx, op)
	if err == nil {
		c.reads.fast.Add(1)
		return result, nil
	}
	if errors.Is(err, ErrClosed) || ctx.Err() != nil {
		return nil, err
	}
	c.log.Debug("read-only path failed, ordering the read", "err", err)
	c.reads.fallback.Add(1)
	return c.Invoke(ctx, op)
}

// readOnly sends op as a read-only request and waits up to ReadTimeout for
// ReadQuorum matching read-only answers.
func (c *Client) readOnly(ctx context.Context, op []byte) ([]byte, error) {
	cl, err := c.beginRead(ctx)
	if err != nil {
		return nil, err
	}
	defer c.endRead(cl)
	if len(op) <= maxBatchedReadBytes && (c.crashFaults || c.cfg.ReadQuorum > 1) {
		// The reads outstanding together go in one frame (readbatch.go):
		// to the Raft leader, whose answer is the one, or to a PBFT read
		// quorum.
		return c.readBatched(ctx, cl, op)
	}
	frame := c.frame(cl.number, op, requestFlags{readOnly: true})
	if c.cfg.ReadQuorum == 1 {
		// The crash-fault mode: the leader's answer is the one.
		c.sendFirst(frame)
		return c.awaitRead(ctx, cl, nil, nil, frame)
	}
	first, rest := c.readTargets()
	for _, i := range first {
		c.send(uint32(i), frame)
	}
	return c.awaitRead(ctx, cl, first, rest, frame)
}

// readNumberBit is set in every read-only request number and in no
// ordered one (those start from Config.FirstRequestNumber, the clock by
// default, about 2^60, and count up by one).
const readNumberBit = 1 << 63

// beginRead registers a Read's call under a fresh number of the read
// space (readNumberBit set), waiting while Window reads are outstanding.
// Reads take no number from the ordered requests' window: replicas never
// enter a read-only request in the client's window (they do not order
// it), so a read need not wait behind an ordered request that is slow to
// complete, as it would if it held a number there (a write outstanding
// for a whole batch round would stall every read begun Window numbers
// after it). The read space starts at readNumberBit|FirstRequestNumber,
// so processes sharing a key do not take each other's read answers.
func (c *Client) beginRead(ctx context.Context) (*call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &c.reads
	room := func() bool { return uint64(len(r.calls)) < max(c.cfg.Window, 1) }
	if err := c.waitRoomLocked(ctx, room); err != nil {
		return nil, err
	}
	if r.calls == nil {
		r.calls = make(map[uint64]*call)
		r.number = readNumberBit | c.cfg.FirstRequestNumber
	}
	for r.calls[r.number] != nil || c.outstanding[r.number] != nil {
		r.number++
	}
	cl := c.newCallLocked(r.number, c.cfg.ReadQuorum)
	cl.readOnly = true
	r.number++
	r.calls[cl.number] = cl
	return cl, nil
}

// endRead retires a Read's call and wakes the calls waiting for room.
func (c *Client) endRead(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reads.calls[cl.number] != cl {
		return
	}
	delete(c.reads.calls, cl.number)
	if c.waiting > 0 {
		c.windowFree.Broadcast()
	}
}

// callLocked returns the outstanding call a reply numbered number is for
// (a Read's or an ordered one's), or nil. c.mu must be held.
func (c *Client) callLocked(number uint64) *call {
	if number&readNumberBit != 0 {
		if cl := c.reads.calls[number]; cl != nil {
			return cl
		}
	}
	return c.outstanding[number]
}

// awaitRead waits for the read's quorum, asking the replicas in rest too
// once ReadSpreadTimeout passed without it, and gives up after
// ReadTimeout. It records which of first had not answered by then. The
// two deadlines are timer callbacks that act on the call under c.mu, so
// the wait itself selects on the call, ctx and the client only.
func (c *Client) awaitRead(ctx context.Context, cl *call, first, rest []int, frame []byte) ([]byte, error) {
	timeout := time.AfterFunc(c.cfg.ReadTimeout, func() { c.timeOutRead(cl) })
	defer timeout.Stop()
	if len(rest) > 0 {
		spread := time.AfterFunc(c.cfg.ReadSpreadTimeout, func() {
			if c.noteSilent(cl, first) {
				for _, i := range rest {
					c.send(uint32(i), frame)
				}
			}
		})
		defer spread.Stop()
	}
	return c.waitRead(ctx, cl)
}

// waitRead waits for the read's outcome, ctx's end or the client's close.
func (c *Client) waitRead(ctx context.Context, cl *call) ([]byte, error) {
	select {
	case <-cl.done:
		return cl.result, cl.err
	case <-ctx.Done():
		return nil, fmt.Errorf("client: read %d: %w", cl.number, ctx.Err())
	case <-c.done:
		return nil, ErrClosed
	}
}

// timeOutRead ends a read still waiting for its quorum with
// errReadTimeout.
func (c *Client) timeOutRead(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timeOutReadLocked(cl)
}

// timeOutReadLocked is timeOutRead with c.mu held.
func (c *Client) timeOutReadLocked(cl *call) {
	if cl.result != nil || cl.err != nil {
		return
	}
	cl.err = errReadTimeout
	clear(cl.replies)
	close(cl.done)
}

// readTargets splits the replicas into the ReadQuorum a read-only request
// goes to first (taken in a rotating order, so reads spread over the
// replicas, skipping those that missed a read, while enough others are
// left) and the rest, asked only if those do not answer in time. Sending
// to a quorum rather than to every replica saves a request and an answer
// per replica left out.
func (c *Client) readTargets() (first, rest []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &c.reads
	if len(r.missed) != c.span {
		r.missed = make([]bool, c.span) // by member index
	}
	start := r.next % c.n
	r.next = (start + 1) % c.n
	var skipped []int
	for k := range c.n {
		i := int(c.cfg.Replicas[(start+k)%c.n].Index) // members are named by index, which may have gaps
		switch {
		case r.missed[i]:
			skipped = append(skipped, i)
		case len(first) < c.cfg.ReadQuorum:
			first = append(first, i)
		default:
			rest = append(rest, i)
		}
	}
	for _, i := range skipped {
		if len(first) < c.cfg.ReadQuorum {
			first = append(first, i)
		} else {
			rest = append(rest, i)
		}
	}
	return first, rest
}

// noteSilent marks the replicas of first that have not answered the read
// yet as missed (handleReply clears the mark when one answers a read),
// and reports whether the read still waits for answers.
func (c *Client) noteSilent(cl *call, first []int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl.result != nil || cl.err != nil {
		return false // done: its replies are cleared
	}
	for _, i := range first {
		if i < len(cl.replies) && i < len(c.reads.missed) && !cl.replies[i].seen {
			c.reads.missed[i] = true
		}
	}
	return true
}

// quorumPossible reports whether the call can still gather its quorum of
// matching replies: some outcome already seen, or a reply not yet seen,
// could still reach it.
func (cl *call) quorumPossible() bool {
	unseen, best := 0, 0
	for i := range cl.replies {
		a := &cl.replies[i]
		if !a.seen {
			unseen++
			continue
		}
		same := 0
		for j := range cl.replies {
			if b := &cl.replies[j]; b.seen && b.matches(a) {
				same++
			}
		}
		best = max(best, same)
	}
	return best+unseen >= cl.quorum
}
