package cryptotest

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math/rand"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
)

// Key returns the private key crypto.GenerateKey draws from a math/rand
// source seeded with seed: the same seed always gives the same key. It
// fails the test if generation fails.
func Key(t testing.TB, seed int64) ed25519.PrivateKey {
	t.Helper()
	key, err := crypto.GenerateKey(rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatalf("generate key from seed %d: %v", seed, err)
	}
	return key
}

// Signers returns n signers for clusterID, with the keys of seeds 100 to
// 100+n-1.
func Signers(t testing.TB, n int, clusterID string) []*crypto.Signer {
	t.Helper()
	signers := make([]*crypto.Signer, n)
	for i := range signers {
		signers[i] = crypto.NewSigner(Key(t, int64(100+i)), clusterID)
	}
	return signers
}

// MixedJobs returns n jobs signed by signers (for DomainReplicaMessage
// under the signers' cluster), roughly a third of them invalid in varied
// ways, and the result each must produce.
func MixedJobs(t testing.TB, signers []*crypto.Signer, n int) ([]crypto.VerifyJob, []bool) {
	t.Helper()
	jobs := make([]crypto.VerifyJob, n)
	want := make([]bool, n)
	for i := range jobs {
		signer := signers[i%len(signers)]
		payload := fmt.Appendf(nil, "message %d", i)
		job := crypto.VerifyJob{
			PublicKey: signer.Public(),
			Domain:    crypto.DomainReplicaMessage,
			Payload:   payload,
			Signature: signer.Sign(crypto.DomainReplicaMessage, payload),
		}
		valid := true
		switch i % 9 {
		case 1:
			job.Payload = append(bytes.Clone(payload), '!')
			valid = false
		case 4:
			job.Domain = crypto.DomainClientRequest
			valid = false
		case 5:
			job.Signature = job.Signature[:17]
			valid = false
		case 7:
			job.PublicKey = signers[(i+1)%len(signers)].Public()
			valid = false
		case 8:
			job.PublicKey = nil
			valid = false
		}
		jobs[i] = job
		want[i] = valid
	}
	return jobs, want
}

// CheckResults fails the test unless got equals want; label names the
// check in the failure.
func CheckResults(t *testing.T, label string, got, want []bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results for %d jobs", label, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: job %d: got %v, want %v", label, i, got[i], want[i])
		}
	}
}
