package execution

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
)

// countingRunner is a BatchRunner and RequestApplication whose result for
// an operation is "<sender>:<op>#<count of operations executed so far>",
// so a request executed twice or out of order shows in its result.
type countingRunner struct {
	executed int
	batches  [][]Request
	fail     error
}

func (c *countingRunner) Execute(op []byte) []byte { return c.ExecuteRequest(nil, op) }
func (c *countingRunner) ExecuteRequest(clientID, op []byte) []byte {
	c.executed++
	return fmt.Appendf(nil, "%s:%s#%d", clientID, op, c.executed)
}
func (c *countingRunner) ExecuteBatch(seq uint64, reqs []Request) ([][]byte, error) {
	if c.fail != nil {
		return nil, c.fail
	}
	c.batches = append(c.batches, reqs)
	out := make([][]byte, len(reqs))
	for i, r := range reqs {
		out[i] = c.ExecuteRequest(r.ClientID, r.Operation)
	}
	return out, nil
}
func (c *countingRunner) Snapshot() ([]byte, error) { return nil, errors.New("none") }
func (c *countingRunner) Restore([]byte) error      { return errors.New("none") }
func (c *countingRunner) Digest() [32]byte          { return [32]byte{byte(c.executed)} }

func TestBatchRunnerGetsOnlyNewRequestsOncePerBatch(t *testing.T) {
	db := openStorage(t, t.TempDir())
	defer db.Close()
	app := &countingRunner{}
	exe, err := NewExecutor(db, app, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	req := func(client string, n uint64, op string) Request {
		return Request{ClientID: []byte(client), RequestNumber: n, Operation: []byte(op)}
	}
	// A duplicate inside the batch gets the first one's result; it is not
	// passed to the runner.
	replies := apply(t, exe, 1, req("a", 1, "x"), req("b", 1, "y"), req("a", 1, "x"))
	if len(app.batches) != 1 || len(app.batches[0]) != 2 {
		t.Fatalf("runner saw %v, want one batch of the two new requests", app.batches)
	}
	want := []string{"a:x#1", "b:y#2", "a:x#1"}
	for i, r := range replies {
		if string(r.Result) != want[i] {
			t.Fatalf("reply %d = %q, want %q", i, r.Result, want[i])
		}
	}
	// A retransmission in a later batch is answered from the cache; the
	// runner still gets the (empty) batch, in sequence order.
	replies = apply(t, exe, 2, req("b", 1, "y"))
	if len(replies) != 1 || string(replies[0].Result) != "b:y#2" || len(app.batches) != 2 || len(app.batches[1]) != 0 {
		t.Fatalf("batch 2: replies %v, runner batches %v", replies, app.batches)
	}
	// A runner error fails Apply and changes nothing: the request is new
	// again at the same sequence.
	digest := exe.StateDigest()
	app.fail = errors.New("application gone")
	if _, err := exe.Apply(3, []Request{req("c", 1, "z")}); !errors.Is(err, app.fail) {
		t.Fatalf("Apply with a failing runner: %v", err)
	}
	if exe.LastExecuted() != 2 || exe.StateDigest() != digest || exe.Status([]byte("c"), 1) != RequestNew {
		t.Fatalf("failed Apply changed the executor: last %d", exe.LastExecuted())
	}
	app.fail = nil
	replies = apply(t, exe, 3, req("c", 1, "z"))
	if string(replies[0].Result) != "c:z#3" {
		t.Fatalf("retried batch: %q", replies[0].Result)
	}
}
