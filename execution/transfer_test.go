package execution

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
	"sync"
	"testing"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// buildState applies batches from..to with puts, deletes and CASes from
// two clients; request numbers equal the sequence.
func buildState(t testing.TB, exe *Executor, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		reqs := []Request{
			{ClientID: alice, RequestNumber: seq, Operation: putOp(fmt.Sprintf("key-%03d", seq%17), fmt.Sprintf("alice-%d", seq))},
			{ClientID: bob, RequestNumber: seq, Operation: EncodeDelete(fmt.Appendf(nil, "key-%03d", (seq*7)%17))},
		}
		if seq%3 == 0 {
			reqs[1].Operation = EncodeCAS([]byte("counter"), nil, true, fmt.Appendf(nil, "%d", seq))
		}
		apply(t, exe, seq, reqs...)
	}
}

// chunkAll reads the whole snapshot with chunks of at most maxBytes.
func chunkAll(t testing.TB, snap *StateSnapshot, maxBytes int) [][]*wire.KeyValue {
	t.Helper()
	var chunks [][]*wire.KeyValue
	var start []byte
	for {
		entries, next, err := snap.Chunk(start, maxBytes)
		if err != nil {
			t.Fatalf("Chunk(%q, %d): %v", start, maxBytes, err)
		}
		if len(entries) == 0 {
			t.Fatalf("Chunk(%q, %d) returned no entries", start, maxBytes)
		}
		chunks = append(chunks, entries)
		if len(next) == 0 {
			return chunks
		}
		if bytes.Compare(next, entries[len(entries)-1].Key) <= 0 {
			t.Fatalf("nextKey %q not after the chunk's last key %q", next, entries[len(entries)-1].Key)
		}
		start = next
	}
}

func flatten(chunks [][]*wire.KeyValue) []*wire.KeyValue { return slices.Concat(chunks...) }

// restoreChunks restores chunks into r and returns RestoreFinish's digest.
func restoreChunks(t testing.TB, r *testReplica, chunks [][]*wire.KeyValue) [32]byte {
	t.Helper()
	if err := r.exe.RestoreBegin(); err != nil {
		t.Fatalf("RestoreBegin: %v", err)
	}
	for i, c := range chunks {
		if err := r.exe.RestoreChunk(c); err != nil {
			t.Fatalf("RestoreChunk %d: %v", i, err)
		}
	}
	digest, err := r.exe.RestoreFinish()
	if err != nil {
		t.Fatalf("RestoreFinish: %v", err)
	}
	return digest
}

// sourceSnapshot builds a state of sequences 1..upTo on a replica of its
// own and returns its snapshot, cut into chunks of at most chunkBytes.
func sourceSnapshot(t *testing.T, upTo uint64, chunkBytes int) (*StateSnapshot, [][]*wire.KeyValue) {
	t.Helper()
	src := openReplica(t, t.TempDir())
	t.Cleanup(func() { src.db.Close() })
	buildState(t, src.exe, 1, upTo)
	snap := takeSnapshot(t, src.exe)
	return snap, chunkAll(t, snap, chunkBytes)
}

func takeSnapshot(t testing.TB, exe *Executor) *StateSnapshot {
	t.Helper()
	snap, err := exe.TakeSnapshot()
	if err != nil {
		t.Fatalf("TakeSnapshot: %v", err)
	}
	t.Cleanup(snap.Release)
	return snap
}

func kvGet(t *testing.T, exe *Executor, seq uint64, key string) *wire.KVResult {
	t.Helper()
	replies := apply(t, exe, seq, Request{ClientID: []byte("reader"), RequestNumber: seq, Operation: EncodeGet([]byte(key))})
	return mustDecode(t, replies[0].Result)
}

