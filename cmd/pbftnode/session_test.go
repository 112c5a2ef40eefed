package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func TestClaimSessionSlots(t *testing.T) {
	dir := t.TempDir()
	held := make([]*cliSession, 0, cliSessionSlots)
	seen := make(map[string]bool)
	for range cliSessionSlots {
		s := claimSession(dir)
		if s == nil {
			t.Fatalf("slot %d of %d was not granted", len(held), cliSessionSlots)
		}
		if seen[string(s.id)] {
			t.Fatalf("session %x granted twice at once", s.id)
		}
		seen[string(s.id)] = true
		held = append(held, s)
	}
	if s := claimSession(dir); s != nil {
		t.Fatalf("a %dth session %x was granted with every slot held", cliSessionSlots+1, s.id)
	}
	first := held[3]
	first.release()
	again := claimSession(dir)
	if again == nil || string(again.id) != string(first.id) {
		t.Fatalf("the released slot was not granted again: %v", again)
	}
	if again.first <= first.first {
		t.Fatalf("the slot's next process starts at request %d, not above the last one's %d", again.first, first.first)
	}
	for _, s := range held {
		s.release()
	}
	again.release()

	// The stored number wins over a clock that went back.
	var ahead [8]byte
	const future = uint64(1) << 62
	binary.BigEndian.PutUint64(ahead[:], future)
	if err := os.WriteFile(filepath.Join(dir, "sessions", "0"), ahead[:], 0o600); err != nil {
		t.Fatal(err)
	}
	s := claimSession(dir)
	if s == nil || s.first != future {
		t.Fatalf("slot 0 after a clock step back: %+v, want first request %d", s, future)
	}
	s.release()

	// A directory that cannot hold the slots leaves the choice to the caller.
	if s := claimSession(filepath.Join(dir, "sessions", "0")); s != nil {
		t.Fatal("a session was claimed under a regular file")
	}
}
