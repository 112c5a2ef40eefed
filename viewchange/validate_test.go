package viewchange

import (
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/checkpoint"
)

func TestValidCertificateAccepted(t *testing.T) {
	c := testConfig()
	for view := uint64(0); view < 8; view++ {
		if err := c.ValidatePreparedCertificate(c.cert(view, 5, dg(1))); err != nil {
			t.Fatalf("view %d: %v", view, err)
		}
	}
	// More prepares than needed, all distinct backups, are fine.
	pc := c.cert(1, 5, dg(1))
	pc.Prepares = append(pc.Prepares, Prepare{From: 3, View: 1, Sequence: 5, Digest: dg(1)})
	if err := c.ValidatePreparedCertificate(pc); err != nil {
		t.Fatal(err)
	}
}

func TestFabricatedCertificateRejected(t *testing.T) {
	c := testConfig()
	mod := func(f func(pc *PreparedCertificate)) PreparedCertificate {
		pc := c.cert(1, 5, dg(1)) // primary 1, prepares from 0 and 2
		pc.Prepares = append([]Prepare(nil), pc.Prepares...)
		f(&pc)
		return pc
	}
	cases := map[string]PreparedCertificate{
		"pre-prepare not from the primary": mod(func(pc *PreparedCertificate) { pc.PrePrepare.From = 2 }),
		"too few prepares":                 mod(func(pc *PreparedCertificate) { pc.Prepares = pc.Prepares[:c.Quorum-2] }),
		"no prepares":                      mod(func(pc *PreparedCertificate) { pc.Prepares = nil }),
		"prepare for another digest":       mod(func(pc *PreparedCertificate) { pc.Prepares[1].Digest = dg(2) }),
		"prepare for another view":         mod(func(pc *PreparedCertificate) { pc.Prepares[0].View = 2 }),
		"prepare for another sequence":     mod(func(pc *PreparedCertificate) { pc.Prepares[0].Sequence = 6 }),
		"duplicate signer": mod(func(pc *PreparedCertificate) {
			pc.Prepares = []Prepare{pc.Prepares[0], pc.Prepares[0]}
		}),
		"duplicate signer beside enough others": mod(func(pc *PreparedCertificate) {
			pc.Prepares = append(pc.Prepares, Prepare{From: 3, View: 1, Sequence: 5, Digest: dg(1)}, pc.Prepares[0])
		}),
		"prepare from the primary counted": mod(func(pc *PreparedCertificate) { pc.Prepares[1].From = 1 }),
		"signer outside the cluster":       mod(func(pc *PreparedCertificate) { pc.Prepares[1].From = 4 }),
		"huge signer":                      mod(func(pc *PreparedCertificate) { pc.Prepares[1].From = ^uint32(0) }),
		"sequence 0": mod(func(pc *PreparedCertificate) {
			pc.PrePrepare.Sequence = 0
			for i := range pc.Prepares {
				pc.Prepares[i].Sequence = 0
			}
		}),
	}
	for name, pc := range cases {
		if err := c.ValidatePreparedCertificate(pc); !errors.Is(err, ErrInvalidCertificate) {
			t.Errorf("%s: err = %v, want ErrInvalidCertificate", name, err)
		}
	}
}

func TestValidViewChangeAccepted(t *testing.T) {
	c := testConfig()
	for _, vc := range []ViewChange{
		c.vc(0, 3, 0),
		c.vc(1, 3, 0, c.cert(0, 1, dg(1)), c.cert(2, 20, dg(2))),
		c.vc(2, 3, 10, c.cert(1, 11, dg(1)), c.cert(2, 30, dg(2))),
		// Sequence 0 with some state digest but no proof: accepted.
		{From: 3, NewView: 3, Stable: checkpoint.Certificate{StateDigest: dg(9)}},
	} {
		if err := c.ValidateViewChange(vc); err != nil {
			t.Errorf("from %d: %v", vc.From, err)
		}
	}
}

