package client

import (
	"bytes"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// reply is a decoded wire.Reply. Its byte slices may alias the frame.
type reply struct {
	view       uint64
	clientID   []byte
	number     uint64
	replica    uint32
	result     []byte
	refusal    []byte // wire.Reply.Error; non-empty: the replica refused
	leaderHint uint32
	readOnly   bool   // wire.Reply.ReadOnly: an answer of the read-only path
	epoch      uint64 // wire.Reply.Epoch: the replica's membership epoch
	// receipt is the encoded wire.ReplyReceipt, if any: decoded only for
	// a call that asked for receipts (InvokeWithReceipt).
	receipt []byte
	// answers are wire.Reply.read_answers (readbatch.go): each stands
	// for this reply with its own number, result and refusal.
	answers []readAnswer
	// sequence is wire.Reply.Sequence: the sequence number of the batch
	// that executed the request (0: unknown, as from a reply cache).
	sequence uint64
	// tentative is wire.Reply.Tentative: sent before the batch committed
	// at the replica, view being the view it prepared the batch in
	// (tentative.go).
	tentative bool
}

// wire.Reply field numbers.
const (
	replyView       protowire.Number = 1
	replyClientID   protowire.Number = 2
	replyNumber     protowire.Number = 3
	replyReplica    protowire.Number = 4
	replyResult     protowire.Number = 5
	replyError      protowire.Number = 6
	replyLeaderHint protowire.Number = 7
	replyReadOnly   protowire.Number = 9
	replyReceipt    protowire.Number = 8
	replyEpoch      protowire.Number = 10
	replyAnswers    protowire.Number = 11
	replySequence   protowire.Number = 12
	replyTentative  protowire.Number = 13
)

// parseReplyFast decodes data as a wire.Reply without the proto runtime
// or any allocation. It succeeds only when data holds nothing but Reply's
// own fields, each with its declared wire type, and a valid UTF-8 error:
// then it decodes exactly what proto.Unmarshal would (the last occurrence
// of a field wins; uint32 fields truncate). For anything else (unknown
// fields, groups, malformed input) it returns false and proto.Unmarshal
// must judge the frame.
func parseReplyFast(data []byte, r *reply) bool {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return false
		}
		data = data[n:]
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(data)
			if m < 0 {
				return false
			}
			data = data[m:]
			switch num {
			case replyView:
				r.view = v
			case replyNumber:
				r.number = v
			case replyReplica:
				r.replica = uint32(v)
			case replyLeaderHint:
				r.leaderHint = uint32(v)
			case replyReadOnly:
				r.readOnly = v != 0
			case replyEpoch:
				r.epoch = v
			case replySequence:
				r.sequence = v
			case replyTentative:
				r.tentative = v != 0
			default:
				return false
			}
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return false
			}
			data = data[m:]
			switch num {
			case replyClientID:
				r.clientID = v
			case replyResult:
				r.result = v
			case replyReceipt:
				// proto.Unmarshal merges repeated occurrences of a
				// message field and refuses a malformed one.
				if r.receipt != nil || !plainReceipt(v) {
					return false
				}
				r.receipt = v
			case replyError:
				if !utf8.Valid(v) {
					return false
				}
				r.refusal = v
			case replyAnswers:
				if !appendAnswerFast(r, v) {
					return false
				}
			default:
				return false
			}
		default:
			return false
		}
	}
	return true
}

// parseReply decodes a wire.Reply: by parseReplyFast when it can, else by
// proto.Unmarshal.
func parseReply(data []byte, r *reply) error {
	if parseReplyFast(data, r) {
		return nil
	}
	var m wire.Reply
	err := proto.Unmarshal(data, &m)
	if err != nil {
		return fmt.Errorf("client: decode reply: %w", err)
	}
	*r = reply{
		view:       m.View,
		clientID:   m.ClientId,
		number:     m.RequestNumber,
		replica:    m.Replica,
		result:     m.Result,
		refusal:    []byte(m.Error),
		leaderHint: m.LeaderHint,
		readOnly:   m.ReadOnly,
		epoch:      m.Epoch,
		sequence:   m.Sequence,
		tentative:  m.Tentative,
	}
	if err := takeAnswers(r, m.ReadAnswers); err != nil {
		return err
	}
	if m.Receipt != nil {
		if r.receipt, err = proto.Marshal(m.Receipt); err != nil {
			return fmt.Errorf("client: re-encode reply receipt: %w", err)
		}
	}
	return nil
}

// replyRecord is the reply of one replica that stands for a call: its
// first committed reply, or else its latest tentative one (see
// call.recordLocked).
type replyRecord struct {
	seen    bool
	refused bool   // body is the refusal message, not a result
	body    []byte // the result or the refusal
	view    uint64
	// sequence and tentative are the reply's (wire.Reply.Sequence and
	// Tentative): with view, the tag of the rule for tentative replies.
	sequence  uint64
	tentative bool
}

