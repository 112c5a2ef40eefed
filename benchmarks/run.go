package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/pbftnode/pbftnode/benchmarks/cryptoceiling"
	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/raftmode"
)

// probeTimeout bounds the first operation, which shows the cluster
// commits before the load starts.
const probeTimeout = 20 * time.Second

// Run measures one configuration: for PBFT it first measures the crypto
// ceiling, then starts the cluster as processes, runs the load, injects
// the scenario's fault and reports what it measured. It stops the
// replicas before returning. With Config.Peer it measures that peer
// system under the same load instead (peer.go).
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	if cfg.Peer != "" {
		return runPeer(ctx, cfg)
	}
	res := header(cfg)
	prog := progress{w: cfg.Progress, label: cfg.Label}
	if cfg.QuietWait > 0 {
		waited, load, err := waitQuiet(ctx, cfg.QuietWait, prog)
		if err != nil {
			return res, err
		}
		res.QuietWaitS, res.StartLoadCores = waited.Seconds(), load
	}
	if cfg.Protocol != "raft" && cfg.CeilingDuration > 0 {
		prog.say("measuring the crypto ceiling for n=%d for %v on %d workers", cfg.Replicas, cfg.CeilingDuration, runtime.GOMAXPROCS(0))
		c, err := cryptoceiling.Measure(ctx, cfg.Replicas, cfg.CeilingDuration, runtime.GOMAXPROCS(0))
		if err != nil {
			return res, fmt.Errorf("crypto ceiling: %w", err)
		}
		res.CryptoCeilingOps = ptr(c.OpsPerSecond)
		res.CryptoCeiling = &CeilingReport{
			OpsPerSecond: c.OpsPerSecond, SignNanos: c.SignNanos, VerifyNanos: c.VerifyNanos,
			Verifications: c.Verifications, Workers: c.Workers, Batch: c.Batch,
			DurationS: cfg.CeilingDuration.Seconds(),
		}
	}

	workDir := cfg.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "pbftnode-bench-"); err != nil {
			return res, fmt.Errorf("work directory: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(workDir)
		}
	}
	spec := clusterSpec{
		binary: cfg.Binary, protocol: cfg.Protocol, replicas: cfg.Replicas, noFsync: cfg.NoFsync, noReceipts: cfg.NoReceipts, receiptsCachedOnly: cfg.ReceiptsCachedOnly,
		logLevel: cfg.ReplicaLogLevel, profDir: cfg.CPUProfileDir, dir: workDir, log: cfg.Logger, checkDirectCommits: cfg.CheckDirectCommits,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), cfg.Seed)),
	}
	spec.byzantine, spec.toggle = byzantineReplicas(cfg)
	if cfg.App == AppLedger {
		if spec.ledgerIssuer, err = newLedgerIssuer(workDir); err != nil {
			return res, err
		}
	}
	plan, attack := planFor(cfg.Scenario, cfg.Replicas)
	if cfg.CPUProfileDir != "" {
		stopProfile, err := startHarnessProfile(cfg.CPUProfileDir)
		if err != nil {
			return res, err
		}
		defer stopProfile()
	}
	prog.say("starting %d %s replicas", cfg.Replicas, cfg.Protocol)
	cl, err := startCluster(ctx, spec)
	if err != nil {
		return res, err
	}
	defer cl.stop()
	if tick, fc := replicaTick(cl.home(0)); cfg.Protocol == "pbft" {
		res.ViewChangeTimeoutMs = ms(time.Duration(protocol.DefaultViewChangeTimeoutTicks) * tick)
	} else if cfg.Protocol == "raft" {
		ticks := fc.RaftElectionTicks
		if ticks <= 0 {
			ticks = raftmode.DefaultElectionTicks
		}
		res.ElectionTimeoutMs = ms(time.Duration(ticks) * tick)
	}
	if attack {
		err = measureAttack(ctx, cfg, plan, cl, prog, &res)
	} else {
		err = measure(ctx, cfg, cl, prog, &res)
	}
	if err != nil && !cfg.Keep && cfg.WorkDir == "" {
		err = fmt.Errorf("%w (replica logs removed; --keep keeps them)", err)
	} else if err != nil {
		err = fmt.Errorf("%w (replica logs in %s)", err, cl.dir)
	}
	return res, err
}

