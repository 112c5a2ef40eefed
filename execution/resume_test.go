package execution

import (
	"bytes"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// A tagged restore interrupted by a crash is kept: the reopened executor
// is empty (LastExecuted 0) with the restore in progress, RestoreResume
// with the same tag continues after the last key written, and the state,
// completed from there, has the snapshot's digest. A restore under
// another tag starts over from an empty state.
func TestTaggedRestoreResumesAfterACrash(t *testing.T) {
	snap, chunks := sourceSnapshot(t, 20, 100)
	if len(chunks) < 4 {
		t.Fatalf("%d chunks; the test wants several", len(chunks))
	}
	tag := []byte("seq 20")

	dir := t.TempDir()
	dst := openReplica(t, dir)
	buildState(t, dst.exe, 1, 5)
	if err := dst.exe.RestoreBeginTagged(tag); err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks[:2] {
		if err := dst.exe.RestoreChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.db.Close(); err != nil { // crash
		t.Fatal(err)
	}

	r := openReplica(t, dir)
	defer r.db.Close()
	if r.exe.LastExecuted() != 0 {
		t.Fatalf("reopened mid-restore at LastExecuted %d, want 0", r.exe.LastExecuted())
	}
	if _, err := r.exe.Apply(1, nil); err == nil {
		t.Fatal("Apply succeeded during the kept restore")
	}
	if _, ok := r.exe.RestoreResume([]byte("seq 28")); ok {
		t.Fatal("resumed under another tag")
	}
	start, ok := r.exe.RestoreResume(tag)
	last := chunks[1][len(chunks[1])-1].Key
	if !ok || bytes.Compare(start, last) <= 0 || bytes.Compare(start, chunks[2][0].Key) > 0 {
		t.Fatalf("resume at %q (ok %v); the last key written was %q", start, ok, last)
	}
	entries, next, err := snap.Chunk(start, 100)
	for ; err == nil; entries, next, err = snap.Chunk(next, 100) {
		if err := r.exe.RestoreChunk(entries); err != nil {
			t.Fatal(err)
		}
		if len(next) == 0 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.exe.RestoreFinishExpect(snap.Digest()); err != nil {
		t.Fatalf("resumed restore: %v", err)
	}
	if r.exe.LastExecuted() != 20 {
		t.Fatalf("LastExecuted %d after the resumed restore, want 20", r.exe.LastExecuted())
	}
	// Finished: nothing is kept across the next reopen.
	if _, err := r.db.LevelDB().Get([]byte(restoreProgressKey), nil); err == nil {
		t.Fatal("the progress record outlived the restore")
	}
}

func TestUntaggedOrRetaggedRestoreStartsOver(t *testing.T) {
	snap, chunks := sourceSnapshot(t, 20, 200)

	dir := t.TempDir()
	dst := openReplica(t, dir)
	if err := dst.exe.RestoreBeginTagged([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := dst.exe.RestoreChunk(chunks[0]); err != nil {
		t.Fatal(err)
	}
	if err := dst.db.Close(); err != nil {
		t.Fatal(err)
	}
	r := openReplica(t, dir)
	defer r.db.Close()
	// Another tag: begin afresh, over the kept chunks (merged, not wiped);
	// the whole snapshot restores with its digest.
	if err := r.exe.RestoreBeginTagged([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.exe.RestoreResume([]byte("b")); ok {
		t.Fatal("a new tag resumed the old restore")
	}
	for _, c := range chunks {
		if err := r.exe.RestoreChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.exe.RestoreFinishExpect(snap.Digest()); err != nil {
		t.Fatal(err)
	}
	// A peer cannot plant the progress record.
	if err := r.exe.RestoreBegin(); err != nil {
		t.Fatal(err)
	}
	err := r.exe.RestoreChunk([]*wire.KeyValue{{Key: []byte(restoreProgressKey), Value: encodeRestoreProgress([]byte("x"), nil)}})
	if err == nil {
		t.Fatal("a chunk carrying the progress record was accepted")
	}
}