// matches reports whether two replies carry the same outcome: the same
// result bytes, or the same refusal message.
func (a *replyRecord) matches(b *replyRecord) bool {
	return a.refused == b.refused && bytes.Equal(a.body, b.body)
}

// handleReply matches a reply to its outstanding call, on the goroutine that read it from its
// replica's stream (p2p.Config.OnReply): calls for different replicas run
// concurrently, each replica's in order. It never blocks (c.mu is held
// only briefly; receipts and answers are offered without waiting).
func (c *Client) handleReply(f p2p.Frame) {
	if f.FromIndex < 0 || f.FromIndex >= maxMemberIndex {
		return // not a replica (membership is checked under c.mu below)
	}
	var r reply
	if err := parseReply(f.Data, &r); err != nil {
		c.log.Debug("malformed reply", "replica", f.FromIndex, "err", err)
		return
	}
	// The stream authenticates the replica; a Replica field that disagrees
	// marks a lying replica, whose reply does not count.
	replica := uint32(f.FromIndex)
	if r.replica != replica || string(r.clientID) != string(c.id) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.isMember(f.FromIndex) {
		return
	}
	if r.epoch > c.epochSeen {
		c.epochSeen = r.epoch
		if r.epoch > c.cfg.Epoch {
			c.followLocked()
		}
	}
	if r.answers != nil {
		c.takeAnswersLocked(replica, &r)
		return
	}
	c.takeReplyLocked(replica, &r)
}

// takeReplyLocked counts r, a reply from replica, toward its call. c.mu
// must be held.
func (c *Client) takeReplyLocked(replica uint32, r *reply) {
	cl := c.callLocked(r.number)
	if cl != nil && int(replica) >= len(cl.replies) {
		// A member of a membership the client followed after the call began.
		cl.replies = append(cl.replies, make([]replyRecord, c.span-len(cl.replies))...)
	}
	if cl != nil && cl.answers != nil {
		offerAnswerLocked(cl, replica, r)
		return
	}
	if cl != nil && cl.receipts != nil {
		c.offerReceiptLocked(cl, replica, r)
	}
	if cl == nil || cl.result != nil || cl.err != nil || int(replica) >= len(cl.replies) {
		return
	}
	// A read counts read-only answers, and any refusal (one refusing
	// before it saw read_only, such as a bad signature, only hastens the
	// fallback); an ordered call counts no read-only answer.
	if r.readOnly != cl.readOnly && !(cl.readOnly && len(r.refusal) > 0) {
		return
	}
	rec := cl.recordLocked(replica, r)
	if rec == nil {
		return // not counted, or the replica's standing reply stays
	}
	if cl.readOnly && int(replica) < len(c.reads.missed) {
		c.reads.missed[replica] = false // it answers reads again
	}
	var buf [8]uint64
	views, accepted := cl.acceptedLocked(rec, buf[:0])
	if !accepted {
		if cl.readOnly && !cl.quorumPossible() {
			cl.err = errReadDisagreed
			clear(cl.replies)
			close(cl.done)
		}
		return
	}
	matching := len(views)
	// At least one of ReplyQuorum replicas is correct, so the
	// ReplyQuorum-th highest view the counted replies report (under the
	// rule for tentative replies they all report one view) is one a
	// correct replica reached: a faulty replica cannot steer the client to
	// a made-up view.
	// The first such view replaces one from Config.Hint even if lower (the
	// hint may be stale, from another run of the cluster); after that the
	// view only rises, whatever order concurrent calls complete in.
	// (A read quorum below ReplyQuorum does not move the view.)
	slices.Sort(views)
	if matching >= c.cfg.ReplyQuorum {
		if v := views[len(views)-c.cfg.ReplyQuorum]; v > c.view || !c.confirmed {
			c.view = v
		}
	}
	// A leader hint is trusted only where one reply suffices (the Raft
	// mode, crash faults only): a Byzantine replica could name anyone.
	if c.cfg.ReplyQuorum == 1 && r.leaderHint > 0 && c.isMember(int(r.leaderHint)-1) {
		c.leader = int(r.leaderHint) - 1
	}
	c.known, c.confirmed = true, true
	if cl.byTag {
		c.tentativeAccepts.Add(1)
	}
	if rec.refused {
		cl.err = fmt.Errorf("client: request %w by %d replicas: %s", ErrRefused, matching, rec.body)
	} else {
		cl.result = append([]byte{}, rec.body...)
	}
	// The other replicas' replies are no longer needed: let their frames go.
	clear(cl.replies)
	close(cl.done)
}
