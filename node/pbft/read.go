package pbft

import (
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
	return input{read: &req, client: f.From}, true, false
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
