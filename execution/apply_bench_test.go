package execution

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkApply measures the execution cost per request of the
// throughput benchmark's workload: batches of 32 puts of 16-byte values to
// random keys among 10,000, from 16 clients with increasing request
// numbers, on a real goleveldb. ns/op and allocs/op are per request (one
// b.N iteration executes one request; a batch is applied every 32).
func BenchmarkApply(b *testing.B) { benchmarkApply(b, false) }

// BenchmarkApplyRollback is BenchmarkApply with the rollback records the
// PBFT driver has the executor write (TrackRollback, at most one record
// per key per interval of 128 sequences: SetRollbackInterval), trimmed
// every 128 batches to those above the previous multiple of 128, as
// stable checkpoints do.
func BenchmarkApplyRollback(b *testing.B) { benchmarkApply(b, true) }

// rollbackIntervals are the record densities the 64 x 1 benchmarks
// compare: a record per key per batch, and per interval of 128.
var rollbackIntervals = []uint64{0, 128}

// BenchmarkApplyRollback64x1 is BenchmarkApplyRollback at the load of
// bench --clients 64 --window 1: batches of 21 requests from the 4 client
// instances the 64 logical clients share (--connections 4), round robin,
// whose windows are full (64 entries).
func BenchmarkApplyRollback64x1(b *testing.B) {
	for _, k := range rollbackIntervals {
		b.Run(fmt.Sprintf("interval=%d", k), func(b *testing.B) { benchmarkApplyClients(b, true, k, 21, 4, true) })
	}
}

// BenchmarkApplyRollbackOneEach is BenchmarkApplyRollback64x1 with a
// client instance per logical client: each request of a batch is of its
// own client (round robin over 64).
func BenchmarkApplyRollbackOneEach(b *testing.B) {
	for _, k := range rollbackIntervals {
		b.Run(fmt.Sprintf("interval=%d", k), func(b *testing.B) { benchmarkApplyClients(b, true, k, 21, 64, true) })
	}
}

func benchmarkApply(b *testing.B, rollback bool) {
	benchmarkApplyClients(b, rollback, 128, 32, 16, false)
}

// benchmarkApplyClients runs batches of batchSize puts from clients
// clients (picked at random, or round robin), and reports the bytes
// goleveldb wrote (journal and tables) per request.
// With rollback, records are kept per interval of the given sequences
// (SetRollbackInterval; 0: per batch).
func benchmarkApplyClients(b *testing.B, rollback bool, interval uint64, batchSize, clients int, roundRobin bool) {
	const keys = 10_000
	next := 0
	r := openReplica(b, b.TempDir())
	defer r.db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	clientIDs := make([][]byte, clients)
	for i := range clientIDs {
		clientIDs[i] = fmt.Appendf(nil, "bench-client-%02d-public-key-32b", i)
	}
	numbers := make([]uint64, clients)
	value := make([]byte, 16)
	var seq uint64
	// Operations are encoded ahead of time: encoding is the client's
	// cost, not execution's.
	makeBatch := func() []Request {
		reqs := make([]Request, batchSize)
		for i := range reqs {
			c := rng.IntN(clients)
			if roundRobin {
				c, next = next, (next+1)%clients
			}
			numbers[c]++
			for j := range value {
				value[j] = byte('a' + rng.IntN(26))
			}
			key := fmt.Appendf(nil, "key-%05d", rng.IntN(keys))
			reqs[i] = Request{ClientID: clientIDs[c], RequestNumber: numbers[c], Operation: EncodePut(key, value)}
		}
		return reqs
	}
	if rollback {
		r.exe.SetRollbackInterval(interval)
		if err := r.exe.TrackRollback(0); err != nil {
			b.Fatal(err)
		}
	}
	apply := func(reqs []Request) {
		seq++
		if _, err := r.exe.Apply(seq, reqs); err != nil {
			b.Fatal(err)
		}
		if rollback && seq%128 == 0 {
			if err := r.exe.TrackRollback(seq - 128); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Warm up: touch most keys once so puts mostly overwrite, as in a
	// long-running benchmark.
	for range max(2*keys/batchSize, 2*ClientWindow*clients/batchSize) {
		apply(makeBatch())
	}
	written := func() float64 {
		var read, write float64
		stats, err := r.db.LevelDB().GetProperty("leveldb.iostats")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fmt.Sscanf(stats, "Read(MB):%f Write(MB):%f", &read, &write); err != nil {
			b.Fatal(err)
		}
		return write * (1 << 20)
	}
	before := written()
	measureBatches(b, batchSize, makeBatch, apply)
	b.ReportMetric((written()-before)/float64(b.N), "disk-B/op")
}

// BenchmarkApplyEvicting measures the execution cost per request under
// client churn at the window limit: batches of 32 puts, each from a client
// never seen before, with at most 1,024 windows, so every batch creates 32
// windows and evicts 32 (the least recently active).
func BenchmarkApplyEvicting(b *testing.B) {
	const (
		batchSize = 32
		limit     = 1024
	)
	r := openLimited(b, b.TempDir(), limit)
	defer r.db.Close()
	value := make([]byte, 16)
	var seq, client uint64
	makeBatch := func() []Request {
		reqs := make([]Request, batchSize)
		for i := range reqs {
			client++
			reqs[i] = Request{ClientID: fmt.Appendf(nil, "churn-client-%08d-public-key-32b", client), RequestNumber: 1,
				Operation: EncodePut(fmt.Appendf(nil, "key-%05d", client%10_000), value)}
		}
		return reqs
	}
	apply := func(reqs []Request) {
		seq++
		if _, err := r.exe.Apply(seq, reqs); err != nil {
			b.Fatal(err)
		}
	}
	for range 2 * limit / batchSize { // fill the windows
		apply(makeBatch())
	}
	measureBatches(b, batchSize, makeBatch, apply)
	if r.exe.ClientWindows() != limit {
		b.Fatalf("%d windows, want %d", r.exe.ClientWindows(), limit)
	}
}

// measureBatches times b.N requests applied in batches of batchSize: it
// builds 256 batches ahead, applies them in turn and rebuilds them, off the
// clock, each time they run out.
func measureBatches(b *testing.B, batchSize int, makeBatch func() []Request, apply func([]Request)) {
	pre := make([][]Request, 256)
	for i := range pre {
		pre[i] = makeBatch()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batchSize {
		apply(pre[(i/batchSize)%len(pre)])
		if (i/batchSize)%len(pre) == len(pre)-1 {
			b.StopTimer()
			for j := range pre {
				pre[j] = makeBatch()
			}
			b.StartTimer()
		}
	}
}
