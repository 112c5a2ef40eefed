package crypto

import (
	"crypto/ed25519"
	"runtime"
	"sync"
	"sync/atomic"
)

// VerifyJob is one signature check: is Signature PublicKey's signature over
// SignedBytes(Domain, clusterID, Payload), with the cluster ID of the Pool
// that runs it.
type VerifyJob struct {
	PublicKey ed25519.PublicKey
	Domain    string
	Payload   []byte
	Signature []byte
}

// Pool verifies signatures on a fixed number of worker goroutines, so the
// protocol core's goroutine never spends its time on signature checks. It is
// safe for concurrent use. A Pool must be closed with Close to stop its
// workers.
type Pool struct {
	clusterID   string
	workerCount int
	// work is unbuffered: a send succeeds only when a worker is idle.
	work    chan *verifyBatch
	workers sync.WaitGroup

	// mu guards closed and the sends on work: VerifyAll sends while
	// holding a read lock, Close closes work while holding the write lock.
	mu     sync.RWMutex
	closed bool
}

// verifyBatch is one VerifyAll call shared between the caller and the
// workers that help with it. Each participant claims job indices with next
// until none are left, so every job is checked exactly once and results are
// written to distinct elements.
type verifyBatch struct {
	clusterID string
	jobs      []VerifyJob
	results   []bool
	next      atomic.Int64
	helpers   sync.WaitGroup
}

// run checks jobs until none are unclaimed.
func (b *verifyBatch) run() {
	for {
		i := int(b.next.Add(1) - 1)
		if i >= len(b.jobs) {
			return
		}
		job := &b.jobs[i]
		b.results[i] = Verify(job.PublicKey, b.clusterID, job.Domain, job.Payload, job.Signature)
	}
}

// NewPool starts a Pool of workers goroutines verifying signatures for the
// cluster clusterID. If workers < 1, it uses runtime.GOMAXPROCS(0).
func NewPool(clusterID string, workers int) *Pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{
		clusterID:   clusterID,
		workerCount: workers,
		work:        make(chan *verifyBatch),
	}
	p.workers.Add(workers)
	for range workers {
		go p.worker()
	}
	return p
}

// worker helps with batches until the pool is closed.
func (p *Pool) worker() {
	defer p.workers.Done()
	for batch := range p.work {
		batch.run()
		batch.helpers.Done()
	}
}

// VerifyAll checks every job and returns one result per job, in the same
// order: true exactly when Verify would return true for that job under the
// pool's cluster ID. Jobs are spread over the idle workers; the calling
// goroutine works too, so VerifyAll makes progress even when every worker is
// busy with other callers, and a single job runs inline. Malformed keys or
// signatures yield false, never a panic. VerifyAll is safe for concurrent
// use; after Close it still works, running every job on the caller's
// goroutine. The jobs must not be modified until VerifyAll returns.
func (p *Pool) VerifyAll(jobs []VerifyJob) []bool {
	batch := &verifyBatch{
		clusterID: p.clusterID,
		jobs:      jobs,
		results:   make([]bool, len(jobs)),
	}
	if len(jobs) > 1 {
		p.recruitHelpers(batch, len(jobs)-1)
	}
	batch.run()
	batch.helpers.Wait()
	return batch.results
}

// recruitHelpers hands batch to up to maxHelpers idle workers without
// blocking; when no worker is idle the caller does the work itself, so a
// batch never waits behind another caller's batch.
func (p *Pool) recruitHelpers(batch *verifyBatch, maxHelpers int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return
	}
	for range min(maxHelpers, p.workerCount) {
		batch.helpers.Add(1)
		select {
		case p.work <- batch:
		default:
			batch.helpers.Done()
			return
		}
	}
}

// Close stops the workers after they finish the batches already handed to
// them, and waits for them to exit. It is idempotent. VerifyAll calls made
// after Close run on the caller's goroutine.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.work)
	}
	p.mu.Unlock()
	p.workers.Wait()
}
