package crypto

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// Ceiling is the measured crypto ceiling: how many client requests per
// second this machine can sign once and verify Verifications times, on
// Workers goroutines, using the same verification path the engine uses.
type Ceiling struct {
	OpsPerSecond  float64 // requests per second
	SignNanos     float64 // mean ns per client signature
	VerifyNanos   float64 // mean ns per verification, amortised over batches when Batch
	Verifications int     // per request: n (one per replica)
	Workers       int
	Batch         int // batch size used for verification; 1 = single verification
}

// String summarises c on one line.
func (c Ceiling) String() string {
	return fmt.Sprintf("%.0f requests/s (sign %.1f µs, verify %.1f µs x %d, batch %d, %d workers)",
		c.OpsPerSecond, c.SignNanos/1e3, c.VerifyNanos/1e3, c.Verifications, c.Batch, c.Workers)
}

// CeilingBatch is the batch size MeasureCeiling verifies client requests
// in: the largest batch the engine verifies at once (MaxVerifyBatch), so
// the ceiling assumes every verification gets the full batch discount,
// which the engine under load approaches but never beats.
const CeilingBatch = MaxVerifyBatch

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

// MeasureCeiling measures the ceiling for a cluster of n replicas for about d,
// on workers goroutines (0 = GOMAXPROCS).
//
// One measured request is what the engine's cryptography costs per client
// request: the client signs the encoded request once (exactly as
// client.Client does, domain prefix included), and each of the n replicas
// verifies that signature once, through Verifier.VerifyBatch, the kernel
// the engine's verification path (a Pool's workers) runs, with the
// expanded-key cache warm as it is for a long-lived client. Requests are
// verified in batches of CeilingBatch: each worker signs CeilingBatch
// requests, then verifies the batch n times. The workers run in parallel; OpsPerSecond is the number of
// requests they completed divided by the wall time.
func MeasureCeiling(ctx context.Context, n int, d time.Duration, workers int) (Ceiling, error) {
	if n < 1 {
		return Ceiling{}, fmt.Errorf("crypto: ceiling: %d replicas", n)
	}
	if d <= 0 {
		return Ceiling{}, fmt.Errorf("crypto: ceiling: duration %v", d)
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	batch := CeilingBatch
	key := ed25519.NewKeyFromSeed(ceilingSeed[:])
	signer := NewSigner(key, ceilingClusterID)
	clientID := signer.Public()
	verifier := NewVerifier(ceilingClusterID)

	totals := make([]ceilingTotals, workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &totals[w]
			jobs := make([]VerifyJob, batch)
			number := uint64(1_700_000_000_000_000_000) + uint64(w)<<40
			for ctx.Err() == nil && time.Now().Before(deadline) {
				for i := range jobs {
					number++
					payload, err := ceilingRequest(clientID, number)
					if err != nil {
						t.err = err
						return
					}
					t0 := time.Now()
					sig := signer.Sign(DomainClientRequest, payload)
					t.signTime += time.Since(t0)
					t.signs++
					jobs[i] = VerifyJob{PublicKey: clientID, Domain: DomainClientRequest, Payload: payload, Signature: sig}
				}
				t0 := time.Now()
				for range n {
					for i, ok := range verifier.VerifyBatch(jobs) {
						if !ok {
							t.err = fmt.Errorf("crypto: ceiling: signature %d did not verify", i)
							return
						}
					}
				}
				t.verifyTime += time.Since(t0)
				t.verifies += int64(n * batch)
				t.requests += int64(batch)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var sum ceilingTotals
	for _, t := range totals {
		if t.err != nil {
			return Ceiling{}, t.err
		}
		sum.requests += t.requests
		sum.signs += t.signs
		sum.signTime += t.signTime
		sum.verifies += t.verifies
		sum.verifyTime += t.verifyTime
	}
	if sum.requests == 0 {
		if err := ctx.Err(); err != nil {
			return Ceiling{}, fmt.Errorf("crypto: ceiling: %w", err)
		}
		return Ceiling{}, errors.New("crypto: ceiling: no request completed")
	}
	return Ceiling{
		OpsPerSecond:  float64(sum.requests) / elapsed.Seconds(),
		SignNanos:     float64(sum.signTime.Nanoseconds()) / float64(sum.signs),
		VerifyNanos:   float64(sum.verifyTime.Nanoseconds()) / float64(sum.verifies),
		Verifications: n,
		Workers:       workers,
		Batch:         batch,
	}, nil
}
