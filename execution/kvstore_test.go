package execution

import (
	"bytes"
	"strings"
	"testing"
)

// TestKVStoreSurface: Get, Set and Delete act on the open batch only and
// keep the digest as KV's own operations do; Atomically commits a batch of
// its own outside one; Scan sees the committed state in key order.
func TestKVStoreSurface(t *testing.T) {
	kv := newTestKV(t)
	if err := kv.Set([]byte("a"), []byte("1")); err == nil || !strings.Contains(err.Error(), "outside a batch") {
		t.Fatalf("Set outside a batch = %v, want refused", err)
	}
	if err := kv.Delete([]byte("a")); err == nil {
		t.Fatal("Delete outside a batch accepted")
	}
	if _, err := kv.Atomically(func() []byte {
		if err := kv.Set(bytes.Repeat([]byte{1}, MaxKeySize+1), nil); err == nil {
			t.Error("Set of an oversized key accepted")
		}
		if err := kv.Set([]byte("a"), make([]byte, MaxValueSize+1)); err == nil {
			t.Error("Set of an oversized value accepted")
		}
		for _, k := range []string{"b", "a", "c"} {
			if err := kv.Set([]byte(k), []byte("v"+k)); err != nil {
				t.Errorf("Set(%s): %v", k, err)
			}
		}
		if err := kv.Delete([]byte("c")); err != nil {
			t.Errorf("Delete: %v", err)
		}
		if v, found := kv.Get([]byte("a")); !found || string(v) != "va" {
			t.Errorf("Get inside the batch = %q, %v; want its own write", v, found)
		}
		if err := kv.Scan(nil, func(_, _ []byte) error { return nil }); err == nil {
			t.Error("Scan during a batch accepted")
		}
		return nil
	}); err != nil {
		t.Fatalf("Atomically: %v", err)
	}
	// The same state through KV's own operations has the same digest.
	same := newTestKV(t)
	exec(t, same, EncodePut([]byte("a"), []byte("va")))
	exec(t, same, EncodePut([]byte("b"), []byte("vb")))
	if kv.Digest() != same.Digest() {
		t.Fatal("Set and Delete left a digest other than put's")
	}
	if recomputed, err := kv.RecomputeDigest(); err != nil || recomputed != kv.Digest() {
		t.Fatalf("RecomputeDigest = %x, %v; want the running digest", recomputed, err)
	}
	var seen []string
	if err := kv.Scan(nil, func(k, v []byte) error { seen = append(seen, string(k)+"="+string(v)); return nil }); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if strings.Join(seen, ",") != "a=va,b=vb" {
		t.Fatalf("Scan saw %v, want a=va,b=vb", seen)
	}
	if k, ok := EntryKey(dataKey([]byte("a"))); !ok || string(k) != "a" {
		t.Fatalf("EntryKey = %q, %v", k, ok)
	}
	if _, ok := EntryKey([]byte(kvDigestKey)); ok {
		t.Fatal("EntryKey took the digest key for an entry")
	}
}
