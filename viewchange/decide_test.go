package viewchange

import (
	"errors"
	"math/rand"
	"reflect"
	"testing"
)

var (
	digestA = dg(0xa)
	digestB = dg(0xb)
	digestC = dg(0xc)
)

// scenario: new view 3 (primary 3); stable checkpoints at 0 and 10, so
// min-s = 10; certificates at 11 (view 0 digest A, and view 2 digest B),
// at 13 (digest C), none at 12; replica 0 (stable 0) also holds a
// certificate at 5, which is at or below min-s.
func scenario(c Config) []ViewChange {
	return []ViewChange{
		c.vc(0, 3, 0, c.cert(1, 5, dg(0x55)), c.cert(0, 11, digestA)),
		c.vc(1, 3, 10, c.cert(2, 11, digestB), c.cert(1, 13, digestC)),
		c.vc(2, 3, 10),
	}
}

func wantScenario(c Config) []Proposal {
	return []Proposal{
		{Sequence: 11, Digest: digestB},
		{Sequence: 12, Digest: c.NullDigest, Null: true},
		{Sequence: 13, Digest: digestC},
	}
}

func TestDecideReproposals(t *testing.T) {
	c := testConfig()
	d, err := c.Decide(3, scenario(c))
	if err != nil {
		t.Fatal(err)
	}
	if d.View != 3 || d.Stable.Sequence != 10 || d.Stable.StateDigest != stateAt(10) || len(d.Stable.Proof) != c.Quorum {
		t.Fatalf("decision view %d stable %+v", d.View, d.Stable)
	}
	if !reflect.DeepEqual(d.Proposals, wantScenario(c)) {
		t.Fatalf("proposals %+v, want %+v", d.Proposals, wantScenario(c))
	}
}

func TestDecideNothingAboveStable(t *testing.T) {
	c := testConfig()
	vcs := []ViewChange{
		c.vc(0, 1, 0, c.cert(0, 3, digestA)),
		c.vc(1, 1, 10),
		c.vc(2, 1, 0),
	}
	d, err := c.Decide(1, vcs)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stable.Sequence != 10 || len(d.Proposals) != 0 {
		t.Fatalf("decision %+v, want stable 10 and no proposals", d)
	}
	// All at 0: the zero certificate, even if a sender put a digest there.
	vcs = []ViewChange{c.vc(0, 1, 0), c.vc(1, 1, 0), c.vc(2, 1, 0)}
	vcs[1].Stable.StateDigest = dg(9)
	if d, err = c.Decide(1, vcs); err != nil || d.Stable.Sequence != 0 || d.Stable.StateDigest != [32]byte{} || len(d.Proposals) != 0 {
		t.Fatalf("decision %+v err %v", d, err)
	}
}

func TestDecideRejects(t *testing.T) {
	c := testConfig()
	s := scenario(c)
	withFourth := func(vc ViewChange) []ViewChange { return append(append([]ViewChange(nil), s...), vc) }
	conflictStable := c.vc(3, 3, 10)
	conflictStable.Stable = c.stable(10, dg(0x77))
	cases := map[string][]ViewChange{
		"fewer than quorum":           s[:2],
		"none":                        nil,
		"duplicate sender":            {s[0], s[1], s[1]},
		"duplicate sender, 4":         withFourth(c.vc(2, 3, 0)),
		"wrong new view":              withFourth(c.vc(3, 4, 0)),
		"invalid view change":         withFourth(c.vc(3, 3, 0, c.cert(3, 2, digestA))),
		"more than n":                 append(withFourth(c.vc(3, 3, 0)), c.vc(0, 3, 0)),
		"same view, two digests":      withFourth(c.vc(3, 3, 10, c.cert(2, 11, digestC))),
		"stable checkpoints disagree": withFourth(conflictStable),
	}
	for name, vcs := range cases {
		if _, err := c.Decide(3, vcs); !errors.Is(err, ErrInvalidViewChange) {
			t.Errorf("%s: err = %v, want ErrInvalidViewChange", name, err)
		}
	}
}

