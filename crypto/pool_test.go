package crypto

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"
)

// mixedJobs returns n jobs, roughly a third of them invalid in varied ways,
// and the result each must produce.
func mixedJobs(t testing.TB, signers []*Signer, n int) ([]VerifyJob, []bool) {
	t.Helper()
	jobs := make([]VerifyJob, n)
	want := make([]bool, n)
	for i := range jobs {
		signer := signers[i%len(signers)]
		payload := fmt.Appendf(nil, "message %d", i)
		job := VerifyJob{
			PublicKey: signer.Public(),
			Domain:    DomainReplicaMessage,
			Payload:   payload,
			Signature: signer.Sign(DomainReplicaMessage, payload),
		}
		valid := true
		switch i % 9 {
		case 1:
			job.Payload = append(bytes.Clone(payload), '!')
			valid = false
		case 4:
			job.Domain = DomainClientRequest
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

func testSigners(t testing.TB, n int) []*Signer {
	t.Helper()
	signers := make([]*Signer, n)
	for i := range signers {
		signers[i] = NewSigner(testKey(t, int64(100+i)), testCluster)
	}
	return signers
}

func checkResults(t *testing.T, label string, got, want []bool) {
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

func TestPoolVerifyAllConcurrentCallers(t *testing.T) {
	pool := NewPool(testCluster, 4)
	defer pool.Close()
	signers := testSigners(t, 4)

	const callers = 16
	const rounds = 5
	var wg sync.WaitGroup
	failures := make(chan string, callers*rounds)
	for c := range callers {
		// Different callers use different batch sizes, including the
		// inline paths (0 and 1 job).
		jobs, want := mixedJobs(t, signers, []int{0, 1, 2, 9, 33, 64}[c%6])
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
	signer := NewSigner(testKey(t, 30), "cluster-a")
	payload := []byte("p")
	job := VerifyJob{signer.Public(), DomainReplicaMessage, payload, signer.Sign(DomainReplicaMessage, payload)}
	jobs := []VerifyJob{job, job, job}

	poolA := NewPool("cluster-a", 2)
	defer poolA.Close()
	checkResults(t, "same cluster", poolA.VerifyAll(jobs), []bool{true, true, true})

	poolB := NewPool("cluster-b", 2)
	defer poolB.Close()
	checkResults(t, "other cluster", poolB.VerifyAll(jobs), []bool{false, false, false})
}

func TestPoolVerifyAllAfterClose(t *testing.T) {
	pool := NewPool(testCluster, 0) // GOMAXPROCS workers
	jobs, want := mixedJobs(t, testSigners(t, 2), 20)
	checkResults(t, "before Close", pool.VerifyAll(jobs), want)
	pool.Close()
	pool.Close() // idempotent
	checkResults(t, "after Close", pool.VerifyAll(jobs), want)
}

func TestPoolHostileJobsDoNotPanic(t *testing.T) {
	pool := NewPool(testCluster, 2)
	defer pool.Close()
	jobs := []VerifyJob{
		{},
		{PublicKey: make(ed25519.PublicKey, 31), Signature: make([]byte, 64)},
		{PublicKey: make(ed25519.PublicKey, 32), Signature: make([]byte, 65)},
		{PublicKey: make(ed25519.PublicKey, 32), Signature: make([]byte, 64)},
		{PublicKey: bytes.Repeat([]byte{0xff}, 32), Signature: bytes.Repeat([]byte{0xff}, 64)},
	}
	checkResults(t, "hostile", pool.VerifyAll(jobs), make([]bool, len(jobs)))
}

func BenchmarkVerify(b *testing.B) {
	signer := NewSigner(testKey(b, 40), testCluster)
	payload := bytes.Repeat([]byte{0x42}, 256)
	sig := signer.Sign(DomainReplicaMessage, payload)
	pub := signer.Public()
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(pub, testCluster, DomainReplicaMessage, payload, sig) {
			b.Fatal("valid signature rejected")
		}
	}
}

func BenchmarkPoolVerifyAll(b *testing.B) {
	signers := testSigners(b, 4)
	jobs := make([]VerifyJob, 64)
	for i := range jobs {
		signer := signers[i%len(signers)]
		payload := fmt.Appendf(nil, "prepare %d", i)
		jobs[i] = VerifyJob{signer.Public(), DomainReplicaMessage, payload, signer.Sign(DomainReplicaMessage, payload)}
	}
	pool := NewPool(testCluster, 0)
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
