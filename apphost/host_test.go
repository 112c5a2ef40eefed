package apphost

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// testDeadline bounds every wait for an event: generous, the machine is
// busy.
const testDeadline = 2 * time.Minute

// maxTestRetries bounds the retries of a test host, so a test of a broken
// host fails instead of retrying forever.
const maxTestRetries = 1000

// noWait returns an Options.Wait that does not sleep and gives up (as if
// closed) after maxTestRetries waits.
func noWait() func(context.Context, time.Duration) error {
	n := 0
	return func(ctx context.Context, _ time.Duration) error {
		if n++; n > maxTestRetries {
			return errors.New("test: too many retries")
		}
		return ctx.Err()
	}
}

type replica struct {
	t    testing.TB
	dir  string
	db   *storage.DB
	host *Host
	exe  *execution.Executor
}

func openReplica(t testing.TB, dir string, a app.Application, o Options) *replica {
	t.Helper()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Wait == nil {
		o.Wait = noWait()
	}
	host, err := Open(db, a, o, nil)
	if err != nil {
		db.Close()
		t.Fatalf("Open: %v", err)
	}
	exe, err := execution.NewExecutor(db, host, nil)
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	r := &replica{t: t, dir: dir, db: db, host: host, exe: exe}
	t.Cleanup(r.close)
	return r
}

func (r *replica) close() {
	if r.db == nil {
		return
	}
	r.host.Close()
	r.db.Close()
	r.db = nil
}

func (r *replica) apply(seq uint64) []execution.Reply {
	r.t.Helper()
	replies, err := r.exe.Apply(seq, batchAt(seq))
	if err != nil {
		r.t.Fatalf("Apply(%d): %v", seq, err)
	}
	return replies
}

func (r *replica) applyRange(from, to uint64) {
	r.t.Helper()
	for seq := from; seq <= to; seq++ {
		r.apply(seq)
	}
}

// countKeys counts the stored keys under prefix.
func (r *replica) countKeys(prefix string) int {
	iter := r.db.LevelDB().NewIterator(util.BytesPrefix([]byte(prefix)), nil)
	defer iter.Release()
	n := 0
	for iter.Next() {
		n++
	}
	return n
}

// batchAt is the batch committed at seq: empty every fifth sequence,
// else requests of two clients, and every seventh a retransmission of an
// already executed request (answered from the reply cache).
func batchAt(seq uint64) []execution.Request {
	if seq%5 == 0 {
		return nil
	}
	reqs := []execution.Request{
		{ClientID: []byte("client-1"), RequestNumber: seq, Operation: fmt.Appendf(nil, "k%d=v%d", seq%3, seq)},
		{ClientID: []byte("client-2"), RequestNumber: seq, Operation: fmt.Appendf(nil, "j%d=w%d", seq%4, seq)},
	}
	if seq%7 == 0 {
		reqs = append(reqs, execution.Request{ClientID: []byte("client-1"), RequestNumber: seq - 1, Operation: []byte("dup=dup")})
	}
	return reqs
}

// reference drives a testApp directly with the requests the executor
// executes (new ones only) and returns it and, per sequence, the results
// of the new requests.
func reference(t testing.TB, to uint64) (*testApp, map[uint64][][]byte) {
	t.Helper()
	ref := newTestApp()
	seen := map[string]bool{}
	results := map[uint64][][]byte{}
	for seq := uint64(1); seq <= to; seq++ {
		var ops []app.Operation
		for _, r := range batchAt(seq) {
			id := fmt.Sprintf("%x/%d", r.ClientID, r.RequestNumber)
			if seen[id] {
				continue
			}
			seen[id] = true
			ops = append(ops, app.Operation{Client: r.ClientID, RequestNumber: r.RequestNumber, Payload: r.Operation})
		}
		res, _, err := ref.Execute(context.Background(), seq, ops)
		if err != nil {
			t.Fatal(err)
		}
		results[seq] = res
	}
	return ref, results
}

// checkAgainst checks that the application's state and the recorded
// State equal the reference's, and that no operation was applied twice.
func checkAgainst(t testing.TB, r *replica, a, ref *testApp) {
	t.Helper()
	got, want := a.state(), ref.state()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("application state\n got %+v\nwant %+v", got, want)
	}
	seen := map[string]bool{}
	for _, id := range got.Applied {
		if seen[id] {
			t.Fatalf("operation %s applied twice", id)
		}
		seen[id] = true
	}
	if rec := r.host.Recorded(); rec.Sequence != want.Sequence || rec.Digest != want.digest() {
		t.Fatalf("recorded %d/%x, reference %d/%x", rec.Sequence, rec.Digest, want.Sequence, want.digest())
	}
}

