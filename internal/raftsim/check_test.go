package raftsim

import (
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

type failures []string

func (f *failures) fail(kind, detail string) { *f = append(*f, kind+": "+detail) }

// newTestExecutor is an executor of the KV application on an in-memory
// database that the test closes at its end.
func newTestExecutor(t *testing.T) *execution.Executor {
	t.Helper()
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	exec, err := execution.NewExecutor(db, kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exec
}

func TestDigestAgreement(t *testing.T) {
	var got failures
	c := newChecker(got.fail)
	c.digestAt(&host{id: 0}, 5, [32]byte{1})
	c.digestAt(&host{id: 1}, 5, [32]byte{1})
	c.digestAt(&host{id: 1}, 6, [32]byte{2})
	if len(got) != 0 {
		t.Fatalf("equal digests failed: %v", got)
	}
	c.digestAt(&host{id: 2}, 5, [32]byte{3})
	if len(got) != 1 {
		t.Fatalf("a different digest at index 5 passed: %v", got)
	}
}

func TestRequestValidity(t *testing.T) {
	exec := newTestExecutor(t)
	put := execution.EncodePut([]byte("x"), []byte("1"))
	id := clientID(0)
	for _, tc := range []struct {
		name  string
		reqs  []*wire.Request
		fails bool
	}{
		{"issued", []*wire.Request{{ClientId: id, RequestNumber: 1, Operation: put}}, false},
		{"issued twice in one entry", []*wire.Request{{ClientId: id, RequestNumber: 1, Operation: put}, {ClientId: id, RequestNumber: 1, Operation: put}}, false},
		{"not issued", []*wire.Request{{ClientId: id, RequestNumber: 2, Operation: put}}, true},
		{"other operation", []*wire.Request{{ClientId: id, RequestNumber: 1, Operation: execution.EncodeGet([]byte("x"))}}, true},
	} {
		var got failures
		c := newChecker(got.fail)
		c.issued(id, 1, put)
		c.checkRequests(0, 2, tc.reqs, exec)
		if (len(got) > 0) != tc.fails {
			t.Errorf("%s: failures %v, want failure %v", tc.name, got, tc.fails)
		}
	}
	// The executor has not run request 1, so a second entry running it as
	// new is a second execution.
	var got failures
	c := newChecker(got.fail)
	c.issued(id, 1, put)
	req := []*wire.Request{{ClientId: id, RequestNumber: 1, Operation: put}}
	c.checkRequests(0, 2, req, exec)
	c.checkRequests(0, 3, req, exec)
	if len(got) != 1 {
		t.Fatalf("a request run as new twice: failures %v", got)
	}
}

func TestPickSnapshotAtOrAboveNeed(t *testing.T) {
	exec := newTestExecutor(t)
	var snaps []*execution.StateSnapshot
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := exec.Apply(seq, nil); err != nil {
			t.Fatal(err)
		}
		if seq == 2 || seq == 3 {
			s, err := exec.TakeSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Release()
			snaps = append(snaps, s)
		}
	}
	for need, want := range map[uint64]uint64{1: 3, 2: 2, 3: 3, 4: 0} {
		got := statetransfer.Pick(snaps, need)
		if (got == nil) != (want == 0) || (got != nil && got.Sequence() != want) {
			t.Errorf("need %d: got %v, want snapshot %d", need, got, want)
		}
	}
}
