package sim

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// stratOmitCertificates is a Byzantine replica that attacks the
// view-change quorum. As a backup it sends its PREPAREs and COMMITs (its
// own, and those it forwards in Fetch answers) to the primary only, so the
// primary runs ahead of the backups, which wait for each other. As the primary of a new view it builds
// its NEW-VIEW from only f+1 VIEW-CHANGEs: a freshly signed one of its own
// that claims no prepared certificates (same stable checkpoint), and the f
// others of its real NEW-VIEW with the fewest certificates. It recomputes
// the re-proposals from those (viewchange.Config.Decide with quorum f+1)
// and signs them; at the sequences its real NEW-VIEW re-proposed beyond
// them it pre-prepares batches of its own client's requests instead, and it
// votes COMMIT for all of these at once. Correct replicas must reject the
// NEW-VIEW (fewer than 2f+1 VIEW-CHANGEs); with PlantViewChangeQuorum they
// accept it, and a sequence some replica committed can be re-proposed as a
// null request or another batch: an agreement violation.
const stratOmitCertificates = "omit-certificates"

// omitFilter implements stratOmitCertificates.
type omitFilter struct {
	self    uint32
	n, f    int
	signer  *crypto.Signer
	client  *crypto.Signer // the replica's own client identity
	verify  *protocol.MessageVerifier
	cfg     viewchange.Config
	actions uint64
	// views holds what it did in each view it forged a NEW-VIEW for.
	views map[uint64]*forgedView
}

// forgedView is a forged NEW-VIEW, sent again whenever the core re-sends
// its real one, with what the replica then proposes and votes for.
type forgedView struct {
	out []protocol.Outbound // the NEW-VIEW and the COMMITs for its re-proposals
	// digest is what it pre-prepared at each sequence of the real
	// NEW-VIEW; own holds the pre-prepares of its own batches.
	digest map[uint64][32]byte
	own    map[uint64]protocol.Outbound
}

func newOmitFilter(w *world, id uint32) *omitFilter {
	seed := sha256.Sum256(append([]byte(byzantineClientDomain), w.keys[id].Seed()...))
	return &omitFilter{
		self: id, n: w.n, f: w.f, signer: w.signerFor(id), verify: w.verifier,
		client: crypto.NewSigner(ed25519.NewKeyFromSeed(seed[:]), clusterID),
		cfg: viewchange.Config{N: w.n, Quorum: w.f + 1, CheckpointInterval: CheckpointInterval,
			WindowSize: WindowSize, NullDigest: crypto.BatchDigest(nil)},
		views: map[uint64]*forgedView{},
	}
}

func (o *omitFilter) Actions() uint64 { return o.actions }

func (o *omitFilter) Reply(*wire.Reply) bool { return true }

func (o *omitFilter) Outbound(out protocol.Outbound) []protocol.Outbound {
	m, ok := decodeBody(out.Signed)
	if !ok {
		return []protocol.Outbound{out}
	}
	switch {
	case m.GetNewView() != nil:
		view := m.GetNewView().View
		fv := o.views[view]
		if fv == nil {
			if fv = o.forge(out.Signed); fv == nil {
				return []protocol.Outbound{out}
			}
			o.views[view] = fv
		}
		o.actions++
		outs := slices.Clone(fv.out)
		outs[0].To = out.To
		return outs
	case m.GetPrePrepare() != nil:
		pp := m.GetPrePrepare()
		fv := o.views[pp.View]
		if fv == nil {
			return []protocol.Outbound{out}
		}
		d, ok := fv.digest[pp.Sequence]
		if !ok || bytes.Equal(d[:], pp.Digest) {
			return []protocol.Outbound{out}
		}
		o.actions++
		if own, ok := fv.own[pp.Sequence]; ok {
			own.To = out.To
			return []protocol.Outbound{own}
		}
		return nil
	case m.GetCommit() != nil || m.GetPrepare() != nil:
		view, seq, digest := m.GetCommit().GetView(), m.GetCommit().GetSequence(), m.GetCommit().GetDigest()
		if p := m.GetPrepare(); p != nil {
			view, seq, digest = p.View, p.Sequence, p.Digest
		}
		if fv := o.views[view]; fv != nil {
			if d, ok := fv.digest[seq]; ok && !bytes.Equal(d[:], digest) {
				return nil // it voted for its own proposal already
			}
			return []protocol.Outbound{out}
		}
		// Its own votes and the votes it forwards (Fetch answers) go to
		// the primary only.
		if primary := protocol.Primary(view, o.n); primary != o.self && out.To != primary {
			o.actions++
			if out.To != protocol.Broadcast {
				return nil
			}
			out.To = primary
		}
	}
	return []protocol.Outbound{out}
}

