package viewchange

import (
	"errors"
	"fmt"
	"sort"

	"github.com/pbftnode/pbftnode/checkpoint"
)

// Decide computes what the VIEW-CHANGEs vcs (all of them, as carried by a
// NEW-VIEW) determine for view. It requires at least Quorum of them, from
// distinct senders, all for view, each valid (ValidateViewChange).
//
// min-s is the highest stable checkpoint among them (Decision.Stable) and
// max-s the highest sequence of a prepared certificate among them. For
// every sequence in (min-s, max-s] the proposal is the digest of the
// certificate for it with the highest view, or the null digest when there
// is none. Two certificates for one sequence and one view with different
// digests, or two stable checkpoints at min-s with different state
// digests, cannot both be genuine while fewer than a third of the replicas
// are faulty; Decide rejects them with ErrInvalidViewChange.
//
// The result does not depend on the order of vcs.
func (c Config) Decide(view uint64, vcs []ViewChange) (Decision, error) {
	if err := c.validate(); err != nil {
		return Decision{}, err
	}
	if len(vcs) < c.Quorum {
		return Decision{}, fmt.Errorf("%w: %d view changes for view %d, quorum is %d",
			ErrInvalidViewChange, len(vcs), view, c.Quorum)
	}
	if len(vcs) > c.N {
		return Decision{}, fmt.Errorf("%w: %d view changes from %d replicas", ErrInvalidViewChange, len(vcs), c.N)
	}

	// Validate every view change and find min-s. Among stable checkpoints
	// at min-s, keep the lowest sender's proof so the choice is
	// independent of the order.
	seen := make(map[uint32]bool, len(vcs))
	var (
		stable     checkpoint.Certificate
		stableFrom uint32
	)
	for i, vc := range vcs {
		if vc.NewView != view {
			return Decision{}, fmt.Errorf("%w: view change %d from replica %d is for view %d, not %d",
				ErrInvalidViewChange, i, vc.From, vc.NewView, view)
		}
		if seen[vc.From] {
			return Decision{}, fmt.Errorf("%w: two view changes from replica %d", ErrInvalidViewChange, vc.From)
		}
		seen[vc.From] = true
		s, err := c.checkViewChange(vc)
		if err != nil {
			return Decision{}, err
		}
		switch {
		case i == 0 || s.Sequence > stable.Sequence:
			stable, stableFrom = s, vc.From
		case s.Sequence == stable.Sequence:
			if s.StateDigest != stable.StateDigest {
				return Decision{}, fmt.Errorf("%w: replicas %d and %d prove different states at stable checkpoint %d",
					ErrInvalidViewChange, stableFrom, vc.From, s.Sequence)
			}
			if vc.From < stableFrom {
				stable, stableFrom = s, vc.From
			}
		}
	}
	minS := stable.Sequence

	// For every sequence above min-s, the certificate of the highest view.
	// Conflicts are checked at every view, not only the highest, so that
	// whether Decide fails does not depend on the order either.
	type slot struct {
		seq  uint64
		view uint64
	}
	digests := make(map[slot][32]byte)
	highest := make(map[uint64]uint64) // sequence -> highest view
	maxS := minS
	for _, vc := range vcs {
		for _, pc := range vc.Prepared {
			pp := pc.PrePrepare
			if pp.Sequence <= minS {
				continue // covered by the stable checkpoint
			}
			k := slot{pp.Sequence, pp.View}
			if d, ok := digests[k]; ok && d != pp.Digest {
				return Decision{}, fmt.Errorf("%w: two certificates for sequence %d in view %d with different digests",
					ErrInvalidViewChange, pp.Sequence, pp.View)
			}
			digests[k] = pp.Digest
			if v, ok := highest[pp.Sequence]; !ok || pp.View > v {
				highest[pp.Sequence] = pp.View
			}
			maxS = max(maxS, pp.Sequence)
		}
	}

	// maxS-minS <= WindowSize: each certificate lies within its sender's
	// window, whose stable checkpoint is at most min-s.
	d := Decision{View: view, Stable: stable}
	if maxS > minS {
		d.Proposals = make([]Proposal, 0, maxS-minS)
	}
	for seq := minS + 1; seq > minS && seq <= maxS; seq++ {
		p := Proposal{Sequence: seq, Digest: c.NullDigest}
		if v, ok := highest[seq]; ok {
			p.Digest = digests[slot{seq, v}]
		}
		p.Null = p.Digest == c.NullDigest
		d.Proposals = append(d.Proposals, p)
	}
	return d, nil
}

