package viewchange

import (
	"math/rand"
	"testing"
)

// history is a random run of views 0..views-1: at every (sequence, view)
// the primary may have proposed a digest, and some replicas prepared it.
// Once a quorum prepared (sequence, digest) it is locked (it may have
// committed): later views propose only that digest there, as PBFT ensures.
type history struct {
	c        Config
	views    uint64
	maxSeq   uint64
	digest   map[[2]uint64][32]byte       // (seq, view) -> proposed digest
	prepared map[uint32]map[uint64]uint64 // replica -> seq -> highest view it prepared in
	locked   map[uint64][32]byte          // seq -> digest a quorum prepared
	stable   map[uint32]uint64            // replica -> stable checkpoint
}

func randomHistory(rng *rand.Rand, c Config, views uint64) *history {
	h := &history{
		c: c, views: views, maxSeq: 3 * c.CheckpointInterval,
		digest:   map[[2]uint64][32]byte{},
		prepared: map[uint32]map[uint64]uint64{},
		locked:   map[uint64][32]byte{},
		stable:   map[uint32]uint64{},
	}
	for r := uint32(0); int(r) < c.N; r++ {
		h.prepared[r] = map[uint64]uint64{}
		h.stable[r] = uint64(rng.Intn(3)) * c.CheckpointInterval
	}
	for seq := uint64(1); seq <= h.maxSeq; seq++ {
		for v := uint64(0); v < views; v++ {
			if rng.Intn(3) == 0 {
				continue // nothing proposed at seq in view v
			}
			d, ok := h.locked[seq]
			if !ok {
				d = [32]byte{byte(seq), byte(v), byte(rng.Intn(3))}
				if rng.Intn(8) == 0 {
					d = c.NullDigest // a null request prepared in an earlier NEW-VIEW
				}
			}
			h.digest[[2]uint64{seq, v}] = d
			count := 0
			for r := uint32(0); int(r) < c.N; r++ {
				// A replica prepares only below its high watermark.
				if seq <= h.stable[r]+c.WindowSize && rng.Intn(2) == 0 {
					h.prepared[r][seq] = v
					count++
				}
			}
			if count >= c.Quorum {
				h.locked[seq] = d
			}
		}
	}
	return h
}

// viewChange is replica r's VIEW-CHANGE for the view after the history:
// for every sequence in its window, the certificate of the highest view
// it prepared in.
func (h *history) viewChange(r uint32) ViewChange {
	s := h.stable[r]
	vc := h.c.vc(r, h.views, s)
	for seq := s + 1; seq <= s+h.c.WindowSize && seq <= h.maxSeq; seq++ {
		if v, ok := h.prepared[r][seq]; ok {
			vc.Prepared = append(vc.Prepared, h.c.cert(v, seq, h.digest[[2]uint64{seq, v}]))
		}
	}
	return vc
}

func TestPropertyPreparedDigestsSurvive(t *testing.T) {
	for _, n := range []int{4, 7} {
		f := (n - 1) / 3
		c := Config{N: n, Quorum: 2*f + 1, CheckpointInterval: 4, WindowSize: 8, NullDigest: nullDigest}
		rng := rand.New(rand.NewSource(int64(n)))
		for run := 0; run < 300; run++ {
			h := randomHistory(rng, c, uint64(1+rng.Intn(5)))
			var vcs []ViewChange
			for _, r := range rng.Perm(n)[:c.Quorum+rng.Intn(n-c.Quorum+1)] {
				vcs = append(vcs, h.viewChange(uint32(r)))
			}
			d, err := c.Decide(h.views, vcs)
			if err != nil {
				t.Fatalf("n=%d run %d: %v", n, run, err)
			}
			checkDecision(t, c, h, vcs, d)
			pps := c.prePreparesFor(d)
			rng.Shuffle(len(pps), func(i, j int) { pps[i], pps[j] = pps[j], pps[i] })
			if _, err := c.CheckNewView(h.views, shuffled(rng, vcs), pps); err != nil {
				t.Fatalf("n=%d run %d: own new view rejected: %v", n, run, err)
			}
		}
	}
}

