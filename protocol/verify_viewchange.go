package protocol

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// VerifiedNewView is a NEW-VIEW whose nested signatures were checked.
type VerifiedNewView struct {
	View        uint64
	ViewChanges []viewchange.ViewChange
	PrePrepares []viewchange.PrePrepare
}

// inner decodes a nested signed replica message and checks its signature.
// Nested messages are never certificates themselves (no recursion).
func (v *MessageVerifier) inner(s *wire.Signed) (*wire.ReplicaMessage, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: empty nested message", ErrMalformed)
	}
	var body wire.ReplicaMessage
	if err := proto.Unmarshal(s.Payload, &body); err != nil {
		return nil, fmt.Errorf("%w: nested message: %w", ErrMalformed, err)
	}
	if int64(body.From) >= int64(len(v.replicas)) {
		return nil, ErrUnknownSender
	}
	if !v.replicaSignature(body.From, s.Payload, s.Signature) {
		return nil, fmt.Errorf("%w: nested message from replica %d", ErrBadSignature, body.From)
	}
	return &body, nil
}

func digestOf(b []byte) ([32]byte, error) {
	var d [32]byte
	if len(b) != len(d) {
		return d, fmt.Errorf("%w: digest of %d bytes", ErrMalformed, len(b))
	}
	copy(d[:], b)
	return d, nil
}

// PrePrepareHeader verifies a signed pre-prepare header.
func (v *MessageVerifier) PrePrepareHeader(s *wire.Signed) (viewchange.PrePrepare, error) {
	body, err := v.inner(s)
	if err != nil {
		return viewchange.PrePrepare{}, err
	}
	pp := body.GetPrePrepare()
	if pp == nil {
		return viewchange.PrePrepare{}, fmt.Errorf("%w: not a pre-prepare", ErrMalformed)
	}
	d, err := digestOf(pp.Digest)
	if err != nil {
		return viewchange.PrePrepare{}, err
	}
	return viewchange.PrePrepare{From: body.From, View: pp.View, Sequence: pp.Sequence, Digest: d, Signed: s}, nil
}

// PreparedCertificate verifies every signature of a prepared certificate.
func (v *MessageVerifier) PreparedCertificate(c *wire.PreparedCertificate) (viewchange.PreparedCertificate, error) {
	if c == nil || len(c.Prepares) > len(v.replicas) {
		return viewchange.PreparedCertificate{}, fmt.Errorf("%w: prepared certificate", ErrMalformed)
	}
	pp, err := v.PrePrepareHeader(c.PrePrepare)
	if err != nil {
		return viewchange.PreparedCertificate{}, err
	}
	pc := viewchange.PreparedCertificate{PrePrepare: pp}
	for _, s := range c.Prepares {
		body, err := v.inner(s)
		if err != nil {
			return viewchange.PreparedCertificate{}, err
		}
		p := body.GetPrepare()
		if p == nil {
			return viewchange.PreparedCertificate{}, fmt.Errorf("%w: certificate entry is not a prepare", ErrMalformed)
		}
		d, err := digestOf(p.Digest)
		if err != nil {
			return viewchange.PreparedCertificate{}, err
		}
		pc.Prepares = append(pc.Prepares, viewchange.Prepare{From: body.From, View: p.View, Sequence: p.Sequence, Digest: d, Signed: s})
	}
	return pc, nil
}

// viewChange verifies a VIEW-CHANGE signed by from (signed is its frame).
func (v *MessageVerifier) viewChange(from uint32, signed *wire.Signed, vc *wire.ViewChange) (viewchange.ViewChange, error) {
	if vc == nil || uint64(len(vc.Prepared)) > v.maxPrepared {
		return viewchange.ViewChange{}, fmt.Errorf("%w: view change", ErrMalformed)
	}
	out := viewchange.ViewChange{From: from, NewView: vc.NewView, Signed: signed}
	if vc.StableSequence > 0 {
		votes, err := v.checkpointVotes(vc.Stable.GetVotes())
		if err != nil {
			return viewchange.ViewChange{}, err
		}
		out.Stable = checkpoint.Certificate{Sequence: vc.StableSequence, Proof: votes}
		if len(votes) > 0 {
			out.Stable.StateDigest = votes[0].StateDigest
		}
	}
	for _, c := range vc.Prepared {
		pc, err := v.PreparedCertificate(c)
		if err != nil {
			return viewchange.ViewChange{}, err
		}
		out.Prepared = append(out.Prepared, pc)
	}
	return out, nil
}

// newView verifies a NEW-VIEW and everything nested in it.
func (v *MessageVerifier) newView(nv *wire.NewView) (*VerifiedNewView, error) {
	if nv == nil || len(nv.ViewChanges) > len(v.replicas) || uint64(len(nv.PrePrepares)) > v.maxPrepared {
		return nil, fmt.Errorf("%w: new view", ErrMalformed)
	}
	out := &VerifiedNewView{View: nv.View}
	for _, s := range nv.ViewChanges {
		body, err := v.inner(s)
		if err != nil {
			return nil, err
		}
		vc, err := v.viewChange(body.From, s, body.GetViewChange())
		if err != nil {
			return nil, err
		}
		out.ViewChanges = append(out.ViewChanges, vc)
	}
	for _, s := range nv.PrePrepares {
		pp, err := v.PrePrepareHeader(s)
		if err != nil {
			return nil, err
		}
		out.PrePrepares = append(out.PrePrepares, pp)
	}
	return out, nil
}