func TestSnapshotUnaffectedByLaterApplies(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	buildState(t, src.exe, 1, 30)
	snap := takeSnapshot(t, src.exe)
	if snap.Sequence() != 30 || snap.Digest() != src.exe.StateDigest() {
		t.Fatalf("snapshot sequence %d digest %x, want 30 and the current digest", snap.Sequence(), snap.Digest())
	}
	atSnapshot := kvStateFromDB(t, src.db)
	buildState(t, src.exe, 31, 60)
	if src.exe.StateDigest() == snap.Digest() {
		t.Fatal("later batches did not change the source digest; the test proves nothing")
	}

	entries := flatten(chunkAll(t, snap, 1<<20))
	for _, e := range entries {
		if string(e.Key) == kvDigestKey {
			t.Fatal("snapshot serves the derived KV digest accumulator")
		}
		if !bytes.HasPrefix(e.Key, []byte(storage.PrefixApp)) && !bytes.HasPrefix(e.Key, []byte(storage.PrefixExecutor)) {
			t.Fatalf("snapshot serves key %q outside a/ and e/", e.Key)
		}
	}
	dst := openReplica(t, t.TempDir())
	defer dst.db.Close()
	digest := restoreChunks(t, dst, [][]*wire.KeyValue{entries})
	if digest != snap.Digest() || dst.exe.StateDigest() != snap.Digest() {
		t.Fatalf("restored digest %x, want the snapshot's %x", digest, snap.Digest())
	}
	if dst.exe.LastExecuted() != 30 {
		t.Fatalf("restored LastExecuted = %d, want 30", dst.exe.LastExecuted())
	}
	if got := kvStateFromDB(t, dst.db); !maps2Equal(got, atSnapshot) {
		t.Fatalf("restored KV entries = %v, want the state at sequence 30 %v", got, atSnapshot)
	}
	if on, err := dst.db.TransferInProgress(); err != nil || on {
		t.Fatalf("marker after RestoreFinish = %t, %v; want cleared", on, err)
	}
}

