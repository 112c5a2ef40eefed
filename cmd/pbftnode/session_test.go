package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
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

// TestSessionRemembersThePrimary: a slot stores where the primary was; a
// later claim of any slot starts from the hint learned last in any slot,
// and a slot's request numbers keep working beside the hint.
func TestSessionRemembersThePrimary(t *testing.T) {
	dir := t.TempDir()
	a := claimSession(dir)
	if a == nil || a.hint != nil {
		t.Fatalf("first claim in a new directory: %+v, want a slot without a hint", a)
	}
	b := claimSession(dir)
	at := time.Unix(1_700_000_000, 0)
	if err := a.remember(client.Hint{View: 7, Leader: -1}, at); err != nil {
		t.Fatal(err)
	}
	// Learned later in a lower view (the directory's cluster was
	// rewritten): the later one wins.
	if err := b.remember(client.Hint{View: 3, Leader: 2}, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	a.release()
	again := claimSession(dir) // a's slot: its own hint is older than b's
	if again == nil || again.hint == nil || *again.hint != (client.Hint{View: 3, Leader: 2}) {
		t.Fatalf("claim after hints of view 7 and, later, 3: %+v, want view 3 leader 2", again)
	}
	// Learned at the same time: the higher view wins.
	if err := again.remember(client.Hint{View: 4, Leader: -1}, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	first := again.first
	again.release()
	d := claimSession(dir)
	if d.hint == nil || *d.hint != (client.Hint{View: 4, Leader: -1}) {
		t.Fatalf("hint %+v, want view 4 (same time as view 3)", d.hint)
	}
	if d.first <= first {
		t.Fatalf("request numbers went back beside the hint: %d after %d", d.first, first)
	}
	d.release()
	b.release()

	// A slot in the old format (the request number only) has no hint.
	old := t.TempDir()
	if err := os.MkdirAll(filepath.Join(old, "sessions"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "sessions", "0"), make([]byte, 8), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := claimSession(old); s == nil || s.hint != nil {
		t.Fatalf("old-format slot: %+v, want a slot without a hint", s)
	} else {
		s.release()
	}
}
