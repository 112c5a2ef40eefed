package raftnode

import (
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// Batched reads (client/readbatch.go): a Raft client sends the reads it
// has outstanding together in one wire.ReadBatch frame, and the leader
// answers every read of one client handed out by one Process in one
// Reply with read_answers. Batching changes what a frame holds, not what
// a read is answered from: each read goes to Core.Read as before.

// maxAnswerBytes bounds the results and errors of one batched reply, far
// below the transport's frame limit (p2p.DefaultMaxFrameSize); more
// answers go in another reply.
const maxAnswerBytes = 1 << 20

// readBatchRequests decodes a ReadBatch from client into its read-only
// requests, or reports why it is dropped: more than wire.MaxReadBatch
// reads, a client id that is not the stream's peer, or a read without a
// request number.
func readBatchRequests(b *wire.ReadBatch, client string) ([]*wire.Request, string) {
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
	id, ok := clientPeer(clientID)
	return ok && string(id) == peer
}

// readReplies holds the read-only replies of one Process, to be sent
// together: the event loop owns it.
type readReplies struct {
	pending []*wire.Reply
	// byClient groups pending by client id (reused between flushes).
	byClient map[string][]*wire.Reply
	order    []string
}

// add holds r, a read-only reply, for flush.
func (q *readReplies) add(r *wire.Reply) { q.pending = append(q.pending, r) }

// flush sends the held replies, those for one client together: one reply
// alone as it is, several in Replies with read_answers (at most
// wire.MaxReadBatch answers and about maxAnswerBytes each; replies that
// differ in view, leader hint or epoch never share one).
func (q *readReplies) flush(n *Node) {
	if len(q.pending) == 0 {
		return
	}
	if q.byClient == nil {
		q.byClient = make(map[string][]*wire.Reply)
	}
	for _, r := range q.pending {
		id := string(r.GetClientId())
		if _, ok := q.byClient[id]; !ok {
			q.order = append(q.order, id)
		}
		q.byClient[id] = append(q.byClient[id], r)
	}
	clear(q.pending)
	q.pending = q.pending[:0]
	for _, id := range q.order {
		sendReadReplies(n, q.byClient[id])
	}
	clear(q.byClient)
	clear(q.order)
	q.order = q.order[:0]
}

// sendReadReplies sends replies, all for one client, in as few frames as
// the bounds allow.
func sendReadReplies(n *Node, replies []*wire.Reply) {
	for len(replies) > 0 {
		first := replies[0]
		k, bytes := 1, len(first.GetResult())+len(first.GetError())
		for k < len(replies) && k < wire.MaxReadBatch {
			r := replies[k]
			bytes += len(r.GetResult()) + len(r.GetError())
			if bytes > maxAnswerBytes || r.GetView() != first.GetView() ||
				r.GetLeaderHint() != first.GetLeaderHint() || r.GetEpoch() != first.GetEpoch() {
				break
			}
			k++
		}
		if k == 1 {
			node.ReplyToClient(n.Host, n.metrics, first)
		} else {
			sendAnswers(n, replies[:k])
		}
		replies = replies[k:]
	}
}

// sendAnswers sends replies (at least two, for one client, alike but for
// their number, result and error) as one Reply with read_answers.
func sendAnswers(n *Node, replies []*wire.Reply) {
	first := replies[0]
	env := &wire.Reply{
		View: first.GetView(), ClientId: first.GetClientId(), Replica: first.GetReplica(),
		LeaderHint: first.GetLeaderHint(), ReadOnly: true, Epoch: first.GetEpoch(),
		ReadAnswers: make([]*wire.ReadAnswer, len(replies)),
	}
	answers := make([]wire.ReadAnswer, len(replies))
	for i, r := range replies {
		a := &answers[i]
		a.RequestNumber, a.Result, a.Error = r.GetRequestNumber(), r.GetResult(), r.GetError()
		env.ReadAnswers[i] = a
	}
	id, err := identity.ClientPeerID(first.GetClientId())
	if err != nil {
		return
	}
	b, err := proto.Marshal(env)
	if err != nil {
		n.log.Error("encode read answers", "err", err)
		return
	}
	if n.Host.SendToClient(id, b) {
		n.metrics.ClientReplies.Add(float64(len(replies)))
	}
}
