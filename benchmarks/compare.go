package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// CompareOptions configures the standard matrix.
type CompareOptions struct {
	// Base holds what every configuration shares: binary, workload
	// (clients, window, payload, get ratio), duration, warmup, seed,
	// logger and progress writer. Protocol, Replicas, Scenario, NoFsync
	// and Rate are set per configuration.
	Base Config
	// Protocols to run (default pbft and raft).
	Protocols []string
	// PBFTReplicas and RaftReplicas are the cluster sizes of the scaling
	// runs (default 4, 7, 10 and 3, 5, 7: f = 1, 2, 3 for both); the
	// first is the size of every other configuration of that protocol.
	PBFTReplicas []int
	RaftReplicas []int
	// SweepFractions are the open-loop rates, as fractions of the
	// saturated throughput the first scaling run measured (default 0.1,
	// 0.25, 0.5, 0.75, 0.9).
	SweepFractions []float64
	// Peers are the peer systems measured beside pbftnode (default
	// Peers: etcd and CometBFT), each at the saturated load (Base's
	// clients and window), the moderate load (64 x 1) and one client.
	// A peer whose executable is not found is skipped (OnPeerSkipped).
	Peers []string
	// NoPeers runs no peer system.
	NoPeers bool
	// OnResult, if set, is called after each configuration.
	OnResult func(Result)
	// OnPeerSkipped, if set, is called for each peer Compare skips, with
	// the reason (an ErrPeerMissing error naming the install command).
	OnPeerSkipped func(peer string, reason error)
}

// The moderate load of the matrix (GroupModerate): tens of clients with
// one request each, the load most deployments run and issue 21's
// headline comparison with etcd.
const (
	ModerateClients = 64
	ModerateWindow  = 1
)

func (o CompareOptions) withDefaults() CompareOptions {
	if len(o.Protocols) == 0 {
		o.Protocols = []string{"pbft", "raft"}
	}
	if len(o.PBFTReplicas) == 0 {
		o.PBFTReplicas = []int{4, 7, 10}
	}
	if len(o.RaftReplicas) == 0 {
		o.RaftReplicas = []int{3, 5, 7}
	}
	if o.Base.QuietWait == 0 {
		o.Base.QuietWait = DefaultCompareQuietWait
	}
	if len(o.SweepFractions) == 0 {
		o.SweepFractions = []float64{0.1, 0.25, 0.5, 0.75, 0.9}
	}
	if o.Peers == nil {
		o.Peers = Peers
	}
	if o.NoPeers {
		o.Peers = []string{}
	}
	return o
}

// DefaultCompareQuietWait is how long Compare lets each configuration
// wait for a busy machine to settle (Config.QuietWait) unless the base
// configuration sets it (negative: never wait).
const DefaultCompareQuietWait = 60 * time.Second

// plannedRun is one configuration of the matrix; rateFraction, when
// positive, is resolved against the protocol's saturated throughput.
type plannedRun struct {
	group        string
	cfg          Config
	rateFraction float64
}

// plan lists the matrix's configurations in the order Compare runs them,
// open-loop rates not yet resolved (Rate holds the fraction).
func (o CompareOptions) plan() []plannedRun {
	o = o.withDefaults()
	var runs []plannedRun
	for _, proto := range o.Protocols {
		sizes := o.PBFTReplicas
		if proto == "raft" {
			sizes = o.RaftReplicas
		}
		at := func(group string, n int, edit func(*Config)) plannedRun {
			c := o.Base
			c.Protocol, c.Replicas, c.Scenario, c.Label = proto, n, ScenarioNone, ""
			if edit != nil {
				edit(&c)
			}
			return plannedRun{group: group, cfg: c}
		}
		for _, n := range sizes {
			runs = append(runs, at(GroupScaling, n, nil))
		}
		n0 := sizes[0]
		if proto == "pbft" {
			// Right after PBFT's saturated run, on the same machine state:
			// what PBFT's data path costs without agreement.
			runs = append(runs, at(GroupFloor, n0, func(c *Config) { c.Protocol = ProtocolFloor }))
		}
		runs = append(runs,
			at(GroupFsyncOff, n0, func(c *Config) { c.NoFsync = true }),
			at(GroupCrashBackup, n0, func(c *Config) { c.Scenario = ScenarioCrashBackup }),
			at(GroupCrashLeader, n0, func(c *Config) { c.Scenario = ScenarioCrashLeader }))
		if proto == "pbft" {
			runs = append(runs, at(GroupByzantine, n0, func(c *Config) { c.Scenario = ScenarioByzantine }))
		}
		runs = append(runs,
			at(GroupModerate, n0, func(c *Config) { c.Clients, c.Window = ModerateClients, ModerateWindow }),
			at(GroupOneClient, n0, func(c *Config) { c.Clients, c.Window = 1, 1 }))
		for _, f := range o.SweepFractions {
			r := at(GroupRateSweep, n0, nil)
			r.rateFraction = f
			runs = append(runs, r)
		}
	}
	return append(runs, o.peerRuns()...)
}

