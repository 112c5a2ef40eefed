package pbft_test

// Long-run resource bounds: many clients write over a fixed key space for
// a long time, and nothing a replica keeps may grow with the number of
// operations, only with the configuration (window, replicas, key space).
//
// The number of operations N is
//
//	20,000   by default (a few seconds; the default `go test` run),
//	 4,000   under the race detector (it slows the cluster about 5x),
//	200,000  with PBFTNODE_LONG=1 (a minute or two; e.g.
//	         PBFTNODE_LONG=1 go test ./node -run LongRun -v -timeout 20m).
//
// The test is skipped under -short.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/simkit/simtest"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
)

const (
	longClients   = 8
	longWorkers   = 16 // per client; each has at most one request outstanding
	longKeys      = 2000
	longValueSize = 100
)

// longRunOps is N (see the top of the file).
func longRunOps() int {
	switch {
	case os.Getenv("PBFTNODE_LONG") == "1":
		return 200_000
	case simtest.RaceEnabled():
		return 4_000
	}
	return 20_000
}

// longMaxima are the largest values the sampler saw on one replica.
type longMaxima struct {
	slots, buffered, pending, logEntries int
}

// sampleBounds records every replica's maxima until stop is closed. It
// reads Status (cheap) every 10 ms and the stored log every 200 ms.
func sampleBounds(t *testing.T, nodes []*pbft.Node, stop <-chan struct{}) []longMaxima {
	maxima := make([]longMaxima, len(nodes))
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for tick := 0; ; tick++ {
		for i, n := range nodes {
			st := n.Status()
			m := &maxima[i]
			m.slots = max(m.slots, st.RetainedSlots)
			m.buffered = max(m.buffered, st.BufferedAhead)
			m.pending = max(m.pending, st.PendingRequests)
			if tick%20 == 0 {
				entries, err := n.StoredLogEntries()
				if err != nil {
					t.Errorf("replica %d: stored log: %v", i, err)
				}
				m.logEntries = max(m.logEntries, entries)
			}
		}
		select {
		case <-stop:
			return maxima
		case <-ticker.C:
		}
	}
}

func databaseSizes(t *testing.T, nodes []*pbft.Node) []int64 {
	t.Helper()
	sizes := make([]int64, len(nodes))
	for i, n := range nodes {
		size, err := n.DatabaseSize()
		if err != nil {
			t.Errorf("replica %d: database size: %v", i, err)
		}
		sizes[i] = size
	}
	return sizes
}

// goleveldbJournalBytes is goleveldb's default write buffer, the size its
// journal reaches before the memtable is flushed to a table.
const goleveldbJournalBytes = 4 << 20