// byzantineReplicas returns which replica runs which byzantine strategy
// in cfg's scenario, and whether the strategies start inactive
// (--byzantine-toggle, the attack scenarios).
func byzantineReplicas(cfg Config) (map[int]string, bool) {
	if cfg.Scenario == ScenarioByzantine {
		// Replica 0 is the primary of view 0.
		return map[int]string{0: cfg.ByzantineStrategy}, false
	}
	if plan, _ := planFor(cfg.Scenario, cfg.Replicas); plan.replicaAttack() {
		return map[int]string{plan.replica: plan.strategy}, true
	}
	return nil, false
}

// header fills in the result's description of the configuration.
func header(cfg Config) Result {
	r := Result{
		Label: cfg.Label, App: cfg.App, Protocol: cfg.Protocol, Replicas: cfg.Replicas, F: cfg.faultTolerance(),
		Fsync: !cfg.NoFsync, Scenario: cfg.Scenario, Load: "closed", Clients: cfg.Clients, Connections: cfg.Connections, Window: cfg.Window,
		PayloadBytes: cfg.Payload, GetRatio: cfg.GetRatio,
		DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(),
		ClientRetransmitMs: ms(cfg.ClientRetransmit),
	}
	if cfg.Scenario == ScenarioByzantine {
		r.ByzantineStrategy = cfg.ByzantineStrategy
	}
	if cfg.Rate > 0 {
		r.Load, r.TargetRateOps = "open", cfg.Rate
	}
	return r
}

// clusterClients makes cfg's clients for the started cluster cl.
func clusterClients(cfg Config, cl *cluster) ([]*client.Client, error) {
	clusterID, members, err := cl.clientConfig()
	if err != nil {
		return nil, err
	}
	return newClients(cfg, clusterID, members)
}

// measure runs the load against a started cluster and fills in res.
func measure(ctx context.Context, cfg Config, cl *cluster, prog progress, res *Result) error {
	clients, err := clusterClients(cfg, cl)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	var work workload = newKVWorkload(cfg)
	if issuer := cl.spec.ledgerIssuer; issuer != nil {
		prog.say("minting to %d client accounts", len(clients))
		if work, err = mintToClients(ctx, cfg, issuer, cl, clients); err != nil {
			return err
		}
	} else if cfg.Scenario != ScenarioByzantine {
		// The Byzantine primary's fault would be spent on the probe; there
		// the measurement starts with the load instead.
		if err := probe(ctx, clients[0]); err != nil {
			return err
		}
	}
	if cfg.Scenario == ScenarioCrashBackup {
		victim, leader, err := cl.killBackup(ctx, cfg.Replicas)
		if err != nil {
			return err
		}
		prog.say("killed backup replica %d (leader is %d)", victim, leader)
		res.KilledReplica, res.LeaderBefore = ptr(victim), ptr(leader)
	}

	ld := newLoad(cfg, writers(cfg, spread(clients, cfg.Clients)), work)
	start, stopLoad := ld.background(ctx, prog)
	defer stopLoad()

	from, to := cfg.Warmup, cfg.Warmup+cfg.Duration
	if err := sleepUntil(ctx, start.Add(from)); err != nil {
		return err
	}
	before, err := sampleAll(ctx, cl)
	if err != nil {
		return err
	}
	meter := startCPUMeter()
	after := make(map[int]counters)
	var killedAt time.Duration
	if cfg.Scenario == ScenarioCrashLeader {
		if err := sleepUntil(ctx, start.Add(from+cfg.Duration/3)); err != nil {
			return err
		}
		leader, err := cl.leader(ctx)
		if err != nil {
			return err
		}
		if after[leader], err = cl.sample(ctx, leader); err != nil {
			return err
		}
		if err := cl.kill(leader); err != nil {
			return err
		}
		killedAt = time.Since(start)
		prog.say("killed leader replica %d at %.1fs", leader, killedAt.Seconds())
		res.KilledReplica, res.LeaderBefore, res.KilledAtS = ptr(leader), ptr(leader), ptr(killedAt.Seconds())
	}
	if err := sleepUntil(ctx, start.Add(to)); err != nil {
		return err
	}
	end, err := sampleAll(ctx, cl)
	if err != nil {
		return err
	}
	meter.stop()
	for i, s := range end {
		after[i] = s
	}
	stopLoad()
	if cfg.Scenario == ScenarioCrashLeader {
		if leader, err := cl.leader(ctx); err == nil {
			res.LeaderAfter = ptr(leader)
		}
	}

	samples, failed := ld.rec.snapshot()
	w := within(samples, from, to)
	summarize(res, w, failed, int(ld.dropped.Load()), cfg.Duration, before, after)
	rc, pauses := clientCounts(ld.clients)
	res.FastReads, res.ReadFallbacks, res.TentativePauses = rc.Fast, rc.Fallback, pauses
	meter.report(res, w.ops, cfg.Duration)
	switch cfg.Scenario {
	case ScenarioCrashLeader:
		res.UnavailabilityMs = ptr(ms(Unavailability(w.completed, killedAt, to)))
	case ScenarioByzantine:
		res.UnavailabilityMs = ptr(ms(Unavailability(w.completed, from, to)))
	}
	if res.Ops == 0 {
		return fmt.Errorf("no operation completed in the measured %v (%d failed)", cfg.Duration, failed)
	}
	return nil
}

