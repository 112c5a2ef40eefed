package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

type rec struct {
	tag  uint64
	data string
}

func scanAll(t *testing.T, w *WAL) []rec {
	t.Helper()
	var got []rec
	if err := w.Scan(func(tag uint64, data []byte) error {
		got = append(got, rec{tag, string(data)})
		return nil
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return got
}

func openWAL(t *testing.T, dir string, segment int64) *WAL {
	t.Helper()
	w, err := Open(dir, Options{SegmentBytes: segment, Sync: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return w
}

func appendN(t *testing.T, w *WAL, from, n, size int) []rec {
	t.Helper()
	var want []rec
	for i := from; i < from+n; i++ {
		r := rec{uint64(i), fmt.Sprintf("%0*d", size, i)}
		if err := w.Append([]Record{{Tag: r.tag, Data: []byte(r.data)}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want = append(want, r)
	}
	return want
}

func equal(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendScanAcrossSegmentsAndReopen(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 1024)
	want := appendN(t, w, 0, 100, 50) // 66 bytes a record: about 15 a segment
	if got := scanAll(t, w); !equal(got, want) {
		t.Fatalf("scan before reopen: %d records, want %d", len(got), len(want))
	}
	if n, _ := w.Segments(); n < 6 {
		t.Fatalf("%d segments, want the appends spread over at least 6", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, nextName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the prepared segment: %v", err)
	}
	w = openWAL(t, dir, 1024)
	defer w.Close()
	want = append(want, appendN(t, w, 100, 10, 50)...)
	if got := scanAll(t, w); !equal(got, want) {
		t.Fatalf("scan after reopen: %d records, want %d", len(got), len(want))
	}
}

func TestWritesAreSyncedByTheNextAppendARollOrClose(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 1024)
	write := func(tag uint64) {
		t.Helper()
		if err := w.Write([]Record{{Tag: tag, Data: bytes.Repeat([]byte{'w'}, 100)}}); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	write(2)
	if w.syncs != 0 {
		t.Fatalf("%d syncs after two Writes, want none", w.syncs)
	}
	if got := scanAll(t, w); len(got) != 2 {
		t.Fatalf("scan sees %d written records, want 2", len(got))
	}
	appendN(t, w, 3, 1, 10)
	if w.syncs != 1 {
		t.Fatalf("%d syncs after the Append, want 1 (covering the Writes before it)", w.syncs)
	}
	// Fill the segment with Writes: the roll must sync the one it leaves.
	first := w.active.index
	tag := uint64(4)
	for w.active.index == first {
		write(tag)
		tag++
	}
	if w.syncs != 2 {
		t.Fatalf("%d syncs after rolling past unsynced Writes, want 2", w.syncs)
	}
	write(tag)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.syncs != 3 {
		t.Fatalf("%d syncs after Close with unsynced Writes, want 3", w.syncs)
	}
	w = openWAL(t, dir, 1024)
	defer w.Close()
	if got := scanAll(t, w); len(got) != int(tag) {
		t.Fatalf("reopened: %d records, want %d", len(got), tag)
	}
}

func TestRecordsOfOneAppendAreWrittenTogether(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 1<<16)
	recs := []Record{{Tag: 1, Data: []byte("a")}, {Tag: 2, Data: []byte("bb")}, {Tag: 3, Data: nil}}
	if err := w.Append(recs); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, w)
	want := []rec{{1, "a"}, {2, "bb"}, {3, ""}}
	if !equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	w.Close()
}

func TestRecordLargerThanASegment(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 256)
	want := appendN(t, w, 0, 2, 10)
	want = append(want, appendN(t, w, 2, 1, 1000)...)
	want = append(want, appendN(t, w, 3, 2, 10)...)
	w.Close()
	w = openWAL(t, dir, 256)
	defer w.Close()
	if got := scanAll(t, w); !equal(got, want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
}

func TestOversizedRecordIsRefused(t *testing.T) {
	w, err := Open(t.TempDir(), Options{SegmentBytes: 1024, MaxRecordBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Append([]Record{{Tag: 1, Data: []byte("ok")}, {Tag: 2, Data: make([]byte, 101)}})
	if err == nil {
		t.Fatal("a 101-byte record was accepted under a 100-byte limit")
	}
	if got := scanAll(t, w); len(got) != 0 {
		t.Fatalf("a refused append wrote %d records", len(got))
	}
}

func TestRemoveBelowDeletesOnlyClosedSegmentsBelowTheTag(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 1024)
	defer w.Close()
	appendN(t, w, 0, 100, 50)
	before, _ := w.Segments()
	removed, err := w.RemoveBelow(40)
	if err != nil {
		t.Fatal(err)
	}
	if removed == 0 {
		t.Fatal("nothing removed below tag 40")
	}
	got := scanAll(t, w)
	if got[0].tag >= 40 || got[len(got)-1].tag != 99 {
		t.Fatalf("after RemoveBelow(40) the records run %d..%d: a segment holding tag 40 or later went, or too many stayed", got[0].tag, got[len(got)-1].tag)
	}
	for i, r := range got {
		if r.tag != got[0].tag+uint64(i) {
			t.Fatalf("records are not contiguous after RemoveBelow at %d", i)
		}
	}
	if after, _ := w.Segments(); after != before-removed {
		t.Fatalf("%d segments after removing %d of %d", after, removed, before)
	}
	if _, err := w.RemoveBelow(1000); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.Segments(); n != 1 {
		t.Fatalf("%d segments after removing everything below 1000, want the active one", n)
	}
	if got := scanAll(t, w); len(got) == 0 || got[len(got)-1].tag != 99 {
		t.Fatal("RemoveBelow removed the active segment's records")
	}
}

// lastSegment returns the path of the newest segment file.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	indexes, err := segmentIndexes(dir)
	if err != nil || len(indexes) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	return filepath.Join(dir, fmt.Sprintf("%016x%s", indexes[len(indexes)-1], segmentExt))
}

// TestTornTailIsCutAndNeverResurfaces simulates a crash in the middle of an
// append at every byte of the last record: the records before it survive,
// the torn one does not, and records appended after the recovery are not
// followed by stale bytes on the next recovery.
func TestTornTailIsCutAndNeverResurfaces(t *testing.T) {
	for cut := 1; cut <= headerLen+20; cut++ {
		dir := t.TempDir()
		w := openWAL(t, dir, 1<<12)
		want := appendN(t, w, 0, 5, 20)
		end := w.active.end
		appendN(t, w, 5, 1, 20) // the torn one
		w.Close()
		path := lastSegment(t, dir)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Keep cut bytes of the last record; the rest of it never reached the disk.
		if _, err := f.WriteAt(make([]byte, headerLen+20-cut), end+int64(cut)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		w = openWAL(t, dir, 1<<12)
		got := scanAll(t, w)
		if cut < headerLen+20 && !equal(got, want) {
			t.Fatalf("cut at %d: recovered %d records, want the 5 before the torn one", cut, len(got))
		}
		want = append(got, appendN(t, w, 100, 1, 3)...)
		w.Close()
		w = openWAL(t, dir, 1<<12)
		if got := scanAll(t, w); !equal(got, want) {
			t.Fatalf("cut at %d: after a second recovery got %v, want %v", cut, got, want)
		}
		w.Close()
	}
}

func TestStaleBytesAfterTheTailAreCut(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 1<<12)
	want := appendN(t, w, 0, 3, 20)
	end := w.active.end
	w.Close()
	// A whole, valid-looking record after a zero header: never appended in
	// this order, so it must not be read.
	stale := appendRecord(nil, Record{Tag: 7, Data: []byte("stale")})
	f, _ := os.OpenFile(lastSegment(t, dir), os.O_RDWR, 0)
	f.WriteAt(stale, end+headerLen+8)
	f.Close()
	w = openWAL(t, dir, 1<<12)
	defer w.Close()
	if got := scanAll(t, w); !equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	info, err := os.Stat(lastSegment(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != end {
		t.Fatalf("the recovered segment is %d bytes, want it cut to %d", info.Size(), end)
	}
}

func TestCorruptionBeforeTheLastSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 512)
	appendN(t, w, 0, 30, 50)
	w.Close()
	first := filepath.Join(dir, fmt.Sprintf("%016x%s", 0, segmentExt))
	f, _ := os.OpenFile(first, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, int64(len(magic))+headerLen+3) // a data byte of the first record
	f.Close()
	if _, err := Open(dir, Options{SegmentBytes: 512}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a flipped byte in a closed segment: %v, want ErrCorrupt", err)
	}
}

func TestUnexpectedFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "zz.wal"), nil, 0o600)
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("a file named like a segment but not one was accepted")
	}
}

func TestOpenWithoutAppendCreatesNoSegment(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, dir, 0)
	if n, bytes := w.Segments(); n != 0 || bytes != 0 {
		t.Fatalf("%d segments, %d bytes before any append", n, bytes)
	}
	w.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("an unused WAL left %d files", len(entries))
	}
}

