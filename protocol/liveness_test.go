package protocol

import (
	"testing"
)

// delayNet holds some messages of a cluster for a number of ticks, as a
// slow link or a primary that sits on its PRE-PREPAREs does.
type delayNet struct {
	c     *cluster
	now   int
	held  []delayedFrame
	delay func(from, to uint32, kind Kind) int
}

type delayedFrame struct {
	due int
	m   pending
}

func newDelayNet(c *cluster) *delayNet {
	d := &delayNet{c: c, delay: func(uint32, uint32, Kind) int { return 0 }}
	c.outFilter = func(from, to uint32, m Outbound) (Outbound, bool) {
		ticks := d.delay(from, to, m.Kind)
		if ticks <= 0 {
			return m, true
		}
		frame, err := EncodeFrame(m.Signed, m.Batch)
		if err != nil {
			c.t.Fatal(err)
		}
		d.held = append(d.held, delayedFrame{due: d.now + ticks, m: pending{from: from, to: to, kind: m.Kind, frame: frame}})
		return m, false
	}
	return d
}

// tick advances every replica one tick, releases the held messages due,
// and runs the network until it is quiet.
func (d *delayNet) tick() {
	d.now++
	for _, r := range d.c.replicas {
		r.Tick()
	}
	kept := d.held[:0]
	for _, h := range d.held {
		if h.due <= d.now {
			d.c.queue = append(d.c.queue, h.m)
		} else {
			kept = append(kept, h)
		}
	}
	d.held = kept
	d.c.run()
}

// closedLoop keeps window requests outstanding for each of its clients,
// submitting them to the current primary (and, with broadcast, to every
// replica), and counts what replica observer executed.
type closedLoop struct {
	c               *cluster
	window          int
	broadcast       bool
	observer        int
	seeds           []byte
	index           map[string]int
	submitted, done []int
	cursor          int
	executed        int
}

func newClosedLoop(c *cluster, seeds []byte, window int) *closedLoop {
	l := &closedLoop{c: c, window: window, observer: 2, seeds: seeds, index: map[string]int{},
		submitted: make([]int, len(seeds)), done: make([]int, len(seeds))}
	for i, s := range seeds {
		l.index[string(request(s, 1, "").Request.ClientId)] = i
	}
	return l
}

// refill counts the observer's executions and tops every client's
// outstanding requests up to the window.
func (l *closedLoop) refill() {
	for _, b := range l.c.executed[l.observer][l.cursor:] {
		for _, req := range b.Requests {
			if i, ok := l.index[string(req.ClientId)]; ok {
				l.done[i]++
				l.executed++
			}
		}
	}
	l.cursor = len(l.c.executed[l.observer])
	for i, seed := range l.seeds {
		for l.submitted[i]-l.done[i] < l.window {
			l.submitted[i]++
			req := request(seed, uint64(l.submitted[i]), "op")
			for _, r := range l.c.replicas {
				if l.broadcast || r.IsPrimary() {
					_ = r.Submit(req)
				}
			}
		}
	}
}

// run ticks n times under the loop's load and returns how many of its
// requests executed meanwhile.
func (l *closedLoop) run(d *delayNet, n int) int {
	before := l.executed
	for range n {
		l.refill()
		d.tick()
	}
	l.refill()
	return l.executed - before
}

func viewChanges(c *cluster) (started uint64, slow uint64) {
	for _, r := range c.replicas {
		st := r.Status()
		started = max(started, st.ViewChangesStarted)
		slow += st.SlowPrimarySuspects
	}
	return started, slow
}

