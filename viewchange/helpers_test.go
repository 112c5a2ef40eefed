package viewchange

import (
	"github.com/pbftnode/pbftnode/checkpoint"
)

func dg(b byte) [32]byte { return [32]byte{b, 0xd1} }

var nullDigest = dg(0xee)

// testConfig is n=4, f=1, quorum 3, checkpoints every 10, window 20.
func testConfig() Config {
	return Config{N: 4, Quorum: 3, CheckpointInterval: 10, WindowSize: 20, NullDigest: nullDigest}
}

// cert builds a valid prepared certificate for (view, seq, digest) in c:
// the view's primary pre-prepares, the first Quorum-1 backups prepare.
func (c Config) cert(view, seq uint64, digest [32]byte) PreparedCertificate {
	primary := Primary(view, c.N)
	pc := PreparedCertificate{PrePrepare: PrePrepare{From: primary, View: view, Sequence: seq, Digest: digest}}
	for r := uint32(0); len(pc.Prepares) < c.Quorum-1; r++ {
		if r != primary {
			pc.Prepares = append(pc.Prepares, Prepare{From: r, View: view, Sequence: seq, Digest: digest})
		}
	}
	return pc
}

// stable builds a stable checkpoint certificate at seq (zero at 0) voted
// by the first Quorum replicas.
func (c Config) stable(seq uint64, state [32]byte) checkpoint.Certificate {
	if seq == 0 {
		return checkpoint.Certificate{}
	}
	s := checkpoint.Certificate{Sequence: seq, StateDigest: state}
	for r := uint32(0); int(r) < c.Quorum; r++ {
		s.Proof = append(s.Proof, checkpoint.Vote{Replica: r, Sequence: seq, StateDigest: state})
	}
	return s
}

func stateAt(seq uint64) [32]byte { return [32]byte{0x5e, byte(seq), byte(seq >> 8)} }

func (c Config) vc(from uint32, newView, stableSeq uint64, pcs ...PreparedCertificate) ViewChange {
	return ViewChange{From: from, NewView: newView, Stable: c.stable(stableSeq, stateAt(stableSeq)), Prepared: pcs}
}

// prePreparesFor returns the pre-prepares the primary of d.View sends for d.
func (c Config) prePreparesFor(d Decision) []PrePrepare {
	out := make([]PrePrepare, 0, len(d.Proposals))
	for _, p := range d.Proposals {
		out = append(out, PrePrepare{From: Primary(d.View, c.N), View: d.View, Sequence: p.Sequence, Digest: p.Digest})
	}
	return out
}
