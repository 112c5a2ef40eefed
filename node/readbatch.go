package node

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// Batched reads (client/readbatch.go): a client sends the reads it has
// outstanding together in one wire.ReadBatch frame (to the Raft leader, or
// to a PBFT read quorum), and a replica answers every read of one client
// that one step of its event loop answered in one Reply with
// read_answers. Batching changes what a frame holds, not what a read is
// answered from: each read goes to the driver's read path as before.

// maxAnswerBytes bounds the results and errors of one batched reply, far
// below the transport's frame limit (p2p.DefaultMaxFrameSize); more
// answers go in another reply.
const maxAnswerBytes = 1 << 20

// ReadBatchRequests decodes a ReadBatch from client (the stream's peer)
// into its read-only requests, or reports why it is dropped (the reason
// for pbftnode_messages_dropped_total): more than wire.MaxReadBatch
// reads, a client id that is not the stream's peer, or a read without a
// request number.
func ReadBatchRequests(b *wire.ReadBatch, client string) ([]*wire.Request, string) {
	items := b.GetReads()
	switch {
	case len(items) == 0 || len(items) > wire.MaxReadBatch:
		return nil, "read_batch_size"
	case !clientIs(b.GetClientId(), client):
		return nil, "client_mismatch"
	}
	reqs := make([]*wire.Request, len(items))
	for i, it := range items {
		if it.GetRequestNumber() == 0 {
			return nil, "malformed"
		}
		reqs[i] = &wire.Request{ClientId: b.GetClientId(), RequestNumber: it.GetRequestNumber(), Operation: it.GetOperation(), ReadOnly: true}
	}
	return reqs, ""
}

// clientIs reports whether clientID is the id of the client whose stream
// is peer.
func clientIs(clientID []byte, peer string) bool {
	id, err := identity.ClientPeerID(clientID)
	return err == nil && string(id) == peer
}

// ReadReplies sends read-only replies a client's together; the event
// loop owns it.
type ReadReplies struct {
	// groups is send's scratch space.
	groups [][]*wire.Reply
}

// Send sends rs, a client's together (groupReadReplies): one reply alone
// as it is, several as one Reply with read_answers.
func (q *ReadReplies) Send(host *p2p.Host, m *Metrics, rs []*wire.Reply) {
	q.groups = groupReadReplies(rs, q.groups[:0])
	for _, g := range q.groups {
		if len(g) == 1 {
			ReplyToClient(host, m, g[0])
			continue
		}
		sendAnswers(host, m, g)
	}
	clear(q.groups)
}

// groupReadReplies appends to groups the replies split into the frames
// they go in: those for one client together, in order, at most
// wire.MaxReadBatch and about maxAnswerBytes of results and errors per
// group; replies that differ in view, leader hint or epoch never share a
// group (its Reply carries one of each).
func groupReadReplies(replies []*wire.Reply, groups [][]*wire.Reply) [][]*wire.Reply {
	type open struct{ group, bytes int }
	byClient := make(map[string]open) // client id: its open group
	for _, r := range replies {
		id, size := string(r.GetClientId()), len(r.GetResult())+len(r.GetError())
		o, ok := byClient[id]
		if ok && fitsGroup(groups[o.group], r) && o.bytes+size <= maxAnswerBytes {
			groups[o.group] = append(groups[o.group], r)
			byClient[id] = open{o.group, o.bytes + size}
			continue
		}
		byClient[id] = open{len(groups), size}
		groups = append(groups, []*wire.Reply{r})
	}
	return groups
}

// fitsGroup reports whether r may join g, a non-empty group of replies to
// r's client, by count and by its view, leader hint and epoch.
func fitsGroup(g []*wire.Reply, r *wire.Reply) bool {
	first := g[0]
	return len(g) < wire.MaxReadBatch && r.GetView() == first.GetView() &&
		r.GetLeaderHint() == first.GetLeaderHint() && r.GetEpoch() == first.GetEpoch()
}

// sendAnswers sends replies (at least two, for one client, alike but for
// their number, result and error) as one Reply with read_answers.
func sendAnswers(host *p2p.Host, m *Metrics, replies []*wire.Reply) {
	id, err := identity.ClientPeerID(replies[0].GetClientId())
	if err != nil {
		return
	}
	if host.SendToClient(id, encodeAnswers(replies)) {
		m.ClientReplies.Add(float64(len(replies)))
	}
}

// encodeAnswers encodes replies (alike but for their number, result and
// error) as one wire.Reply with read_answers, byte for byte what
// proto.Marshal makes of it, in one buffer.
func encodeAnswers(replies []*wire.Reply) []byte {
	first := replies[0]
	answerLen := func(r *wire.Reply) int {
		n := 0
		if v := r.GetRequestNumber(); v != 0 {
			n += protowire.SizeTag(1) + protowire.SizeVarint(v)
		}
		if v := r.GetResult(); len(v) > 0 {
			n += protowire.SizeTag(2) + protowire.SizeBytes(len(v))
		}
		if v := r.GetError(); len(v) > 0 {
			n += protowire.SizeTag(3) + protowire.SizeBytes(len(v))
		}
		return n
	}
	size := 0
	for _, r := range replies {
		size += protowire.SizeTag(11) + protowire.SizeBytes(answerLen(r))
	}
	buf := make([]byte, 0, size+64+len(first.GetClientId()))
	if v := first.GetView(); v != 0 {
		buf = protowire.AppendVarint(protowire.AppendTag(buf, 1, protowire.VarintType), v)
	}
	if v := first.GetClientId(); len(v) > 0 {
		buf = protowire.AppendBytes(protowire.AppendTag(buf, 2, protowire.BytesType), v)
	}
	if v := first.GetReplica(); v != 0 {
		buf = protowire.AppendVarint(protowire.AppendTag(buf, 4, protowire.VarintType), uint64(v))
	}
	if v := first.GetLeaderHint(); v != 0 {
		buf = protowire.AppendVarint(protowire.AppendTag(buf, 7, protowire.VarintType), uint64(v))
	}
	buf = protowire.AppendVarint(protowire.AppendTag(buf, 9, protowire.VarintType), 1) // read_only
	if v := first.GetEpoch(); v != 0 {
		buf = protowire.AppendVarint(protowire.AppendTag(buf, 10, protowire.VarintType), v)
	}
	for _, r := range replies {
		buf = protowire.AppendTag(buf, 11, protowire.BytesType) // read_answers
		buf = protowire.AppendVarint(buf, uint64(answerLen(r)))
		if v := r.GetRequestNumber(); v != 0 {
			buf = protowire.AppendVarint(protowire.AppendTag(buf, 1, protowire.VarintType), v)
		}
		if v := r.GetResult(); len(v) > 0 {
			buf = protowire.AppendBytes(protowire.AppendTag(buf, 2, protowire.BytesType), v)
		}
		if v := r.GetError(); len(v) > 0 {
			buf = protowire.AppendString(protowire.AppendTag(buf, 3, protowire.BytesType), v)
		}
	}
	return buf
}

