package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Attack-scenario timing.
const (
	// rssPeriod is how often the replicas' resident memory is sampled
	// during the attack and the recovery.
	rssPeriod = 250 * time.Millisecond
	// minRecoveryWatch is the least the run watches the cluster after the
	// attack stops, for view changes and memory, even once recovered.
	minRecoveryWatch = 2 * time.Second
)

// attackRun is one attack scenario's run in progress: its phases, all
// measured from the start of the load, and what it saw at their edges.
type attackRun struct {
	cfg   Config
	plan  attackPlan
	cl    *cluster
	prog  progress
	ld    *load
	start time.Time

	atk          *attackerProc
	attackerCPU0 float64
	// Counters at the end of the baseline (the attack's start), at the
	// attack's end, and at the end of the recovery.
	atAttack, atStop, atEnd map[int]counters
	rssBase                 map[int]uint64
	rss                     *rssSampler
	attackedAt, stoppedAt   time.Duration
	attackerCPU             float64
	// The harness's and the machine's CPU time at the attack's start and
	// over the attack.
	harness0, machine0     float64
	harnessCPU, machineCPU float64
	machineErr             error
}

// measureAttack runs an attack scenario on a started cluster: warm-up, a
// fault-free baseline of cfg.Duration, the attack for cfg.Duration under
// the same load, then up to cfg.RecoveryCap for the honest throughput to
// recover. It fills in res: the Result fields describe the attack
// phase, the baseline_* fields the baseline.
func measureAttack(ctx context.Context, cfg Config, plan attackPlan, cl *cluster, prog progress, res *Result) error {
	clients, err := clusterClients(cfg, cl)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	if err := probe(ctx, clients[0]); err != nil {
		return err
	}
	r := &attackRun{cfg: cfg, plan: plan, cl: cl, prog: prog}
	if plan.client != "" {
		prog.say("preparing the %s attacker", plan.client)
		if r.atk, err = startAttacker(ctx, cfg.Binary, cl.dir, plan.client, cfg.AttackRate); err != nil {
			return err
		}
		defer func() {
			select {
			case <-r.atk.exited:
			default:
				r.atk.kill()
			}
		}()
	} else {
		res.AttackingReplica, res.AttackStrategy = ptr(plan.replica), plan.strategy
	}

	r.ld = newLoad(cfg, spread(clients, cfg.Clients), newKVWorkload(cfg))
	r.ld.measureTo = cfg.Warmup + 2*cfg.Duration
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	r.start = time.Now()
	loadDone := make(chan struct{})
	go func() {
		r.ld.run(loadCtx, r.start)
		close(loadDone)
	}()
	stopProgress := prog.follow(r.ld.rec, r.start)
	defer stopProgress()
	if err := r.phases(ctx); err != nil {
		if r.rss != nil {
			r.rss.stop()
		}
		return err
	}
	stopLoad()
	<-loadDone
	stopProgress()
	return r.report(res)
}

// phases runs the baseline, the attack and the recovery. The attack
// starts once the baseline's counters are read, and the attack window
// [attackedAt, attackedAt+Duration) is measured from then.
func (r *attackRun) phases(ctx context.Context) error {
	if err := sleepUntil(ctx, r.start.Add(r.cfg.Warmup+r.cfg.Duration)); err != nil {
		return err
	}
	r.atAttack = sampleSome(ctx, r.cl)
	r.harness0 = selfCPUSeconds()
	r.machine0, r.machineErr = machineBusySeconds()
	r.rssBase = sampleRSS(r.cl)
	r.rss = startRSSSampler(r.cl, rssPeriod)
	if err := r.attack(true); err != nil {
		return err
	}
	r.attackedAt = time.Since(r.start)
	r.prog.say("attack %s on at %.1fs", r.cfg.Scenario, r.attackedAt.Seconds())
	if err := sleepUntil(ctx, r.start.Add(r.attackedAt+r.cfg.Duration)); err != nil {
		return err
	}
	if err := r.attack(false); err != nil {
		return err
	}
	r.stoppedAt = time.Since(r.start)
	r.harnessCPU = selfCPUSeconds() - r.harness0
	machine, err := machineBusySeconds()
	if r.machineErr == nil {
		r.machineCPU, r.machineErr = machine-r.machine0, err
	}
	r.atStop = sampleSome(ctx, r.cl)
	r.prog.say("attack off at %.1fs; waiting up to %v for the throughput to recover", r.stoppedAt.Seconds(), r.cfg.RecoveryCap)
	need := recoveryNeed(r.baselineOps())
	for {
		now := time.Since(r.start)
		if now >= r.stoppedAt+r.cfg.RecoveryCap {
			break
		}
		if now >= r.stoppedAt+minRecoveryWatch {
			if _, ok := RecoveryTime(r.completedSince(r.stoppedAt), r.stoppedAt, now, need); ok {
				break
			}
		}
		if err := sleepUntil(ctx, time.Now().Add(250*time.Millisecond)); err != nil {
			return err
		}
	}
	r.atEnd = sampleSome(ctx, r.cl)
	return nil
}

