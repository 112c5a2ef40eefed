package verifypool

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

const testCluster = "test-cluster"

func TestPoolVerifyAllConcurrentCallers(t *testing.T) {
	pool := New(testCluster, 4)
	defer pool.Close()
	signers := cryptotest.Signers(t, 4, testCluster)

	const callers = 16
	const rounds = 5
	var wg sync.WaitGroup
	failures := make(chan string, callers*rounds)
	for c := range callers {
		// Different callers use different batch sizes, including the
		// inline paths (0 and 1 job).
		jobs, want := cryptotest.MixedJobs(t, signers, []int{0, 1, 2, 9, 33, 64}[c%6])
		wg.Go(func() {
			for r := range rounds {
				got := pool.VerifyAll(jobs)
				if len(got) != len(want) {
					failures <- fmt.Sprintf("caller %d round %d: %d results for %d jobs", c, r, len(got), len(want))
					return
				}
				for i := range want {
					if got[i] != want[i] {
						failures <- fmt.Sprintf("caller %d round %d job %d: got %v, want %v", c, r, i, got[i], want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for failure := range failures {
		t.Error(failure)
	}
}

func TestPoolUsesClusterID(t *testing.T) {
	signer := crypto.NewSigner(cryptotest.Key(t, 30), "cluster-a")
	payload := []byte("p")
	job := crypto.VerifyJob{PublicKey: signer.Public(), Domain: crypto.DomainReplicaMessage, Payload: payload, Signature: signer.Sign(crypto.DomainReplicaMessage, payload)}
	jobs := []crypto.VerifyJob{job, job, job}

	poolA := New("cluster-a", 2)
	defer poolA.Close()
	cryptotest.CheckResults(t, "same cluster", poolA.VerifyAll(jobs), []bool{true, true, true})

	poolB := New("cluster-b", 2)
	defer poolB.Close()
	cryptotest.CheckResults(t, "other cluster", poolB.VerifyAll(jobs), []bool{false, false, false})
}

func TestPoolVerifyAllAfterClose(t *testing.T) {
	pool := New(testCluster, 0) // GOMAXPROCS workers
	jobs, want := cryptotest.MixedJobs(t, cryptotest.Signers(t, 2, testCluster), 20)
	cryptotest.CheckResults(t, "before Close", pool.VerifyAll(jobs), want)
	pool.Close()
	pool.Close() // idempotent
	cryptotest.CheckResults(t, "after Close", pool.VerifyAll(jobs), want)
}

func TestPoolHostileJobsDoNotPanic(t *testing.T) {
	pool := New(testCluster, 2)
	defer pool.Close()
	jobs := []crypto.VerifyJob{
		{},
		{PublicKey: make(ed25519.PublicKey, 31), Signature: make([]byte, 64)},
		{PublicKey: make(ed25519.PublicKey, 32), Signature: make([]byte, 65)},
		{PublicKey: make(ed25519.PublicKey, 32), Signature: make([]byte, 64)},
		{PublicKey: bytes.Repeat([]byte{0xff}, 32), Signature: bytes.Repeat([]byte{0xff}, 64)},
	}
	cryptotest.CheckResults(t, "hostile", pool.VerifyAll(jobs), make([]bool, len(jobs)))
}

func BenchmarkPoolVerifyAll(b *testing.B) {
	signers := cryptotest.Signers(b, 4, testCluster)
	jobs := make([]crypto.VerifyJob, 64)
	for i := range jobs {
		signer := signers[i%len(signers)]
		payload := fmt.Appendf(nil, "prepare %d", i)
		jobs[i] = crypto.VerifyJob{PublicKey: signer.Public(), Domain: crypto.DomainReplicaMessage, Payload: payload, Signature: signer.Sign(crypto.DomainReplicaMessage, payload)}
	}
	pool := New(testCluster, 0)
	defer pool.Close()
	b.ReportAllocs()
	for b.Loop() {
		for i, ok := range pool.VerifyAll(jobs) {
			if !ok {
				b.Fatalf("job %d rejected", i)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(jobs)), "ns/sig")
}

// TestPoolAgreesWithVerifier: the pool's verdicts are those every
// verification path must give (crypto's TestAllPathsAgreeOnEdgeCases holds
// crypto.Verify, Verifier.Verify and VerifyBatch to the same sets), for
// sets of every size around the batch and chunk boundaries with the edge
// cases of the verification rules among them.
func TestPoolAgreesWithVerifier(t *testing.T) {
	pool := New(testCluster, 2)
	defer pool.Close()
	for _, set := range cryptotest.AgreementSets(t, cryptotest.Signers(t, 4, testCluster), testCluster) {
		cryptotest.CheckResults(t, "Pool "+set.Label, pool.VerifyAll(set.Jobs), set.Want)
	}
}
