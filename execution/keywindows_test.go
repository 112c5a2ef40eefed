package execution

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
)

// openKeyLimited opens a replica whose executor keeps at most maxWindows
// windows in all and perKey per client key.
func openKeyLimited(t testing.TB, dir string, maxWindows, perKey int) *testReplica {
	t.Helper()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatalf("NewKV: %v", err)
	}
	exe, err := NewExecutor(db, kv, slog.New(slog.DiscardHandler), WithMaxClientWindows(maxWindows), WithMaxWindowsPerKey(perKey))
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	return &testReplica{db: db, kv: kv, exe: exe}
}

// checkKeyIndex fails unless the key index lists exactly the executor's
// windows, each under its key.
func checkKeyIndex(t testing.TB, name string, e *Executor) {
	t.Helper()
	n := 0
	for key, m := range e.byKey {
		if len(m) == 0 {
			t.Fatalf("%s: key %q indexed with no windows", name, key)
		}
		for id, w := range m {
			if crypto.ClientKeyOf(id) != key || e.clients[id] != w {
				t.Fatalf("%s: key index holds %q under %q, not the executor's window", name, id, key)
			}
			n++
		}
	}
	if n != len(e.clients) {
		t.Fatalf("%s: key index holds %d windows, executor %d", name, n, len(e.clients))
	}
}

// sessionID returns client ID of session s of a 32-byte key named by c.
func sessionID(c byte, s int) string {
	return strings.Repeat(string(c), crypto.ClientKeySize) + fmt.Sprintf("/session-%03d", s)
}

// TestKeyOpeningSessionsEvictsOnlyItsOwnWindows: a key that opens a new
// session in every batch keeps at most the per-key bound of windows, its
// oldest evicted first, and the honest clients' windows (idle since the
// first batches, the oldest of all) survive, with their replies still
// cached, across a restart too. With the per-key bound out of the way the
// global bound evicts the honest clients instead (the protection matters).
func TestKeyOpeningSessionsEvictsOnlyItsOwnWindows(t *testing.T) {
	const (
		global   = 10
		perKey   = 4
		sessions = 60
	)
	honest := []string{strings.Repeat("h", crypto.ClientKeySize), sessionID('g', 1), sessionID('g', 2)}
	run := func(t *testing.T, dir string, perKeyBound int) *testReplica {
		r := openKeyLimited(t, dir, global, perKeyBound)
		seq := uint64(0)
		for _, c := range honest {
			seq++
			apply(t, r.exe, seq, Request{ClientID: []byte(c), RequestNumber: 1, Operation: putOp(c, "v")})
		}
		for s := range sessions {
			seq++
			id := sessionID('x', s)
			apply(t, r.exe, seq, Request{ClientID: []byte(id), RequestNumber: 1, Operation: putOp("k", "v")})
			checkEvictState(t, fmt.Sprintf("after session %d", s), r, false)
		}
		return r
	}
	t.Run("bounded", func(t *testing.T) {
		dir := t.TempDir()
		r := run(t, dir, perKey)
		defer func() { _ = r.db.Close() }()
		for _, c := range honest {
			if r.exe.Status([]byte(c), 1) != RequestExecuted {
				t.Fatalf("honest client %q lost its window to another key's sessions", c[:8])
			}
		}
		var attacker []string
		for id := range r.exe.clients {
			if crypto.ClientKeyOf(id) == crypto.ClientKeyOf(sessionID('x', 0)) {
				attacker = append(attacker, id)
			}
		}
		var want []string
		for s := sessions - len(attacker); s < sessions; s++ {
			want = append(want, sessionID('x', s))
		}
		if slices.Sort(attacker); len(attacker) > perKey || len(attacker) < keyEvictionTarget(perKey) || !slices.Equal(attacker, want) {
			t.Fatalf("attacker key keeps windows %q, want its newest %d to %d", attacker, keyEvictionTarget(perKey), perKey)
		}
		before := windowsOf(r.exe)
		digest := r.exe.StateDigest()
		if err := r.db.Close(); err != nil {
			t.Fatal(err)
		}
		again := openKeyLimited(t, dir, global, perKey)
		defer func() { _ = again.db.Close() }()
		if !maps.Equal(windowsOf(again.exe), before) {
			t.Fatalf("windows differ after a restart: %d against %d", len(windowsOf(again.exe)), len(before))
		}
		if again.exe.StateDigest() != digest {
			t.Fatal("digest differs after a restart")
		}
		checkKeyIndex(t, "after restart", again.exe)
	})
	t.Run("unbounded per key", func(t *testing.T) {
		r := run(t, t.TempDir(), 1<<20)
		defer func() { _ = r.db.Close() }()
		if r.exe.Status([]byte(honest[0]), 1) == RequestExecuted {
			t.Fatal("without the per-key bound the honest client kept its window: the scenario does not show the attack")
		}
	})
}