// probe orders one operation: the cluster commits before the load starts.
func probe(ctx context.Context, cl *client.Client) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := cl.Invoke(pctx, execution.EncodePut([]byte("bench-probe"), []byte("1"))); err != nil {
		return fmt.Errorf("the cluster committed no operation within %v: %w", probeTimeout, err)
	}
	return nil
}

// summarize fills in throughput, latency, CPU and bytes.
func summarize(res *Result, w window, failed, dropped int, d time.Duration, before, after map[int]counters) {
	res.Ops, res.FailedOps, res.DroppedOps = w.ops, failed, dropped
	res.ThroughputOps = float64(w.ops) / d.Seconds()
	res.LatencyP50Ms = ms(Percentile(w.latencies, 0.50))
	res.LatencyP95Ms = ms(Percentile(w.latencies, 0.95))
	res.LatencyP99Ms = ms(Percentile(w.latencies, 0.99))
	res.LatencyMaxMs = ms(Percentile(w.latencies, 1))
	res.ReadOps, res.WriteOps = len(w.readLatencies), len(w.writeLatencies)
	res.ReadThroughputOps = float64(res.ReadOps) / d.Seconds()
	res.WriteThroughputOps = float64(res.WriteOps) / d.Seconds()
	res.ReadLatencyP50Ms = ms(Percentile(w.readLatencies, 0.50))
	res.ReadLatencyP99Ms = ms(Percentile(w.readLatencies, 0.99))
	res.WriteLatencyP50Ms = ms(Percentile(w.writeLatencies, 0.50))
	res.WriteLatencyP99Ms = ms(Percentile(w.writeLatencies, 0.99))
	if res.CryptoCeilingOps != nil && *res.CryptoCeilingOps > 0 {
		res.CryptoCeilingFraction = ptr(res.ThroughputOps / *res.CryptoCeilingOps)
	}
	// The drops also when no operation completed (an attack may stop all).
	res.DroppedByReason = droppedBetween(before, after)
	if w.ops == 0 || len(before) == 0 {
		return
	}
	var viewBefore, viewAfter float64
	for _, b := range before {
		viewBefore = max(viewBefore, b.view)
	}
	for _, a := range after {
		viewAfter = max(viewAfter, a.view)
	}
	res.ViewChanges = int(max(0, viewAfter-viewBefore))
	var cpu, p2pBytes, msgBytes, batches, requests, persistSeconds, persists float64
	sampled := 0
	for i, b := range before {
		a, ok := after[i]
		if !ok {
			continue
		}
		cpu += a.cpuSeconds - b.cpuSeconds
		p2pBytes += a.p2pBytesSent - b.p2pBytesSent
		msgBytes += a.msgBytesSent - b.msgBytesSent
		batches += a.batches - b.batches
		requests += a.requests - b.requests
		persistSeconds += a.persistSeconds - b.persistSeconds
		persists += a.persists - b.persists
		sampled++
	}
	if batches > 0 {
		res.RequestsPerBatch = requests / batches
		res.PersistsPerBatch = persists / batches
		res.TentativePerBatch = perBatch(before, after, batches)
	}
	if persists > 0 {
		res.PersistMsAvg = persistSeconds / persists * 1000
	}
	res.PhaseMsAvg = phaseAverages(before, after)
	if sampled > 0 && d > 0 {
		res.PersistBusyFraction = persistSeconds / float64(sampled) / d.Seconds()
	}
	kops := float64(w.ops) / 1000
	res.CPUSecondsPer1kOpsAll = cpu / kops
	res.CPUSecondsPer1kOpsPerReplica = cpu / kops / float64(len(before))
	res.BytesSentPerOp = p2pBytes / float64(w.ops)
	res.MessageBytesSentPerOp = msgBytes / float64(w.ops)
}

