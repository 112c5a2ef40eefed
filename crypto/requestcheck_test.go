package crypto

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"
)

// checkerClient is client number seed's signer and ID.
func checkerClient(t testing.TB, seed byte) (*Signer, []byte) {
	t.Helper()
	s := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)), "checker-cluster")
	id, err := ClientID(s.Public(), []byte("session"))
	if err != nil {
		t.Fatal(err)
	}
	return s, id
}

// checkerRequest is one signed request of the checker tests.
type checkerRequest struct{ client, payload, sig []byte }

// checkerMessage is what a PRE-PREPARE could carry: bundles of several
// sizes from a few clients, plain requests, in the order the clients
// signed them, then shuffled in part so that bundles interleave.
func checkerMessage(t testing.TB, rng *rand.Rand) []checkerRequest {
	var out []checkerRequest
	for c := byte(1); c <= 3; c++ {
		s, id := checkerClient(t, c)
		for _, n := range []int{1, 2, 5, 26, MaxBundle, MaxBundle + 3} {
			payloads := make([][]byte, n)
			for i := range payloads {
				payloads[i] = fmt.Appendf(nil, "client %d bundle %d request %d", c, n, i)
			}
			for i, sig := range SignRequests(s, id, payloads) {
				out = append(out, checkerRequest{id, payloads[i], sig})
			}
		}
	}
	for i := 0; i < len(out)/4; i++ {
		a, b := rng.IntN(len(out)), rng.IntN(len(out))
		out[a], out[b] = out[b], out[a]
	}
	return out
}

// TestRequestCheckerAnswersAsCheckOfRequest: for interleaved bundles of
// several clients and plain requests, a checker's checks and keys are
// CheckOfRequest's and RequestCheck.Key's, and so are its errors for
// tampered requests, wherever they fall among the genuine ones.
func TestRequestCheckerAnswersAsCheckOfRequest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		msg := checkerMessage(t, rng)
		// Tamper with some: another payload under the same proof, a
		// flipped proof byte, another client's ID.
		for i := range msg {
			switch rng.IntN(12) {
			case 0:
				msg[i].payload = append(bytes.Clone(msg[i].payload), 'x')
			case 1:
				if len(msg[i].sig) > ed25519.SignatureSize+2 {
					msg[i].sig = bytes.Clone(msg[i].sig)
					msg[i].sig[len(msg[i].sig)-1] ^= 1
				}
			case 2:
				msg[i].client = msg[(i+1)%len(msg)].client
			}
		}
		var c RequestChecker
		for i, r := range msg {
			want, wantErr := CheckOfRequest(r.client, r.payload, r.sig)
			got, err := c.Check(r.client, r.payload, r.sig)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("round %d request %d: error %v, want %v", round, i, err, wantErr)
			}
			if err != nil {
				continue
			}
			if got.Domain != want.Domain || !bytes.Equal(got.Payload, want.Payload) ||
				!bytes.Equal(got.Signature, want.Signature) || got.Bundled != want.Bundled {
				t.Fatalf("round %d request %d: check %+v, want %+v", round, i, got, want)
			}
			if k := c.Key(got); k != want.Key() {
				t.Fatalf("round %d request %d: key %x, want %x", round, i, k, want.Key())
			}
			// Asked twice, the same key.
			if k := c.Key(got); k != want.Key() {
				t.Fatalf("round %d request %d: second key %x, want %x", round, i, k, want.Key())
			}
		}
	}
}

// TestRequestCheckerHashesABundleOnce: the requests of one bundle of
// MaxBundle hash the tree's MaxBundle-1 inner nodes, not one path each,
// and share one statement; a request whose payload was changed gets a
// statement of its own (its proof leads to another root), never the
// bundle's.
func TestRequestCheckerHashesABundleOnce(t *testing.T) {
	s, id := checkerClient(t, 7)
	payloads := make([][]byte, MaxBundle)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, "request %d", i)
	}
	sigs := SignRequests(s, id, payloads)
	var c RequestChecker
	var statement []byte
	for i, sig := range sigs {
		check, err := c.Check(id, payloads[i], sig)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			statement = check.Payload
		} else if &check.Payload[0] != &statement[0] {
			t.Fatalf("request %d: a statement of its own", i)
		}
	}
	if c.hashed != MaxBundle-1 {
		t.Fatalf("%d inner nodes hashed for a bundle of %d, want %d", c.hashed, MaxBundle, MaxBundle-1)
	}
	forged, err := c.Check(id, []byte("another request"), sigs[5])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(forged.Payload, statement) || c.Key(forged) == VerifiedBundleKey(statement, sigs[5][:ed25519.SignatureSize]) {
		t.Fatal("a changed payload passed for the bundle's statement")
	}
}

