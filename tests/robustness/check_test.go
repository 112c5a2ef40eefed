package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/internal/proctest"
)

// checkTimeout bounds the porcupine check; a run whose check does not
// finish in time fails (its history is kept for a look).
const checkTimeout = 3 * time.Minute

// checkLinearizable checks the history against kvmodel.Model and, when it
// is not linearizable, writes porcupine's visualization next to the
// replicas' logs and fails.
func checkLinearizable(t *testing.T, ops []porcupine.Operation, dir string) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvmodel.Model, ops, checkTimeout)
	t.Logf("porcupine: %d operations, result %v in %v", len(ops), res, time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		t.Fatalf("porcupine did not finish within %v on %d operations", checkTimeout, len(ops))
	}
	path := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(kvmodel.Model, info, path); err != nil {
		t.Logf("writing the visualization: %v", err)
	}
	t.Fatalf("the client history is not linearizable on %s (porcupine's visualization: %s)", illegalKeys(ops), path)
}

// illegalKeys names the keys whose own history is not linearizable, with
// their number of operations.
func illegalKeys(ops []porcupine.Operation) string {
	var bad []string
	for _, part := range kvmodel.Model.Partition(ops) {
		if !porcupine.CheckOperations(kvmodel.Model, part) {
			bad = append(bad, fmt.Sprintf("%s (%d operations)", part[0].Input.(kvmodel.Input).Key, len(part)))
		}
	}
	return strings.Join(bad, ", ")
}

// replicaState is what one replica reports for the convergence check.
type replicaState struct {
	executed uint64
	digest   string
	err      error
}

func (s replicaState) String() string {
	if s.err != nil {
		return s.err.Error()
	}
	return fmt.Sprintf("executed %d digest %.16s", s.executed, s.digest)
}

// waitConverged waits until every replica reports the same executed
// sequence and state digest and none is transferring state, and returns
// the sequence and how long that took; it fails the test after timeout
// with every replica's state.
func waitConverged(t *testing.T, c *proctest.Cluster, timeout time.Duration) (uint64, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		states := make([]replicaState, c.N)
		same := true
		for i := range c.N {
			st, err := c.Status(i)
			states[i] = replicaState{executed: st.ExecutedSequence, digest: st.StateDigest, err: err}
			if err == nil && st.Transferring {
				states[i].err = fmt.Errorf("transferring state (executed %d)", st.ExecutedSequence)
			}
			same = same && states[i].err == nil && states[i].executed == states[0].executed && states[i].digest == states[0].digest
		}
		if same && states[0].executed > 0 {
			return states[0].executed, time.Since(start)
		}
		if time.Since(start) > timeout {
			var b strings.Builder
			for i, s := range states {
				fmt.Fprintf(&b, "\n  replica %d: %v", i, s)
				if st, err := c.Status(i); err == nil {
					fmt.Fprintf(&b, " (stable checkpoint %d, view %d, active %v)", st.StableCheckpoint, st.View, st.ViewActive)
				}
			}
			t.Fatalf("replicas did not converge within %v of an idle cluster:%s", timeout, b.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// plantFromEnv applies PBFTNODE_ROBUSTNESS_PLANT=history, a deliberate
// fault that shows the check can fail: it turns the last completed get
// that found a value into one that found another value.
func plantFromEnv(t *testing.T, ops []porcupine.Operation) {
	switch plant := os.Getenv("PBFTNODE_ROBUSTNESS_PLANT"); plant {
	case "":
	case "history":
		for i := len(ops) - 1; i >= 0; i-- {
			in, out := ops[i].Input.(kvmodel.Input), ops[i].Output.(kvmodel.Output)
			if in.Kind == 'g' && out.OK && !out.Unknown {
				out.Value = "planted-" + out.Value
				ops[i].Output = out
				t.Logf("planted: operation %d (%s) now reads %q", i, in, out.Value)
				return
			}
		}
		t.Log("planted: no completed get to change")
	}
}

// plantSetting applies PBFTNODE_ROBUSTNESS_PLANT=checkpoint-interval: it
// runs replica i with a checkpoint interval the others do not share (a
// misconfiguration the cluster cannot be expected to survive), to show
// that the test notices.
func plantSetting(t *testing.T, replicaArgs map[int][]string, i int) {
	if os.Getenv("PBFTNODE_ROBUSTNESS_PLANT") == "checkpoint-interval" {
		replicaArgs[i] = append(replicaArgs[i], "--checkpoint-interval", "12")
		t.Logf("planted: replica %d runs with checkpoint interval 12, the others 16", i)
	}
}

// TestLinearizabilityCheckCatchesAPlantedEntry: the check this package
// runs fails a history with one wrong read in it (a get after the last
// put of its key returned, seeing an older value).
func TestLinearizabilityCheckCatchesAPlantedEntry(t *testing.T) {
	put := func(c int, call, ret int64, v string) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Kind: 'p', Key: "rk0", Value: v}, Call: call, Output: kvmodel.Output{OK: true}, Return: ret}
	}
	get := func(c int, call, ret int64, v string) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Kind: 'g', Key: "rk0"}, Call: call, Output: kvmodel.Output{OK: true, Value: v}, Return: ret}
	}
	good := []porcupine.Operation{put(0, 0, 10, "a"), put(1, 20, 30, "b"), get(2, 25, 40, "a"), get(2, 50, 60, "b"),
		kvmodel.Pending(3, kvmodel.Input{Kind: 'p', Key: "rk0", Value: "c"}, 45)}
	if res := porcupine.CheckOperationsTimeout(kvmodel.Model, good, time.Minute); res != porcupine.Ok {
		t.Fatalf("a linearizable history checks as %v", res)
	}
	t.Setenv("PBFTNODE_ROBUSTNESS_PLANT", "history")
	planted := append([]porcupine.Operation(nil), good...)
	plantFromEnv(t, planted)
	if res := porcupine.CheckOperationsTimeout(kvmodel.Model, planted, time.Minute); res != porcupine.Illegal {
		t.Fatalf("a history with a planted wrong read checks as %v, want %v", res, porcupine.Illegal)
	}
}
