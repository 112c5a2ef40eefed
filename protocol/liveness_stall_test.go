package protocol

import "testing"

// stallRetransmitTicks is when the tests' clients retransmit to every
// replica: the benchmark's 500 ms retransmission timeout in 10 ms ticks.
const stallRetransmitTicks = 50

// saturatingLoad is a closed loop that keeps the primary's batches full:
// 4 clients with 16 requests outstanding each, MaxBatchSize 32.
func saturatingLoad(t *testing.T, tweak func(*Config)) (*cluster, *delayNet, *closedLoop) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.MaxBatchSize = 32
		if tweak != nil {
			tweak(cfg)
		}
	})
	return c, newDelayNet(c), newClosedLoop(c, []byte{1, 2, 3, 4}, 16)
}

func assertNoSuspicion(t *testing.T, c *cluster) {
	t.Helper()
	c.assertAgreement()
	if started, suspects := viewChanges(c); started != 0 || suspects != 0 {
		t.Fatalf("%d view changes, %d slow-primary suspicions of an honest primary", started, suspects)
	}
}

// A primary that sits on each PRE-PREPARE for 90% of the view-change
// timeout under a saturating load is replaced before its first held
// PRE-PREPARE arrives: the throughput monitor alone needs two windows
// (200 ticks) of evidence.
func TestSlowPrimaryIsSuspectedBeforeItsFirstHeldPrePrepare(t *testing.T) {
	c, d, load := saturatingLoad(t, nil)
	base := load.run(d, 2*slowWindowTicks)
	hold := DefaultViewChangeTimeoutTicks * 9 / 10
	d.delay = func(from, _ uint32, kind Kind) int {
		if from == 0 && kind == KindPrePrepare {
			return hold
		}
		return 0
	}
	start := d.now
	for !c.allActiveIn(1, 0) {
		if d.now-start >= hold {
			t.Fatalf("still in view %d %d ticks after the primary began holding its PRE-PREPAREs", c.replicas[1].View(), d.now-start)
		}
		if d.now-start == stallRetransmitTicks {
			// The clients retransmit what the primary holds, to every
			// replica: the backups' evidence that requests wait.
			load.broadcast = true
			load.resubmit()
		}
		load.refill()
		d.tick()
	}
	took := d.now - start
	load.broadcast = true
	load.resubmit()
	after := load.run(d, slowWindowTicks)
	c.assertAgreement()
	for i, r := range c.replicas {
		if st := r.Status(); st.View != 1 || st.ViewChangesStarted != 1 {
			t.Fatalf("replica %d: view %d after %d view changes; want view 1 after exactly one", i, st.View, st.ViewChangesStarted)
		}
	}
	if 2*after < base/2 {
		t.Fatalf("after the view change %d requests executed in a window, baseline %d in 2", after, base)
	}
	t.Logf("view 1 active %d ticks after the primary began holding (limit %d); baseline %d/2 windows, after %d/window",
		took, uint64(DefaultViewChangeTimeoutTicks)*stallMinPercent/100, base, after)
}

// A saturated primary whose agreement is slow (COMMITs take 60 ticks, so
// its pipeline is full and it cannot propose) is not suspected: the stall
// clock only runs while the backup's pipeline is empty.
func TestSaturatedPrimaryWaitingForSlowAgreementIsNotSuspected(t *testing.T) {
	c, d, load := saturatingLoad(t, nil)
	d.delay = func(_, _ uint32, kind Kind) int {
		if kind == KindCommit {
			return 60
		}
		return 0
	}
	if n := load.run(d, 10*slowWindowTicks); n == 0 {
		t.Fatal("nothing executed")
	}
	assertNoSuspicion(t, c)
}

// A saturated primary that now and then takes long to send its next
// PRE-PREPARE (a loaded machine: a long fsync, a large execution), the
// pauses growing from 10 to 60 ticks, beyond the rule's lower bound, is
// not suspected: each limit is three times the longest pause seen
// recently.
func TestSaturatedPrimaryWithGrowingPausesIsNotSuspected(t *testing.T) {
	c, d, load := saturatingLoad(t, nil)
	load.run(d, 2*slowWindowTicks)
	for _, pause := range []int{10, 20, 30, 45, 60, 60} {
		// The PRE-PREPAREs sent on every 50th tick: the whole load is
		// in them, so nothing else is proposed meanwhile.
		d.delay = func(from, _ uint32, kind Kind) int {
			if from == 0 && kind == KindPrePrepare && d.now%50 == 0 {
				return pause
			}
			return 0
		}
		load.run(d, slowWindowTicks)
	}
	assertNoSuspicion(t, c)
}

// resubmit sends every request of the loop not yet executed at the
// observer again (a client's retransmission).
func (l *closedLoop) resubmit() {
	for i, seed := range l.seeds {
		for n := l.done[i] + 1; n <= l.submitted[i]; n++ {
			req := request(seed, uint64(n), "op")
			for _, r := range l.c.replicas {
				if l.broadcast || r.IsPrimary() {
					_ = r.Submit(req)
				}
			}
		}
	}
}

// A saturating load that stops dead (every client at once) leaves the
// primary idle with the backups' pipelines empty: no backup holds a
// request a client sent it, so none suspects the idle primary.
func TestSaturatingLoadThatStopsDeadIsNotSuspected(t *testing.T) {
	c, d, load := saturatingLoad(t, nil)
	load.run(d, 2*slowWindowTicks)
	for range 3 * DefaultViewChangeTimeoutTicks {
		d.tick() // no refill: the clients stopped
	}
	assertNoSuspicion(t, c)
}

// TestLivenessBatchThresholdsDoNotGrowWithTheBatchBound: what shows a
// saturating load (the stall rule) or demand (the slow-primary monitor)
// is how many requests a primary's batches gather, so raising MaxBatchSize
// above 256 leaves both thresholds where they were (128 and 16 requests);
// a smaller bound lowers them with it.
func TestLivenessBatchThresholdsDoNotGrowWithTheBatchBound(t *testing.T) {
	for _, c := range []struct{ maxBatch, wellFilled, demand int }{
		{DefaultMaxBatchSize, 128, 16}, {4096, 128, 16}, {256, 128, 16}, {32, 16, 2}, {64, 32, 4}, {1, 16, 2},
	} {
		if got := wellFilledBatch(c.maxBatch); got != c.wellFilled {
			t.Errorf("MaxBatchSize %d: well-filled batch %d, want %d", c.maxBatch, got, c.wellFilled)
		}
		if got := demandBatch(c.maxBatch); got != c.demand {
			t.Errorf("MaxBatchSize %d: demand batch %d, want %d", c.maxBatch, got, c.demand)
		}
	}
}