// attack switches the attack on or off: SIGUSR1 or SIGUSR2 to the
// attacking replica, or the attacker process's start and stop.
func (r *attackRun) attack(on bool) error {
	switch {
	case r.plan.replicaAttack() && on:
		return r.cl.signal(r.plan.replica, syscall.SIGUSR1)
	case r.plan.replicaAttack():
		return r.cl.signal(r.plan.replica, syscall.SIGUSR2)
	case on:
		r.attackerCPU0 = r.atk.cpuSeconds()
		return r.atk.begin()
	}
	r.attackerCPU = r.atk.cpuSeconds() - r.attackerCPU0
	return r.atk.terminate() // report waits for it and reads its report
}

// baselineOps is the baseline's throughput in operations per second.
func (r *attackRun) baselineOps() float64 {
	samples, _ := r.ld.rec.snapshot()
	w := within(samples, r.cfg.Warmup, r.cfg.Warmup+r.cfg.Duration)
	return float64(w.ops) / r.cfg.Duration.Seconds()
}

// completedSince returns the sorted completion times from t on.
func (r *attackRun) completedSince(t time.Duration) []time.Duration {
	samples, _ := r.ld.rec.snapshot()
	return within(samples, t, time.Duration(1<<62)).completed
}

// report fills in res from what the run saw.
func (r *attackRun) report(res *Result) error {
	rss := r.rss.stop()
	samples, failed := r.ld.rec.snapshot()
	base := within(samples, r.cfg.Warmup, r.cfg.Warmup+r.cfg.Duration)
	during := within(samples, r.attackedAt, r.attackedAt+r.cfg.Duration)
	summarize(res, during, failed, int(r.ld.dropped.Load()), r.cfg.Duration, r.atAttack, r.atStop)
	res.BaselineOps = base.ops
	res.BaselineThroughputOps = ptr(float64(base.ops) / r.cfg.Duration.Seconds())
	res.BaselineLatencyP50Ms = ptr(ms(Percentile(base.latencies, 0.50)))
	res.BaselineLatencyP99Ms = ptr(ms(Percentile(base.latencies, 0.99)))
	res.ViewChanges = maxViewIncrease(r.atAttack, r.atEnd)
	res.MaxRSSGrowthMiB = ptr(MaxRSSGrowthMiB(r.rssBase, rss))
	res.RSSBaseMiB = make(map[string]float64)
	for i, b := range r.rssBase {
		res.RSSBaseMiB[fmt.Sprint(i)] = float64(b) / (1 << 20)
	}
	end := r.stoppedAt + r.cfg.RecoveryCap
	rec, ok := RecoveryTime(within(samples, r.stoppedAt, end).completed, r.stoppedAt, end, recoveryNeed(*res.BaselineThroughputOps))
	if !ok {
		rec = r.cfg.RecoveryCap
	}
	res.RecoveryMs, res.Recovered = ptr(ms(rec)), ptr(ok)
	res.AttackStartS, res.AttackStopS = ptr(r.attackedAt.Seconds()), ptr(r.stoppedAt.Seconds())
	if r.atk != nil {
		rep, err := r.atk.stop()
		if err != nil {
			return err
		}
		res.Attack = &rep
		res.AttackerCPUCores = ptr(max(0, r.attackerCPU) / r.cfg.Duration.Seconds())
	}
	if during.ops > 0 {
		res.HarnessCPUSecondsPer1kOps = r.harnessCPU / (float64(during.ops) / 1000)
	}
	if r.machineErr == nil {
		var replicas float64
		for i, a := range r.atStop {
			if b, ok := r.atAttack[i]; ok {
				replicas += a.cpuSeconds - b.cpuSeconds
			}
		}
		res.BackgroundCPUCores = max(0, r.machineCPU-replicas-r.harnessCPU-r.attackerCPU) / r.cfg.Duration.Seconds()
	}
	if base.ops == 0 {
		return fmt.Errorf("no operation completed in the %v baseline (%d failed)", r.cfg.Duration, failed)
	}
	return nil
}

// maxViewIncrease is the largest increase of any replica's view (or
// term) from before to after; replicas missing from either are skipped.
func maxViewIncrease(before, after map[int]counters) int {
	most := 0
	for i, a := range after {
		if b, ok := before[i]; ok {
			most = max(most, int(a.view-b.view))
		}
	}
	return most
}

// sampleSome samples every running replica that answers, all at once;
// one slowed down by an attack may not answer, and is left out rather
// than failing the run.
func sampleSome(ctx context.Context, cl *cluster) map[int]counters {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[int]counters)
	for _, i := range cl.running() {
		wg.Go(func() {
			s, err := cl.sample(ctx, i)
			if err != nil {
				cl.spec.log.Warn("replica not sampled", "replica", i, "err", err)
				return
			}
			mu.Lock()
			out[i] = s
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
