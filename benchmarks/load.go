package benchmarks

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p"
)

// newClients connects cfg.Connections clients, each with a fresh key
// (clients sharing a key would share a peer ID and steal each other's
// replies); the cfg.Clients logical clients share them (spread). Raft
// clients accept one reply (ReplyQuorum 1); PBFT clients wait for f+1
// matching ones (the default).
func newClients(cfg Config, clusterID string, members []p2p.Member) ([]*client.Client, error) {
	var out []*client.Client
	for range cfg.Connections {
		key, err := crypto.GenerateKey(nil)
		if err != nil {
			closeClients(out)
			return nil, err
		}
		cl, err := newClient(cfg, clusterID, members, key)
		if err != nil {
			closeClients(out)
			return nil, err
		}
		out = append(out, cl)
	}
	return out, nil
}

// newClient connects one client with key: for Raft it accepts one reply
// (ReplyQuorum 1), for PBFT f+1 matching ones (the default).
func newClient(cfg Config, clusterID string, members []p2p.Member, key ed25519.PrivateKey) (*client.Client, error) {
	// An ordered read costs a write: under a saturating load, wait for
	// the read-only answers as long as for a write's before ordering the
	// read (answers that disagree or refuse still order it at once).
	quorum, readTimeout := 0, cfg.ClientRetransmit
	if cfg.Protocol == "raft" {
		quorum = 1
	}
	cl, err := client.New(client.Config{
		ClusterID: clusterID, Key: key, Replicas: members,
		ReplyQuorum: quorum, RetransmitTimeout: cfg.ClientRetransmit, ReadTimeout: readTimeout,
		CommittedRepliesOnly: cfg.CommittedRepliesOnly, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("bench client: %w", err)
	}
	return cl, nil
}

// spread returns n logical clients over clients, round robin: logical
// client i runs on clients[i%len(clients)], with its own closed-loop
// workers.
func spread(clients []*client.Client, n int) []*client.Client {
	out := make([]*client.Client, n)
	for i := range out {
		out[i] = clients[i%len(clients)]
	}
	return out
}

// writers are the load's runners for clients: the clients themselves, or
// with Config.AskReceipts each wrapped to ask for a receipt with every
// write.
func writers(cfg Config, clients []*client.Client) []opRunner {
	out := make([]opRunner, len(clients))
	for i, cl := range clients {
		out[i] = cl
		if cfg.AskReceipts {
			out[i] = receiptAsker{cl}
		}
	}
	return out
}

// receiptAsker is a client whose writes ask for a receipt and wait for f+1
// valid ones; the receipt itself is dropped.
type receiptAsker struct{ *client.Client }

// Invoke runs op with InvokeWithReceipt.
func (r receiptAsker) Invoke(ctx context.Context, op []byte) ([]byte, error) {
	result, _, err := r.InvokeWithReceipt(ctx, op)
	return result, err
}

func closeClients(cls []*client.Client) {
	for _, cl := range cls {
		_ = cl.Close()
	}
}

// opRunner is one logical client as the load drives it: a pbftnode
// client (client.Client), or a connection to a peer system (peer.go).
// Both run the workload's encoded operations and return an encoded
// execution result; an error is a failed operation.
type opRunner interface {
	Invoke(ctx context.Context, op []byte) ([]byte, error)
	Read(ctx context.Context, op []byte) ([]byte, error)
}

// load drives the clients and records every completed operation.
type load struct {
	cfg     Config
	clients []opRunner
	rec     *recorder
	start   time.Time
	work    workload
	// measureFrom and measureTo bound the measured interval (since start);
	// open-loop drops are counted only inside it.
	measureFrom, measureTo time.Duration
	dropped                atomic.Int64
}

// newLoad prepares the clients' load of operations drawn from work.
func newLoad[C opRunner](cfg Config, clients []C, work workload) *load {
	runners := make([]opRunner, len(clients))
	for i, c := range clients {
		runners[i] = c
	}
	return &load{
		cfg: cfg, clients: runners, rec: &recorder{}, work: work,
		measureFrom: cfg.Warmup, measureTo: cfg.Warmup + cfg.Duration,
	}
}

// run drives the load from start until ctx ends, closed- or open-loop.
func (l *load) run(ctx context.Context, start time.Time) {
	l.start = start
	if l.cfg.Rate > 0 {
		l.runOpen(ctx)
		return
	}
	l.runClosed(ctx)
}

// background runs the load from now until stop is called or ctx ends,
// with a progress line every second on prog. stop ends the load, waits
// for its workers and may be called more than once.
func (l *load) background(ctx context.Context, prog progress) (start time.Time, stop func()) {
	loadCtx, cancel := context.WithCancel(ctx)
	start = time.Now()
	done := make(chan struct{})
	go func() {
		l.run(loadCtx, start)
		close(done)
	}()
	stopProgress := prog.follow(l.rec, start)
	return start, func() {
		cancel()
		<-done
		stopProgress()
	}
}

// cpuMeter measures, over the measured interval, the bench process's CPU
// time (its clients) and the machine's busy time.
type cpuMeter struct {
	harness0, machine0 float64
	harness, machine   float64 // over the interval, once stopped
	machineErr         error
}

// startCPUMeter samples both at the start of the interval.
func startCPUMeter() *cpuMeter {
	m := &cpuMeter{harness0: selfCPUSeconds()}
	m.machine0, m.machineErr = machineBusySeconds()
	return m
}

// stop samples both at the end of the interval.
func (m *cpuMeter) stop() {
	m.harness = selfCPUSeconds() - m.harness0
	machine, err := machineBusySeconds()
	if m.machineErr == nil {
		m.machineErr = err
	}
	m.machine = machine - m.machine0
}

// report fills in res's harness CPU per 1000 operations and the cores
// other work used, given the interval's length d, its ops and the
// system's own CPU (res.CPUSecondsPer1kOpsAll, from summarize).
func (m *cpuMeter) report(res *Result, ops int, d time.Duration) {
	if ops > 0 {
		res.HarnessCPUSecondsPer1kOps = m.harness / (float64(ops) / 1000)
	}
	if m.machineErr == nil {
		systemCPU := res.CPUSecondsPer1kOpsAll * float64(ops) / 1000
		res.BackgroundCPUCores = max(0, m.machine-systemCPU-m.harness) / d.Seconds()
	}
}

// runClosed runs Window workers per client, each sending its next
// operation as soon as the previous one completed.
func (l *load) runClosed(ctx context.Context) {
	var wg sync.WaitGroup
	for ci, cl := range l.clients {
		for w := range l.cfg.Window {
			rng := rand.New(rand.NewPCG(l.cfg.Seed, uint64(ci)<<8|uint64(w)))
			wg.Go(func() {
				for ctx.Err() == nil {
					op, read := l.work.op(ci, rng)
					l.invoke(ctx, cl, op, read, time.Now())
				}
			})
		}
	}
	wg.Wait()
}

// runOpen issues operations at Rate per second on a fixed schedule,
// round-robin over the clients, whether or not earlier ones completed.
// Latency counts from the scheduled time, so queueing behind a slow
// cluster is included. Beyond Clients*Window outstanding operations, a
// scheduled operation is dropped and counted.
func (l *load) runOpen(ctx context.Context) {
	interval := float64(time.Second) / l.cfg.Rate
	sem := make(chan struct{}, l.cfg.Clients*l.cfg.Window)
	rng := rand.New(rand.NewPCG(l.cfg.Seed, 0x6f70656e))
	timer := time.NewTimer(0)
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		offset := time.Duration(float64(i) * interval)
		at := l.start.Add(offset)
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			if offset >= l.measureFrom && offset < l.measureTo {
				l.dropped.Add(1)
			}
			continue
		}
		ci := i % len(l.clients)
		cl := l.clients[ci]
		op, read := l.work.op(ci, rng)
		wg.Go(func() {
			defer func() { <-sem }()
			l.invoke(ctx, cl, op, read, at)
		})
	}
}