// kvStateFromDB returns the KV entries stored in db.
func kvStateFromDB(t *testing.T, db *storage.DB) map[string]string {
	t.Helper()
	out := make(map[string]string)
	iter := db.LevelDB().NewIterator(nil, nil)
	defer iter.Release()
	for iter.Next() {
		if k, ok := bytes.CutPrefix(iter.Key(), []byte(kvDataPrefix)); ok {
			out[string(k)] = string(iter.Value())
		}
	}
	if err := iter.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSnapshotSmallChunksRestoreLikeOneChunk(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	buildState(t, src.exe, 1, 40)
	// One entry bigger than the chunk limit must still be served alone.
	apply(t, src.exe, 41, Request{ClientID: alice, RequestNumber: 41, Operation: putOp("big", string(bytes.Repeat([]byte("x"), 300)))})
	snap := takeSnapshot(t, src.exe)

	whole := chunkAll(t, snap, 1<<30)
	if len(whole) != 1 {
		t.Fatalf("a 1 GiB limit gave %d chunks, want 1", len(whole))
	}
	small := chunkAll(t, snap, 100)
	if len(small) < 4 {
		t.Fatalf("100-byte chunks: only %d chunks", len(small))
	}
	sawBig := false
	for i, c := range small {
		size := 0
		for _, e := range c {
			size += len(e.Key) + len(e.Value)
		}
		if size > 100 {
			if len(c) != 1 {
				t.Fatalf("chunk %d has %d entries and %d bytes, over the 100-byte limit", i, len(c), size)
			}
			sawBig = true
		}
	}
	if !sawBig {
		t.Fatal("the 300-byte entry was never served")
	}
	if got, want := flatten(small), whole[0]; len(got) != len(want) {
		t.Fatalf("small chunks hold %d entries, one chunk %d", len(got), len(want))
	} else {
		for i := range got {
			if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
				t.Fatalf("entry %d differs: %q vs %q", i, got[i].Key, want[i].Key)
			}
		}
	}

	// A start key between stored keys (any bytes from the network).
	from, _, err := snap.Chunk([]byte("a/k/key-005x"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(from) == 0 || bytes.Compare(from[0].Key, []byte("a/k/key-005x")) <= 0 {
		t.Fatalf("Chunk from a middle key starts at %q", from[0].Key)
	}
	if tail, next, err := snap.Chunk([]byte("zzz"), 100); err != nil || len(tail) != 0 || len(next) != 0 {
		t.Fatalf("Chunk past the end = %d entries, next %q, err %v; want nothing", len(tail), next, err)
	}
	if _, _, err := snap.Chunk(nil, 0); err == nil {
		t.Fatal("Chunk with maxBytes 0 succeeded")
	}

	one := openReplica(t, t.TempDir())
	defer one.db.Close()
	many := openReplica(t, t.TempDir())
	defer many.db.Close()
	d1, d2 := restoreChunks(t, one, whole), restoreChunks(t, many, small)
	if d1 != snap.Digest() || d2 != snap.Digest() {
		t.Fatalf("restored digests %x and %x, want %x", d1, d2, snap.Digest())
	}
}

func TestRestoredExecutorContinues(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	buildState(t, src.exe, 1, 10)
	// Non-idempotent request: re-executing it would give a failed CAS.
	cas := Request{ClientID: []byte("carol"), RequestNumber: 7, Operation: EncodeCAS([]byte("once"), nil, true, []byte("1"))}
	first := apply(t, src.exe, 11, cas)[0].Result
	wantResult(t, "cas", mustDecode(t, first), true, nil)
	snap := takeSnapshot(t, src.exe)

	dir := t.TempDir()
	dst := openReplica(t, dir)
	restoreChunks(t, dst, chunkAll(t, snap, 256))
	if dst.exe.Status(cas.ClientID, 7) != RequestExecuted || dst.exe.LastRequestNumber(alice) != 10 {
		t.Fatalf("restored windows: carol#7 %v, alice H %d; want executed and 10", dst.exe.Status(cas.ClientID, 7), dst.exe.LastRequestNumber(alice))
	}
	if dst.exe.Status(alice, 11) != RequestNew || dst.exe.Status(alice, 3) != RequestExecuted {
		t.Fatal("restored alice window does not match the source")
	}
	next := []Request{cas, {ClientID: []byte("carol"), RequestNumber: 8, Operation: putOp("once", "2")}}
	if _, err := dst.exe.Apply(13, next); err == nil {
		t.Fatal("Apply(13) right after restoring sequence 11 succeeded")
	}
	got := apply(t, dst.exe, 12, next...)
	want := apply(t, src.exe, 12, next...)
	if !bytes.Equal(got[0].Result, first) {
		t.Fatalf("duplicate after restore returned %x, want the cached reply %x", got[0].Result, first)
	}
	if len(got) != len(want) || !bytes.Equal(got[1].Result, want[1].Result) {
		t.Fatal("restored replica's replies differ from the source's")
	}
	if dst.exe.StateDigest() != src.exe.StateDigest() {
		t.Fatal("after Apply 12 the restored replica's digest differs from the source's")
	}
	wantResult(t, "read back", kvGet(t, dst.exe, 13, "once"), true, []byte("2"))
	digest := dst.exe.StateDigest()
	if err := dst.db.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openReplica(t, dir)
	defer reopened.db.Close()
	if reopened.exe.StateDigest() != digest || reopened.exe.LastExecuted() != 13 {
		t.Fatal("restored state did not survive a reopen")
	}
}

func TestRestoreDetectsTampering(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	buildState(t, src.exe, 1, 20)
	snap := takeSnapshot(t, src.exe)
	entries := flatten(chunkAll(t, snap, 1<<20))
	indexOf := func(prefix string) int {
		for i, e := range entries {
			if bytes.HasPrefix(e.Key, []byte(prefix)) {
				return i
			}
		}
		t.Fatalf("no entry with prefix %q", prefix)
		return -1
	}
	clone := func() []*wire.KeyValue {
		out := make([]*wire.KeyValue, len(entries))
		for i, e := range entries {
			out[i] = &wire.KeyValue{Key: bytes.Clone(e.Key), Value: bytes.Clone(e.Value)}
		}
		return out
	}
	kvIdx, replyIdx := indexOf(kvDataPrefix), indexOf(executorReplyPrefix)
	cases := map[string]func() []*wire.KeyValue{
		"tampered kv value": func() []*wire.KeyValue {
			c := clone()
			c[kvIdx].Value = append(c[kvIdx].Value, '!')
			return c
		},
		"added kv entry": func() []*wire.KeyValue {
			c := clone()
			added := &wire.KeyValue{Key: []byte(kvDataPrefix + "zzz-added"), Value: []byte("v")}
			i := indexOf(storage.PrefixExecutor)
			return slices.Insert(c, i, added)
		},
		"removed kv entry":      func() []*wire.KeyValue { return slices.Delete(clone(), kvIdx, kvIdx+1) },
		"removed client window": func() []*wire.KeyValue { return slices.Delete(clone(), replyIdx, replyIdx+1) },
		// A valid, earlier lastSeq: it would change later evictions.
		"tampered window lastSeq": func() []*wire.KeyValue {
			c := clone()
			id := string(c[replyIdx].Key[len(executorReplyPrefix):])
			w, err := decodeClientWindow(id, c[replyIdx].Value)
			if err != nil || w.lastSeq != 20 {
				t.Fatalf("window %q: lastSeq %d, %v", id, w.lastSeq, err)
			}
			w.lastSeq = 19
			c[replyIdx].Value = w.encode()
			return c
		},
		"tampered last executed": func() []*wire.KeyValue {
			c := clone()
			i := slices.IndexFunc(c, func(e *wire.KeyValue) bool { return string(e.Key) == executorLastKey })
			c[i].Value[7]++
			return c
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			dst := openReplica(t, t.TempDir())
			defer dst.db.Close()
			if d := restoreChunks(t, dst, [][]*wire.KeyValue{tamper()}); d == snap.Digest() {
				t.Fatal("tampered snapshot restored to the certified digest")
			}
			// The checked variant refuses and keeps the marker.
			if err := dst.exe.RestoreBegin(); err != nil {
				t.Fatal(err)
			}
			if err := dst.exe.RestoreChunk(tamper()); err != nil {
				t.Fatal(err)
			}
			if _, err := dst.exe.RestoreFinishExpect(snap.Digest()); !errors.Is(err, ErrStateDigestMismatch) {
				t.Fatalf("RestoreFinishExpect = %v, want ErrStateDigestMismatch", err)
			}
			if on, _ := dst.db.TransferInProgress(); !on {
				t.Fatal("marker cleared after a digest mismatch")
			}
			if _, err := dst.exe.Apply(1, nil); err == nil {
				t.Fatal("Apply during a failed restore succeeded")
			}
			if err := dst.exe.RestoreAbort(); err != nil {
				t.Fatalf("RestoreAbort: %v", err)
			}
			if on, _ := dst.db.TransferInProgress(); on || dst.exe.LastExecuted() != 0 || len(kvStateFromDB(t, dst.db)) != 0 {
				t.Fatal("RestoreAbort left state or the marker behind")
			}
			// Retrying with an honest peer works.
			if d, err := restoreChecked(dst, entries, snap.Digest()); err != nil || d != snap.Digest() {
				t.Fatalf("retry after abort: %x, %v", d, err)
			}
		})
	}
}

func restoreChecked(r *testReplica, entries []*wire.KeyValue, want [32]byte) ([32]byte, error) {
	if err := r.exe.RestoreBegin(); err != nil {
		return [32]byte{}, err
	}
	if err := r.exe.RestoreChunk(entries); err != nil {
		return [32]byte{}, err
	}
	return r.exe.RestoreFinishExpect(want)
}

func TestRestoreMarkerCrashStartsEmpty(t *testing.T) {
	snap, chunks := sourceSnapshot(t, 20, 200)

	dir := t.TempDir()
	dst := openReplica(t, dir)
	buildState(t, dst.exe, 1, 5)
	entry := storage.LogEntry{View: 2, Sequence: 6, Kind: storage.KindCommit, Signed: []byte("commit")}
	if err := dst.db.AppendLog([]storage.LogEntry{entry}); err != nil {
		t.Fatal(err)
	}
	if err := dst.db.SaveView(2); err != nil {
		t.Fatal(err)
	}
	if err := dst.db.SaveStableCheckpoint([]byte("cert")); err != nil {
		t.Fatal(err)
	}
	if err := dst.exe.RestoreBegin(); err != nil {
		t.Fatal(err)
	}
	if err := dst.exe.RestoreChunk(chunks[0]); err != nil {
		t.Fatal(err)
	}
	// Crash: close without finishing.
	if err := dst.db.Close(); err != nil {
		t.Fatal(err)
	}

	empty := openReplica(t, t.TempDir())
	defer empty.db.Close()
	r := openReplica(t, dir)
	defer r.db.Close()
	if r.exe.LastExecuted() != 0 || r.exe.StateDigest() != empty.exe.StateDigest() || r.kv.Digest() != empty.kv.Digest() {
		t.Fatalf("after an interrupted restore: LastExecuted %d, digest differs from empty: %t", r.exe.LastExecuted(), r.exe.StateDigest() != empty.exe.StateDigest())
	}
	if n := len(kvStateFromDB(t, r.db)); n != 0 {
		t.Fatalf("%d KV entries survived the interrupted restore", n)
	}
	if on, err := r.db.TransferInProgress(); err != nil || on {
		t.Fatalf("marker after recovery = %t, %v; want cleared", on, err)
	}
	log, err := r.db.LoadLog(0)
	if err != nil || len(log) != 1 || !bytes.Equal(log[0].Signed, entry.Signed) {
		t.Fatalf("protocol log after recovery = %+v, %v", log, err)
	}
	if view, found, err := r.db.LoadView(); err != nil || !found || view != 2 {
		t.Fatalf("view after recovery = %d %t %v", view, found, err)
	}
	if cert, found, err := r.db.LoadStableCheckpoint(); err != nil || !found || string(cert) != "cert" {
		t.Fatalf("stable checkpoint after recovery = %q %t %v", cert, found, err)
	}
	// It can restore and run again.
	if d := restoreChunks(t, r, chunks); d != snap.Digest() {
		t.Fatal("restore after recovery gave the wrong digest")
	}
	buildState(t, r.exe, 21, 22)
}

func TestSnapshotConcurrentChunksDuringApply(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	buildState(t, src.exe, 1, 30)
	snap := takeSnapshot(t, src.exe)
	reference := flatten(chunkAll(t, snap, 1<<20))

	const readers = 4
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Go(func() {
			for round := range 5 {
				maxBytes := 64 + 97*(i+1)*(round+1)
				var got []*wire.KeyValue
				var start []byte
				for {
					entries, next, err := snap.Chunk(start, maxBytes)
					if err != nil {
						errs <- err
						return
					}
					got = append(got, entries...)
					if len(next) == 0 {
						break
					}
					start = next
				}
				if !slices.EqualFunc(got, reference, func(a, b *wire.KeyValue) bool {
					return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value)
				}) {
					errs <- fmt.Errorf("reader %d round %d: entries differ from the reference", i, round)
					return
				}
			}
		})
	}
	buildState(t, src.exe, 31, 90)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	snap.Release()
	snap.Release()
	if _, _, err := snap.Chunk(nil, 100); !errors.Is(err, ErrSnapshotReleased) {
		t.Fatalf("Chunk after Release = %v, want ErrSnapshotReleased", err)
	}
}