// A primary that sits on each PRE-PREPARE for just under the view-change
// timeout orders something every timeout, so the timer alone never fires;
// the backups' throughput monitor replaces it, with one view change.
func TestSlowPrimaryIsReplacedByOneViewChange(t *testing.T) {
	c := newCluster(t, 4, nil)
	d := newDelayNet(c)
	load := newClosedLoop(c, []byte{1, 2}, 16)
	base := load.run(d, 3*slowWindowTicks)
	slowPrimary := true
	d.delay = func(from, _ uint32, kind Kind) int {
		if slowPrimary && from == 0 && kind == KindPrePrepare {
			return DefaultViewChangeTimeoutTicks * 9 / 10
		}
		return 0
	}
	slow := load.run(d, 6*slowWindowTicks)
	c.assertAgreement()
	for i, r := range c.replicas {
		if st := r.Status(); st.View != 1 || !st.ViewActive || st.ViewChangesStarted != 1 {
			t.Fatalf("replica %d: view %d (active %v), %d view changes; want view 1 after exactly one",
				i, st.View, st.ViewActive, st.ViewChangesStarted)
		}
	}
	after := load.run(d, 2*slowWindowTicks)
	if started, suspects := viewChanges(c); started != 1 || suspects == 0 {
		t.Fatalf("%d view changes, %d slow-primary suspicions; want 1 view change by the monitor", started, suspects)
	}
	if 2*after < base*2/3 {
		t.Fatalf("after the view change %d requests executed in 2 windows, baseline %d in 3", after, base)
	}
	t.Logf("baseline %d/3 windows, slow phase %d/6 windows, after %d/2 windows", base, slow, after)
}

// An honest primary whose throughput varies (a slower link for a while,
// then light load from one sequential client, then full load again, with
// clients sending to every replica) is never suspected.
func TestHonestPrimaryUnderFluctuatingLoadIsNotSuspected(t *testing.T) {
	c := newCluster(t, 4, nil)
	d := newDelayNet(c)
	load := newClosedLoop(c, []byte{1, 2}, 16)
	load.run(d, 3*slowWindowTicks)
	// Half the throughput: every PRE-PREPARE takes a tick longer.
	d.delay = func(from, _ uint32, kind Kind) int {
		if from == 0 && kind == KindPrePrepare {
			return 1
		}
		return 0
	}
	load.broadcast = true
	load.run(d, 3*slowWindowTicks)
	// Light load: one client, one request at a time, every PRE-PREPARE
	// two ticks late, sent to every replica.
	light := newClosedLoop(c, []byte{9}, 1)
	light.broadcast = true
	d.delay = func(from, _ uint32, kind Kind) int {
		if from == 0 && kind == KindPrePrepare {
			return 2
		}
		return 0
	}
	light.run(d, 5*slowWindowTicks)
	d.delay = func(uint32, uint32, Kind) int { return 0 }
	load.run(d, 2*slowWindowTicks)
	c.assertAgreement()
	if started, suspects := viewChanges(c); started != 0 || suspects != 0 {
		t.Fatalf("%d view changes, %d slow-primary suspicions of an honest primary", started, suspects)
	}
}

// A burst of large requests from several keys, sent to the primary only,
// takes the primary longer than the view-change timeout to order; a
// request sent to every replica behind it waits for all of it. The
// primary orders at full speed throughout, so no backup suspects it.
func TestBurstOfLargeRequestsDrainsWithoutSuspicion(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchBytes = 512 << 10; cfg.MaxInFlight = 1 })
	d := newDelayNet(c)
	// Each batch reaches the backups 5 ticks after it is cut: ~100 KiB per
	// tick, well above the timer's minimum rate.
	d.delay = func(from, _ uint32, kind Kind) int {
		if from == 0 && kind == KindPrePrepare {
			return 5
		}
		return 0
	}
	for k := range 8 {
		for i := range 24 {
			if err := c.replicas[0].Submit(sessionRequest(byte(10+k), "s", uint64(i+1), 64<<10)); err != nil {
				t.Fatalf("burst request %d of key %d: %v", i, k, err)
			}
		}
	}
	waiting := request(1, 1, "honest")
	for _, r := range c.replicas {
		if err := r.Submit(waiting); err != nil {
			t.Fatal(err)
		}
	}
	done := func() bool { return c.executedRequests(2)[keyOf(waiting.Request)] == 1 }
	for range 600 {
		if done() {
			break
		}
		d.tick()
	}
	if started, _ := viewChanges(c); started != 0 {
		t.Fatalf("%d view changes while the primary ordered a burst at full speed", started)
	}
	if !done() {
		t.Fatal("the request behind the burst did not execute")
	}
	if d.now <= DefaultViewChangeTimeoutTicks+10 {
		t.Fatalf("the burst drained in %d ticks; the scenario needs longer than the timeout", d.now)
	}
	c.assertAgreement()
	t.Logf("drained in %d ticks", d.now)
}