func shuffled(rng *rand.Rand, vcs []ViewChange) []ViewChange {
	out := append([]ViewChange(nil), vcs...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestDecideOrderIndependent(t *testing.T) {
	c := Config{N: 7, Quorum: 5, CheckpointInterval: 10, WindowSize: 20, NullDigest: nullDigest}
	vcs := []ViewChange{
		c.vc(0, 9, 0, c.cert(1, 5, dg(1)), c.cert(3, 11, dg(2)), c.cert(8, 19, dg(3))),
		c.vc(1, 9, 10, c.cert(4, 11, dg(4)), c.cert(4, 12, dg(5))),
		c.vc(2, 9, 10, c.cert(4, 11, dg(4)), c.cert(6, 14, dg(6)), c.cert(2, 30, dg(7))),
		c.vc(3, 9, 10),
		c.vc(4, 9, 10, c.cert(7, 12, dg(8))),
		c.vc(5, 9, 0, c.cert(7, 12, dg(8))),
	}
	// Stable checkpoint 10 proven by different subsets of voters: the
	// decision must still not depend on the order.
	vcs[3].Stable.Proof = append(vcs[3].Stable.Proof[1:], vcs[3].Stable.Proof[0])
	vcs[4].Stable = c.stable(10, stateAt(10))
	vcs[4].Stable.Proof[0].Replica = 6
	want, err := c.Decide(9, vcs)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Proposals) != 20 || want.Proposals[0].Digest != dg(4) || want.Proposals[1].Digest != dg(8) ||
		!want.Proposals[2].Null || want.Proposals[3].Digest != dg(6) || want.Proposals[8].Digest != dg(3) || want.Proposals[19].Digest != dg(7) {
		t.Fatalf("proposals %+v", want.Proposals)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		got, err := c.Decide(9, shuffled(rng, vcs))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: decision differs:\n%+v\nwant\n%+v", i, got, want)
		}
	}
	// A same-view conflict below the highest view fails in every order.
	bad := []ViewChange{
		c.vc(0, 9, 0, c.cert(1, 11, dg(1))),
		c.vc(1, 9, 0, c.cert(1, 11, dg(2))),
		c.vc(2, 9, 0, c.cert(5, 11, dg(3))),
		c.vc(3, 9, 0), c.vc(4, 9, 0),
	}
	for i := 0; i < 50; i++ {
		if _, err := c.Decide(9, shuffled(rng, bad)); !errors.Is(err, ErrInvalidViewChange) {
			t.Fatalf("shuffle %d: err = %v", i, err)
		}
	}
}

func TestCheckNewView(t *testing.T) {
	c := testConfig()
	vcs := scenario(c)
	d, err := c.Decide(3, vcs)
	if err != nil {
		t.Fatal(err)
	}
	good := c.prePreparesFor(d)
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 20; i++ {
		pps := append([]PrePrepare(nil), good...)
		rng.Shuffle(len(pps), func(i, j int) { pps[i], pps[j] = pps[j], pps[i] })
		got, err := c.CheckNewView(3, shuffled(rng, vcs), pps)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("decision %+v, want %+v", got, d)
		}
	}
	mod := func(f func(pps []PrePrepare) []PrePrepare) []PrePrepare {
		return f(append([]PrePrepare(nil), good...))
	}
	extra := PrePrepare{From: 3, View: 3, Sequence: 14, Digest: nullDigest}
	cases := map[string][]PrePrepare{
		"missing": mod(func(p []PrePrepare) []PrePrepare { return p[1:] }),
		"none":    nil,
		"extra":   mod(func(p []PrePrepare) []PrePrepare { return append(p, extra) }),
		"extra at min-s": mod(func(p []PrePrepare) []PrePrepare {
			return append(p, PrePrepare{From: 3, View: 3, Sequence: 10, Digest: nullDigest})
		}),
		"lower-view digest chosen":     mod(func(p []PrePrepare) []PrePrepare { p[0].Digest = digestA; return p }),
		"null where a certificate is":  mod(func(p []PrePrepare) []PrePrepare { p[2].Digest = nullDigest; return p }),
		"certificate where null is":    mod(func(p []PrePrepare) []PrePrepare { p[1].Digest = digestC; return p }),
		"not from the new primary":     mod(func(p []PrePrepare) []PrePrepare { p[1].From = 2; return p }),
		"wrong view":                   mod(func(p []PrePrepare) []PrePrepare { p[1].View = 2; return p }),
		"duplicate replacing another":  mod(func(p []PrePrepare) []PrePrepare { p[2] = p[0]; return p }),
		"duplicate added":              mod(func(p []PrePrepare) []PrePrepare { return append(p, p[0]) }),
		"shifted into the next window": mod(func(p []PrePrepare) []PrePrepare { p[0] = extra; return p }),
	}
	for name, pps := range cases {
		if _, err := c.CheckNewView(3, vcs, pps); !errors.Is(err, ErrInvalidNewView) {
			t.Errorf("%s: err = %v, want ErrInvalidNewView", name, err)
		}
	}
	// Bad view changes make the NEW-VIEW invalid, and say why.
	_, err = c.CheckNewView(3, vcs[:2], good)
	if !errors.Is(err, ErrInvalidNewView) || !errors.Is(err, ErrInvalidViewChange) {
		t.Errorf("too few view changes: err = %v", err)
	}
	// A NEW-VIEW for another view with the same view changes is rejected.
	if _, err := c.CheckNewView(4, vcs, good); !errors.Is(err, ErrInvalidNewView) {
		t.Errorf("other view: err = %v", err)
	}
	// No proposals: no pre-prepares needed, none allowed.
	empty := []ViewChange{c.vc(0, 1, 0), c.vc(1, 1, 0), c.vc(2, 1, 0)}
	if _, err := c.CheckNewView(1, empty, nil); err != nil {
		t.Errorf("empty new view: %v", err)
	}
	if _, err := c.CheckNewView(1, empty, []PrePrepare{{From: 1, View: 1, Sequence: 1, Digest: nullDigest}}); !errors.Is(err, ErrInvalidNewView) {
		t.Errorf("empty new view with a pre-prepare: err = %v", err)
	}
}

