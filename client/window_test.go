package client

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWindowTrackingMatchesModel begins and ends calls in random order
// and checks after every step that the tracked oldest number and the
// window predicate agree with a model that scans the outstanding set.
func TestWindowTrackingMatchesModel(t *testing.T) {
	for _, window := range []uint64{1, 2, 4, 7, 64} {
		rng := rand.New(rand.NewPCG(window, 99))
		c := newTestClient(t, window)
		var open []*call // outstanding, in no particular order
		check := func(step int) {
			t.Helper()
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.outstanding) != len(open) {
				t.Fatalf("window %d step %d: %d outstanding, model %d", window, step, len(c.outstanding), len(open))
			}
			wantOpen := true
			if len(open) > 0 {
				oldest := slices.MinFunc(open, func(a, b *call) int {
					return cmpUint64(a.number, b.number)
				}).number
				if c.lowest != oldest {
					t.Fatalf("window %d step %d: lowest %d, oldest outstanding %d", window, step, c.lowest, oldest)
				}
				wantOpen = c.next-oldest < window
			}
			if got := c.windowOpenLocked(); got != wantOpen {
				t.Fatalf("window %d step %d: window open %v, model %v", window, step, got, wantOpen)
			}
		}
		for step := range 3000 {
			c.mu.Lock()
			canBegin := c.windowOpenLocked()
			c.mu.Unlock()
			if canBegin && (len(open) == 0 || rng.IntN(2) == 0) {
				cl := mustBegin(t, c)
				open = append(open, cl)
			} else {
				// End a random outstanding call; bias towards the oldest
				// now and then so the window slides in jumps.
				i := rng.IntN(len(open))
				if rng.IntN(4) == 0 {
					i = 0
					for j := range open {
						if open[j].number < open[i].number {
							i = j
						}
					}
				}
				c.end(open[i])
				open = slices.Delete(open, i, i+1)
			}
			check(step)
		}
	}
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestWindowJumpsPastEndedCalls: when the oldest call ends after younger
// ones did, the window opens up to the oldest still outstanding.
func TestWindowJumpsPastEndedCalls(t *testing.T) {
	c := newTestClient(t, 4)
	calls := make([]*call, 4)
	for i := range calls {
		calls[i] = mustBegin(t, c) // 1..4
	}
	c.end(calls[1])
	c.end(calls[2])
	ch := beginAsync(context.Background(), c)
	assertStillBlocked(t, ch, "with the oldest (1) still outstanding")
	c.end(calls[0]) // oldest is now 4: numbers up to 7 fit
	if r := awaitBegin(t, ch); r.err != nil || r.cl.number != 5 {
		t.Fatalf("begin after the oldest ended: %v, %v; want number 5", r.cl, r.err)
	}
	for want := uint64(6); want <= 7; want++ {
		if cl := mustBegin(t, c); cl.number != want {
			t.Fatalf("got number %d, want %d", cl.number, want)
		}
	}
	ch = beginAsync(context.Background(), c)
	assertStillBlocked(t, ch, "with 4..7 outstanding in a window of 4")
	c.end(calls[3])
	if r := awaitBegin(t, ch); r.err != nil || r.cl.number != 8 {
		t.Fatalf("begin after 4 ended: %v, %v; want number 8", r.cl, r.err)
	}
}

// TestEndTwiceIsHarmless: a second end of the same call changes nothing.
func TestEndTwiceIsHarmless(t *testing.T) {
	c := newTestClient(t, 2)
	a := mustBegin(t, c)
	b := mustBegin(t, c)
	c.end(a)
	c.end(a)
	c.mu.Lock()
	lowest, n := c.lowest, len(c.outstanding)
	c.mu.Unlock()
	if lowest != b.number || n != 1 {
		t.Fatalf("after ending a twice: lowest %d, %d outstanding; want %d, 1", lowest, n, b.number)
	}
}

// TestWaiterWokenByCancelThenWindowStillWorks: a begin that had to wait
// returns on cancellation, is no longer counted as waiting, and the window
// works as before.
func TestWaiterWokenByCancelThenWindowStillWorks(t *testing.T) {
	c := newTestClient(t, 1)
	a := mustBegin(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	ch := beginAsync(ctx, c)
	assertStillBlocked(t, ch, "with a full window of 1")
	cancel()
	if r := awaitBegin(t, ch); r.err == nil {
		t.Fatalf("begin after cancel returned call %d", r.cl.number)
	}
	c.mu.Lock()
	waiting := c.waiting
	c.mu.Unlock()
	if waiting != 0 {
		t.Fatalf("%d begins still counted as waiting", waiting)
	}
	c.end(a)
	if cl := mustBegin(t, c); cl.number != a.number+1 {
		t.Fatalf("next number %d; want %d", cl.number, a.number+1)
	}
}
