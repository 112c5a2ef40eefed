package execution

import (
	"fmt"
	"maps"
	"math/rand"
	"testing"
)

// recordByScan is record as it was before eviction looked up the numbers
// that can fall out: it scans the whole window. The reference for
// TestRecordEvictsAsAScanWould.
func recordByScan(w *clientWindow, clientID string, n uint64, result []byte, acc *adHash) {
	entry := windowEntry{result: result, hash: replyHash(clientID, n, result)}
	w.entries[n] = entry
	acc.add(entry.hash)
	if n <= w.high {
		return
	}
	w.high = n
	if n < ClientWindow {
		return
	}
	floor := n - ClientWindow
	for m, old := range w.entries {
		if m <= floor {
			delete(w.entries, m)
			acc.sub(old.hash)
		}
	}
}

// TestRecordEvictsAsAScanWould: for random request numbers (small and
// large jumps of the highest number, out-of-order numbers inside the
// window), record leaves the same window and the same digest accumulator
// as scanning the window.
func TestRecordEvictsAsAScanWould(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for run := range 200 {
		got, want := newClientWindow(), newClientWindow()
		var gotAcc, wantAcc adHash
		next := uint64(rng.Intn(3) * 40)
		for step := range 400 {
			var n uint64
			switch r := rng.Intn(10); {
			case r < 6:
				next += uint64(1 + rng.Intn(3))
				n = next
			case r < 8:
				next += uint64(rng.Intn(3 * ClientWindow))
				n = next
			default: // inside the window, below the highest
				n = next - uint64(rng.Intn(ClientWindow))
				if n > next {
					n = 0
				}
			}
			if want.status(n) != RequestNew {
				continue
			}
			result := fmt.Appendf(nil, "r%d", n)
			got.record("c", n, result, &gotAcc)
			recordByScan(want, "c", n, result, &wantAcc)
			if got.high != want.high || !maps.EqualFunc(got.entries, want.entries, func(a, b windowEntry) bool { return a.hash == b.hash }) || gotAcc != wantAcc {
				t.Fatalf("run %d step %d (n=%d): window %d/%d entries, high %d/%d, acc equal %v",
					run, step, n, len(got.entries), len(want.entries), got.high, want.high, gotAcc == wantAcc)
			}
		}
	}
}
