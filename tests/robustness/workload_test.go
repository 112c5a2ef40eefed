package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/internal/kvmodel"
)

// history records client operations for porcupine. Times are
// nanoseconds since the history began, on the monotonic clock.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// pending counts operations recorded with an unknown outcome, and
	// refused those the cluster refused (also recorded as pending).
	pending, refused int
}

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

// add records an operation that returned out at ret.
func (h *history) add(clientID int, in kvmodel.Input, call, ret int64, out kvmodel.Output) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: clientID, Input: in, Call: call, Output: out, Return: ret})
}

// addPending records an operation whose outcome is unknown: it may take
// effect at any time after call.
func (h *history) addPending(clientID int, in kvmodel.Input, call int64, refused bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, kvmodel.Pending(clientID, in, call))
	h.pending++
	if refused {
		h.refused++
	}
}

// operations returns a copy of the history.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// invoke runs one operation through cl with a timeout and records it: a
// result is a completed operation; a timeout, a closed client or a
// refusal (which the model has no output for) is pending.
func invoke(ctx context.Context, h *history, cl *client.Client, clientID int, in kvmodel.Input, op []byte, timeout time.Duration) (kvmodel.Output, bool) {
	call := h.now()
	opCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := cl.Invoke(opCtx, op)
	if err != nil {
		refused := !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, client.ErrClosed)
		h.addPending(clientID, in, call, refused)
		return kvmodel.Output{}, false
	}
	out := kvmodel.OutputOf("", raw)
	h.add(clientID, in, call, h.now(), out)
	return out, true
}

// workload is the concurrent clients: each worker has a client of its
// own and issues puts, gets and compare-and-swaps on a few shared keys,
// one at a time, until stopped.
type workload struct {
	h    *history
	keys int
	// timeouts[i] is worker i's operation timeout.
	timeouts []time.Duration

	stop      chan struct{}
	stopOnce  sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	completed atomic.Int64
}

// startWorkload starts one worker per client, worker i giving up on an
// operation after timeouts[i]; seed seeds their choices.
func startWorkload(h *history, clients []*client.Client, keys int, timeouts []time.Duration, seed uint64) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{h: h, keys: keys, timeouts: timeouts, stop: make(chan struct{}), cancel: cancel}
	for i, cl := range clients {
		w.wg.Add(1)
		go w.run(ctx, i, cl, seededRand(seed, uint64(i)+1))
	}
	return w
}

// run is worker i's loop. After an operation with an unknown outcome the
// worker continues under a new porcupine client id (its earlier request
// may still execute, concurrently with the later ones).
func (w *workload) run(ctx context.Context, i int, cl *client.Client, rng *rand.Rand) {
	defer w.wg.Done()
	known := kvmodel.Known{}
	clientID, gen := i*1_000_000, 0
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		key := fmt.Sprintf("rk%d", rng.IntN(w.keys))
		in, op := kvmodel.NextInput(rng, key, fmt.Sprintf("w%d-%d", i, n), known)
		out, ok := invoke(ctx, w.h, cl, clientID, in, op, w.timeouts[i])
		if !ok {
			gen++
			clientID = i*1_000_000 + gen
			known = kvmodel.Known{} // a pending write may or may not land
			continue
		}
		known.Record(in, out)
		w.completed.Add(1)
	}
}

// halt stops the workers: each finishes its operation in flight (for at
// most grace; then the rest are cancelled and recorded as pending). Later
// calls return at once.
func (w *workload) halt(grace time.Duration) {
	w.stopOnce.Do(func() { close(w.stop) })
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		w.cancel()
		<-done
	}
	w.cancel()
}
