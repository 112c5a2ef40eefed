package cryptoceiling

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// Result is the measured crypto ceiling: how many client requests per
// second this machine can sign once and verify Verifications times, on
// Workers goroutines, using the same verification path the engine uses.
type Result struct {
	OpsPerSecond  float64 // requests per second
	SignNanos     float64 // mean ns per client signature
	VerifyNanos   float64 // mean ns per verification, amortised over batches when Batch
	Verifications int     // per request: n (one per replica)
	Workers       int
	Batch         int // batch size used for verification; 1 = single verification
}

// String summarises r on one line.
func (r Result) String() string {
	return fmt.Sprintf("%.0f requests/s (sign %.1f µs, verify %.1f µs x %d, batch %d, %d workers)",
		r.OpsPerSecond, r.SignNanos/1e3, r.VerifyNanos/1e3, r.Verifications, r.Batch, r.Workers)
}

// Batch is the batch size Measure verifies client requests in: the
// largest batch the engine verifies at once (crypto.MaxVerifyBatch), so
// the ceiling assumes every verification gets the full batch discount,
// which the engine under load approaches but never beats.
const Batch = crypto.MaxVerifyBatch

// ceilingSeed derives the measurement's client key. The key signs only
// the measurement's own payloads, so a fixed seed is fine and keeps the
// package free of global randomness.
var ceilingSeed = [ed25519.SeedSize]byte{'p', 'b', 'f', 't', 'n', 'o', 'd', 'e', '-', 'c', 'e', 'i', 'l', 'i', 'n', 'g'}

// ceilingClusterID is a cluster ID of a realistic length (localnet's).
const ceilingClusterID = "localnet-1700000000000000000"

// ceilingRequest returns the encoded wire.Request a client sends for a put
// of a 16-byte key and a 16-byte value, encoded as client.Client.frame and
// execution.EncodePut encode it.
func ceilingRequest(clientID []byte, number uint64) ([]byte, error) {
	key := fmt.Appendf(nil, "key-%012d", number%1_000_000_000_000)
	value := fmt.Appendf(nil, "val-%012d", number%1_000_000_000_000)
	op, err := proto.MarshalOptions{Deterministic: true}.Marshal(&wire.KVOperation{
		Op: &wire.KVOperation_Put{Put: &wire.KVPut{Key: key, Value: value}},
	})
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&wire.Request{ClientId: clientID, RequestNumber: number, Operation: op})
}

// ceilingTotals are one worker's counts.
type ceilingTotals struct {
	requests   int64
	signs      int64
	signTime   time.Duration
	verifies   int64
	verifyTime time.Duration
	err        error
}

// measurement is what every worker of one Measure call shares.
type measurement struct {
	n        int
	deadline time.Time
	signer   *crypto.Signer
	verifier *crypto.Verifier
}

// Measure measures the ceiling for a cluster of n replicas for about d,
// on workers goroutines (0 = GOMAXPROCS).
//
// One measured request is what the engine's cryptography costs per client
// request: the client signs the encoded request once (exactly as
// client.Client does, domain prefix included), and each of the n replicas
// verifies that signature once, through crypto.Verifier.VerifyBatch, the
// kernel the engine's verification path (a verifypool.Pool's workers)
// runs, with the expanded-key cache warm as it is for a long-lived client.
// Requests are verified in batches of Batch: each worker signs Batch
// requests, then verifies the batch n times. The workers run in parallel;
// OpsPerSecond is the number of requests they completed divided by the
// wall time.
func Measure(ctx context.Context, n int, d time.Duration, workers int) (Result, error) {
	if n < 1 {
		return Result{}, fmt.Errorf("cryptoceiling: %d replicas", n)
	}
	if d <= 0 {
		return Result{}, fmt.Errorf("cryptoceiling: duration %v", d)
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	m := &measurement{
		n:        n,
		signer:   crypto.NewSigner(ed25519.NewKeyFromSeed(ceilingSeed[:]), ceilingClusterID),
		verifier: crypto.NewVerifier(ceilingClusterID),
	}
	start := time.Now()
	m.deadline = start.Add(d)
	totals := make([]ceilingTotals, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { m.work(ctx, w, &totals[w]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	var sum ceilingTotals
	for _, t := range totals {
		if t.err != nil {
			return Result{}, t.err
		}
		sum.requests += t.requests
		sum.signs += t.signs
		sum.signTime += t.signTime
		sum.verifies += t.verifies
		sum.verifyTime += t.verifyTime
	}
	if sum.requests == 0 {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("cryptoceiling: %w", err)
		}
		return Result{}, errors.New("cryptoceiling: no request completed")
	}
	return Result{
		OpsPerSecond:  float64(sum.requests) / elapsed.Seconds(),
		SignNanos:     float64(sum.signTime.Nanoseconds()) / float64(sum.signs),
		VerifyNanos:   float64(sum.verifyTime.Nanoseconds()) / float64(sum.verifies),
		Verifications: n,
		Workers:       workers,
		Batch:         Batch,
	}, nil
}

// work is worker w's loop: until ctx ends or the deadline passes, sign a
// batch of requests, then verify it n times, counting into t.
func (m *measurement) work(ctx context.Context, w int, t *ceilingTotals) {
	clientID := m.signer.Public()
	jobs := make([]crypto.VerifyJob, Batch)
	number := uint64(1_700_000_000_000_000_000) + uint64(w)<<40
	for ctx.Err() == nil && time.Now().Before(m.deadline) {
		for i := range jobs {
			number++
			payload, err := ceilingRequest(clientID, number)
			if err != nil {
				t.err = err
				return
			}
			t0 := time.Now()
			sig := m.signer.Sign(crypto.DomainClientRequest, payload)
			t.signTime += time.Since(t0)
			t.signs++
			jobs[i] = crypto.VerifyJob{PublicKey: clientID, Domain: crypto.DomainClientRequest, Payload: payload, Signature: sig}
		}
		t0 := time.Now()
		for range m.n {
			for i, ok := range m.verifier.VerifyBatch(jobs) {
				if !ok {
					t.err = fmt.Errorf("cryptoceiling: signature %d did not verify", i)
					return
				}
			}
		}
		t.verifyTime += time.Since(t0)
		t.verifies += int64(m.n * Batch)
		t.requests += int64(Batch)
	}
}
