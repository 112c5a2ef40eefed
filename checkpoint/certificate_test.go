package checkpoint

import (
	"errors"
	"testing"
)

func TestVerifyCertificate(t *testing.T) {
	good := []Vote{
		{Replica: 2, Sequence: 20, StateDigest: digest(7)},
		{Replica: 0, Sequence: 20, StateDigest: digest(7)},
		{Replica: 3, Sequence: 20, StateDigest: digest(7)},
	}
	cert, err := VerifyCertificate(good, 4, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Sequence != 20 || cert.Proof[0].Replica != 0 || cert.Proof[2].Replica != 3 {
		t.Fatalf("certificate %+v", cert)
	}
	with := func(f func(vs []Vote) []Vote) []Vote { return f(append([]Vote(nil), good...)) }
	for name, votes := range map[string][]Vote{
		"too few":          good[:2],
		"duplicate signer": with(func(vs []Vote) []Vote { vs[2].Replica = 0; return vs }),
		"digests disagree": with(func(vs []Vote) []Vote { vs[1].StateDigest = digest(8); return vs }),
		"sequences differ": with(func(vs []Vote) []Vote { vs[1].Sequence = 30; return vs }),
		"not a checkpoint": with(func(vs []Vote) []Vote {
			return []Vote{{0, 15, digest(1), nil}, {1, 15, digest(1), nil}, {2, 15, digest(1), nil}}
		}),
		"replica outside":   with(func(vs []Vote) []Vote { vs[0].Replica = 4; return vs }),
		"more votes than n": append(with(func(vs []Vote) []Vote { return vs }), good[0], good[1]),
		"empty":             nil,
	} {
		if _, err := VerifyCertificate(votes, 4, 3, 10); !errors.Is(err, ErrBadCertificate) {
			t.Errorf("%s: err = %v, want ErrBadCertificate", name, err)
		}
	}
}
