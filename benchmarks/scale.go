package benchmarks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The scale sweeps (issue 21, "cost as work grows"): saturated throughput
// against the cluster size n, and throughput, memory and a wiped
// replica's catch-up time against the size of the state (preloaded with
// `pbftnode testnet --preload-keys`).
const (
	SweepN    = "n"    // no fault, saturated, each n
	SweepKeys = "keys" // the smallest cluster, saturated, each preloaded state size
)

// Scale plans ScalePlan knows.
const (
	ScalePlanSmall = "small" // PBFT n=4,7, Raft n=3,5; 10k and 100k keys: to validate
	ScalePlanFull  = "full"  // ScalePlanN then ScalePlanKeys
	ScalePlanN     = "n"     // PBFT n=4,7,10,13 and Raft n=3,5,7,9
	ScalePlanKeys  = "keys"  // PBFT n=4 and Raft n=3 at 10k, 100k, 1M and 10M keys
	// ScalePlanKeysOne is the prefix of a one-row selection of
	// ScalePlanKeys: "keys:SIZE" (both protocols) or "keys:SIZE:PROTOCOL",
	// SIZE as in the table (10k, 100k, 1M, 10M) or in digits, e.g.
	// "keys:1M:pbft" to rerun one catch-up measurement.
	ScalePlanKeysOne = "keys:"
)

// ScalePlans lists the plan names.
var ScalePlans = []string{ScalePlanSmall, ScalePlanFull, ScalePlanN, ScalePlanKeys}

// ScaleCase is one configuration of a scale sweep.
type ScaleCase struct {
	Sweep    string // SweepN or SweepKeys
	Protocol string // "pbft" or "raft"
	Replicas int
	// Keys is the preloaded state (SweepKeys; 0 for SweepN, whose load
	// uses the base configuration's key space on an empty state).
	Keys int
}

// ScalePlan returns the configurations plan runs, in order: within a
// sweep PBFT and Raft alternate, so the machine's drift touches both.
func ScalePlan(plan string) ([]ScaleCase, error) {
	nSweep := func(pbft, raft []int) []ScaleCase {
		var out []ScaleCase
		for i := range max(len(pbft), len(raft)) {
			if i < len(pbft) {
				out = append(out, ScaleCase{Sweep: SweepN, Protocol: "pbft", Replicas: pbft[i]})
			}
			if i < len(raft) {
				out = append(out, ScaleCase{Sweep: SweepN, Protocol: "raft", Replicas: raft[i]})
			}
		}
		return out
	}
	keySweep := func(sizes ...int) []ScaleCase {
		var out []ScaleCase
		for _, k := range sizes {
			out = append(out, ScaleCase{Sweep: SweepKeys, Protocol: "pbft", Replicas: 4, Keys: k},
				ScaleCase{Sweep: SweepKeys, Protocol: "raft", Replicas: 3, Keys: k})
		}
		return out
	}
	fullN := nSweep([]int{4, 7, 10, 13}, []int{3, 5, 7, 9})
	fullKeys := keySweep(10_000, 100_000, 1_000_000, 10_000_000)
	switch plan {
	case ScalePlanSmall:
		return append(nSweep([]int{4, 7}, []int{3, 5}), keySweep(10_000, 100_000)...), nil
	case ScalePlanFull:
		return append(fullN, fullKeys...), nil
	case ScalePlanN:
		return fullN, nil
	case ScalePlanKeys:
		return fullKeys, nil
	}
	if sel, ok := strings.CutPrefix(plan, ScalePlanKeysOne); ok {
		return selectKeys(fullKeys, sel)
	}
	return nil, fmt.Errorf("%w: scale plan %q: want one of %s", ErrConfig, plan, strings.Join(ScalePlans, ", "))
}

// ScaleOptions configure Scale.
type ScaleOptions struct {
	// Base is the configuration every case starts from (binary,
	// duration, warmup, clients, logger, progress); each case sets the
	// protocol, n and, for SweepKeys, the key space to the preloaded
	// keys.
	Base Config
	// Plan is one of ScalePlans.
	Plan string
	// PreloadValueBytes is each preloaded value's size (0: the testnet's
	// default, 100 bytes).
	PreloadValueBytes int
	// CatchUpTimeout bounds how long a wiped replica may take to catch up
	// (default 5 min).
	CatchUpTimeout time.Duration
	// OnResult, when set, is called after each case.
	OnResult func(ScaleResult)
}

