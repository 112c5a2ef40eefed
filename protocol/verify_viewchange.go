package protocol

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// VerifiedNewView is a NEW-VIEW whose nested signatures were checked.
type VerifiedNewView struct {
	View        uint64
	ViewChanges []viewchange.ViewChange
	PrePrepares []viewchange.PrePrepare
}

// nestedSigs collects the signatures nested in one certificate, VIEW-CHANGE
// or NEW-VIEW while it is decoded, so that they are checked together
// (batch verification, spread over the pool's workers) by check. A
// VIEW-CHANGE the verifier already verified whole (see
// MessageVerifier.viewChanges) is decoded with vouched set: its nested
// signatures are not queued again.
type nestedSigs struct {
	vouched bool
	jobs    []crypto.VerifyJob
	from    []uint32
}

// add queues the signature of s by replica from (a member).
func (n *nestedSigs) add(v *MessageVerifier, from uint32, s *wire.Signed) {
	if n.vouched {
		return
	}
	n.jobs = append(n.jobs, crypto.VerifyJob{
		PublicKey: v.replicas[from], Domain: crypto.DomainReplicaMessage, Payload: s.Payload, Signature: s.Signature,
	})
	n.from = append(n.from, from)
}

// check verifies every queued signature; the error names the first bad one.
func (v *MessageVerifier) check(n *nestedSigs) error {
	for i, ok := range v.verifyJobs(n.jobs) {
		if !ok {
			return fmt.Errorf("%w: nested message from replica %d", ErrBadSignature, n.from[i])
		}
	}
	return nil
}

// checked runs decode, which queues signatures on a fresh nestedSigs, and
// then checks them: decode's result, or the first error.
func checked[T any](v *MessageVerifier, decode func(*nestedSigs) (T, error)) (T, error) {
	var sigs nestedSigs
	out, err := decode(&sigs)
	if err == nil {
		err = v.check(&sigs)
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// inner decodes a nested signed replica message and queues its signature
// on sigs. Nested messages are never certificates themselves (no
// recursion).
func (v *MessageVerifier) inner(s *wire.Signed, sigs *nestedSigs) (*wire.ReplicaMessage, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: empty nested message", ErrMalformed)
	}
	var body wire.ReplicaMessage
	if err := proto.Unmarshal(s.Payload, &body); err != nil {
		return nil, fmt.Errorf("%w: nested message: %w", ErrMalformed, err)
	}
	if err := v.checkEpoch(&body); err != nil {
		return nil, err
	}
	if int64(body.From) >= int64(len(v.replicas)) {
		return nil, ErrUnknownSender
	}
	sigs.add(v, body.From, s)
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
	return checked(v, func(sigs *nestedSigs) (viewchange.PrePrepare, error) { return v.prePrepareHeader(s, sigs) })
}

// prePrepareHeader decodes a signed pre-prepare header, queuing its
// signature on sigs.
func (v *MessageVerifier) prePrepareHeader(s *wire.Signed, sigs *nestedSigs) (viewchange.PrePrepare, error) {
	body, err := v.inner(s, sigs)
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
	return checked(v, func(sigs *nestedSigs) (viewchange.PreparedCertificate, error) { return v.preparedCertificate(c, sigs) })
}

// preparedCertificate decodes a prepared certificate, queuing its
// signatures on sigs.
func (v *MessageVerifier) preparedCertificate(c *wire.PreparedCertificate, sigs *nestedSigs) (viewchange.PreparedCertificate, error) {
	if c == nil || len(c.Prepares) > len(v.replicas) {
		return viewchange.PreparedCertificate{}, fmt.Errorf("%w: prepared certificate", ErrMalformed)
	}
	pp, err := v.prePrepareHeader(c.PrePrepare, sigs)
	if err != nil {
		return viewchange.PreparedCertificate{}, err
	}
	pc := viewchange.PreparedCertificate{PrePrepare: pp}
	for _, s := range c.Prepares {
		body, err := v.inner(s, sigs)
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

// viewChangeFrame verifies the nested signatures of a VIEW-CHANGE frame
// from replica from whose own signature was checked, and remembers it as
// verified whole, so that a NEW-VIEW carrying the same VIEW-CHANGE need not
// check it again.
func (v *MessageVerifier) viewChangeFrame(from uint32, signed *wire.Signed, vc *wire.ViewChange) (viewchange.ViewChange, error) {
	out, err := checked(v, func(sigs *nestedSigs) (viewchange.ViewChange, error) { return v.viewChange(from, signed, vc, sigs) })
	if err != nil {
		return viewchange.ViewChange{}, err
	}
	v.viewChanges.Add(signed.Payload, signed.Signature)
	return out, nil
}

// viewChange decodes a VIEW-CHANGE signed by from (signed is its frame),
// queuing its nested signatures on sigs.
func (v *MessageVerifier) viewChange(from uint32, signed *wire.Signed, vc *wire.ViewChange, sigs *nestedSigs) (viewchange.ViewChange, error) {
	if vc == nil || uint64(len(vc.Prepared)) > v.maxPrepared {
		return viewchange.ViewChange{}, fmt.Errorf("%w: view change", ErrMalformed)
	}
	out := viewchange.ViewChange{From: from, NewView: vc.NewView, Signed: signed}
	if vc.StableSequence > 0 {
		votes, err := v.queueCheckpointVotes(vc.Stable.GetVotes(), sigs)
		if err != nil {
			return viewchange.ViewChange{}, err
		}
		out.Stable = checkpoint.Certificate{Sequence: vc.StableSequence, Proof: votes}
		if len(votes) > 0 {
			out.Stable.StateDigest = votes[0].StateDigest
		}
	}
	for _, c := range vc.Prepared {
		pc, err := v.preparedCertificate(c, sigs)
		if err != nil {
			return viewchange.ViewChange{}, err
		}
		out.Prepared = append(out.Prepared, pc)
	}
	return out, nil
}

// newView verifies a NEW-VIEW and everything nested in it. Its signatures
// are checked together, except those of the VIEW-CHANGEs this verifier
// already verified whole (byte for byte the same signed message: the
// cache key covers the payload, which holds the sender and every nested
// signed message, and the signature), which are decoded and bounded again
// but not re-verified.
func (v *MessageVerifier) newView(nv *wire.NewView) (*VerifiedNewView, error) {
	if nv == nil || len(nv.ViewChanges) > len(v.replicas) || uint64(len(nv.PrePrepares)) > v.maxPrepared {
		return nil, fmt.Errorf("%w: new view", ErrMalformed)
	}
	out := &VerifiedNewView{View: nv.View}
	var sigs nestedSigs
	for _, s := range nv.ViewChanges {
		vcSigs := &sigs
		if s != nil && v.viewChanges.Contains(s.Payload, s.Signature) {
			vcSigs = &nestedSigs{vouched: true}
		}
		body, err := v.inner(s, vcSigs)
		if err != nil {
			return nil, err
		}
		vc, err := v.viewChange(body.From, s, body.GetViewChange(), vcSigs)
		if err != nil {
			return nil, err
		}
		out.ViewChanges = append(out.ViewChanges, vc)
	}
	for _, s := range nv.PrePrepares {
		pp, err := v.prePrepareHeader(s, &sigs)
		if err != nil {
			return nil, err
		}
		out.PrePrepares = append(out.PrePrepares, pp)
	}
	if err := v.check(&sigs); err != nil {
		return nil, err
	}
	return out, nil
}