// forge rebuilds the NEW-VIEW signed from f+1 of its VIEW-CHANGEs. It
// returns nil when it cannot.
func (o *omitFilter) forge(signed *wire.Signed) *forgedView {
	vm, err := o.verify.ReplicaMessage(signed)
	if err != nil || vm.NewView == nil {
		return nil
	}
	view := vm.NewView.View
	var own *viewchange.ViewChange
	var others []viewchange.ViewChange
	for _, vc := range vm.NewView.ViewChanges {
		if vc.From == o.self {
			own = &vc
		} else {
			others = append(others, vc)
		}
	}
	if own == nil || len(others) < o.f {
		return nil
	}
	// A fresh VIEW-CHANGE of its own: the same stable checkpoint, no
	// prepared certificates.
	body, ok := decodeBody(own.Signed)
	if !ok || body.GetViewChange() == nil {
		return nil
	}
	body.GetViewChange().Prepared = nil
	mine := *own
	mine.Prepared, mine.Signed = nil, o.sign(body)
	// The f others with the fewest prepared certificates (ties: lowest
	// sender), then ordered by sender as a correct primary does.
	slices.SortStableFunc(others, func(a, b viewchange.ViewChange) int {
		return cmp.Or(cmp.Compare(len(a.Prepared), len(b.Prepared)), cmp.Compare(a.From, b.From))
	})
	chosen := append([]viewchange.ViewChange{mine}, others[:o.f]...)
	slices.SortFunc(chosen, func(a, b viewchange.ViewChange) int { return cmp.Compare(a.From, b.From) })
	d, err := o.cfg.Decide(view, chosen)
	if err != nil {
		return nil
	}
	fv := &forgedView{digest: map[uint64][32]byte{}, own: map[uint64]protocol.Outbound{}}
	nv := &wire.NewView{View: view}
	for _, vc := range chosen {
		nv.ViewChanges = append(nv.ViewChanges, vc.Signed)
	}
	var commits []protocol.Outbound
	for _, p := range d.Proposals {
		nv.PrePrepares = append(nv.PrePrepares, o.sign(prePrepare(view, p.Sequence, p.Digest)))
		fv.digest[p.Sequence] = p.Digest
		commits = append(commits, o.commit(view, p.Sequence, p.Digest))
	}
	// The real NEW-VIEW's re-proposals beyond the forged ones: batches of
	// its own client instead.
	for _, pp := range vm.NewView.PrePrepares {
		if _, ok := fv.digest[pp.Sequence]; ok || pp.Sequence <= d.Stable.Sequence {
			continue
		}
		payload, _ := proto.Marshal(&wire.Request{ClientId: o.client.Public(), RequestNumber: view<<20 | pp.Sequence,
			Operation: fmt.Appendf(nil, "omitted certificate at %d in view %d", pp.Sequence, view)})
		batch := []*wire.Signed{{Payload: payload, Signature: o.client.Sign(crypto.DomainClientRequest, payload)}}
		digest := crypto.BatchDigest(batch)
		fv.digest[pp.Sequence] = digest
		fv.own[pp.Sequence] = protocol.Outbound{To: protocol.Broadcast, Kind: protocol.KindPrePrepare, Batch: batch,
			Signed: o.sign(prePrepare(view, pp.Sequence, digest))}
		commits = append(commits, o.commit(view, pp.Sequence, digest))
	}
	newView := protocol.Outbound{To: protocol.Broadcast, Kind: protocol.KindNewView,
		Signed: o.sign(&wire.ReplicaMessage{Body: &wire.ReplicaMessage_NewView{NewView: nv}})}
	fv.out = append([]protocol.Outbound{newView}, commits...)
	return fv
}

func prePrepare(view, seq uint64, digest [32]byte) *wire.ReplicaMessage {
	return &wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{
		PrePrepare: &wire.PrePrepare{View: view, Sequence: seq, Digest: append([]byte(nil), digest[:]...)}}}
}

func (o *omitFilter) commit(view, seq uint64, digest [32]byte) protocol.Outbound {
	return protocol.Outbound{To: protocol.Broadcast, Kind: protocol.KindCommit, Signed: o.sign(&wire.ReplicaMessage{
		Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{View: view, Sequence: seq, Digest: append([]byte(nil), digest[:]...)}}})}
}

func (o *omitFilter) sign(m *wire.ReplicaMessage) *wire.Signed {
	m.From = o.self
	payload, _ := proto.Marshal(m)
	return &wire.Signed{Payload: payload, Signature: o.signer.Sign(crypto.DomainReplicaMessage, payload)}
}
