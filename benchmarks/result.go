package benchmarks

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Result is what one configuration measured. The JSON names are the
// interface of `pbftnode bench --json`; optional fields are omitted where
// they do not apply (crypto_ceiling_* for Raft, unavailability_ms without
// a crash or Byzantine fault).
type Result struct {
	Label string `json:"label"`
	// Group is the part of the Compare matrix the result belongs to (one
	// of the Group constants); empty for a single run.
	Group string `json:"group,omitempty"`
	// App is the replicated application: AppKV (puts and gets) or
	// AppLedger (transfers, and balance reads for GetRatio).
	App               string  `json:"app"`
	Protocol          string  `json:"protocol"`
	Replicas          int     `json:"replicas"`
	F                 int     `json:"f"`
	Fsync             bool    `json:"fsync"`
	Scenario          string  `json:"scenario"`
	ByzantineStrategy string  `json:"byzantine_strategy,omitempty"`
	Load              string  `json:"load"` // "closed" or "open"
	Clients           int     `json:"clients"`
	Window            int     `json:"window"`
	TargetRateOps     float64 `json:"target_rate_ops,omitempty"`
	PayloadBytes      int     `json:"payload_bytes"`
	GetRatio          float64 `json:"get_ratio"`
	DurationS         float64 `json:"duration_s"`
	WarmupS           float64 `json:"warmup_s"`

	Ops           int     `json:"ops"`
	FailedOps     int     `json:"failed_ops"`
	DroppedOps    int     `json:"dropped_ops,omitempty"`
	ThroughputOps float64 `json:"throughput_ops"`
	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP95Ms  float64 `json:"latency_p95_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`
	// The same split by kind: reads (gets, balances; GetRatio of the
	// operations, sent through client.Read) and writes (ordered). The
	// totals above count both.
	ReadOps            int     `json:"read_ops"`
	WriteOps           int     `json:"write_ops"`
	ReadThroughputOps  float64 `json:"read_throughput_ops"`
	WriteThroughputOps float64 `json:"write_throughput_ops"`
	ReadLatencyP50Ms   float64 `json:"read_latency_p50_ms"`
	ReadLatencyP99Ms   float64 `json:"read_latency_p99_ms"`
	WriteLatencyP50Ms  float64 `json:"write_latency_p50_ms"`
	WriteLatencyP99Ms  float64 `json:"write_latency_p99_ms"`
	// FastReads counts the reads answered on the read-only path over the
	// whole run, ReadFallbacks those the clients ordered instead (answers
	// disagreed, were refused or late).
	FastReads     uint64 `json:"fast_reads"`
	ReadFallbacks uint64 `json:"read_fallbacks"`
	// TentativePauses counts the times a client stopped asking for
	// tentative replies after a call whose tentative quorum did not form
	// before its retransmission (client.Config.TentativePause).
	TentativePauses uint64 `json:"tentative_pauses"`

	// CPUSecondsPer1kOpsPerReplica is the replicas' CPU time (utime+stime
	// from /proc, 100 Hz ticks) over the measured interval, per 1000
	// operations, divided by the number of replicas measured.
	CPUSecondsPer1kOpsPerReplica float64 `json:"cpu_seconds_per_1k_ops_per_replica"`
	// CPUSecondsPer1kOpsAll is the same summed over the replicas.
	CPUSecondsPer1kOpsAll float64 `json:"cpu_seconds_per_1k_ops_all_replicas"`
	// HarnessCPUSecondsPer1kOps is the bench process's own CPU time (the
	// clients: signing, transport, bookkeeping) per 1000 operations; it
	// competes with the replicas for the same cores.
	HarnessCPUSecondsPer1kOps float64 `json:"harness_cpu_seconds_per_1k_ops"`
	// BackgroundCPUCores is how many cores, on average over the measured
	// interval, processes outside the benchmark kept busy (machine busy
	// time from /proc/stat minus the replicas' and the harness's). Above
	// a few tenths the run competed with other work and its figures are
	// low.
	BackgroundCPUCores float64 `json:"background_cpu_cores"`
	// QuietWaitS is how long the run waited for the machine to settle
	// first, and StartLoadCores the load it saw last (both with
	// Config.QuietWait only).
	QuietWaitS     float64 `json:"quiet_wait_s,omitempty"`
	StartLoadCores float64 `json:"start_load_cores,omitempty"`
	// BytesSentPerOp is the replicas' transport bytes sent (frames to each
	// peer and client, pbftnode_p2p_bytes_sent_total) per operation.
	BytesSentPerOp float64 `json:"bytes_sent_per_op"`
	// MessageBytesSentPerOp counts encoded protocol messages, a broadcast
	// once (pbftnode_message_bytes_sent_total), per operation.
	MessageBytesSentPerOp float64 `json:"message_bytes_sent_per_op"`
	// RequestsPerBatch is committed requests over committed batches (PBFT
	// batches, Raft entries), summed over the replicas.
	RequestsPerBatch float64 `json:"requests_per_batch,omitempty"`
	// PersistsPerBatch is the replicas' synced log writes
	// (pbftnode_persist_seconds: PBFT appends, Raft saves) per committed
	// batch, PersistMsAvg their mean duration, and PersistBusyFraction the
	// share of the measured time a replica spends in them, averaged over
	// the replicas: how much of its event loop waits for the disk.
	PersistsPerBatch    float64 `json:"persists_per_batch,omitempty"`
	PersistMsAvg        float64 `json:"persist_ms_avg,omitempty"`
	PersistBusyFraction float64 `json:"persist_busy_fraction,omitempty"`
	// PhaseMsAvg is, per phase of pbftnode_phase_seconds (PBFT: prepared,
	// committed, executed), the mean time from a sequence's PRE-PREPARE
	// at a replica to that phase there, over the replicas and the
	// measured sequences: where one operation's time goes inside the
	// cluster.
	PhaseMsAvg map[string]float64 `json:"phase_ms_avg,omitempty"`
	// TentativePerBatch is, per outcome of
	// pbftnode_tentative_batches_total (executed, committed, discarded),
	// the replicas' count over their committed batches: the share of
	// batches a replica answered tentatively (PBFT).
	TentativePerBatch map[string]float64 `json:"tentative_per_batch,omitempty"`
	// DroppedByReason counts, summed over the replicas, the messages and
	// requests they dropped during the measurement, by reason
	// (pbftnode_messages_dropped_total, and p2p_* for the transport's
	// queues and rate limit). Some drops are routine (duplicates, stale
	// votes); client requests dropped (e.g. client_queue_full) each cost
	// a client retransmission.
	DroppedByReason map[string]float64 `json:"dropped_by_reason,omitempty"`

	CryptoCeilingOps      *float64       `json:"crypto_ceiling_ops,omitempty"`
	CryptoCeilingFraction *float64       `json:"crypto_ceiling_fraction,omitempty"`
	CryptoCeiling         *CeilingReport `json:"crypto_ceiling,omitempty"`

	// ViewChanges is how far the highest PBFT view or Raft term any
	// replica reported advanced during the measured interval: leader
	// changes (a Raft election may take more than one term).
	ViewChanges int `json:"view_changes"`

	KilledReplica    *int     `json:"killed_replica,omitempty"`
	KilledAtS        *float64 `json:"killed_at_s,omitempty"`
	LeaderBefore     *int     `json:"leader_before,omitempty"`
	LeaderAfter      *int     `json:"leader_after,omitempty"`
	UnavailabilityMs *float64 `json:"unavailability_ms,omitempty"`
	// ViewChangeTimeoutMs is PBFT's configured view-change timeout;
	// ElectionTimeoutMs is Raft's base election timeout (each follower
	// draws its timeout from [1x, 2x) of it).
	ViewChangeTimeoutMs float64 `json:"view_change_timeout_ms,omitempty"`
	ElectionTimeoutMs   float64 `json:"election_timeout_ms,omitempty"`
	ClientRetransmitMs  float64 `json:"client_retransmit_ms"`

	// The peer systems (Config.Peer; Protocol is then "etcd" or
	// "cometbft", Replicas its members). PeerVersion is what the peer's
	// executable reports. PeerConnections is how many client connections
	// the logical clients share, round robin: etcd clientv3 clients (each
	// one gRPC connection balanced over every member), or CometBFT's
	// bound on HTTP connections per validator.
	PeerVersion     string `json:"peer_version,omitempty"`
	PeerConnections int    `json:"peer_connections,omitempty"`
	// Connections is how many connections the logical clients shared
	// (Config.Connections): pbftnode client instances, or etcd clients.
	Connections int `json:"connections,omitempty"`
	// CometBFTTimeoutCommitMs is the validators' timeout_commit.
	CometBFTTimeoutCommitMs float64 `json:"cometbft_timeout_commit_ms,omitempty"`

	// The attack scenarios (issue 15) measure a fault-free baseline, then
	// the attack (the fields above, and view_changes from the attack's
	// start to the end of the recovery), then the recovery.
	// BaselineThroughputOps and the BaselineLatency fields are the
	// baseline's honest load.
	BaselineOps           int      `json:"baseline_ops,omitempty"`
	BaselineThroughputOps *float64 `json:"baseline_throughput_ops,omitempty"`
	BaselineLatencyP50Ms  *float64 `json:"baseline_latency_p50_ms,omitempty"`
	BaselineLatencyP99Ms  *float64 `json:"baseline_latency_p99_ms,omitempty"`
	// MaxRSSGrowthMiB is the largest growth of any replica's resident
	// memory (VmRSS, sampled every 250 ms during the attack and the
	// recovery) over its value at the end of the baseline, RSSBaseMiB.
	MaxRSSGrowthMiB *float64           `json:"max_rss_growth_mib,omitempty"`
	RSSBaseMiB      map[string]float64 `json:"rss_base_mib,omitempty"`
	// RecoveryMs is how long after the attack stopped the first 1 s
	// window began that held at least 0.9 of the baseline's throughput;
	// when none did within Config.RecoveryCap, it is the cap and
	// Recovered is false.
	RecoveryMs *float64 `json:"recovery_ms,omitempty"`
	Recovered  *bool    `json:"recovered,omitempty"`
	// AttackStartS and AttackStopS are when the attack started and
	// stopped, in seconds since the load started.
	AttackStartS *float64 `json:"attack_start_s,omitempty"`
	AttackStopS  *float64 `json:"attack_stop_s,omitempty"`
	// AttackingReplica runs AttackStrategy (replica attacks); Attack is
	// the attacking client's report and AttackerCPUCores its CPU use
	// during the attack (client attacks).
	AttackingReplica *int          `json:"attacking_replica,omitempty"`
	AttackStrategy   string        `json:"attack_strategy,omitempty"`
	Attack           *AttackReport `json:"attack,omitempty"`
	AttackerCPUCores *float64      `json:"attacker_cpu_cores,omitempty"`

	// Error is set when the configuration could not be measured (Compare
	// keeps going and reports it).
	Error string `json:"error,omitempty"`
}

