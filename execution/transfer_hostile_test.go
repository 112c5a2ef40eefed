package execution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
	"github.com/syndtr/goleveldb/leveldb"
)

func TestRestoreRejectsHostileChunks(t *testing.T) {
	kvEntry := func(key string, value []byte) *wire.KeyValue {
		return &wire.KeyValue{Key: []byte(kvDataPrefix + key), Value: value}
	}
	valid := kvEntry("a", []byte("1"))
	window := (&clientWindow{high: 3, entries: map[uint64]windowEntry{3: {result: []byte("r")}}}).encode()
	windowWith := func(trailer ...byte) *wire.KeyValue {
		return &wire.KeyValue{Key: []byte(executorReplyPrefix + "c"), Value: append(bytes.Clone(window), trailer...)}
	}
	last9 := &wire.KeyValue{Key: []byte(executorLastKey), Value: binary.BigEndian.AppendUint64(nil, 9)}
	cases := map[string]struct {
		earlier []*wire.KeyValue // an accepted chunk before the hostile one
		chunk   []*wire.KeyValue
	}{
		"protocol key":           {chunk: []*wire.KeyValue{{Key: []byte("p/view"), Value: make([]byte, 8)}}},
		"raft key":               {chunk: []*wire.KeyValue{{Key: []byte("r/x"), Value: []byte("v")}}},
		"empty key":              {chunk: []*wire.KeyValue{{Value: []byte("v")}}},
		"nil entry":              {chunk: []*wire.KeyValue{valid, nil}},
		"kv digest accumulator":  {chunk: []*wire.KeyValue{{Key: []byte(kvDigestKey), Value: bytes.Repeat([]byte{0xaa}, 32)}}},
		"unknown app key":        {chunk: []*wire.KeyValue{{Key: []byte("a/x/junk"), Value: []byte("v")}}},
		"unknown executor key":   {chunk: []*wire.KeyValue{{Key: []byte("e/other"), Value: []byte("v")}}},
		"repeated key":           {chunk: []*wire.KeyValue{valid, valid}},
		"decreasing in chunk":    {chunk: []*wire.KeyValue{kvEntry("b", nil), valid}},
		"decreasing over chunks": {earlier: []*wire.KeyValue{kvEntry("b", nil)}, chunk: []*wire.KeyValue{kvEntry("c", nil), valid}},
		"oversize key":           {chunk: []*wire.KeyValue{kvEntry(string(bytes.Repeat([]byte("k"), MaxKeySize+1)), nil)}},
		"oversize value":         {chunk: []*wire.KeyValue{kvEntry("v", make([]byte, MaxValueSize+1))}},
		"short last executed":    {chunk: []*wire.KeyValue{{Key: []byte(executorLastKey), Value: make([]byte, 7)}}},
		"window without client":  {chunk: []*wire.KeyValue{{Key: []byte(executorReplyPrefix), Value: window}}},
		"window client too long": {chunk: []*wire.KeyValue{{Key: append([]byte(executorReplyPrefix), make([]byte, MaxClientIDSize+1)...), Value: window}}},
		"undecodable window":     {chunk: []*wire.KeyValue{{Key: []byte(executorReplyPrefix + "c"), Value: []byte{0xff}}}},
		"window trailing bytes":  {chunk: []*wire.KeyValue{{Key: []byte(executorReplyPrefix + "c"), Value: append(bytes.Clone(window), 0)}}},
		"window missing high": {chunk: []*wire.KeyValue{{Key: []byte(executorReplyPrefix + "c"),
			Value: binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(nil, 9), 1), 3), 0)}}},
		// The lastSeq trailer (see decodeClientWindow), after an accepted
		// e/last of 9.
		"window lastSeq truncated":   {earlier: []*wire.KeyValue{last9}, chunk: []*wire.KeyValue{windowWith(0x85)}},
		"window lastSeq overflow":    {earlier: []*wire.KeyValue{last9}, chunk: []*wire.KeyValue{windowWith(bytes.Repeat([]byte{0xff}, 10)...)}},
		"window lastSeq zero":        {earlier: []*wire.KeyValue{last9}, chunk: []*wire.KeyValue{windowWith(0)}},
		"window lastSeq non-minimal": {earlier: []*wire.KeyValue{last9}, chunk: []*wire.KeyValue{windowWith(0x85, 0x00)}},
		"window lastSeq trailing":    {earlier: []*wire.KeyValue{last9}, chunk: []*wire.KeyValue{windowWith(5, 0)}},
		"window lastSeq above last":  {earlier: []*wire.KeyValue{last9}, chunk: []*wire.KeyValue{windowWith(10)}},
		"window lastSeq, no last":    {chunk: []*wire.KeyValue{windowWith(1)}},
		"window lastSeq above last in chunk": {chunk: []*wire.KeyValue{
			{Key: []byte(executorLastKey), Value: binary.BigEndian.AppendUint64(nil, 4)}, windowWith(5)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := openReplica(t, t.TempDir())
			defer r.db.Close()
			if err := r.exe.RestoreBegin(); err != nil {
				t.Fatal(err)
			}
			if err := r.exe.RestoreChunk(tc.earlier); err != nil {
				t.Fatalf("earlier chunk: %v", err)
			}
			if err := r.exe.RestoreChunk(tc.chunk); err == nil {
				t.Fatal("hostile chunk accepted")
			}
			// Nothing of the hostile chunk was written, even its valid
			// leading entries.
			for _, e := range tc.chunk {
				if e == nil || len(tc.earlier) > 0 && bytes.Equal(e.Key, tc.earlier[0].Key) {
					continue
				}
				stored, err := r.db.LevelDB().Get(e.Key, nil)
				if err == nil && bytes.Equal(stored, e.Value) {
					t.Fatalf("entry %q of the rejected chunk was written", e.Key)
				}
				if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
					t.Fatal(err)
				}
			}
			// The restore is failed: no more chunks, no finish, marker kept.
			if err := r.exe.RestoreChunk([]*wire.KeyValue{kvEntry("zz", nil)}); err == nil {
				t.Fatal("chunk after a rejected one accepted")
			}
			if _, err := r.exe.RestoreFinish(); err == nil {
				t.Fatal("RestoreFinish after a rejected chunk succeeded")
			}
			if on, _ := r.db.TransferInProgress(); !on {
				t.Fatal("marker cleared by a failed restore")
			}
			if err := r.exe.RestoreAbort(); err != nil {
				t.Fatalf("RestoreAbort: %v", err)
			}
			if on, _ := r.db.TransferInProgress(); on {
				t.Fatal("marker still set after RestoreAbort")
			}
			apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: putOp("k", "v")})
		})
	}
}