// invoke runs one operation, a read through client.Read (the read-only
// path, ordered when that fails) and a write through Invoke, and records
// it. An operation cut short by the end of the run is not counted; one
// that failed or was refused is.
func (l *load) invoke(ctx context.Context, cl opRunner, op []byte, read bool, issued time.Time) {
	var raw []byte
	var err error
	if read {
		raw, err = cl.Read(ctx, op)
	} else {
		raw, err = cl.Invoke(ctx, op)
	}
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			l.rec.fail()
		}
		return
	}
	if !l.work.executed(raw) {
		l.rec.fail()
		return
	}
	l.rec.add(now.Sub(l.start), now.Sub(issued), read)
}

// clientCounts adds up the pbftnode clients' read outcomes (fast,
// ordered instead) and their pauses of tentative replies; a peer's
// runners have none.
func clientCounts(clients []opRunner) (reads client.ReadCounts, tentativePauses uint64) {
	seen := make(map[*client.Client]bool)
	for _, r := range clients {
		cl, ok := r.(*client.Client)
		if !ok || seen[cl] {
			continue // a peer's, or a shared client counted already
		}
		seen[cl] = true
		c := cl.ReadCounts()
		reads.Fast += c.Fast
		reads.Fallback += c.Fallback
		tentativePauses += cl.TentativePauses()
	}
	return reads, tentativePauses
}
