package raftsim

import (
	"fmt"
	"math/rand/v2"

	"github.com/pbftnode/pbftnode/internal/ledgermodel"
	"github.com/pbftnode/pbftnode/internal/simkit"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// Result is what one run did and found.
type Result struct {
	Seed     uint64 `json:"seed"`
	Scenario string `json:"scenario"`
	Counters
	Violations []simkit.Violation `json:"violations,omitempty"`
}

// Run runs one seeded simulation and returns what it found. It is
// deterministic: the same Config gives the same Result.
func Run(cfg Config) (res Result) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{Seed: cfg.Seed, Counters: Counters{Progress: simkit.OneRun}, Violations: simkit.Invalid(cfg.Seed, err)}
	}
	w := &world{
		cfg: cfg, n: cfg.Replicas, genesis: cfg.Replicas,
		rng:         rand.New(rand.NewPCG(cfg.Seed, 0x5deece66d2b992dd)),
		log:         cfg.Logger,
		leaderTerms: map[uint64]bool{}, clientsDoneAt: -1,
	}
	w.res.Seed, w.res.Progress = cfg.Seed, simkit.OneRun
	w.check = newChecker(w.violate)
	defer w.close()
	defer func() {
		if p := recover(); p != nil {
			w.panicked(p)
			res = w.res
		}
	}()
	simkit.Drive(w.setup, w.loop, w.finish, w.violate)
	return w.res
}

// close releases what the run holds: snapshots and databases.
func (w *world) close() {
	for _, h := range w.hosts {
		h.releaseSnapshots()
		if h.db != nil {
			_ = h.db.Close()
		}
	}
}

// setup draws the scenario from the seed and builds the replicas and
// clients.
func (w *world) setup() error {
	r := w.rng
	w.tuning = tuning{
		snapshotInterval: uint64(8 + r.IntN(25)),
		maxBatchSize:     1 + r.IntN(4),
		maxInflightMsgs:  1 + r.IntN(8),
		maxSizePerMsg:    uint64(256 + r.IntN(4096)),
	}
	if w.cfg.Reconfigure {
		w.n += ReconfigSpares
		w.reconf = newReconfig(w, w.genesis)
		w.joints = jointWatch{entered: map[string]bool{}, left: map[string]bool{}}
	}
	if w.cfg.Scenario != ScenarioRandom {
		w.tuning.snapshotInterval = 16
		w.sched = newWipeSchedule(w, w.cfg.Scenario == ScenarioWipeNewLeader)
		if w.cfg.Scenario == ScenarioIsolateLeader {
			w.sched = newIsolateSchedule(w)
		}
	} else {
		w.sched = newSchedule(w)
	}
	w.fresh = newFreshness()
	w.readRng = rand.New(rand.NewPCG(w.cfg.Seed, readStream))
	w.readRatio = readRatios[w.readRng.IntN(len(readRatios))]
	if w.cfg.Scenario == ScenarioIsolateLeader {
		w.readRatio = 0.9
	}
	w.app = simkit.Application{Ledger: w.cfg.Ledger, Issuer: clientID(ledgermodel.IssuerClient)}
	for i := range w.n {
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
		h := &host{w: w, id: uint32(i), db: db, spare: i >= w.genesis}
		w.hosts = append(w.hosts, h)
		if err := h.start(); err != nil {
			return err
		}
	}
	nClients := 3 + r.IntN(2)
	ops := 40 + r.IntN(111)
	if w.cfg.Scenario != ScenarioRandom {
		ops = 150
	}
	accounts := make([][]byte, nClients)
	for i := range nClients {
		accounts[i] = clientID(i)
	}
	for i := range nClients {
		c := simkit.NewClientOf[*wire.Request](i, clientID(i), ops/nClients, r.Int64N(20), w.app.Source(accounts))
		w.work = append(w.work, &c)
		w.clients = append(w.clients, &client{Client: &c, w: w})
	}
	t := w.tuning
	w.res.Scenario = fmt.Sprintf("n=%d %s snapshot-interval=%d batch<=%d inflight<=%d msg<=%dB clients=%d ops=%d",
		w.n, w.sched, t.snapshotInterval, t.maxBatchSize, t.maxInflightMsgs, t.maxSizePerMsg, nClients, ops/nClients*nClients)
	if w.cfg.Scenario != ScenarioRandom {
		w.res.Scenario = "scenario=" + w.cfg.Scenario + " " + w.res.Scenario
	}
	if w.readRatio > 0 {
		w.res.Scenario += fmt.Sprintf(" read-only=%.2f", w.readRatio)
	}
	if w.cfg.Plant != "" {
		w.res.Scenario += " plant=" + w.cfg.Plant
	}
	if w.cfg.Ledger {
		w.res.Scenario += " app=ledger"
	}
	if w.reconf != nil {
		w.res.Scenario += " " + w.reconf.String()
	}
	return nil
}

// finish checks the client histories and fills in the run's statistics.
func (w *world) finish() {
	if len(w.res.Violations) == 0 {
		if ok, detail := simkit.CheckHistory(w.app.Model(), w.work.History()); !ok {
			w.violate(simkit.KindLinearizability, detail)
		}
	}
	w.count()
}

// count fills in the run's statistics.
func (w *world) count() {
	w.res.Steps, w.res.Ticks = w.steps, w.now
	w.res.CommittedRequests = uint64(len(w.check.Committed))
	w.res.Elections = uint64(len(w.leaderTerms))
	w.countJoints()
	if s := w.sched; s.wipedReplica >= 0 {
		w.res.Scenario += fmt.Sprintf(" wiped=%d@%d", s.wipedReplica, s.wipedAt)
	}
}

// panicked turns a panic in a replica (etcd raft panics on a broken
// invariant, such as a commit index beyond the log) into an internal
// violation naming the replica, so that one seed cannot stop a campaign.
func (w *world) panicked(p any) {
	where := "the simulator"
	if w.active != nil {
		where = fmt.Sprintf("replica %d", w.active.id)
	}
	w.stop = false
	w.violate(KindInternal, fmt.Sprintf("panic in %s: %v; %s", where, p, w.describeReplicas()))
	w.count()
}

// RunMany runs seeds start..start+count-1 of cfg on workers goroutines
// (GOMAXPROCS when workers <= 0), each seed a separate single-threaded
// run, and returns the results in seed order.
func RunMany(cfg Config, start, count uint64, workers int) []Result {
	return simkit.RunMany(start, count, workers, cfg.runSeed)
}

// runSeed runs c with seed.
func (c Config) runSeed(seed uint64) Result {
	c.Seed = seed
	return Run(c)
}
