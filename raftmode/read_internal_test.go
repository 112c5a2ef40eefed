package raftmode

import (
	"math/rand/v2"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// A confirmed read index is answered only once the executor applied it:
// until then the state may miss a write that completed before the read.
func TestReadWaitsForApplyToReachItsIndex(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	exec, err := execution.NewExecutor(db, kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	log, err := raftlog.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{N: 1, Log: log, Executor: exec, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	applied := exec.LastExecuted()
	req := &wire.Request{ClientId: []byte("c"), RequestNumber: 1, Operation: execution.EncodeGet([]byte("k")), ReadOnly: true}
	c.reads = readQueue{batches: []*readBatch{{ctx: "x", reads: []*wire.Request{req}}}, count: 1}
	c.confirmReads([]readState{{index: applied + 1, ctx: []byte("x")}})
	c.answerReads()
	if len(c.reads.done) != 0 {
		t.Fatalf("read at index %d answered with %d applied", applied+1, applied)
	}
	if _, err := exec.Apply(applied+1, nil); err != nil {
		t.Fatal(err)
	}
	c.answerReads()
	if len(c.reads.done) != 1 || c.reads.done[0].Err != nil || c.reads.count != 0 {
		t.Fatalf("after apply reached the read index: answers %v, %d pending", c.reads.done, c.reads.count)
	}
}