// CheckNewView checks a NEW-VIEW for view carrying the VIEW-CHANGEs vcs
// and the new primary's pre-prepares: it recomputes Decide(view, vcs) and
// requires exactly one pre-prepare per proposal, in any order, each from
// Primary(view), for view, and with the proposal's sequence and digest.
// It returns the decision when they match, else an error wrapping
// ErrInvalidNewView (and ErrInvalidViewChange when vcs are the problem).
func (c Config) CheckNewView(view uint64, vcs []ViewChange, prePrepares []PrePrepare) (Decision, error) {
	d, err := c.Decide(view, vcs)
	if err != nil {
		if errors.Is(err, ErrInvalidConfig) {
			return Decision{}, err
		}
		return Decision{}, fmt.Errorf("%w: %w", ErrInvalidNewView, err)
	}
	if len(prePrepares) != len(d.Proposals) {
		return Decision{}, fmt.Errorf("%w: %d pre-prepares for %d proposals",
			ErrInvalidNewView, len(prePrepares), len(d.Proposals))
	}
	primary := c.primary(view)
	minS := d.Stable.Sequence
	matched := make(map[uint64]bool, len(prePrepares))
	for i, pp := range prePrepares {
		switch {
		case pp.From != primary:
			return Decision{}, fmt.Errorf("%w: pre-prepare %d from replica %d, primary of view %d is %d",
				ErrInvalidNewView, i, pp.From, view, primary)
		case pp.View != view:
			return Decision{}, fmt.Errorf("%w: pre-prepare %d for view %d, not %d", ErrInvalidNewView, i, pp.View, view)
		case pp.Sequence <= minS || pp.Sequence-minS > uint64(len(d.Proposals)):
			return Decision{}, fmt.Errorf("%w: pre-prepare %d for sequence %d outside (%d, %d]",
				ErrInvalidNewView, i, pp.Sequence, minS, minS+uint64(len(d.Proposals)))
		case matched[pp.Sequence]:
			return Decision{}, fmt.Errorf("%w: two pre-prepares for sequence %d", ErrInvalidNewView, pp.Sequence)
		}
		want := d.Proposals[pp.Sequence-minS-1]
		if pp.Digest != want.Digest {
			return Decision{}, fmt.Errorf("%w: pre-prepare for sequence %d has another digest than the proposal (null: %t)",
				ErrInvalidNewView, pp.Sequence, want.Null)
		}
		matched[pp.Sequence] = true
	}
	// As many pre-prepares as proposals, each matching a distinct one: all
	// proposals are covered.
	return d, nil
}

// Select is the new primary's helper: from the VIEW-CHANGEs it received for
// view (possibly more than Quorum, in any order) it keeps the valid ones,
// drops any sender that sent more than one valid VIEW-CHANGE, and picks
// Quorum of them deterministically: the new primary's own if present, then
// the lowest sender indices. The result is ordered by sender. ok is false
// when fewer than Quorum remain, or when Decide rejects the selection
// (which needs more than a third of the replicas faulty).
func (c Config) Select(view uint64, vcs []ViewChange) ([]ViewChange, bool) {
	if c.validate() != nil {
		return nil, false
	}
	bySender := make(map[uint32]int, len(vcs)) // sender -> index in vcs, -1 if ambiguous
	for i, vc := range vcs {
		if vc.NewView != view || c.ValidateViewChange(vc) != nil {
			continue
		}
		if _, dup := bySender[vc.From]; dup {
			bySender[vc.From] = -1
			continue
		}
		bySender[vc.From] = i
	}
	senders := make([]uint32, 0, len(bySender))
	for from, i := range bySender {
		if i >= 0 {
			senders = append(senders, from)
		}
	}
	if len(senders) < c.Quorum {
		return nil, false
	}
	primary := c.primary(view)
	sort.Slice(senders, func(i, j int) bool {
		// The primary first, then by index.
		if (senders[i] == primary) != (senders[j] == primary) {
			return senders[i] == primary
		}
		return senders[i] < senders[j]
	})
	senders = senders[:c.Quorum]
	sort.Slice(senders, func(i, j int) bool { return senders[i] < senders[j] })
	out := make([]ViewChange, 0, len(senders))
	for _, from := range senders {
		out = append(out, vcs[bySender[from]])
	}
	if _, err := c.Decide(view, out); err != nil {
		return nil, false
	}
	return out, true
}
