package pbft

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// requestReadOnlyField is wire.Request.read_only's field number.
const requestReadOnlyField protowire.Number = 4

// asksReadOnly reports whether an encoded wire.Request sets read_only,
// by a scan of its fields without decoding it (the common ordered request
// pays only this scan). Malformed payloads report false: the verifier
// judges them.
func asksReadOnly(payload []byte) bool {
	readOnly := false
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return false
		}
		payload = payload[n:]
		if num == requestReadOnlyField && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(payload)
			if m < 0 {
				return false
			}
			readOnly = v != 0 // the last occurrence wins, as in proto
			payload = payload[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, payload)
		if m < 0 {
			return false
		}
		payload = payload[m:]
	}
	return readOnly
}

// acceptRead turns a client frame asking for the read-only path into an
// input for the event loop, without checking its signature: the Noise
// session of the client's own stream authenticates it (the request must
// name that stream's client, node.SentByItsClient), it is never relayed
// or ordered, and its answer goes back on that stream only. ok is false
// when the frame is not a read-only request (the caller verifies it as
// usual); dropped reports a read-only request refused here (counted).
func (n *Node) acceptRead(f p2p.Frame, signed *wire.Signed) (in input, ok, dropped bool) {
	if !asksReadOnly(signed.GetPayload()) {
		return input{}, false, false
	}
	var req wire.Request
	if err := proto.Unmarshal(signed.GetPayload(), &req); err != nil {
		n.drop("malformed", "client", f.From, "err", err)
		return input{}, false, true
	}
	if _, err := crypto.ClientPublicKey(req.ClientId); err != nil {
		n.drop("malformed", "client", f.From, "err", err)
		return input{}, false, true
	}
	if !node.SentByItsClient(f, &req) {
		n.drop("client_mismatch", "client", f.From)
		return input{}, false, true
	}
	return input{reads: []*wire.Request{&req}, client: f.From}, true, false
}

// handleRead hands a read-only request to the driver.
func (n *Node) handleRead(req *wire.Request) {
	n.readOnly.Inc()
	if err := n.driver.Read(req); err != nil {
		n.drop(reasonOf(err), "err", err)
	}
}

// newReadOnlyCounter registers pbftnode_read_only_requests_total.
func newReadOnlyCounter(m *node.Metrics) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbftnode_read_only_requests_total",
		Help: "Read-only requests from their clients' own streams handed to the replica (answered at once, after execution caught up, or refused), without signature verification.",
	})
	m.Registry.MustRegister(c)
	return c
}

// acceptReadBatch hands the reads of a ReadBatch frame to the event loop
// as one input, as acceptRead does each read of its own frame: the Noise
// session of the client's stream authenticates them (the batch must name
// that stream's client), so no signature is checked.
func (n *Node) acceptReadBatch(ctx context.Context, f p2p.Frame, b *wire.ReadBatch) {
	reads, reason := node.ReadBatchRequests(b, string(f.From))
	if in, ok := n.readsInput(f, reads, reason); ok {
		n.push(ctx, in)
	}
}

// readsInput is the input of a ReadBatch frame's reads, or (ok false) its
// drop, counted under reason, when reason is set.
func (n *Node) readsInput(f p2p.Frame, reads []*wire.Request, reason string) (input, bool) {
	if reason != "" {
		n.drop(reason, "client", f.From)
		return input{}, false
	}
	return input{reads: reads, client: f.From}, true
}

// readBatchInput decodes a client frame that is a plain ReadBatch by
// node.ReadBatchFrameRequests (no proto runtime): handled is false for any
// other frame, which the caller decodes as usual; ok is false when the
// batch was dropped (counted).
func (n *Node) readBatchInput(f p2p.Frame) (in input, ok, handled bool) {
	reads, reason, handled := node.ReadBatchFrameRequests(f.Data, string(f.From))
	if !handled {
		return input{}, false, false
	}
	in, ok = n.readsInput(f, reads, reason)
	return in, ok, true
}

// maxHeldReadReplies bounds the read-only replies one event-loop step
// holds before sending them.
const maxHeldReadReplies = 4096

// holdReadReply keeps a read-only reply for the end of the step
// (flushReadReplies), so that the replies to one client's reads go in one
// frame with read_answers.
func (n *Node) holdReadReply(r *wire.Reply) {
	n.readReplies = append(n.readReplies, r)
	if len(n.readReplies) >= maxHeldReadReplies {
		n.flushReadReplies()
	}
}

// flushReadReplies sends the read-only replies held, a client's together.
func (n *Node) flushReadReplies() {
	if len(n.readReplies) == 0 || n.Host == nil {
		n.readReplies = n.readReplies[:0]
		return
	}
	n.readSender.Send(n.Host, n.metrics, n.readReplies)
	clear(n.readReplies)
	n.readReplies = n.readReplies[:0]
}