// CeilingReport is cryptoceiling.Result as measured in the run.
type CeilingReport struct {
	OpsPerSecond  float64 `json:"ops_per_second"`
	SignNanos     float64 `json:"sign_ns"`
	VerifyNanos   float64 `json:"verify_ns"`
	Verifications int     `json:"verifications_per_op"`
	Workers       int     `json:"workers"`
	Batch         int     `json:"batch"`
	DurationS     float64 `json:"duration_s"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr[T any](v T) *T { return &v }

// WriteJSON writes one indented JSON object for a single result, or a
// list for several.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	var err error
	if len(results) == 1 {
		err = enc.Encode(results[0])
	} else {
		err = enc.Encode(results)
	}
	if err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// WriteTable writes the human-readable table: one row per result. The
// last column is BackgroundCPUCores: how busy the machine was with other
// work meanwhile.
func WriteTable(w io.Writer, results []Result) error {
	// Numbers right-aligned; labels padded to one width so that they
	// read left-aligned.
	width := labelWidth(results, func(r Result) string { return r.Label })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tops/s\treads/s\twrites/s\tp50 ms\tp95 ms\tp99 ms\tread p99\twrite p99\tCPU s/1k ops/replica\tbytes/op\treq/batch\tceiling ops/s\tof ceiling\tunavail ms\tbg cores\t\n", width, "configuration")
	for _, r := range results {
		if r.Error != "" {
			// The message trails the cells, so it widens no column.
			fmt.Fprintf(tw, "%-*s\terror\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t  %s\n", width, r.Label, oneLine(r.Error, 100))
			continue
		}
		ceiling, frac, unavail := "-", "-", "-"
		if r.CryptoCeilingOps != nil {
			ceiling = fmt.Sprintf("%.0f", *r.CryptoCeilingOps)
		}
		if r.CryptoCeilingFraction != nil {
			frac = fmt.Sprintf("%.0f%%", 100**r.CryptoCeilingFraction)
		}
		if r.UnavailabilityMs != nil {
			unavail = fmt.Sprintf("%.0f", *r.UnavailabilityMs)
		}
		fmt.Fprintf(tw, "%-*s\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.0f\t%.1f\t%s\t%s\t%s\t%.2f\t\n",
			width, r.Label, r.ThroughputOps, r.ReadThroughputOps, r.WriteThroughputOps, r.LatencyP50Ms, r.LatencyP95Ms, r.LatencyP99Ms,
			r.ReadLatencyP99Ms, r.WriteLatencyP99Ms,
			r.CPUSecondsPer1kOpsPerReplica, r.BytesSentPerOp, r.RequestsPerBatch, ceiling, frac, unavail, r.BackgroundCPUCores)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// oneLine cuts s at its first newline and at most n bytes.
func oneLine(s string, n int) string {
	for i := range len(s) {
		if s[i] == '\n' {
			s = s[:i]
			break
		}
	}
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// labelWidth is the width of a table's first column: "configuration" or
// the longest label of results, whichever is longer.
func labelWidth[R any](results []R, label func(R) string) int {
	width := len("configuration")
	for _, r := range results {
		width = max(width, len(label(r)))
	}
	return width
}