// plainApp is an Application that does not support state transfer.
type plainApp struct{ Application }

func TestTransferUnsupportedApplication(t *testing.T) {
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	exe, err := NewExecutor(r.db, plainApp{r.kv}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exe.TakeSnapshot(); !errors.Is(err, ErrTransferUnsupported) {
		t.Fatalf("TakeSnapshot = %v, want ErrTransferUnsupported", err)
	}
	if err := exe.RestoreBegin(); !errors.Is(err, ErrTransferUnsupported) {
		t.Fatalf("RestoreBegin = %v, want ErrTransferUnsupported", err)
	}
	if on, _ := r.db.TransferInProgress(); on {
		t.Fatal("refused RestoreBegin set the marker")
	}
}

// BenchmarkSnapshotChunk reads a snapshot of 10,000 entries of 100 bytes
// in chunks of 64 KiB: as taken (current), and rebuilt by SnapshotAt
// from the rollback records of 20 later batches of 500 puts each (rolled
// back: about 6,300 of its keys served from undo entries).
func BenchmarkSnapshotChunk(b *testing.B) {
	r := openReplica(b, b.TempDir())
	defer r.db.Close()
	rng := rand.New(rand.NewSource(1))
	const keys, perBatch = 10_000, 500
	value := make([]byte, 100)
	batch := func(seq uint64, key func(i int) uint64) {
		reqs := make([]Request, perBatch)
		for i := range reqs {
			rng.Read(value)
			n := (seq-1)*perBatch + uint64(i) + 1
			reqs[i] = Request{ClientID: []byte("bench"), RequestNumber: n, Operation: EncodePut(fmt.Appendf(nil, "key-%06d", key(i)), value)}
		}
		apply(b, r.exe, seq, reqs...)
	}
	const built = keys / perBatch
	for seq := uint64(1); seq <= built; seq++ {
		batch(seq, func(i int) uint64 { return (seq-1)*perBatch + uint64(i) + 1 })
	}
	current := takeSnapshot(b, r.exe)
	defer current.Release()
	if err := r.exe.TrackRollback(built); err != nil {
		b.Fatal(err)
	}
	for seq := uint64(built + 1); seq <= 2*built; seq++ {
		batch(seq, func(int) uint64 { return uint64(rng.Intn(keys)) + 1 })
	}
	rolledBack, err := r.exe.SnapshotAt(built)
	if err != nil {
		b.Fatal(err)
	}
	defer rolledBack.Release()
	for _, c := range []struct {
		name string
		snap *StateSnapshot
	}{{"current", current}, {"rolled back", rolledBack}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if total := len(flatten(chunkAll(b, c.snap, 64<<10))); total < keys {
					b.Fatalf("chunked %d entries, want at least %d", total, keys)
				}
			}
		})
	}
}