// A primary that withholds one request while ordering a steady stream of
// others' requests is still suspected: small requests buy no time, and
// the time large ones buy is capped.
func TestPrimaryWithholdingOneRequestWhileOrderingOthersIsSuspected(t *testing.T) {
	for _, tc := range []struct {
		name          string
		size, perTick int
		min, max      int
	}{
		// 24 KiB per tick in requests under orderCreditFreeBytes: more
		// than the credit rate, yet no credit.
		{"small requests", 3 << 10, 8, DefaultViewChangeTimeoutTicks, DefaultViewChangeTimeoutTicks + 10},
		{"large requests", 64 << 10, 1, (1 + orderCreditMaxTimeouts) * DefaultViewChangeTimeoutTicks,
			(1+orderCreditMaxTimeouts)*DefaultViewChangeTimeoutTicks + 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 4, nil)
			d := newDelayNet(c)
			withheld := request(1, 1, "withheld")
			// Replica 0 never hears of it: the backups' relays are dropped.
			c.drop = func(_, to uint32, kind Kind) bool { return to == 0 && kind == KindForward }
			for _, r := range c.replicas[1:] {
				if err := r.Submit(withheld); err != nil {
					t.Fatal(err)
				}
			}
			for n := 0; c.replicas[1].View() == 0; n++ {
				if n > tc.max {
					t.Fatalf("no view change after %d ticks", n)
				}
				// Ordered every tick, from other keys.
				for i := range tc.perTick {
					_ = c.replicas[0].Submit(sessionRequest(byte(10+i), "s", uint64(n+1), tc.size))
				}
				d.tick()
			}
			if d.now < tc.min {
				t.Fatalf("suspected after %d ticks, before %d", d.now, tc.min)
			}
			c.drop = nil
			c.tickUntil(3*DefaultViewChangeTimeoutTicks, "the withheld request to execute in view 1", func() bool {
				return c.executedRequests(1)[keyOf(withheld.Request)] == 1
			})
			c.assertAgreement()
		})
	}
}

// A client key with many requests outstanding is served in the primary's
// order, not necessarily the backup's: while the key's requests are
// ordered, the backup does not suspect the primary for the one it waits
// for.
func TestProgressOnAKeyRestartsItsRequestsTimer(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1; cfg.MaxInFlight = 1 })
	d := newDelayNet(c)
	d.delay = func(from, _ uint32, kind Kind) int {
		if from == 0 && kind == KindPrePrepare {
			return 5
		}
		return 0
	}
	const n = 40
	for i := range n {
		if err := c.replicas[0].Submit(sessionRequest(1, "s", uint64(i+1), 16)); err != nil {
			t.Fatal(err)
		}
	}
	// The backups hold only the last one: the client retransmitted it.
	last := sessionRequest(1, "s", n, 16)
	for _, r := range c.replicas[1:] {
		if err := r.Submit(last); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 * n * 6 {
		if c.executedRequests(2)[keyOf(last.Request)] == 1 {
			break
		}
		d.tick()
	}
	if c.executedRequests(2)[keyOf(last.Request)] != 1 {
		t.Fatal("the last request did not execute")
	}
	if started, _ := viewChanges(c); started != 0 {
		t.Fatalf("%d view changes while the primary served the key in its own order", started)
	}
	if d.now <= DefaultViewChangeTimeoutTicks+10 {
		t.Fatalf("the key's requests took %d ticks; the scenario needs longer than the timeout", d.now)
	}
}