// TestRequestCheckerInterleavedBundles: the requests of two bundles of
// MaxBundle of two clients, alternating (as one round's client frames
// arrive), still hash each bundle's inner nodes once and share each
// bundle's statement; their checks and keys are CheckOfRequest's.
func TestRequestCheckerInterleavedBundles(t *testing.T) {
	type signed struct{ id, payload, sig []byte }
	var bundles [2][]signed
	for b := range bundles {
		s, id := checkerClient(t, byte(20+b))
		payloads := make([][]byte, MaxBundle)
		for i := range payloads {
			payloads[i] = fmt.Appendf(nil, "client %d request %d", b, i)
		}
		for i, sig := range SignRequests(s, id, payloads) {
			bundles[b] = append(bundles[b], signed{id, payloads[i], sig})
		}
	}
	var c RequestChecker
	var statements [2][]byte
	for i := range MaxBundle {
		for b := range bundles {
			r := bundles[b][i]
			got, err := c.Check(r.id, r.payload, r.sig)
			want, _ := CheckOfRequest(r.id, r.payload, r.sig)
			if err != nil || !bytes.Equal(got.Payload, want.Payload) || c.Key(got) != want.Key() {
				t.Fatalf("bundle %d request %d: %v", b, i, err)
			}
			if statements[b] == nil {
				statements[b] = got.Payload
			} else if &got.Payload[0] != &statements[b][0] {
				t.Fatalf("bundle %d request %d: a statement of its own", b, i)
			}
		}
	}
	if c.hashed != 2*(MaxBundle-1) {
		t.Fatalf("%d inner nodes hashed for two bundles of %d, want %d", c.hashed, MaxBundle, 2*(MaxBundle-1))
	}
}

// TestRequestCheckerIsBounded: a round of many distinct bundles makes the
// checker remember at most maxCheckerBundles bundles, and its answers
// stay right beyond that.
func TestRequestCheckerIsBounded(t *testing.T) {
	s, id := checkerClient(t, 9)
	var c RequestChecker
	for b := 0; b < maxCheckerBundles+8; b++ {
		payloads := [][]byte{fmt.Appendf(nil, "bundle %d a", b), fmt.Appendf(nil, "bundle %d b", b), fmt.Appendf(nil, "bundle %d c", b)}
		for i, sig := range SignRequests(s, id, payloads) {
			got, err := c.Check(id, payloads[i], sig)
			want, _ := CheckOfRequest(id, payloads[i], sig)
			if err != nil || !bytes.Equal(got.Payload, want.Payload) || c.Key(got) != want.Key() {
				t.Fatalf("bundle %d request %d: %v", b, i, err)
			}
		}
	}
	if len(c.bundles) != maxCheckerBundles {
		t.Fatalf("%d bundles remembered, bound %d", len(c.bundles), maxCheckerBundles)
	}
}

// BenchmarkRequestChecks: the checks of a PRE-PREPARE of 256 requests in
// bundles of 26 (what 16 clients x 64 outstanding send), each alone
// (CheckOfRequest) and through one checker, in the bundles' order and
// interleaved, with their cache keys.
func BenchmarkRequestChecks(b *testing.B) {
	s, id := checkerClient(b, 3)
	var msg []checkerRequest
	for len(msg) < 256 {
		payloads := make([][]byte, 26)
		for i := range payloads {
			payloads[i] = fmt.Appendf(nil, "put key-%06d value-%08d", len(msg)+i, i)
		}
		for i, sig := range SignRequests(s, id, payloads) {
			msg = append(msg, checkerRequest{id, payloads[i], sig})
		}
	}
	msg = msg[:256]
	// The same requests in the order a round of 10 clients' frames
	// arrives: one request of each bundle in turn.
	var interleaved []checkerRequest
	for i := range 26 {
		for start := 0; start+i < len(msg); start += 26 {
			interleaved = append(interleaved, msg[start+i])
		}
	}
	b.Run("alone", func(b *testing.B) {
		for b.Loop() {
			for _, r := range msg {
				check, _ := CheckOfRequest(r.client, r.payload, r.sig)
				_ = check.Key()
			}
		}
	})
	checked := func(reqs []checkerRequest) func(*testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				var c RequestChecker
				for _, r := range reqs {
					check, _ := c.Check(r.client, r.payload, r.sig)
					_ = c.Key(check)
				}
			}
		}
	}
	b.Run("checker", checked(msg))
	b.Run("checker-interleaved", checked(interleaved))
}
