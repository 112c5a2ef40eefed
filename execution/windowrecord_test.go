package execution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomWindow returns a window keeping the invariant: entries among the
// ClientWindow numbers up to high (high always), results from a pool of
// distinct ones (one result for all when shared), lastSeq 0 or not.
func randomWindow(rng *rand.Rand, clientID string, shared bool) *clientWindow {
	high := uint64(1 + rng.IntN(200))
	pool := [][]byte{{0x08, 0x01}, []byte("value-a"), {}, []byte("a longer value of the read path")}
	w := &clientWindow{high: high, entries: make(map[uint64]windowEntry)}
	for d := range uint64(ClientWindow) {
		if d > high || (d > 0 && rng.IntN(3) == 0) {
			continue
		}
		r := pool[0]
		if !shared {
			r = pool[rng.IntN(len(pool))]
		}
		w.entries[high-d] = windowEntry{result: r, hash: replyHash(clientID, high-d, r)}
	}
	if rng.IntN(2) == 0 {
		w.lastSeq = rng.Uint64N(1 << 40)
	}
	w.seqHash = windowSeqHash(clientID, w.lastSeq)
	return w
}

// listedRecord encodes w in the listed form (what earlier versions wrote).
func listedRecord(w *clientWindow) []byte {
	out := binary.AppendUvarint(nil, w.high)
	out = binary.AppendUvarint(out, uint64(len(w.entries)))
	for _, n := range slices.Sorted(maps.Keys(w.entries)) {
		out = binary.AppendUvarint(out, n)
		out = binary.AppendUvarint(out, uint64(len(w.entries[n].result)))
		out = append(out, w.entries[n].result...)
	}
	if w.lastSeq > 0 {
		out = binary.AppendUvarint(out, w.lastSeq)
	}
	return out
}

func sameWindow(a, b *clientWindow) bool {
	if a.high != b.high || a.lastSeq != b.lastSeq || a.seqHash != b.seqHash || len(a.entries) != len(b.entries) {
		return false
	}
	for n, e := range a.entries {
		f, ok := b.entries[n]
		if !ok || !bytes.Equal(e.result, f.result) || e.hash != f.hash {
			return false
		}
	}
	return true
}

// isCompact reports whether record is in the compact form.
func isCompact(record []byte) bool {
	_, n := binary.Uvarint(record)
	return n > 0 && len(record) > n && record[n] == 0
}

// TestWindowRecordForms: encode writes the compact form for every window
// that keeps the invariant, and it and the listed form of earlier versions
// both decode to the same window.
func TestWindowRecordForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 2000 {
		w := randomWindow(rng, "client", i%2 == 0)
		record := w.encode()
		if !isCompact(record) {
			t.Fatalf("window %d: encoded in the listed form", i)
		}
		for name, b := range map[string][]byte{"compact": record, "listed": listedRecord(w)} {
			got, err := decodeClientWindow("client", b)
			if err != nil || !sameWindow(got, w) {
				t.Fatalf("window %d, %s form: decoded %+v, %v; want %+v", i, name, got, err, w)
			}
		}
	}
}

// TestCompactRecordOfPuts: a full window of puts (one two-byte result)
// takes a few bytes, not one entry's worth per request.
func TestCompactRecordOfPuts(t *testing.T) {
	w := &clientWindow{high: 100_000, lastSeq: 50_000, entries: make(map[uint64]windowEntry)}
	ok := kvResult{ok: true}.encode()
	for n := w.high - ClientWindow + 1; n <= w.high; n++ {
		w.entries[n] = windowEntry{result: ok}
	}
	compact, listed := len(w.encode()), len(listedRecord(w))
	if compact > 24 || listed < 10*compact {
		t.Fatalf("64 puts: compact record %d bytes, listed %d", compact, listed)
	}
}

// TestCompactRecordRejects: every compact record that appendCompactEntries
// would not write is corrupt, and no prefix of a valid one decodes.
func TestCompactRecordRejects(t *testing.T) {
	record := func(high, bitmap uint64, form byte, results ...[]byte) []byte {
		out := binary.AppendUvarint(nil, high)
		out = append(out, 0)
		out = binary.LittleEndian.AppendUint64(out, bitmap)
		out = append(out, form)
		for _, r := range results {
			out = binary.AppendUvarint(out, uint64(len(r)))
			out = append(out, r...)
		}
		return out
	}
	good := record(10, 0b101, compactEach, []byte("a"), []byte("b"))
	if _, err := decodeClientWindow("c", good); err != nil {
		t.Fatalf("valid record: %v", err)
	}
	cases := map[string][]byte{
		"high not executed":      record(10, 0b100, compactShared, []byte("a")),
		"entry below 0":          record(2, 0b1001, compactShared, []byte("a")),
		"unknown form":           record(10, 1, 3, []byte("a")),
		"equal results, each":    record(10, 0b11, compactEach, []byte("a"), []byte("a")),
		"one entry, each":        record(10, 1, compactEach, []byte("a")),
		"missing result":         record(10, 0b11, compactEach, []byte("a")),
		"result length overflow": append(record(10, 1, compactShared), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"trailing zero":          append(bytes.Clone(good), 0),
	}
	for i := range len(good) {
		cases["prefix "+string(rune('a'+i))] = good[:i]
	}
	for name, b := range cases {
		if _, err := decodeClientWindow("c", b); !errors.Is(err, errCorruptWindow) {
			t.Errorf("%s: err = %v, want errCorruptWindow", name, err)
		}
	}
}

// FuzzDecodeClientWindow: decoding never panics; what decodes encodes
// back to a record that decodes to the same window, and a compact record
// that decodes is the one encoding of its window.
func FuzzDecodeClientWindow(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 8 {
		w := randomWindow(rng, "c", i%2 == 0)
		f.Add(w.encode())
		f.Add(listedRecord(w))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeClientWindow("c", b)
		if err != nil {
			if !errors.Is(err, errCorruptWindow) {
				t.Fatalf("error %v is not errCorruptWindow", err)
			}
			return
		}
		again, err := decodeClientWindow("c", w.encode())
		if err != nil || !sameWindow(again, w) {
			t.Fatalf("re-encoded window decodes to %+v, %v; want %+v", again, err, w)
		}
		if isCompact(b) && !bytes.Equal(w.encode(), b) {
			t.Fatalf("compact record %x decodes, but its window encodes as %x", b, w.encode())
		}
	})
}