// TestRandomCrashesKeepAPrefix cuts the newest segment at random offsets
// (what survives a crash of unsynced writes) and checks that recovery
// returns exactly the whole records before the cut, over several rounds of
// crashes and appends.
func TestRandomCrashesKeepAPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	var want []rec
	next := 0
	for round := 0; round < 30; round++ {
		w := openWAL(t, dir, 700)
		if got := scanAll(t, w); !equal(got, want) {
			t.Fatalf("round %d: recovered %d records, want %d", round, len(got), len(want))
		}
		n := 1 + rng.IntN(20)
		var ends, starts []int64
		var segs []uint64
		for i := 0; i < n; i++ {
			size := 1 + rng.IntN(120)
			want = append(want, appendN(t, w, next, 1, size)...)
			next++
			ends = append(ends, w.active.end)
			starts = append(starts, w.active.end-int64(headerLen+size))
			segs = append(segs, w.active.index)
		}
		last := segs[n-1]
		path := lastSegment(t, dir)
		w.Close()
		// Lose the newest segment's bytes from a random point among its
		// records of this round.
		first := n - 1
		for first > 0 && segs[first-1] == last {
			first--
		}
		cutAt := starts[first] + rng.Int64N(ends[n-1]-starts[first]+1)
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		info, _ := f.Stat()
		f.WriteAt(bytes.Repeat([]byte{0}, int(info.Size()-cutAt)), cutAt)
		f.Close()
		lost := 0
		for i := n - 1; i >= first && ends[i] > cutAt; i-- {
			lost++
		}
		want = want[:len(want)-lost]
	}
}

func FuzzOpenSegment(f *testing.F) {
	f.Add(appendRecord([]byte(magic), Record{Tag: 1, Data: []byte("x")}), true)
	f.Add([]byte(magic+"\xff\xff\xff\xff"), false)
	f.Fuzz(func(t *testing.T, content []byte, last bool) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", 1, segmentExt)), content, 0o600)
		if !last {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", 2, segmentExt)), []byte(magic), 0o600)
		}
		w, err := Open(dir, Options{SegmentBytes: 4096, MaxRecordBytes: 1 << 10})
		if err != nil {
			return
		}
		defer w.Close()
		if err := w.Scan(func(uint64, []byte) error { return nil }); err != nil {
			t.Fatalf("scan after a successful open: %v", err)
		}
		if err := w.Append([]Record{{Tag: 9, Data: []byte("after")}}); err != nil {
			t.Fatal(err)
		}
	})
}