// ScaleResult is one case's measurement: Result (throughput, latency,
// CPU) plus the scale figures.
type ScaleResult struct {
	Result
	Sweep string `json:"sweep"`
	// PreloadKeys is the state size (SweepKeys).
	PreloadKeys int `json:"preload_keys,omitempty"`
	// LoadAvg1 is the machine's one-minute load average when the case
	// started (/proc/loadavg): above about 2 on this 2-core machine other
	// work competed.
	LoadAvg1 float64 `json:"load_avg_1m"`
	// SetupS is how long writing the testnet (with its preload and
	// copies) and starting the replicas took.
	SetupS float64 `json:"setup_s,omitempty"`
	// RSSMiB is each replica's peak resident memory (VmRSS sampled every
	// 250 ms) during the measured load; MaxRSSMiB the largest.
	RSSMiB    map[string]float64 `json:"rss_mib,omitempty"`
	MaxRSSMiB float64            `json:"max_rss_mib,omitempty"`
	// CatchUpMs is how long a backup, killed and restarted with its data
	// wiped under the same load, took from its restart until its executed
	// sequence reached the lowest of the others' (read just before);
	// CaughtUp is false (and CatchUpMs the timeout) when it did not.
	CatchUpMs       *float64 `json:"catch_up_ms,omitempty"`
	CaughtUp        *bool    `json:"caught_up,omitempty"`
	CatchUpReplica  *int     `json:"catch_up_replica,omitempty"`
	CatchUpSequence uint64   `json:"catch_up_sequence,omitempty"`
	// CatchUpTransfers is how many state transfers the wiped replica
	// started (pbftnode_state_transfers_total; each retarget to a newer
	// checkpoint counts) and CatchUpTransferS the seconds its completed
	// ones took (pbftnode_state_transfer_seconds), read when the wait
	// ended.
	CatchUpTransfers *float64 `json:"catch_up_transfers,omitempty"`
	CatchUpTransferS *float64 `json:"catch_up_transfer_s,omitempty"`
}

// Scale runs the plan's cases one after the other and returns every
// result; a case that fails is reported with Error set and the sweep
// continues.
func Scale(ctx context.Context, opts ScaleOptions) ([]ScaleResult, error) {
	cases, err := ScalePlan(opts.Plan)
	if err != nil {
		return nil, err
	}
	if opts.CatchUpTimeout <= 0 {
		opts.CatchUpTimeout = 5 * time.Minute
	}
	var results []ScaleResult
	for _, c := range cases {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		cfg := scaleConfig(opts.Base, c)
		if cfg.WorkDir != "" {
			// One directory per case: a testnet written over another's
			// would start on its state.
			cfg.WorkDir = filepath.Join(cfg.WorkDir, fmt.Sprintf("%s-%s-n%d-keys%d", c.Sweep, c.Protocol, c.Replicas, c.Keys))
		}
		var r ScaleResult
		load := loadAverage()
		if c.Sweep == SweepN {
			r.Result, err = Run(ctx, cfg)
			r.Group = GroupScaling
		} else {
			r, err = runKeysCase(ctx, cfg, c, opts)
		}
		r.Sweep, r.PreloadKeys, r.LoadAvg1 = c.Sweep, c.Keys, load
		if err != nil {
			if r.Label == "" {
				r.Label = cfg.Label
			}
			r.Error = err.Error()
			cfg.Logger.Warn("scale case failed", "label", r.Label, "err", err)
		}
		results = append(results, r)
		if opts.OnResult != nil {
			opts.OnResult(r)
		}
	}
	return results, nil
}

// scaleConfig is the base configuration set to case c.
func scaleConfig(base Config, c ScaleCase) Config {
	cfg := base
	cfg.Protocol, cfg.Replicas, cfg.Scenario, cfg.Label = c.Protocol, c.Replicas, ScenarioNone, ""
	if c.Keys > 0 {
		cfg.Keys = c.Keys
		// The crypto ceiling does not depend on the state.
		cfg.CeilingDuration = -1
	}
	if cfg, err := cfg.withDefaults(); err == nil {
		if c.Keys > 0 {
			cfg.Label += " keys=" + humanCount(c.Keys)
		}
		return cfg
	}
	return cfg
}

// selectKeys returns the cases of keys that sel ("SIZE" or
// "SIZE:PROTOCOL") names, or ErrConfig when it names none.
func selectKeys(keys []ScaleCase, sel string) ([]ScaleCase, error) {
	size, protocol, _ := strings.Cut(sel, ":")
	var out []ScaleCase
	for _, c := range keys {
		if (size == humanCount(c.Keys) || size == strconv.Itoa(c.Keys)) && (protocol == "" || protocol == c.Protocol) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: scale plan %q selects no row of %q", ErrConfig, ScalePlanKeysOne+sel, ScalePlanKeys)
	}
	return out, nil
}