func TestBatchesMatchReference(t *testing.T) {
	const last = 23
	a := newTestApp()
	r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 4})
	ref, refResults := reference(t, last)
	for seq := uint64(1); seq <= last; seq++ {
		replies := r.apply(seq)
		fresh := [][]byte{}
		for _, rep := range replies {
			if string(rep.Result) != "" && !strings.HasPrefix(string(rep.Result), "old:") {
				t.Fatalf("sequence %d: unexpected result %q", seq, rep.Result)
			}
		}
		// The replies of new requests come first in batchAt's order; a
		// retransmission (last) gets the cached reply.
		n := len(refResults[seq])
		for _, rep := range replies[:n] {
			fresh = append(fresh, rep.Result)
		}
		if !reflect.DeepEqual(fresh, refResults[seq]) {
			t.Fatalf("sequence %d: results %q, reference %q", seq, fresh, refResults[seq])
		}
		if r.host.Recorded().Digest != a.state().digest() {
			t.Fatalf("sequence %d: recorded digest is not the application's", seq)
		}
	}
	checkAgainst(t, r, a, ref)
	// Snapshots at 4, 8, ..., 20: the journal holds 21..23 only.
	if got := r.countKeys(journalPrefix); got != 3 {
		t.Fatalf("journal holds %d entries, want 3", got)
	}
	if m := r.host.manifest.state; m.Sequence != 20 {
		t.Fatalf("snapshot at sequence %d, want 20", m.Sequence)
	}
	if s := r.host.Stats(); s.Snapshots != 5 || s.Restores != 0 {
		t.Fatalf("stats %+v, want 5 snapshots, no restore", s)
	}
}

// TestAppRestartsEmpty restarts the application (empty, as a process
// without persistence) mid-run: the next batch restores it from the
// snapshot and replays the journal first.
func TestAppRestartsEmpty(t *testing.T) {
	const last = 17
	a := newTestApp()
	r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 4})
	r.applyRange(1, 10)
	a.restart()
	// The application refuses batch 11 (it is at 0): the host resyncs.
	r.applyRange(11, last)
	ref, _ := reference(t, last)
	checkAgainst(t, r, a, ref)
	s := r.host.Stats()
	if s.Restores != 1 || s.ReplayedBatches != 2 || s.Retries != 1 {
		t.Fatalf("stats %+v, want 1 restore of the snapshot at 8, 2 replayed batches (9, 10), 1 retry", s)
	}
}

// TestReplicaRestartAppAhead restarts the replica (new Host over the
// reopened database) while the persistent application executed one batch
// the replica did not record.
func TestReplicaRestartAppAhead(t *testing.T) {
	const last = 9
	dir := t.TempDir()
	a := newTestApp()
	r := openReplica(t, dir, a, Options{SnapshotEvery: 4})
	r.applyRange(1, 6)
	// The application executes 7; the replica crashes before recording.
	if _, _, err := a.Execute(context.Background(), 7, toOperations(batchAt(7))); err != nil {
		t.Fatal(err)
	}
	r.close()
	r = openReplica(t, dir, a, Options{SnapshotEvery: 4})
	if s := r.host.Stats(); s.Restores != 1 || s.ReplayedBatches != 2 {
		t.Fatalf("stats after reopen %+v, want 1 restore and 2 replayed batches (5, 6)", s)
	}
	r.applyRange(7, last)
	ref, _ := reference(t, last)
	checkAgainst(t, r, a, ref)
}

// TestUnavailableBlocksThenRecovers makes the application fail calls:
// ExecuteBatch waits (Health says why) and then executes the batch once.
func TestUnavailableBlocksThenRecovers(t *testing.T) {
	a := newTestApp()
	waits := make(chan error)
	release := make(chan struct{})
	var r *replica
	wait := func(ctx context.Context, _ time.Duration) error {
		waits <- r.host.Health()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r = openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 4, Where: "test-app", Wait: wait})
	r.applyRange(1, 3)
	a.failNext(3)
	done := make(chan error, 1)
	go func() {
		_, err := r.exe.Apply(4, batchAt(4))
		done <- err
	}()
	for i := range 3 {
		select {
		case health := <-waits:
			if health == nil || !strings.Contains(health.Error(), "application at test-app") || !errors.Is(health, errTestUnavailable) {
				t.Fatalf("wait %d: Health() = %v, want the unavailable application", i, health)
			}
		case err := <-done:
			t.Fatalf("Apply returned while the application was unavailable: %v", err)
		case <-time.After(testDeadline):
			t.Fatal("no retry")
		}
		release <- struct{}{}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Apply did not recover")
	}
	if err := r.host.Health(); err != nil {
		t.Fatalf("Health after recovery: %v", err)
	}
	r.applyRange(5, 9)
	ref, _ := reference(t, 9)
	checkAgainst(t, r, a, ref)
	if s := r.host.Stats(); s.Retries != 3 {
		t.Fatalf("stats %+v, want 3 retries", s)
	}
}