// peerRuns lists the peers' configurations: each peer at its default
// size, fsync on, at the saturated, moderate and one-client loads.
func (o CompareOptions) peerRuns() []plannedRun {
	var runs []plannedRun
	for _, peer := range o.Peers {
		at := func(group string, clients, window int) plannedRun {
			c := o.Base
			c.Peer, c.Protocol, c.Replicas, c.Scenario, c.Label, c.NoFsync = peer, peer, 0, ScenarioNone, "", false
			c.NoReceipts, c.ReceiptsCachedOnly, c.CPUProfileDir, c.ReplicaLogLevel = false, false, "", ""
			c.CheckDirectCommits = false
			if clients > 0 {
				c.Clients, c.Window = clients, window
			}
			return plannedRun{group: group, cfg: c}
		}
		runs = append(runs, at(GroupScaling, 0, 0), at(GroupModerate, ModerateClients, ModerateWindow), at(GroupOneClient, 1, 1))
	}
	return runs
}

// availablePeers keeps the peers whose executable is found and reports
// each other one to OnPeerSkipped.
func (o CompareOptions) availablePeers() CompareOptions {
	var found []string
	for _, peer := range o.Peers {
		if _, err := FindPeer(peer, ""); err != nil {
			if o.OnPeerSkipped != nil {
				o.OnPeerSkipped(peer, err)
			}
			continue
		}
		found = append(found, peer)
	}
	o.Peers = append([]string{}, found...)
	return o
}

// Compare runs the standard matrix, one configuration after the other,
// and returns every result: pbftnode's configurations, then the peers
// whose executables are found (the others are reported to
// OnPeerSkipped). A configuration that fails is reported with
// Error set and the matrix continues; open-loop runs whose protocol has
// no saturated throughput to scale from are skipped.
func Compare(ctx context.Context, opts CompareOptions) ([]Result, error) {
	opts = opts.withDefaults().availablePeers()
	saturated := make(map[string]float64)
	var results []Result
	for _, pr := range opts.plan() {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		cfg := pr.cfg
		if pr.rateFraction > 0 {
			sat := saturated[cfg.Protocol]
			if sat <= 0 {
				continue
			}
			cfg.Rate = pr.rateFraction * sat
		}
		r, err := Run(ctx, cfg)
		r.Group = pr.group
		if err != nil {
			if r.Label == "" {
				r.Label = cfg.defaultLabel()
			}
			r.Error = err.Error()
			opts.Base.Logger.Warn("configuration failed", "label", r.Label, "err", err)
		}
		if pr.group == GroupScaling && saturated[cfg.Protocol] == 0 && r.Error == "" {
			saturated[cfg.Protocol] = r.ThroughputOps
		}
		results = append(results, r)
		if opts.OnResult != nil {
			opts.OnResult(r)
		}
	}
	if !slices.ContainsFunc(results, func(r Result) bool { return r.Error == "" }) {
		return results, errNoResults
	}
	return results, nil
}

// Report file names WriteReport writes besides the plots.
const (
	ReportJSON  = "results.json"
	ReportTable = "results.txt"
)

// writeJSONAndTable creates dir if needed and writes results there as
// indented JSON (jsonName) and as the table writeTable prints
// (tableName); it returns the paths written.
func writeJSONAndTable(dir, jsonName, tableName string, results any, writeTable func(io.Writer) error) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	var table bytes.Buffer
	if err := writeTable(&table); err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range []struct {
		name    string
		content []byte
	}{{jsonName, append(js, '\n')}, {tableName, table.Bytes()}} {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.content, 0o644); err != nil {
			return paths, fmt.Errorf("write %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// WriteReport writes the results into dir (created if needed): the JSON
// list, the table and the plots. It returns the paths written.
func WriteReport(dir string, results []Result) ([]string, error) {
	paths, err := writeJSONAndTable(dir, ReportJSON, ReportTable, results, func(w io.Writer) error { return WriteTable(w, results) })
	if err != nil {
		return paths, err
	}
	plots, err := WritePlots(dir, results)
	return append(paths, plots...), err
}
