package apphost

import (
	"bytes"
	"testing"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/execution"
)

// FuzzCheckTransferEntry feeds hostile keys and values to
// CheckTransferEntry: it must never panic, accept only keys TransferKey
// sends, and accept only records the host can decode.
func FuzzCheckTransferEntry(f *testing.F) {
	journal := encodeJournal([]execution.Request{{ClientID: []byte("c"), RequestNumber: 3, Operation: []byte("k=v")}})
	f.Add([]byte(manifestKey), manifest{state: app.State{Sequence: 8}, chunks: 1, totalBytes: 10}.encode())
	f.Add(chunkKey(0), []byte("chunk"))
	f.Add(journalKey(9), journal)
	f.Add(journalKey(9), encodeJournal(nil))
	f.Add(journalKey(0), journal)
	f.Add([]byte(recordedKey), make([]byte, recordedSize))
	f.Add([]byte("a/x/j/short"), []byte{1, 2, 3})
	f.Add(journalKey(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(journalKey(1), []byte{0x80, 0x80, 0x80, 0x80, 0x08, 1, 'c', 1, 1, 'x'})
	h := &Host{}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if err := h.CheckTransferEntry(key, value); err != nil {
			return
		}
		if !h.TransferKey(key) {
			t.Fatalf("accepted key %q that TransferKey does not send", key)
		}
		switch {
		case string(key) == manifestKey:
			m, err := decodeManifest(value)
			if err != nil || !bytes.Equal(m.encode(), value) {
				t.Fatalf("accepted manifest %x does not round-trip", value)
			}
		case bytes.HasPrefix(key, []byte(journalPrefix)):
			ops, err := decodeJournal(value)
			if err != nil || len(ops) > len(value)/4 {
				t.Fatalf("accepted journal %x: %d operations, %v", value, len(ops), err)
			}
		}
	})
}