func TestLongRunBoundedMemoryAndDisk(t *testing.T) {
	// K = 16 (window 2K): the primary batches up to MaxPartialInFlight,
	// so 4000 operations span only about a hundred sequences; a small K
	// still moves the window and garbage-collects the log many times.
	const checkpointInterval = 16
	// Small WAL segments, so that the protocol log's segments roll and are
	// removed behind the stable checkpoint many times in the run too.
	opts := localnet.Options{WALSegmentBytes: 64 << 10}
	opts.Protocol.CheckpointInterval = checkpointInterval
	net := startNet(t, opts)
	ops := longRunOps()
	var (
		k        = uint64(checkpointInterval)
		window   = int(2 * k)
		replicas = len(net.Nodes)
		nodes    = append([]*pbft.Node(nil), net.Nodes...) // none is stopped here
	)

	var (
		issued, completed atomic.Int64
		quarterOnce       sync.Once
		quarterSizes      []int64
		quarterHeap       uint64
		quarterAt         time.Duration
		firstErr          error
		errOnce           sync.Once
		wg                sync.WaitGroup
	)
	timeout := 2 * time.Minute
	if ops > 20_000 {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	clients := make([]*client.Client, longClients)
	for ci := range clients {
		c, err := net.NewClient(500 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		clients[ci] = c
	}
	// From here until the workers and the sampler stopped, nothing calls
	// t.Fatal: they use t after this function could have returned.
	stop := make(chan struct{})
	sampled := make(chan []longMaxima, 1)
	go func() { sampled <- sampleBounds(t, nodes, stop) }()
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d operations, %d clients x %d workers, %d keys", seed, ops, longClients, longWorkers, longKeys)
	for ci, c := range clients {
		for w := range longWorkers {
			wg.Add(1)
			rng := rand.New(rand.NewPCG(seed, uint64(ci*longWorkers+w)))
			go func() {
				defer wg.Done()
				for {
					i := issued.Add(1)
					if i > int64(ops) || ctx.Err() != nil {
						return
					}
					key := []byte(fmt.Sprintf("key%05d", rng.IntN(longKeys)))
					value := []byte(fmt.Sprintf("%0*d", longValueSize, i))
					raw, err := c.Invoke(ctx, execution.EncodePut(key, value))
					if err != nil {
						fail(fmt.Errorf("put %s (operation %d): %w", key, i, err))
						return
					}
					if res, err := execution.DecodeResult(raw); err != nil || !res.Ok {
						fail(fmt.Errorf("put %s (operation %d): result %+v, decode error %v", key, i, res, err))
						return
					}
					if completed.Add(1) == int64(ops/4) {
						quarterOnce.Do(func() {
							quarterAt = time.Since(start)
							quarterSizes = databaseSizes(t, nodes)
							quarterHeap = heapInUse()
						})
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	maxima := <-sampled
	if firstErr != nil {
		t.Fatalf("after %d of %d operations: %v", completed.Load(), ops, firstErr)
	}
	t.Logf("%d operations in %v (%.0f ops/s)", ops, elapsed.Round(time.Millisecond), float64(ops)/elapsed.Seconds())

	st := waitConverged(t, net) // same executed sequence, same state digest
	t.Logf("all %d replicas executed up to %d with state digest %x, stable checkpoint %d, view %d", replicas, st.ExecutedSequence, st.StateDigest[:8], st.StableCheckpoint, st.View)
	for i, n := range nodes {
		t.Logf("replica %d: %v state transfers, %v view changes", i, n.MetricValue("pbftnode_state_transfers_total"), n.Status().ViewChanges)
	}
	if st.StableCheckpoint == 0 {
		t.Fatalf("no checkpoint became stable in %d sequences", st.ExecutedSequence)
	}

	// In memory. Slots exist only for sequences inside the watermark
	// window (low, low+window]; the future buffer keeps at most 3n
	// messages for each of the window sequences above it. A replica
	// tracks only the requests it knows of and has not yet seen committed:
	// each worker's one outstanding request, plus earlier ones that f+1
	// other replicas already executed (so the worker moved on) while this
	// replica has not delivered them yet. The primary keeps at most
	// MaxInFlight (8) sequences uncommitted, so a worker has at most one
	// request in each of them plus one queued; a backup lags by a similar
	// few batches. A leak would grow with N instead (and the check after
	// the run wants 0).
	var (
		maxSlots    = window
		maxBuffered = 3 * replicas * window
		maxPending  = (protocol.DefaultMaxInFlight + 1) * longClients * longWorkers
	)
	// On disk. The protocol log is deleted at or below each stable
	// checkpoint, and a replica persists only what lies in its window: per
	// sequence the accepted pre-prepare, its own prepare, its prepared
	// certificate and its own commit (4 entries, all in one view here: no
	// view change happens), plus its own checkpoint votes above the stable
	// checkpoint (at most window/K). With K = 128 that is 1026 entries
	// whatever N is. (A new persisted kind per sequence raises it.)
	maxLogEntries := 4*window + window/int(k)
	for i, m := range maxima {
		t.Logf("replica %d maxima: retained slots %d (bound %d), buffered ahead %d (bound %d), pending requests %d (bound %d), stored log entries %d (bound %d)",
			i, m.slots, maxSlots, m.buffered, maxBuffered, m.pending, maxPending, m.logEntries, maxLogEntries)
		if m.slots > maxSlots {
			t.Errorf("replica %d retained %d slots, more than the window %d", i, m.slots, maxSlots)
		}
		if m.buffered > maxBuffered {
			t.Errorf("replica %d buffered %d messages ahead of its window, more than 3n x window = %d", i, m.buffered, maxBuffered)
		}
		if m.pending > maxPending {
			t.Errorf("replica %d tracked %d pending requests, more than %d with %d workers", i, m.pending, maxPending, longClients*longWorkers)
		}
		if m.logEntries > maxLogEntries {
			t.Errorf("replica %d stored %d protocol log entries during the run, more than %d", i, m.logEntries, maxLogEntries)
		}
	}

	// After the run: everything committed, so nothing is pending, and the
	// stored log is within the same bound.
	finalSizes := databaseSizes(t, nodes)
	// The heap is shared by the replicas, the clients and the test, and
	// caches (verified requests, 65536 per replica) fill up during the
	// first part of the run. Over a long run it must level off.
	finalHeap := heapInUse()
	t.Logf("heap in use (whole test process, after a GC): %.1f MiB at 25%%, %.1f MiB at the end", mib(int64(quarterHeap)), mib(int64(finalHeap)))
	if ops > 20_000 && finalHeap > 2*quarterHeap {
		t.Errorf("the heap grew from %.1f MiB at 25%% of the run to %.1f MiB at the end (more than 2x)", mib(int64(quarterHeap)), mib(int64(finalHeap)))
	}
	for i, n := range nodes {
		if p := n.Status().PendingRequests; p != 0 {
			t.Errorf("replica %d still tracks %d pending requests after every request committed", i, p)
		}
		entries, err := n.StoredLogEntries()
		if err != nil {
			t.Fatalf("replica %d: stored log: %v", i, err)
		}
		if entries > maxLogEntries {
			t.Errorf("replica %d stores %d protocol log entries after the run, more than %d", i, entries, maxLogEntries)
		}
		t.Logf("replica %d: %d stored log entries; database %.1f MiB at 25%% (%v), %.1f MiB at the end",
			i, entries, mib(quarterSizes[i]), quarterAt.Round(time.Millisecond), mib(finalSizes[i]))
	}

	// The database holds the key space (2,000 keys), the reply cache (one
	// window per client), the bounded protocol log and goleveldb's
	// overhead: a journal and memtable of up to 4 MiB each, level-0
	// tables (compacted from 4 on) and level 1 (10 MiB). None of that
	// grows with N, so from a quarter of the run to its end the size may
	// not triple beyond a journal that filled meanwhile (the run writes
	// about one write buffer in all: whether the journal was flushed by
	// its end depends on how many bytes each operation writes), and it
	// stays under an absolute bound derived from the key space plus
	// goleveldb's levels.
	absolute := int64(longKeys*(longValueSize+64)*4) + 48<<20
	for i := range nodes {
		if finalSizes[i] > absolute {
			t.Errorf("replica %d's database is %.1f MiB after %d operations over %d keys, more than %.1f MiB",
				i, mib(finalSizes[i]), ops, longKeys, mib(absolute))
		}
		// In shorter runs goleveldb's fixed overhead (journal, memtable)
		// dominates both sizes, so the ratio says little.
		if ops >= 20_000 && finalSizes[i] > 3*quarterSizes[i]+goleveldbJournalBytes {
			t.Errorf("replica %d's database grew from %.1f MiB at 25%% of the run to %.1f MiB at the end (more than 3x, plus a journal of %.0f MiB)",
				i, mib(quarterSizes[i]), mib(finalSizes[i]), mib(goleveldbJournalBytes))
		}
	}
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