// TestKeyEvictionSparesTouchedWindows: a batch that opens more sessions of
// one key than the bound keeps them all (their replies are being sent);
// the next batch of that key brings it back under the bound, evicting the
// oldest untouched first and never a window it touches.
func TestKeyEvictionSparesTouchedWindows(t *testing.T) {
	r := openKeyLimited(t, t.TempDir(), 100, 2)
	defer func() { _ = r.db.Close() }()
	var batch []Request
	for s := range 5 {
		batch = append(batch, Request{ClientID: []byte(sessionID('x', s)), RequestNumber: 1, Operation: putOp("k", "v")})
	}
	apply(t, r.exe, 1, batch...)
	checkEvictState(t, "over the bound", r, false)
	if got := len(r.exe.byKey[crypto.ClientKeyOf(sessionID('x', 0))]); got != 5 {
		t.Fatalf("%d windows after a batch of 5 new sessions, want all 5 kept", got)
	}
	// Session 4 runs again and session 5 is new: 5 is created, so the key
	// goes back to 2 windows: 4 and 5 (touched) stay, 0 to 3 go.
	apply(t, r.exe, 2,
		Request{ClientID: []byte(sessionID('x', 4)), RequestNumber: 2, Operation: putOp("k", "w")},
		Request{ClientID: []byte(sessionID('x', 5)), RequestNumber: 1, Operation: putOp("k", "w")})
	checkEvictState(t, "back under the bound", r, false)
	got := slices.Sorted(maps.Keys(r.exe.clients))
	if want := []string{sessionID('x', 4), sessionID('x', 5)}; !slices.Equal(got, want) {
		t.Fatalf("windows %q, want %q", got, want)
	}
}

// TestKeyEvictionUndoneOnFailure: a batch whose write fails leaves the
// windows, the key index and the digest as they were, per-key evictions
// included.
func TestKeyEvictionUndoneOnFailure(t *testing.T) {
	r := openKeyLimited(t, t.TempDir(), 100, 2)
	for s := range 2 {
		apply(t, r.exe, uint64(s+1), Request{ClientID: []byte(sessionID('x', s)), RequestNumber: 1, Operation: putOp("k", "v")})
	}
	before, digest := windowsOf(r.exe), r.exe.StateDigest()
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.exe.Apply(3, []Request{{ClientID: []byte(sessionID('x', 2)), RequestNumber: 1, Operation: putOp("k", "v")}}); err == nil {
		t.Fatal("Apply on a closed database succeeded")
	}
	if !maps.Equal(windowsOf(r.exe), before) || r.exe.StateDigest() != digest {
		t.Fatal("failed Apply changed the windows or the digest")
	}
	checkKeyIndex(t, "after failure", r.exe)
}

func TestWithMaxWindowsPerKeyRejectsZero(t *testing.T) {
	db := openStorage(t, t.TempDir())
	defer func() { _ = db.Close() }()
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExecutor(db, kv, nil, WithMaxWindowsPerKey(0)); err == nil {
		t.Fatal("NewExecutor accepted a per-key bound of 0")
	}
}

// TestKeyEvictionIsAmortized: a key opening a session per batch is
// brought down to three quarters of its bound when it exceeds it, so only
// about one batch in a quarter of the bound evicts (and scans the key's
// windows), never one of the key's newest three quarters.
func TestKeyEvictionIsAmortized(t *testing.T) {
	const perKey, sessions = 16, 200
	r := openKeyLimited(t, t.TempDir(), 1000, perKey)
	defer func() { _ = r.db.Close() }()
	key, target := crypto.ClientKeyOf(sessionID('x', 0)), keyEvictionTarget(perKey)
	evictingBatches := 0
	for s := range sessions {
		before := len(r.exe.byKey[key])
		apply(t, r.exe, uint64(s+1), Request{ClientID: []byte(sessionID('x', s)), RequestNumber: 1, Operation: putOp("k", "v")})
		after := len(r.exe.byKey[key])
		if after < before+1 {
			evictingBatches++
		}
		if after > perKey || (s >= perKey && after < target) {
			t.Fatalf("after session %d: %d windows, want %d to %d", s, after, target, perKey)
		}
		for newest := max(0, s-target+1); newest <= s; newest++ {
			if r.exe.Status([]byte(sessionID('x', newest)), 1) != RequestExecuted {
				t.Fatalf("after session %d: session %d, among the newest %d, lost its window", s, newest, target)
			}
		}
	}
	checkEvictState(t, "end", r, false)
	if most := (sessions-perKey)/(perKey/4) + 1; evictingBatches == 0 || evictingBatches > most {
		t.Fatalf("%d of %d batches evicted, want 1 to %d", evictingBatches, sessions, most)
	}
}