func senders(vcs []ViewChange) []uint32 {
	out := make([]uint32, 0, len(vcs))
	for _, vc := range vcs {
		out = append(out, vc.From)
	}
	return out
}

func TestSelect(t *testing.T) {
	c := testConfig()
	all := func(view uint64) []ViewChange {
		return []ViewChange{c.vc(3, view, 10), c.vc(1, view, 0), c.vc(0, view, 0), c.vc(2, view, 10)}
	}
	invalid := c.vc(0, 3, 0, c.cert(3, 1, digestA)) // certificate view not below the new view
	rng := rand.New(rand.NewSource(3))
	for _, tc := range []struct {
		name string
		view uint64
		vcs  []ViewChange
		want []uint32 // nil: ok must be false
	}{
		{"includes the primary's own", 3, all(3), []uint32{0, 1, 3}},
		{"primary among the lowest", 4, all(4), []uint32{0, 1, 2}},
		{"primary 2", 6, all(6), []uint32{0, 1, 2}},
		{"primary 3 without its own", 3, all(3)[1:], []uint32{0, 1, 2}},
		{"skips an invalid one", 3, append(all(3)[:1], c.vc(1, 3, 0, c.cert(3, 1, digestA)), all(3)[2], all(3)[3]), []uint32{0, 2, 3}},
		{"skips another view's", 3, append(all(3)[:3], c.vc(2, 4, 0)), []uint32{0, 1, 3}},
		{"drops an equivocating sender", 3, append(all(3), c.vc(0, 3, 10)), []uint32{1, 2, 3}},
		{"an invalid duplicate does not count", 3, append(all(3), invalid), []uint32{0, 1, 3}},
		{"too few valid", 3, append(all(3)[:2], invalid), nil},
		{"too few", 3, all(3)[:2], nil},
		{"none", 3, nil, nil},
		{"selection that cannot be decided", 3, []ViewChange{
			c.vc(0, 3, 0, c.cert(1, 2, digestA)), c.vc(1, 3, 0, c.cert(1, 2, digestB)), c.vc(2, 3, 0),
		}, nil},
	} {
		for i := 0; i < 10; i++ {
			got, ok := c.Select(tc.view, shuffled(rng, tc.vcs))
			if tc.want == nil {
				if ok {
					t.Errorf("%s: ok with %v", tc.name, senders(got))
				}
				continue
			}
			if !ok || !reflect.DeepEqual(senders(got), tc.want) {
				t.Errorf("%s: got %v ok=%t, want %v", tc.name, senders(got), ok, tc.want)
				continue
			}
			if _, err := c.Decide(tc.view, got); err != nil {
				t.Errorf("%s: selection does not decide: %v", tc.name, err)
			}
		}
	}
}