// TestCloseUnblocksExecute closes the host while Execute is blocked in
// the application, and while the host waits to retry.
func TestCloseUnblocksExecute(t *testing.T) {
	for _, blockedIn := range []string{"execute", "backoff"} {
		t.Run(blockedIn, func(t *testing.T) {
			a := newTestApp()
			// A real timer: Close must end the wait.
			r := openReplica(t, t.TempDir(), a, Options{Wait: waitTimer, RetryMin: time.Hour, RetryMax: time.Hour})
			r.applyRange(1, 2)
			a.mu.Lock()
			if blockedIn == "execute" {
				a.blockExecute, a.entered = true, make(chan struct{}, 1)
			} else {
				a.failCalls = 1
			}
			a.mu.Unlock()
			done := make(chan error, 1)
			go func() {
				_, err := r.exe.Apply(3, batchAt(3))
				done <- err
			}()
			if blockedIn == "execute" {
				<-a.entered
			} else {
				waitFor(t, func() bool { return r.host.Health() != nil })
			}
			if err := r.host.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("Apply after Close: %v, want ErrClosed", err)
				}
			case <-time.After(testDeadline):
				t.Fatal("Close did not unblock Apply")
			}
			if r.exe.LastExecuted() != 2 {
				t.Fatalf("last executed %d, want 2", r.exe.LastExecuted())
			}
		})
	}
}

// waitFor polls cond (an event the test cannot be told of) until the
// deadline.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNonDeterministicDetected: an application whose replay gives another
// state is reported broken at resync.
func TestNonDeterministicDetected(t *testing.T) {
	a := newTestApp()
	a.nondeterministic = true
	r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 4})
	r.applyRange(1, 6)
	a.restart()
	_, err := r.exe.Apply(7, batchAt(7))
	if !errors.Is(err, ErrBrokenApplication) || !strings.Contains(err.Error(), "not deterministic") {
		t.Fatalf("Apply after a non-deterministic replay: %v, want ErrBrokenApplication", err)
	}
	if r.exe.LastExecuted() != 6 {
		t.Fatalf("last executed %d, want 6", r.exe.LastExecuted())
	}
	// Broken for good: no probe clears it.
	for range 3 {
		if h := r.host.Health(); !errors.Is(h, ErrBrokenApplication) {
			t.Fatalf("Health() = %v, want the broken application", h)
		}
	}
	r.host.healthMu.Lock()
	probing := r.host.probing
	r.host.healthMu.Unlock()
	if probing {
		t.Fatal("a broken application is probed")
	}
}

func TestPlainCallsRefused(t *testing.T) {
	r := openReplica(t, t.TempDir(), newTestApp(), Options{})
	if got := r.host.Execute([]byte("k=v")); string(got) != string(plainExecuteResult) {
		t.Fatalf("Execute = %q", got)
	}
	if _, err := r.host.Snapshot(); err == nil {
		t.Fatal("Snapshot succeeded")
	}
	if err := r.host.Restore(nil); err == nil {
		t.Fatal("Restore succeeded")
	}
	r.applyRange(1, 2)
	if v, err := r.host.Query(context.Background(), []byte("k1")); err != nil || string(v) != "v1" {
		t.Fatalf("Query = %q, %v", v, err)
	}
	r.host.Close()
	if _, err := r.host.Query(context.Background(), []byte("k1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Query after Close: %v", err)
	}
}

// healthApp is a testApp that reports its own health (as a client that
// knows its connection is down does).
type healthApp struct {
	*testApp
	err error
}

func (a *healthApp) Health() error { return a.err }

// TestIdleHealth: an application unreachable when the replica opens makes
// Health report it; with no batch to execute, the probes Health starts
// clear it once the application answers. An application's own Health is
// reported too.
func TestIdleHealth(t *testing.T) {
	a := newTestApp()
	a.failNext(1) // Info at Open
	r := openReplica(t, t.TempDir(), a, Options{Where: "idle-app"})
	if err := r.host.Health(); !errors.Is(err, errTestUnavailable) || !strings.Contains(err.Error(), "application at idle-app") {
		t.Fatalf("Health after a failed Open: %v", err)
	}
	waitFor(t, func() bool { return r.host.Health() == nil })
	r.applyRange(1, 3)

	down := errors.New("connection refused")
	h := openReplica(t, t.TempDir(), &healthApp{testApp: newTestApp(), err: down}, Options{Where: "remote"})
	if err := h.host.Health(); !errors.Is(err, down) || !strings.Contains(err.Error(), "application at remote") {
		t.Fatalf("Health with the application's own failure: %v", err)
	}
}

// namedApp is a testApp that names itself (as appgrpc's client does).
type namedApp struct{ *testApp }

func (namedApp) String() string { return "grpc://app.example:7000" }

func TestWhereDefaultsToApplicationName(t *testing.T) {
	a := namedApp{newTestApp()}
	a.failNext(1) // Info at Open
	r := openReplica(t, t.TempDir(), a, Options{})
	if err := r.host.Health(); err == nil || !strings.Contains(err.Error(), "application at grpc://app.example:7000:") {
		t.Fatalf("Health() = %v, want it to name the application", err)
	}
}