// phaseAverages is the mean time to each phase (pbftnode_phase_seconds)
// in milliseconds, over the replicas sampled before and after, or nil
// without phases.
func phaseAverages(before, after map[int]counters) map[string]float64 {
	seconds, count := make(map[string]float64), make(map[string]float64)
	for i, b := range before {
		a, ok := after[i]
		if !ok {
			continue
		}
		for phase, n := range a.phases {
			count[phase] += n - b.phases[phase]
			seconds[phase] += a.phaseSeconds[phase] - b.phaseSeconds[phase]
		}
	}
	var avg map[string]float64
	for phase, n := range count {
		if n > 0 {
			if avg == nil {
				avg = make(map[string]float64)
			}
			avg[phase] = seconds[phase] / n * 1000
		}
	}
	return avg
}

// perBatch is each outcome's tentative executions (pbftnode_tentative_
// batches_total), summed over the replicas sampled both times, over
// batches (nil when none).
func perBatch(before, after map[int]counters, batches float64) map[string]float64 {
	out := labelledDeltas(before, after, func(c counters) map[string]float64 { return c.tentative })
	for outcome := range out {
		out[outcome] /= batches
	}
	return out
}

// droppedBetween sums, over the replicas sampled both times, how many
// messages each reason dropped from before to after (nil: none).
func droppedBetween(before, after map[int]counters) map[string]float64 {
	return labelledDeltas(before, after, func(c counters) map[string]float64 { return c.dropped })
}

// labelledDeltas sums, over the replicas sampled both times, how much
// each label of the counter series picks grew from before to after (nil:
// none grew).
func labelledDeltas(before, after map[int]counters, series func(counters) map[string]float64) map[string]float64 {
	var out map[string]float64
	for i, b := range before {
		a, ok := after[i]
		if !ok {
			continue
		}
		was := series(b)
		for label, v := range series(a) {
			if d := v - was[label]; d > 0 {
				if out == nil {
					out = make(map[string]float64)
				}
				out[label] += d
			}
		}
	}
	return out
}

// sampleAll samples every running replica.
func sampleAll(ctx context.Context, cl *cluster) (map[int]counters, error) {
	out := make(map[int]counters)
	for _, i := range cl.running() {
		s, err := cl.sample(ctx, i)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// replicaTick reads the replica configuration at home and returns its
// tick interval and the file. The timeouts are counted in ticks: PBFT's
// view-change timeout is protocol.DefaultViewChangeTimeoutTicks (not
// configurable), Raft's election timeout raft_election_ticks (default
// raftmode.DefaultElectionTicks).
func replicaTick(home string) (time.Duration, config.FileConfig) {
	tick := node.DefaultTickInterval
	var fc config.FileConfig
	if err := config.ReadJSON(filepath.Join(home, config.FileName), &fc); err == nil && fc.TickInterval != "" {
		if d, err := time.ParseDuration(fc.TickInterval); err == nil && d > 0 {
			tick = d
		}
	}
	return tick, fc
}

// errNoResults is returned by Compare when no configuration succeeded.
var errNoResults = errors.New("no configuration could be measured")

// startHarnessProfile writes the bench process's CPU profile (its
// clients, from cluster start to the end of the run) to
// dir/harness.pprof until the returned function is called.
func startHarnessProfile(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "harness.pprof"))
	if err != nil {
		return nil, fmt.Errorf("harness profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("harness profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