func TestRestoreCallsOutOfOrder(t *testing.T) {
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	if err := r.exe.RestoreChunk(nil); err == nil {
		t.Error("RestoreChunk without RestoreBegin succeeded")
	}
	if _, err := r.exe.RestoreFinish(); err == nil {
		t.Error("RestoreFinish without RestoreBegin succeeded")
	}
	if err := r.exe.RestoreAbort(); err == nil {
		t.Error("RestoreAbort without RestoreBegin succeeded")
	}
	if err := r.exe.RestoreBegin(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.exe.TakeSnapshot(); err == nil {
		t.Error("TakeSnapshot during a restore succeeded")
	}
	if _, err := r.exe.Apply(1, nil); err == nil {
		t.Error("Apply during a restore succeeded")
	}
}

func TestRestoreFinishRejectsCorruptStoredState(t *testing.T) {
	// A client window whose ID RestoreChunk accepted but whose record was
	// damaged on disk before RestoreFinish must fail the reload, not panic.
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	if err := r.exe.RestoreBegin(); err != nil {
		t.Fatal(err)
	}
	if err := r.db.LevelDB().Put([]byte(executorReplyPrefix+"c"), []byte{1}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.exe.RestoreFinish(); err == nil {
		t.Fatal("RestoreFinish over a corrupt window succeeded")
	}
	if on, _ := r.db.TransferInProgress(); !on {
		t.Fatal("marker cleared by a failed RestoreFinish")
	}
}

func TestKVReloadRecomputesDigest(t *testing.T) {
	kv := newTestKV(t)
	exec(t, kv, putOp("a", "1"))
	exec(t, kv, putOp("b", "2"))
	want := kv.Digest()
	// Forge the stored accumulator and the in-memory one.
	if err := kv.db.Put([]byte(kvDigestKey), make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	kv.acc = adHash{}
	if err := kv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if kv.Digest() != want {
		t.Fatal("Reload did not recompute the digest from the entries")
	}
	reopened, err := NewKV(kv.db)
	if err != nil {
		t.Fatal(err)
	}
	if reopened.Digest() != want {
		t.Fatal("Reload did not store the recomputed digest")
	}
	kv.Begin()
	defer kv.Rollback()
	if err := kv.Reload(); err == nil {
		t.Fatal("Reload during a batch succeeded")
	}
}
