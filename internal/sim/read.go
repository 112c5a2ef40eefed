package sim

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// The read-only path in the simulator (Config.FastReads): a client sends a
// key-value get as a read-only request to every replica, accepts 2f+1
// matching read-only answers, and otherwise (answers that can no longer
// reach 2f+1, or no quorum by its first timeout) orders it: the same
// request number, now without read_only (the replicas never recorded the
// read, so the number is still new to them; the real client draws a
// fresh one). Byzantine replicas answer reads with forged or stale
// results. The history check treats a fast read as the get it is.

// signRequest encodes req as a signed request frame of c.
func (c *client) signRequest(req *wire.Request) ([]byte, error) {
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("marshal request: %w", err)
	}
	sig := c.signer.Sign(crypto.DomainClientRequest, payload)
	if req.RequestNumber%2 == 0 {
		// Every other request is signed as one of a bundle of two whose
		// other request is never sent, so that every run checks bundle
		// signatures too (crypto.SignRequests); no random draw, so seeds
		// replay as before.
		sibling := append(bytes.Clone(payload), 0)
		sig = crypto.SignRequests(c.signer, c.ID, [][]byte{payload, sibling})[0]
	}
	signed := &wire.Signed{Payload: payload, Signature: sig}
	frame, err := proto.Marshal(signed)
	if err != nil {
		return nil, fmt.Errorf("marshal request: %w", err)
	}
	return frame, nil
}

// wantsFastRead decides whether a new operation goes by the read-only
// path: a key-value get, with probability Config.FastReads.
func (w *world) wantsFastRead(operation []byte) bool {
	if w.cfg.FastReads <= 0 || w.app.Ledger {
		return false
	}
	var op wire.KVOperation
	if proto.Unmarshal(operation, &op) != nil || op.GetGet() == nil {
		return false
	}
	return w.rng.Float64() < w.cfg.FastReads
}

// sendRead sends the pending read-only request to every replica (its
// first send), or, on a retransmission (the read timed out), falls back
// to the ordered request.
func (w *world) sendRead(c *client) {
	if c.Cur.Attempts > 0 {
		w.fallBack(c)
		return
	}
	for i := range w.n {
		w.sendFrame(c.Index, uint32(i), c.Cur.Msg)
	}
}

// fallBack replaces the pending read with the ordered request of the same
// number and sends it to every replica.
func (w *world) fallBack(c *client) {
	c.reading = false
	c.replies = map[uint32]simReply{}
	frame, err := c.signRequest(&wire.Request{ClientId: c.ID, RequestNumber: c.Cur.Number, Operation: c.readOp, Tentative: c.tentative()})
	if err != nil {
		w.Fail(err)
		return
	}
	c.Cur.Msg = frame
	w.res.ReadFallbacks++
	for i := range w.n {
		w.sendFrame(c.Index, uint32(i), frame)
	}
}

// readQuorumLost reports whether the read's answers can no longer reach
// quorum matching ones.
func (c *client) readQuorumLost(quorum int) bool {
	count := map[string]int{}
	best := 0
	for _, r := range c.replies {
		count[r.outcome]++
		best = max(best, count[r.outcome])
	}
	return best+c.w.n-len(c.replies) < quorum
}

// readOnlyRequest decodes a request frame that asks for the read-only
// path (the runtime takes those unverified from the client's own
// stream); ok is false for every other frame.
func readOnlyRequest(frame []byte) (*wire.Request, bool) {
	var signed wire.Signed
	var req wire.Request
	if proto.Unmarshal(frame, &signed) != nil || proto.Unmarshal(signed.GetPayload(), &req) != nil || !req.ReadOnly {
		return nil, false
	}
	return &req, true
}

// read hands a read-only request to the replica's driver. A Byzantine
// replica (Config.FastReads) instead answers at once, three times in four with
// a stale value: the answer it gave the last read of the same operation,
// a value the key really had (see staleRead); the driver's answers it
// forges (forgeRead).
func (h *host) read(req *wire.Request) {
	if h.filter != nil && h.w.cfg.FastReads > 0 && h.w.rng.IntN(4) != 0 {
		h.staleRead(req)
		return
	}
	_ = h.driver.Read(req)
	h.process()
}

// staleRead answers req from this (Byzantine) replica's memory of earlier
// reads: the answer it last gave that operation (any client's), else its
// current state without waiting for execution to catch up.
func (h *host) staleRead(req *wire.Request) {
	current, err := h.exec.Read(req.ClientId, req.Operation)
	if err != nil {
		return
	}
	if h.readMemo == nil {
		h.readMemo = map[string][]byte{}
	}
	result, seen := h.readMemo[string(req.Operation)]
	if !seen {
		result = current
	}
	if string(result) != string(current) {
		h.w.res.ForgedReads++
	}
	h.readMemo[string(req.Operation)] = current
	if client := h.w.clientIndex(req.ClientId); client >= 0 {
		h.w.sendReply(h.id, client, &wire.Reply{View: h.core.View(), ClientId: req.ClientId, RequestNumber: req.RequestNumber,
			Replica: h.id, Result: result, ReadOnly: true})
	}
}

// forgeRead makes a Byzantine replica's read-only answer wrong: a value
// nobody wrote, or "not found" (a stale answer for a key written since).
func (w *world) forgeRead(r *wire.Reply) {
	if !r.ReadOnly || r.Error != "" || w.cfg.FastReads <= 0 {
		return
	}
	res := &wire.KVResult{Ok: true, Value: []byte("forged")}
	if w.rng.IntN(2) == 0 {
		res = &wire.KVResult{}
	}
	if b, err := proto.Marshal(res); err == nil {
		r.Result = b
		w.res.ForgedReads++
	}
}

// readQuorum is 2f+1.
func (w *world) readQuorum() int { return 2*protocol.FaultTolerance(w.n) + 1 }
