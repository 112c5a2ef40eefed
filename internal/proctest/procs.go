package proctest

import (
	"fmt"
	"sync"
	"time"
)

// Procs is a table of replica processes indexed by replica, safe for
// concurrent use: at most one process per replica, started by Start and
// removed by Kill. Cluster keeps its replicas in one; a test that launches
// replicas differently (in network namespaces, say) can keep its own.
type Procs struct {
	mu    sync.Mutex
	procs []*Process
}

// NewProcs returns a table for n replicas.
func NewProcs(n int) *Procs { return &Procs{procs: make([]*Process, n)} }

// Start starts replica i as StartProcess(logPath, what, name, args...),
// unless it already has a process.
func (t *Procs) Start(i int, logPath, what, name string, args ...string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.procs[i] != nil {
		return fmt.Errorf("proctest: %s is already running", what)
	}
	p, err := StartProcess(logPath, what, name, args...)
	if err != nil {
		return err
	}
	t.procs[i] = p
	return nil
}

// Get returns replica i's process, or nil.
func (t *Procs) Get(i int) *Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.procs[i]
}

// Kill sends SIGKILL to replica i's process (if any), removes it from the
// table and waits up to 10 s for it to end.
func (t *Procs) Kill(i int) error {
	t.mu.Lock()
	p := t.procs[i]
	t.procs[i] = nil
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Kill(10 * time.Second); err != nil {
		return fmt.Errorf("replica %d: %w", i, err)
	}
	return nil
}