// humanCount writes 10000 as 10k, 1000000 as 1M.
func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}

// loadAverage is the one-minute load average (0 if unreadable).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fields[0], 64)
	return v
}

// raftPreloadSnapshotInterval is the Raft snapshot interval of the
// preloaded clusters. The preload is not in the Raft log: a follower
// wiped while the leader still holds entry 1 would replay the log onto
// an empty state. The leader compacts its log below its previous
// snapshot when it takes the next, so once every replica executed
// catchUpFloor(Raft) entries a wiped follower must take a snapshot,
// which holds the preload.
const raftPreloadSnapshotInterval = 256

// pbftCheckpointInterval is PBFT's default checkpoint interval
// (protocol.DefaultCheckpointInterval, which the testnet keeps).
const pbftCheckpointInterval = 128

// catchUpFloor is the executed sequence every replica must pass before a
// backup is wiped: two intervals past the start, so the others' logs no
// longer hold sequence 1 and the wiped replica catches up by state
// transfer, which carries the preload.
func catchUpFloor(protocol string) uint64 {
	if protocol == "raft" {
		return 2*raftPreloadSnapshotInterval + 1
	}
	return 2*pbftCheckpointInterval + 1
}

// runKeysCase measures cfg on a cluster preloaded with c.Keys keys:
// saturated throughput and each replica's peak memory, then the catch-up
// time of a wiped backup under the same load.
func runKeysCase(ctx context.Context, cfg Config, c ScaleCase, opts ScaleOptions) (ScaleResult, error) {
	r := ScaleResult{Result: header(cfg)}
	r.Group = SweepKeys
	prog := progress{w: cfg.Progress, label: cfg.Label}
	workDir := cfg.WorkDir
	if workDir == "" {
		var err error
		if workDir, err = os.MkdirTemp("", "pbftnode-scale-"); err != nil {
			return r, fmt.Errorf("work directory: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(workDir)
		}
	}
	spec := clusterSpec{
		binary: cfg.Binary, protocol: cfg.Protocol, replicas: cfg.Replicas, noFsync: cfg.NoFsync,
		logLevel: cfg.ReplicaLogLevel, profDir: cfg.CPUProfileDir, dir: workDir, log: cfg.Logger,
		rng:         rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), cfg.Seed)),
		testnetArgs: []string{"--preload-keys", strconv.Itoa(c.Keys)},
	}
	if opts.PreloadValueBytes > 0 {
		spec.testnetArgs = append(spec.testnetArgs, "--preload-value-bytes", strconv.Itoa(opts.PreloadValueBytes))
	}
	if c.Protocol == "raft" {
		spec.testnetArgs = append(spec.testnetArgs, "--raft-snapshot-interval", strconv.Itoa(raftPreloadSnapshotInterval))
	}
	prog.say("writing %d %s replicas preloaded with %d keys and starting them", cfg.Replicas, cfg.Protocol, c.Keys)
	setupStart := time.Now()
	cl, err := startCluster(ctx, spec)
	if err != nil {
		return r, err
	}
	defer cl.stop()
	r.SetupS = time.Since(setupStart).Seconds()

	sampler := startRSSSampler(cl, 250*time.Millisecond)
	err = measure(ctx, cfg, cl, prog, &r.Result)
	peaks := sampler.stop()
	r.RSSMiB = make(map[string]float64)
	for i, ss := range peaks {
		if len(ss) == 0 {
			continue
		}
		var peak uint64
		for _, v := range ss {
			peak = max(peak, v)
		}
		r.RSSMiB[strconv.Itoa(i)] = float64(peak) / (1 << 20)
		r.MaxRSSMiB = max(r.MaxRSSMiB, r.RSSMiB[strconv.Itoa(i)])
	}
	if err != nil {
		return r, keptLogs(err, cfg, cl)
	}
	if err := measureCatchUp(ctx, cfg, cl, prog, opts.CatchUpTimeout, &r); err != nil {
		return r, keptLogs(err, cfg, cl)
	}
	return r, nil
}

// keptLogs says where the replica logs are, if kept.
func keptLogs(err error, cfg Config, cl *cluster) error {
	if cfg.Keep || cfg.WorkDir != "" {
		return fmt.Errorf("%w (replica logs in %s)", err, cl.dir)
	}
	return fmt.Errorf("%w (replica logs removed; --keep keeps them)", err)
}