func TestBadViewChangeRejected(t *testing.T) {
	c := testConfig()
	badStable := func(f func(s *checkpoint.Certificate)) ViewChange {
		vc := c.vc(0, 3, 10, c.cert(1, 11, dg(1)))
		vc.Stable.Proof = append([]checkpoint.Vote(nil), vc.Stable.Proof...)
		f(&vc.Stable)
		return vc
	}
	cases := map[string]ViewChange{
		"sender outside the cluster":         c.vc(4, 3, 0),
		"certificate view equals new view":   c.vc(0, 3, 0, c.cert(3, 1, dg(1))),
		"certificate view above new view":    c.vc(0, 3, 0, c.cert(5, 1, dg(1))),
		"certificate at the stable sequence": c.vc(0, 3, 10, c.cert(1, 10, dg(1))),
		"certificate below stable":           c.vc(0, 3, 10, c.cert(1, 4, dg(1))),
		"certificate above the window":       c.vc(0, 3, 10, c.cert(1, 31, dg(1))),
		"two certificates for one sequence":  c.vc(0, 3, 0, c.cert(1, 4, dg(1)), c.cert(2, 4, dg(1))),
		"invalid certificate": func() ViewChange {
			pc := c.cert(1, 11, dg(1))
			pc.Prepares = pc.Prepares[:1]
			return c.vc(0, 3, 10, pc)
		}(),
		"stable with too few votes": badStable(func(s *checkpoint.Certificate) { s.Proof = s.Proof[:c.Quorum-1] }),
		"stable digest mismatches proof": badStable(func(s *checkpoint.Certificate) {
			s.StateDigest = dg(7)
		}),
		"stable sequence mismatches proof": badStable(func(s *checkpoint.Certificate) { s.Sequence = 20 }),
		"stable proof votes disagree":      badStable(func(s *checkpoint.Certificate) { s.Proof[2].StateDigest = dg(7) }),
		"stable proof not a checkpoint": badStable(func(s *checkpoint.Certificate) {
			s.Sequence = 15
			for i := range s.Proof {
				s.Proof[i].Sequence = 15
			}
		}),
		"nonzero stable without proof": badStable(func(s *checkpoint.Certificate) { s.Proof = nil }),
		"stable 0 with a proof": badStable(func(s *checkpoint.Certificate) {
			s.Sequence = 0
		}),
	}
	for name, vc := range cases {
		if err := c.ValidateViewChange(vc); !errors.Is(err, ErrInvalidViewChange) {
			t.Errorf("%s: err = %v, want ErrInvalidViewChange", name, err)
		}
	}
	// A certificate error stays visible through the view-change error.
	if err := c.ValidateViewChange(cases["invalid certificate"]); !errors.Is(err, ErrInvalidCertificate) {
		t.Errorf("invalid certificate: err = %v, want it to wrap ErrInvalidCertificate", err)
	}
}

func TestInvalidConfigNeverPanics(t *testing.T) {
	good := testConfig()
	vcs := []ViewChange{good.vc(0, 1, 0), good.vc(1, 1, 0), good.vc(2, 1, 0)}
	for name, c := range map[string]Config{
		"zero":          {},
		"no replicas":   {Quorum: 1, CheckpointInterval: 1, WindowSize: 1},
		"quorum above":  {N: 4, Quorum: 5, CheckpointInterval: 1, WindowSize: 1},
		"no interval":   {N: 4, Quorum: 3, WindowSize: 1},
		"no window":     {N: 4, Quorum: 3, CheckpointInterval: 1},
		"window beyond": {N: 4, Quorum: 3, CheckpointInterval: 1, WindowSize: MaxWindowSize + 1},
	} {
		if err := c.ValidatePreparedCertificate(good.cert(0, 1, dg(1))); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: certificate err = %v", name, err)
		}
		if _, err := c.Decide(1, vcs); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: decide err = %v", name, err)
		}
		if _, err := c.CheckNewView(1, vcs, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: new view err = %v", name, err)
		}
		if _, ok := c.Select(1, vcs); ok {
			t.Errorf("%s: select ok", name)
		}
	}
	if Primary(7, 0) != 0 || Primary(7, -3) != 0 || Primary(7, 4) != 3 {
		t.Error("Primary")
	}
}
