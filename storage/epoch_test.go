package storage

import (
	"bytes"
	"testing"
)

func TestEpochsAreSavedInOrderAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	if certs, err := db.LoadEpochs(); err != nil || len(certs) != 0 {
		t.Fatalf("fresh database: %d epochs, %v", len(certs), err)
	}
	if err := db.SaveEpoch(2, []byte("cert2")); err == nil {
		t.Fatal("epoch 2 saved before epoch 1")
	}
	if err := db.SaveEpoch(1, nil); err == nil {
		t.Fatal("an empty certificate was saved")
	}
	for e, c := range []string{"cert1", "cert2"} {
		if err := db.SaveEpoch(uint64(e+1), []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	certs, err := db.LoadEpochs()
	if err != nil || len(certs) != 2 || !bytes.Equal(certs[0], []byte("cert1")) || !bytes.Equal(certs[1], []byte("cert2")) {
		t.Fatalf("reopened: %q, %v", certs, err)
	}
	// The protocol log does not see the epoch keys.
	entries, err := db.LoadLog(0)
	if err != nil || len(entries) != 0 {
		t.Fatalf("log after saving epochs: %d entries, %v", len(entries), err)
	}
}
