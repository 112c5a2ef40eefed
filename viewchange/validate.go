package viewchange

import (
	"fmt"

	"github.com/pbftnode/pbftnode/checkpoint"
)

// ValidatePreparedCertificate checks that pc proves its pre-prepare's
// (view, sequence, digest) prepared: the pre-prepare is from the primary of
// its view and for a sequence above 0, and at least Quorum-1 prepares
// match it, each from a distinct replica of the cluster other than that
// primary. A duplicate or mismatching prepare rejects the certificate (it
// is not skipped).
func (c Config) ValidatePreparedCertificate(pc PreparedCertificate) error {
	if err := c.validate(); err != nil {
		return err
	}
	pp := pc.PrePrepare
	primary := c.primary(pp.View)
	switch {
	case pp.Sequence == 0:
		return fmt.Errorf("%w: sequence 0", ErrInvalidCertificate)
	case pp.From != primary:
		return fmt.Errorf("%w: pre-prepare for view %d from replica %d, primary is %d",
			ErrInvalidCertificate, pp.View, pp.From, primary)
	}
	seen := make(map[uint32]bool, len(pc.Prepares))
	for i, p := range pc.Prepares {
		switch {
		case !c.member(p.From):
			return fmt.Errorf("%w: prepare %d from replica %d outside the cluster of %d",
				ErrInvalidCertificate, i, p.From, c.N)
		case p.From == primary:
			return fmt.Errorf("%w: prepare %d from the primary %d", ErrInvalidCertificate, i, p.From)
		case seen[p.From]:
			return fmt.Errorf("%w: two prepares from replica %d", ErrInvalidCertificate, p.From)
		case p.View != pp.View || p.Sequence != pp.Sequence || p.Digest != pp.Digest:
			return fmt.Errorf("%w: prepare %d from replica %d for (view %d, sequence %d) does not match the pre-prepare (view %d, sequence %d) or its digest",
				ErrInvalidCertificate, i, p.From, p.View, p.Sequence, pp.View, pp.Sequence)
		}
		seen[p.From] = true
	}
	if len(seen) < c.Quorum-1 {
		return fmt.Errorf("%w: %d prepares, need %d", ErrInvalidCertificate, len(seen), c.Quorum-1)
	}
	return nil
}

// ValidateViewChange checks the structure of vc: its sender is in the
// cluster; its stable checkpoint is either sequence 0 with no proof or
// proven by checkpoint.VerifyCertificate and consistent with the
// certificate's sequence and state digest; and every prepared certificate
// is valid, from a view below vc.NewView, for a sequence in
// (stable, stable+WindowSize], and the only one for its sequence.
func (c Config) ValidateViewChange(vc ViewChange) error {
	_, err := c.checkViewChange(vc)
	return err
}

// checkViewChange validates vc and returns its stable checkpoint in
// canonical form: the zero Certificate at sequence 0, otherwise the one
// VerifyCertificate returns (one vote per replica, ordered by replica).
func (c Config) checkViewChange(vc ViewChange) (checkpoint.Certificate, error) {
	if err := c.validate(); err != nil {
		return checkpoint.Certificate{}, err
	}
	if !c.member(vc.From) {
		return checkpoint.Certificate{}, fmt.Errorf("%w: sender %d outside the cluster of %d",
			ErrInvalidViewChange, vc.From, c.N)
	}
	stable, err := c.checkStable(vc.Stable)
	if err != nil {
		return checkpoint.Certificate{}, fmt.Errorf("%w: from replica %d: %w", ErrInvalidViewChange, vc.From, err)
	}
	bySeq := make(map[uint64]bool, len(vc.Prepared))
	for i, pc := range vc.Prepared {
		pp := pc.PrePrepare
		if err := c.ValidatePreparedCertificate(pc); err != nil {
			return checkpoint.Certificate{}, fmt.Errorf("%w: from replica %d: certificate %d: %w",
				ErrInvalidViewChange, vc.From, i, err)
		}
		switch {
		case pp.View >= vc.NewView:
			return checkpoint.Certificate{}, fmt.Errorf("%w: from replica %d: certificate for view %d, not below the new view %d",
				ErrInvalidViewChange, vc.From, pp.View, vc.NewView)
		case pp.Sequence <= stable.Sequence || pp.Sequence-stable.Sequence > c.WindowSize:
			return checkpoint.Certificate{}, fmt.Errorf("%w: from replica %d: certificate for sequence %d outside the window (%d, %d+%d]",
				ErrInvalidViewChange, vc.From, pp.Sequence, stable.Sequence, stable.Sequence, c.WindowSize)
		case bySeq[pp.Sequence]:
			return checkpoint.Certificate{}, fmt.Errorf("%w: from replica %d: two certificates for sequence %d",
				ErrInvalidViewChange, vc.From, pp.Sequence)
		}
		bySeq[pp.Sequence] = true
	}
	return stable, nil
}

// checkStable validates a claimed stable checkpoint and returns it in
// canonical form. At sequence 0 the state digest is not checked (there is
// no proof of it) and is dropped.
func (c Config) checkStable(s checkpoint.Certificate) (checkpoint.Certificate, error) {
	if s.Sequence == 0 || (c.Base > 0 && s.Sequence == c.Base && len(s.Proof) == 0) {
		if len(s.Proof) != 0 {
			return checkpoint.Certificate{}, fmt.Errorf("stable checkpoint 0 with %d votes of proof", len(s.Proof))
		}
		// The epoch's base: certified by the previous epoch.
		return checkpoint.Certificate{Sequence: c.Base}, nil
	}
	if s.Sequence <= c.Base {
		return checkpoint.Certificate{}, fmt.Errorf("stable checkpoint %d at or below the epoch's base %d", s.Sequence, c.Base)
	}
	if len(s.Proof) == 0 {
		return checkpoint.Certificate{}, fmt.Errorf("stable checkpoint %d without proof", s.Sequence)
	}
	cert, err := checkpoint.VerifyCertificate(s.Proof, c.N, c.Quorum, c.CheckpointInterval)
	if err != nil {
		return checkpoint.Certificate{}, fmt.Errorf("stable checkpoint %d: %w", s.Sequence, err)
	}
	if cert.Sequence != s.Sequence || cert.StateDigest != s.StateDigest {
		return checkpoint.Certificate{}, fmt.Errorf("stable checkpoint %d: proof is for sequence %d or another state digest",
			s.Sequence, cert.Sequence)
	}
	return cert, nil
}
