package sim

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// KindEquivocation is the violation of a correct replica that sent two
// different votes for one view and sequence (see equivocationChecker).
const KindEquivocation = "equivocation"

// KindBadSignature: a correct replica sent a frame that fails its
// signature check (it relayed something it had not checked, such as a
// COMMIT taken on its author's session's word).
const KindBadSignature = "bad-signature"

// correct reports whether every copy of replica id is correct.
func (w *world) correct(id uint32) bool {
	if int(id) >= len(w.byID) || len(w.byID[id]) == 0 {
		return false
	}
	for _, h := range w.byID[id] {
		if !h.correct {
			return false
		}
	}
	return true
}

// voteKey names one vote a replica may cast at most once: its
// PRE-PREPARE, PREPARE or COMMIT for a view and sequence.
type voteKey struct {
	epoch    uint64
	from     uint32
	kind     protocol.Kind
	view     uint64
	sequence uint64
}

// equivocationChecker remembers the digest of every vote a correct replica
// sent, across its crashes and restarts, and reports a second vote with
// another digest: a correct replica never signs two PRE-PREPAREs (or
// PREPAREs, or COMMITs) for the same view and sequence with different
// batches, whatever it lost in a crash. This is checked where the message
// leaves the replica, before the network can drop it, so it catches an
// equivocation even when no replica's execution shows it.
type equivocationChecker struct {
	sent map[voteKey]string
}

func newEquivocationChecker() *equivocationChecker {
	return &equivocationChecker{sent: map[voteKey]string{}}
}

// check records the votes in out, sent by correct replica from, and
// returns a description of the first equivocation it finds ("" if none).
func (c *equivocationChecker) check(from uint32, out protocol.Outbound) string {
	var m wire.ReplicaMessage
	if err := proto.Unmarshal(out.Signed.GetPayload(), &m); err != nil {
		return fmt.Sprintf("replica %d sent an undecodable message: %v", from, err)
	}
	if m.From != from {
		// Another replica's message relayed (a pre-prepare in a Fetch
		// answer or a batch reply): its vote, not this replica's. A
		// restarted backup that lost an unsynced pre-prepare of a faulty
		// primary may relay a conflicting one later, which is harmless.
		return ""
	}
	switch b := m.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		return c.record(voteKey{m.Epoch, from, protocol.KindPrePrepare, b.PrePrepare.View, b.PrePrepare.Sequence}, b.PrePrepare.Digest)
	case *wire.ReplicaMessage_Prepare:
		return c.record(voteKey{m.Epoch, from, protocol.KindPrepare, b.Prepare.View, b.Prepare.Sequence}, b.Prepare.Digest)
	case *wire.ReplicaMessage_Commit:
		return c.record(voteKey{m.Epoch, from, protocol.KindCommit, b.Commit.View, b.Commit.Sequence}, b.Commit.Digest)
	case *wire.ReplicaMessage_NewView:
		// The NEW-VIEW's re-proposals are the new primary's PRE-PREPAREs.
		for _, s := range b.NewView.PrePrepares {
			var pm wire.ReplicaMessage
			if proto.Unmarshal(s.GetPayload(), &pm) != nil || pm.GetPrePrepare() == nil {
				return fmt.Sprintf("replica %d sent a NEW-VIEW with an undecodable re-proposal", from)
			}
			pp := pm.GetPrePrepare()
			if d := c.record(voteKey{pm.Epoch, from, protocol.KindPrePrepare, pp.View, pp.Sequence}, pp.Digest); d != "" {
				return d
			}
		}
	}
	return ""
}

func (c *equivocationChecker) record(k voteKey, digest []byte) string {
	prev, ok := c.sent[k]
	if !ok {
		c.sent[k] = string(digest)
		return ""
	}
	if prev != string(digest) {
		return fmt.Sprintf("correct replica %d sent two %v votes for view %d sequence %d: digests %x and %x",
			k.from, k.kind, k.view, k.sequence, prev[:min(6, len(prev))], digest[:min(6, len(digest))])
	}
	return ""
}
