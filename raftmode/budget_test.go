package raftmode_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/wire"
)

func keyedClient(key byte, session byte) []byte {
	return append(bytes.Repeat([]byte{key}, crypto.ClientKeySize), 's', session)
}

// Before a leader is known nothing is proposed, so what a client key
// submits stays pending: the key's budget bounds it, over all sessions,
// in requests and in bytes.
func TestPendingRequestsAreBoundedPerClientKey(t *testing.T) {
	c := newCluster(t, 3, 1000)
	core := c.cores[0]
	accepted := 0
	for s := range 8 {
		for n := range 64 {
			_, err := core.Submit(&wire.Request{ClientId: keyedClient(1, byte(s)), RequestNumber: uint64(n + 1), Operation: []byte("op")})
			switch {
			case err == nil:
				accepted++
			case !errors.Is(err, raftmode.ErrClientQueueFull):
				t.Fatal(err)
			}
		}
	}
	if accepted != raftmode.DefaultMaxPendingPerKey {
		t.Fatalf("8 sessions of one key queued %d requests, want %d", accepted, raftmode.DefaultMaxPendingPerKey)
	}
	large := 0
	for n := range 20 {
		_, err := core.Submit(&wire.Request{ClientId: keyedClient(2, 0), RequestNumber: uint64(n + 1), Operation: make([]byte, 900<<10)})
		switch {
		case err == nil:
			large++
		case !errors.Is(err, raftmode.ErrClientQueueFull):
			t.Fatal(err)
		}
	}
	if large != 9 {
		t.Fatalf("one key queued %d requests of 900 KiB, want 9 (8 MiB)", large)
	}
	if _, err := core.Submit(&wire.Request{ClientId: keyedClient(3, 0), RequestNumber: 1, Operation: []byte("op")}); err != nil {
		t.Fatalf("another key refused: %v", err)
	}
}
