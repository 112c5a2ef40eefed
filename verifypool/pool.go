package verifypool

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/pbftnode/pbftnode/crypto"
)

// Pool verifies signatures on a fixed number of worker goroutines, so the
// protocol core's goroutine never spends its time on signature checks. It
// checks sets of signatures with batch verification (see
// crypto.Verifier.VerifyBatch), splitting large sets into batches that idle
// workers check in parallel. It is safe for concurrent use. A Pool must be
// closed with Close to stop its workers.
type Pool struct {
	verifier    *crypto.Verifier
	workerCount int
	// work is unbuffered: a send succeeds only when a worker is idle.
	work    chan *verifyBatch
	workers sync.WaitGroup

	// mu guards closed and the sends on work: VerifyAll sends while
	// holding a read lock, Close closes work while holding the write lock.
	mu     sync.RWMutex
	closed bool
}

// minParallelChunk is the smallest batch handed to a helper. Smaller
// batches cost more per signature (about 15 µs at 8, 12.5 at 32, 11.5 at
// 64 on the reference machine), and under load the other verification
// workers keep the cores busy anyway, so a set is split only when every
// part still gets this many.
const minParallelChunk = 32

// verifyBatch is one VerifyAll call shared between the caller and the
// workers that help with it. Each participant claims chunks of chunk jobs
// with next until none are left, so every job is checked exactly once and
// results are written to distinct elements.
type verifyBatch struct {
	verifier *crypto.Verifier
	jobs     []crypto.VerifyJob
	results  []bool
	chunk    int
	next     atomic.Int64
	helpers  sync.WaitGroup
}

// run checks chunks until none are unclaimed.
func (b *verifyBatch) run() {
	for {
		start := int(b.next.Add(1)-1) * b.chunk
		if start >= len(b.jobs) {
			return
		}
		end := min(start+b.chunk, len(b.jobs))
		b.verifier.VerifyInto(b.jobs[start:end], b.results[start:end])
	}
}

// New starts a Pool of workers goroutines verifying signatures for the
// cluster clusterID. If workers < 1, it uses runtime.GOMAXPROCS(0).
func New(clusterID string, workers int) *Pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{
		verifier:    crypto.NewVerifier(clusterID),
		workerCount: workers,
		work:        make(chan *verifyBatch),
	}
	p.workers.Add(workers)
	for range workers {
		go p.worker()
	}
	return p
}

// Verifier returns the crypto.Verifier the pool's workers use (and whose key
// cache they share).
func (p *Pool) Verifier() *crypto.Verifier { return p.verifier }

// worker helps with batches until the pool is closed.
func (p *Pool) worker() {
	defer p.workers.Done()
	for batch := range p.work {
		batch.run()
		batch.helpers.Done()
	}
}

// VerifyAll checks every job and returns one result per job, in the same
// order: true exactly when crypto.Verify would return true for that job under the
// pool's cluster ID. The jobs are cut into batches (at most
// crypto.MaxVerifyBatch jobs, at least minParallelChunk when there are helpers)
// spread over the idle workers; the calling goroutine works too, so
// VerifyAll makes progress even when every worker is busy with other
// callers, and a small set runs inline as one batch. Malformed keys or
// signatures yield false, never a panic. VerifyAll is safe for concurrent
// use; after Close it still works, running every job on the caller's
// goroutine. The jobs must not be modified until VerifyAll returns.
func (p *Pool) VerifyAll(jobs []crypto.VerifyJob) []bool {
	// Cut into as many chunks as there are participants (the workers and
	// the caller), none smaller than minParallelChunk nor larger than
	// crypto.MaxVerifyBatch.
	parts := min(p.workerCount+1, max(1, len(jobs)/minParallelChunk))
	chunk := min(crypto.MaxVerifyBatch, max(1, (len(jobs)+parts-1)/parts))
	batch := &verifyBatch{
		verifier: p.verifier,
		jobs:     jobs,
		results:  make([]bool, len(jobs)),
		chunk:    chunk,
	}
	if chunks := (len(jobs) + chunk - 1) / chunk; chunks > 1 {
		p.recruitHelpers(batch, chunks-1)
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
