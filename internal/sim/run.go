package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/pbftnode/pbftnode/internal/ledgermodel"
	"github.com/pbftnode/pbftnode/internal/simkit"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/storage"
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
func Run(cfg Config) Result {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{Seed: cfg.Seed, Counters: Counters{Progress: simkit.OneRun}, Violations: simkit.Invalid(cfg.Seed, err)}
	}
	w := &world{
		cfg: cfg, n: cfg.Replicas, f: protocol.FaultTolerance(cfg.Replicas),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		log:    cfg.Logger,
		vcache: map[[32]byte]verified{}, rcache: map[[32]byte]verifiedRequest{},
		votes: newEquivocationChecker(),
	}
	w.res.Seed, w.res.Progress = cfg.Seed, simkit.OneRun
	w.check = newChecker(w.violate)
	defer w.close()
	simkit.Drive(w.setup, w.loop, w.finish, w.violate)
	return w.res
}

// close releases what the run holds: snapshots and databases.
func (w *world) close() {
	for _, h := range w.hosts {
		if h.snaps != nil {
			h.snaps.ReleaseAll()
		}
		if h.db != nil {
			_ = h.db.Close()
		}
	}
}

func replicaKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("pbftnode/sim/replica"), uint32(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

func clientKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("pbftnode/sim/client"), uint32(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

// setup draws the scenario from the seed and builds the hosts and clients.
func (w *world) setup() error {
	r := w.rng
	pubs := make([]ed25519.PublicKey, w.n)
	for i := range w.n {
		w.keys = append(w.keys, replicaKey(i))
		pubs[i] = w.keys[i].Public().(ed25519.PublicKey)
	}
	w.verifier = protocol.NewMessageVerifier(clusterID, pubs, nil, nil, 0)
	w.verifier.SetWindowSize(WindowSize)
	w.total = w.n
	if w.cfg.Reconfigure {
		w.total = w.n + Spares
		for i := w.n; i < w.total; i++ {
			w.keys = append(w.keys, replicaKey(i))
		}
	}
	w.sched = newSchedule(w)
	w.app = simkit.Application{Ledger: w.cfg.Ledger, Issuer: clientKey(ledgermodel.IssuerClient).Public().(ed25519.PublicKey)}

	base := protocol.Config{
		N: w.n, CheckpointInterval: CheckpointInterval, WindowSize: WindowSize,
		MaxBatchSize: 1 + r.IntN(4), MaxInFlight: 1 + r.IntN(8), BatchDelayTicks: r.IntN(3),
		RetransmitTicks: RetransmitTicks, ViewChangeTimeoutTicks: ViewChangeTimeoutTicks,
	}
	// Any partial-batch pipeline depth, from one batch at a time to cutting
	// each batch as soon as the pipeline has room.
	base.MaxPartialInFlight = 1 + r.IntN(base.MaxInFlight)
	byz := r.Perm(w.n)[:w.cfg.Byzantine]
	// The lying joiner (a third of the reconfiguration seeds with one
	// Byzantine replica): the genesis members are correct and the first
	// spare, which the administrator adds, is the Byzantine one.
	joiner := w.cfg.Reconfigure && w.cfg.Byzantine == 1 && r.IntN(3) == 0
	if joiner {
		byz = []int{w.n}
	}
	// The attack scenario (a quarter of the seeds with Byzantine
	// replicas): replica 1, the primary of view 1, omits certificates from
	// its NEW-VIEW, and replica 0 crashes early so that view 1 comes soon.
	attack := w.cfg.Byzantine > 0 && !joiner && r.IntN(2) == 0
	if attack {
		if !slices.Contains(byz, 1) {
			byz[0] = 1
		}
		w.sched.primaryCrash = 20 + r.Int64N(200)
	}
	slices.Sort(byz)
	var scenario []string
	if w.cfg.Reconfigure {
		w.setupReconfigure(byz)
	}
	w.byID = make([][]*host, w.total)
	for i := range w.total {
		cfg := base
		cfg.ID = uint32(min(i, w.n-1))
		cfg.Signer = w.signerFor(uint32(i))
		if !slices.Contains(byz, i) {
			plant(&cfg, w.cfg.Plant, w.f)
			if err := w.addHost(&host{id: uint32(i), correct: true, cfg: cfg, key: w.keys[i]}); err != nil {
				return err
			}
			continue
		}
		w.check.byzClients[string(byzantineClientID(w.keys[i]))] = true
		all := AllStrategies()
		strategy := all[r.IntN(len(all))]
		if attack && i == 1 {
			strategy = stratOmitCertificates
		}
		if w.cfg.Strategy != "" {
			strategy = w.cfg.Strategy
		}
		if strategy == stratTwins {
			sides := w.twinSides(uint32(i))
			scenario = append(scenario, fmt.Sprintf("%d:twins%v|%v", i, keysOf(sides[0], w.n), keysOf(sides[1], w.n)))
			for t := range 2 {
				if err := w.addHost(&host{id: uint32(i), twin: t + 1, side: sides[t], cfg: cfg, key: w.keys[i]}); err != nil {
					return err
				}
			}
			continue
		}
		f, err := w.strategy(strategy, uint32(i))
		if err != nil {
			return err
		}
		if strategy != "silent" && r.IntN(3) == 0 && w.cfg.Strategy == "" {
			second := simStrategies[r.IntN(len(simStrategies))]
			g, err := w.strategy(second, uint32(i))
			if err != nil {
				return err
			}
			f, strategy = chain{f, g}, strategy+"+"+second
		}
		scenario = append(scenario, fmt.Sprintf("%d:%s", i, strategy))
		if err := w.addHost(&host{id: uint32(i), filter: f, cfg: cfg, key: w.keys[i]}); err != nil {
			return err
		}
	}
	nClients := 3 + r.IntN(2)
	ops := 40 + r.IntN(111)
	signers := make([]*crypto.Signer, nClients)
	accounts := make([][]byte, nClients)
	for i := range nClients {
		signers[i] = crypto.NewSigner(clientKey(i), clusterID)
		accounts[i] = signers[i].Public()
	}
	for i, signer := range signers {
		c := simkit.NewClientOf[[]byte](i, signer.Public(), ops/nClients, r.Int64N(20), w.app.Source(accounts))
		w.work = append(w.work, &c)
		w.clients = append(w.clients, &client{Client: &c, w: w, signer: signer})
	}
	w.res.Scenario = fmt.Sprintf("n=%d byzantine=[%s] %s batch<=%d inflight<=%d clients=%d ops=%d",
		w.n, strings.Join(scenario, " "), w.sched, base.MaxBatchSize, base.MaxInFlight, nClients, ops/nClients*nClients)
	if w.cfg.Plant != "" {
		w.res.Scenario += " plant=" + w.cfg.Plant
	}
	if w.cfg.Ledger {
		w.res.Scenario += " app=ledger"
	}
	if w.admin != nil {
		w.res.Scenario += w.admin.plan
	}
	return nil
}

// AllStrategies lists the strategies a simulated Byzantine replica may
// run: the byzantine package's, the simulator's own, and Twins.
func AllStrategies() []string {
	all := append(append([]string{}, byzantine.Strategies...), simStrategies...)
	return append(all, stratTwins)
}

// plant applies a planted bug to a correct replica's configuration.
func plant(cfg *protocol.Config, name string, f int) {
	switch name {
	case PlantPrepareQuorum:
		cfg.PreparedVotes = f
	case PlantCommitQuorum:
		cfg.CommitVotes = f + 1
	case PlantViewChangeQuorum:
		cfg.ViewChangeQuorum = f + 1
	}
}

func (w *world) strategy(name string, id uint32) (outFilter, error) {
	if slices.Contains(byzantine.Strategies, name) {
		f, err := byzantine.NewWithOptions(name, id, w.n, w.keys[id], clusterID, byzantine.Options{
			FramesPerTick: FloodFramesPerTick, DelayTicks: byzantine.SlowPrimaryDelayTicks(ViewChangeTimeoutTicks)})
		if err != nil {
			return nil, fmt.Errorf("replica %d: %w", id, err)
		}
		return f, nil
	}
	if name == stratOmitCertificates {
		return newOmitFilter(w, id), nil
	}
	return &simFilter{kind: name, self: id, n: w.n, rng: w.rng, signer: w.signerFor(id)}, nil
}

// twinSides splits the other replicas between the two copies of replica
// id; sometimes one replica hears both.
func (w *world) twinSides(id uint32) [2]map[uint32]bool {
	var others []uint32
	for i := range w.total { // the spares too: Twins across an epoch boundary
		if uint32(i) != id {
			others = append(others, uint32(i))
		}
	}
	w.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	cut := 1 + w.rng.IntN(len(others)-1)
	sides := [2]map[uint32]bool{{}, {}}
	for k, o := range others {
		sides[min(k/cut, 1)][o] = true
	}
	if w.rng.IntN(2) == 0 {
		sides[1][others[0]] = true
	}
	return sides
}

func keysOf(m map[uint32]bool, n int) []uint32 {
	var out []uint32
	for i := range n {
		if m[uint32(i)] {
			out = append(out, uint32(i))
		}
	}
	return out
}

func (w *world) addHost(h *host) error {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		return err
	}
	h.w, h.db = w, db
	if err := h.start(false); err != nil {
		return err
	}
	w.hosts = append(w.hosts, h)
	w.byID[h.id] = append(w.byID[h.id], h)
	return nil
}

// finish checks the client histories and fills in the run's statistics.
func (w *world) finish() {
	if len(w.res.Violations) == 0 {
		if ok, detail := simkit.CheckHistory(w.app.Model(), w.work.History()); !ok {
			w.violate(simkit.KindLinearizability, detail)
		}
	}
	if len(w.res.Violations) == 0 {
		w.checkMembership()
	}
	w.res.Steps, w.res.Ticks = w.steps, w.now
	w.res.CommittedRequests = uint64(len(w.check.Committed))
	for _, h := range w.hosts {
		if h.filter != nil {
			w.res.ByzantineActions += actions(h.filter)
		}
		if !h.correct || h.down {
			continue
		}
		w.res.TentativeDiscarded += h.driver.TentativeCounts().Discarded
		st := h.core.Status()
		w.res.ViewChanges = max(w.res.ViewChanges, st.ViewChangesCompleted)
		w.res.Checkpoints = max(w.res.Checkpoints, st.LowWatermark/CheckpointInterval)
	}
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
