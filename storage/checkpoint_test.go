package storage

import (
	"bytes"
	"testing"
)

func TestStableCheckpointSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	if _, found, err := db.LoadStableCheckpoint(); err != nil || found {
		t.Fatalf("LoadStableCheckpoint on a new DB = found %t, err %v; want none", found, err)
	}
	if err := db.SaveStableCheckpoint(nil); err == nil {
		t.Fatal("SaveStableCheckpoint(empty) succeeded, want an error")
	}
	if err := db.SaveStableCheckpoint([]byte("cert at 128")); err != nil {
		t.Fatalf("SaveStableCheckpoint: %v", err)
	}
	if err := db.SaveStableCheckpoint([]byte("cert at 256")); err != nil {
		t.Fatalf("SaveStableCheckpoint: %v", err)
	}
	// The checkpoint must not show up as (or break) the protocol log.
	if entries, err := db.LoadLog(0); err != nil || len(entries) != 0 {
		t.Fatalf("LoadLog after saving a checkpoint = %d entries, err %v; want none", len(entries), err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db = openTestDB(t, dir)
	defer db.Close()
	got, found, err := db.LoadStableCheckpoint()
	if err != nil || !found || !bytes.Equal(got, []byte("cert at 256")) {
		t.Fatalf("LoadStableCheckpoint after reopen = %q, found %t, err %v; want the latest certificate", got, found, err)
	}
}

func TestLoadStableCheckpointRejectsCorruptValue(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	if err := db.ldb.Put([]byte(stableCheckpointKey), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.LoadStableCheckpoint(); err == nil {
		t.Fatal("LoadStableCheckpoint of an empty stored value succeeded, want an error")
	}
}

func TestTransferMarker(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	if on, err := db.TransferInProgress(); err != nil || on {
		t.Fatalf("TransferInProgress on a new DB = %t, %v; want false", on, err)
	}
	if err := db.SetTransferInProgress(true); err != nil {
		t.Fatalf("SetTransferInProgress(true): %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db = openTestDB(t, dir)
	defer db.Close()
	if on, err := db.TransferInProgress(); err != nil || !on {
		t.Fatalf("TransferInProgress after reopen = %t, %v; want true", on, err)
	}
	if err := db.SetTransferInProgress(false); err != nil {
		t.Fatalf("SetTransferInProgress(false): %v", err)
	}
	if on, err := db.TransferInProgress(); err != nil || on {
		t.Fatalf("TransferInProgress after clearing = %t, %v; want false", on, err)
	}
	// Clearing twice is harmless.
	if err := db.SetTransferInProgress(false); err != nil {
		t.Fatalf("SetTransferInProgress(false) again: %v", err)
	}
	if err := db.ldb.Put([]byte(transferMarkerKey), []byte("junk"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TransferInProgress(); err == nil {
		t.Fatal("TransferInProgress with a corrupt marker succeeded, want an error")
	}
}