// A restore over a state the replica already holds (another transfer,
// after the cluster moved on) ends with exactly the snapshot's state:
// entries the snapshot lacks are deleted wherever they sort (before the
// first chunk, between chunks, inside one, after the last), others take
// the snapshot's values, and the digest matches.
func TestRestoreMergesIntoAnotherState(t *testing.T) {
	src := openReplica(t, t.TempDir())
	t.Cleanup(func() { src.db.Close() })
	buildState(t, src.exe, 1, 40)
	snap := takeSnapshot(t, src.exe)
	want := kvStateFromDB(t, src.db)

	for _, chunkBytes := range []int{1, 120, 1 << 20} {
		dst := openReplica(t, t.TempDir())
		buildState(t, dst.exe, 1, 25)
		seq := uint64(26)
		for _, k := range []string{"", "aaa", "key-0005x", "key-010a", "zzz", "\xff\xff"} {
			apply(t, dst.exe, seq, Request{ClientID: alice, RequestNumber: seq, Operation: putOp(k, "stale")})
			seq++
		}
		if err := dst.exe.RestoreBegin(); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.exe.Read(alice, EncodeGet([]byte("aaa"))); !errors.Is(err, ErrRestoring) {
			t.Fatalf("a read during the restore gave %v, want ErrRestoring", err)
		}
		for _, c := range chunkAll(t, snap, chunkBytes) {
			if err := dst.exe.RestoreChunk(c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dst.exe.RestoreFinishExpect(snap.Digest()); err != nil {
			t.Fatalf("chunks of %d bytes: %v", chunkBytes, err)
		}
		if got := kvStateFromDB(t, dst.db); !maps2Equal(got, want) {
			t.Fatalf("chunks of %d bytes: restored state %v, want %v", chunkBytes, got, want)
		}
		dst.db.Close()
	}
}

// BenchmarkRestoreOverState restores a snapshot of 100,000 preloaded
// entries (100-byte values, 1 MiB chunks) over a replica that holds the
// same entries, as a second transfer does: "merge" is RestoreBegin as it
// is, "wipe-first" deletes the held state first (RestoreAbort), as every
// restore did before the merge.
func BenchmarkRestoreOverState(b *testing.B) {
	const keys = 100_000
	open := func() *testReplica {
		db := openStorage(b, b.TempDir())
		if _, err := Preload(db.LevelDB(), keys, 100); err != nil {
			b.Fatal(err)
		}
		kv, err := NewKV(db.LevelDB())
		if err != nil {
			b.Fatal(err)
		}
		exe, err := NewExecutor(db, kv, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return &testReplica{db: db, kv: kv, exe: exe}
	}
	src := open()
	snap := takeSnapshot(b, src.exe)
	chunks := chunkAll(b, snap, 1<<20)
	for _, wipeFirst := range []bool{false, true} {
		name := "merge"
		if wipeFirst {
			name = "wipe-first"
		}
		b.Run(name, func(b *testing.B) {
			dst := open()
			for b.Loop() {
				if err := dst.exe.RestoreBegin(); err != nil {
					b.Fatal(err)
				}
				if wipeFirst {
					if err := dst.exe.RestoreAbort(); err != nil {
						b.Fatal(err)
					}
					if err := dst.exe.RestoreBegin(); err != nil {
						b.Fatal(err)
					}
				}
				for _, c := range chunks {
					if err := dst.exe.RestoreChunk(c); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := dst.exe.RestoreFinishExpect(snap.Digest()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
