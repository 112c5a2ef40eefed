package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
)

func openTestDB(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, DefaultOptions(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return db
}

func signedBytes(seq uint64, kind byte, sender int) []byte {
	return fmt.Appendf(nil, "signed seq=%d kind=%c sender=%d", seq, kind, sender)
}

func TestOpenSecondTimeIsLocked(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	defer db.Close()
	second, err := Open(dir, DefaultOptions(nil))
	if err == nil {
		second.Close()
		t.Fatal("second Open of the same directory succeeded, want a lock error")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open error = %v, want one wrapping ErrLocked", err)
	}
}

func TestAppendLoadLogInKeyOrder(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	if !db.Sync() {
		t.Fatal("DefaultOptions must enable Sync")
	}
	// Appended out of order; two prepares from different senders at the
	// same (seq, view, kind) must both survive.
	entries := []LogEntry{
		{View: 1, Sequence: 3, Kind: KindCommit, Signed: signedBytes(3, KindCommit, 0)},
		{View: 0, Sequence: 1, Kind: KindPrePrepare, Signed: signedBytes(1, KindPrePrepare, 0)},
		{View: 0, Sequence: 2, Kind: KindPrepare, Signed: signedBytes(2, KindPrepare, 1)},
		{View: 0, Sequence: 2, Kind: KindPrepare, Signed: signedBytes(2, KindPrepare, 2)},
		{View: 0, Sequence: 256, Kind: KindCheckpoint, Signed: signedBytes(256, KindCheckpoint, 0)},
	}
	if err := db.AppendLog(entries); err != nil {
		t.Fatalf("AppendLog: %v", err)
	}
	// Idempotent re-append.
	if err := db.AppendLog(entries[:1]); err != nil {
		t.Fatalf("AppendLog again: %v", err)
	}
	got, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if len(got) != len(entries) {
		t.Fatalf("LoadLog returned %d entries, want %d: %+v", len(got), len(entries), got)
	}
	wantSeqs := []uint64{1, 2, 2, 3, 256}
	for i, e := range got {
		if e.Sequence != wantSeqs[i] {
			t.Errorf("entry %d sequence = %d, want %d", i, e.Sequence, wantSeqs[i])
		}
		if !bytes.Equal(e.Signed, signedBytes(e.Sequence, e.Kind, senderOf(t, e))) {
			t.Errorf("entry %d signed bytes do not match its key fields: %q", i, e.Signed)
		}
	}
	if got[3].View != 1 || got[3].Kind != KindCommit {
		t.Errorf("entry 3 = view %d kind %q, want view 1 kind 'c'", got[3].View, got[3].Kind)
	}

	from3, err := db.LoadLog(3)
	if err != nil {
		t.Fatalf("LoadLog(3): %v", err)
	}
	if len(from3) != 2 || from3[0].Sequence != 3 || from3[1].Sequence != 256 {
		t.Fatalf("LoadLog(3) = %+v, want sequences 3 and 256", from3)
	}
}

func senderOf(t *testing.T, e LogEntry) int {
	t.Helper()
	var seq uint64
	var kind byte
	var sender int
	if _, err := fmt.Sscanf(string(e.Signed), "signed seq=%d kind=%c sender=%d", &seq, &kind, &sender); err != nil {
		t.Fatalf("parse %q: %v", e.Signed, err)
	}
	return sender
}

func TestAppendLogRejectsBadEntriesAtomically(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	bad := [][]LogEntry{
		{{Sequence: 1, Kind: KindPrepare, Signed: []byte("ok")}, {Sequence: 2, Kind: 'x', Signed: []byte("bad kind")}},
		{{Sequence: 1, Kind: KindPrepare, Signed: []byte("ok")}, {Sequence: 2, Kind: KindCommit}},
	}
	for i, entries := range bad {
		if err := db.AppendLog(entries); err == nil {
			t.Errorf("case %d: AppendLog accepted an invalid entry", i)
		}
	}
	got, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("rejected batches left %d entries behind", len(got))
	}
}

func TestDeleteLogBelow(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	// More entries than one delete chunk to exercise chunking.
	const n = deleteChunk + 100
	entries := make([]LogEntry, 0, n)
	for seq := uint64(1); seq <= n; seq++ {
		entries = append(entries, LogEntry{View: 7, Sequence: seq, Kind: KindCommit, Signed: signedBytes(seq, KindCommit, 0)})
	}
	if err := db.AppendLog(entries); err != nil {
		t.Fatalf("AppendLog: %v", err)
	}
	const cut = deleteChunk + 50
	if err := db.DeleteLogBelow(cut); err != nil {
		t.Fatalf("DeleteLogBelow: %v", err)
	}
	got, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if want := n - cut + 1; len(got) != want {
		t.Fatalf("after DeleteLogBelow(%d): %d entries, want %d", cut, len(got), want)
	}
	if got[0].Sequence != cut {
		t.Fatalf("first remaining sequence = %d, want %d", got[0].Sequence, cut)
	}
	// Deleting below an already-collected point is a no-op.
	if err := db.DeleteLogBelow(10); err != nil {
		t.Fatalf("DeleteLogBelow(10): %v", err)
	}
	again, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if len(again) != len(got) {
		t.Fatalf("no-op DeleteLogBelow changed entry count from %d to %d", len(got), len(again))
	}
	// A later call starts at the floor the last one left and still
	// deletes everything between it and its own bound.
	if err := db.DeleteLogBelow(n); err != nil {
		t.Fatalf("DeleteLogBelow(%d): %v", n, err)
	}
	last, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if len(last) != 1 || last[0].Sequence != n {
		t.Fatalf("after DeleteLogBelow(%d): %d entries, want only sequence %d", n, len(last), n)
	}
}

func TestViewAndLogSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	if _, found, err := db.LoadView(); err != nil || found {
		t.Fatalf("LoadView on a fresh DB = found %v, err %v; want not found", found, err)
	}
	if err := db.SaveView(5); err != nil {
		t.Fatalf("SaveView: %v", err)
	}
	if err := db.SaveView(9); err != nil {
		t.Fatalf("SaveView: %v", err)
	}
	if err := db.AppendLog([]LogEntry{{View: 9, Sequence: 4, Kind: KindPrePrepare, Signed: []byte("pp")}}); err != nil {
		t.Fatalf("AppendLog: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = openTestDB(t, dir)
	defer db.Close()
	view, found, err := db.LoadView()
	if err != nil || !found || view != 9 {
		t.Fatalf("LoadView after reopen = %d, %v, %v; want 9, true, nil", view, found, err)
	}
	got, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if len(got) != 1 || got[0].View != 9 || got[0].Sequence != 4 || !bytes.Equal(got[0].Signed, []byte("pp")) {
		t.Fatalf("LoadLog after reopen = %+v", got)
	}
	size, err := db.SizeBytes()
	if err != nil {
		t.Fatalf("SizeBytes: %v", err)
	}
	if size <= 0 {
		t.Fatalf("SizeBytes = %d, want > 0 for a database holding data", size)
	}
}

func TestLoadViewRejectsCorruptValue(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	if err := db.LevelDB().Put([]byte(viewKey), []byte{1, 2, 3}, nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, _, err := db.LoadView(); err == nil {
		t.Fatal("LoadView accepted a 3-byte view value")
	}
}

func TestLoadLogRejectsCorruptKey(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	if err := db.LevelDB().Put([]byte(logPrefix+"short"), []byte("x"), nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := db.LoadLog(0); err == nil {
		t.Fatal("LoadLog accepted a malformed log key")
	}
}

func TestLogGoesToTheWALAndMergesWithOlderEntries(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Sync: true, WALSegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	// An entry a database written before the WAL holds under p/log/, and
	// the same message appended again (as recovery can): it is read once.
	legacy := LogEntry{View: 1, Sequence: 3, Kind: KindPrepare, Signed: []byte("legacy")}
	if err := db.LevelDB().Put(logKey(legacy), legacy.Signed, nil); err != nil {
		t.Fatal(err)
	}
	var appended []LogEntry
	for seq := uint64(1); seq <= 200; seq++ {
		appended = append(appended, LogEntry{View: 1, Sequence: seq, Kind: KindCommit, Signed: bytes.Repeat([]byte{byte(seq)}, 100)})
		if err := db.AppendLog(appended[len(appended)-1:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AppendLog([]LogEntry{legacy}); err != nil {
		t.Fatal(err)
	}
	iter := db.LevelDB().NewIterator(util.BytesPrefix([]byte(logPrefix)), nil)
	n := 0
	for iter.Next() {
		n++
	}
	iter.Release()
	if n != 1 {
		t.Fatalf("goleveldb holds %d log keys, want only the legacy one (appends go to the WAL)", n)
	}
	segments, _ := db.wal.Segments()
	if segments < 3 {
		t.Fatalf("%d WAL segments for 200 entries of 100 bytes in 4 KiB segments", segments)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{Sync: true, WALSegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.LoadLog(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || got[0].Sequence != 2 || got[2].Sequence != 3 || got[1].Kind != KindCommit || got[2].Kind != KindPrepare {
		t.Fatalf("LoadLog(2) after reopen: %d entries starting %+v", len(got), got[:min(3, len(got))])
	}
	if err := db.DeleteLogBelow(150); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.wal.Segments(); after >= segments {
		t.Fatalf("DeleteLogBelow(150) left %d of %d segments", after, segments)
	}
	got, err = db.LoadLog(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 51 || got[0].Sequence != 150 {
		t.Fatalf("after DeleteLogBelow(150): %d entries from %d, want 51 from 150", len(got), got[0].Sequence)
	}
}

func TestWriteLogEntriesLoadLikeAppendedOnes(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	written := []LogEntry{
		{View: 0, Sequence: 1, Kind: KindPrePrepare, Signed: signedBytes(1, KindPrePrepare, 0)},
		{View: 0, Sequence: 1, Kind: KindPrepare, Signed: signedBytes(1, KindPrepare, 1)},
	}
	if err := db.WriteLog(written); err != nil {
		t.Fatalf("WriteLog: %v", err)
	}
	if err := db.WriteLog([]LogEntry{{View: 0, Sequence: 2, Kind: 'z', Signed: []byte("x")}}); err == nil {
		t.Fatal("WriteLog accepted an unknown kind")
	}
	if err := db.AppendLog([]LogEntry{{View: 0, Sequence: 1, Kind: KindCommit, Signed: signedBytes(1, KindCommit, 1)}}); err != nil {
		t.Fatalf("AppendLog: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db = openTestDB(t, dir)
	defer db.Close()
	got, err := db.LoadLog(0)
	if err != nil {
		t.Fatalf("LoadLog: %v", err)
	}
	if len(got) != 3 || got[0].Kind != KindPrePrepare || got[1].Kind != KindCommit || got[2].Kind != KindPrepare {
		t.Fatalf("LoadLog after reopen = %+v, want the two written entries and the appended one", got)
	}
}