func checkDecision(t *testing.T, c Config, h *history, vcs []ViewChange, d Decision) {
	t.Helper()
	minS := uint64(0)
	for _, vc := range vcs {
		minS = max(minS, vc.Stable.Sequence)
	}
	if d.Stable.Sequence != minS {
		t.Fatalf("stable %d, want %d", d.Stable.Sequence, minS)
	}
	type best struct {
		view   uint64
		digest [32]byte
	}
	highest := map[uint64]best{}
	maxS := minS
	for _, vc := range vcs {
		for _, pc := range vc.Prepared {
			pp := pc.PrePrepare
			if pp.Sequence <= minS {
				continue
			}
			maxS = max(maxS, pp.Sequence)
			if b, ok := highest[pp.Sequence]; !ok || pp.View > b.view {
				highest[pp.Sequence] = best{pp.View, pp.Digest}
			}
		}
	}
	if uint64(len(d.Proposals)) != maxS-minS {
		t.Fatalf("%d proposals for (%d, %d]", len(d.Proposals), minS, maxS)
	}
	for i, p := range d.Proposals {
		seq := minS + 1 + uint64(i)
		if p.Sequence != seq || p.Null != (p.Digest == c.NullDigest) {
			t.Fatalf("proposal %d: %+v", i, p)
		}
		// The certificate of the highest view present decides.
		if b, ok := highest[seq]; ok && p.Digest != b.digest {
			t.Fatalf("seq %d: proposal %x, highest certificate (view %d) has %x", seq, p.Digest[:3], b.view, b.digest[:3])
		} else if !ok && !p.Null {
			t.Fatalf("seq %d: no certificate but proposal %+v", seq, p)
		}
	}
	// Safety: a digest a quorum prepared (which may have committed) is the
	// one re-proposed, whichever quorum of view changes was chosen.
	for seq, locked := range h.locked {
		if seq <= minS {
			continue
		}
		if seq > maxS || d.Proposals[seq-minS-1].Digest != locked {
			t.Fatalf("seq %d: quorum-prepared digest %x lost (max-s %d)", seq, locked[:3], maxS)
		}
	}
}

// TestGarbageNeverPanics feeds random, mostly invalid, inputs to every
// entry point.
func TestGarbageNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	small := func() uint64 {
		if rng.Intn(20) == 0 {
			return ^uint64(0) - uint64(rng.Intn(3))
		}
		return uint64(rng.Intn(6))
	}
	for i := 0; i < 3000; i++ {
		c := Config{N: rng.Intn(6), Quorum: rng.Intn(6), CheckpointInterval: small(), WindowSize: small(), NullDigest: nullDigest}
		var vcs []ViewChange
		for j := rng.Intn(6); j > 0; j-- {
			vc := ViewChange{From: uint32(small()), NewView: small()}
			vc.Stable.Sequence = small()
			for k := rng.Intn(4); k > 0; k-- {
				pc := PreparedCertificate{PrePrepare: PrePrepare{From: uint32(small()), View: small(), Sequence: small(), Digest: dg(byte(rng.Intn(2)))}}
				for m := rng.Intn(4); m > 0; m-- {
					pc.Prepares = append(pc.Prepares, Prepare{From: uint32(small()), View: small(), Sequence: small(), Digest: dg(byte(rng.Intn(2)))})
				}
				vc.Prepared = append(vc.Prepared, pc)
			}
			vcs = append(vcs, vc)
		}
		view := small()
		_, _ = c.Decide(view, vcs)
		_, _ = c.CheckNewView(view, vcs, []PrePrepare{{From: uint32(small()), View: small(), Sequence: small()}})
		_, _ = c.Select(view, vcs)
	}
}