// Field numbers of wire.ClientFrame.reads, wire.ReadBatch and
// wire.ReadItem, for ReadBatchFrameRequests.
const (
	clientFrameReads protowire.Number = 2
	batchClientID    protowire.Number = 1
	batchReads       protowire.Number = 2
	itemNumber       protowire.Number = 1
	itemOperation    protowire.Number = 2
)

// ReadBatchFrameRequests is proto.Unmarshal of a wire.ClientFrame followed
// by ReadBatchRequests of its reads, without the proto runtime and with
// three allocations a batch: for a frame that holds a ReadBatch and
// nothing else, each field once with its declared wire type, it returns
// what those two would (ok true); for anything else ok is false and the
// caller decodes the frame with proto.Unmarshal. The operations are
// copied out of data.
func ReadBatchFrameRequests(data []byte, client string) (reqs []*wire.Request, reason string, ok bool) {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || num != clientFrameReads || typ != protowire.BytesType {
		return nil, "", false
	}
	batch, m := protowire.ConsumeBytes(data[n:])
	if m < 0 || n+m != len(data) {
		return nil, "", false
	}
	clientID, items, count, opBytes, ok := scanReadBatch(batch)
	switch {
	case !ok:
		return nil, "", false
	case count == 0 || count > wire.MaxReadBatch:
		return nil, "read_batch_size", true
	case !clientIs(clientID, client):
		return nil, "client_mismatch", true
	}
	id := append([]byte(nil), clientID...)
	ops := make([]byte, 0, opBytes)
	structs := make([]wire.Request, count)
	reqs = make([]*wire.Request, count)
	for i := range count {
		item, k := nextField(items)
		items = items[k:]
		number, op := scanReadItem(item)
		if number == 0 {
			return nil, "malformed", true
		}
		start := len(ops)
		ops = append(ops, op...)
		r := &structs[i]
		r.ClientId, r.RequestNumber, r.ReadOnly = id, number, true
		if len(op) > 0 {
			r.Operation = ops[start:len(ops):len(ops)]
		}
		reqs[i] = r
	}
	return reqs, "", true
}

// scanReadBatch checks an encoded wire.ReadBatch: its client id (at most
// once), the reads' field bytes, how many (counting stops past
// wire.MaxReadBatch) and their operations' bytes; ok is false for
// anything the fast path leaves to proto.Unmarshal.
func scanReadBatch(b []byte) (clientID, items []byte, count, opBytes int, ok bool) {
	seenID := false
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || typ != protowire.BytesType {
			return nil, nil, 0, 0, false
		}
		v, m := protowire.ConsumeBytes(rest[n:])
		if m < 0 {
			return nil, nil, 0, 0, false
		}
		switch {
		case num == batchClientID && !seenID:
			clientID, seenID = v, true
		case num == batchReads:
			if _, op, ok := checkReadItem(v); !ok {
				return nil, nil, 0, 0, false
			} else {
				opBytes += len(op)
			}
			if items == nil {
				items = rest
			}
			count++
		default:
			return nil, nil, 0, 0, false
		}
		rest = rest[n+m:]
	}
	return clientID, items, count, opBytes, true
}

// nextField returns the next ReadBatch.reads item's bytes in b (which
// scanReadBatch checked), skipping the client id, and how far it read.
func nextField(b []byte) ([]byte, int) {
	read := 0
	for {
		num, _, n := protowire.ConsumeTag(b[read:])
		v, m := protowire.ConsumeBytes(b[read+n:])
		read += n + m
		if num == batchReads {
			return v, read
		}
	}
}

// checkReadItem decodes an encoded wire.ReadItem with each field at most
// once and its declared wire type (ok false otherwise).
func checkReadItem(b []byte) (number uint64, op []byte, ok bool) {
	seenNumber, seenOp := false, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, false
		}
		b = b[n:]
		switch {
		case num == itemNumber && typ == protowire.VarintType && !seenNumber:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, nil, false
			}
			number, seenNumber, b = v, true, b[m:]
		case num == itemOperation && typ == protowire.BytesType && !seenOp:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return 0, nil, false
			}
			op, seenOp, b = v, true, b[m:]
		default:
			return 0, nil, false
		}
	}
	return number, op, true
}

// scanReadItem is checkReadItem of an item already checked.
func scanReadItem(b []byte) (uint64, []byte) {
	number, op, _ := checkReadItem(b)
	return number, op
}
