package crypto

import (
	"fmt"
	"sync"
	"testing"
)

func TestVerifiedCacheContainsAfterAdd(t *testing.T) {
	cache := NewVerifiedCache(8)
	payload, sig := []byte("request"), []byte("signature")
	if cache.Contains(payload, sig) {
		t.Fatal("empty cache contains an entry")
	}
	cache.Add(payload, sig)
	if !cache.Contains(payload, sig) {
		t.Fatal("Contains is false right after Add")
	}
	if cache.Contains(payload, []byte("other signature")) {
		t.Fatal("cache matches a different signature")
	}
	if cache.Contains([]byte("other request"), sig) {
		t.Fatal("cache matches a different payload")
	}
	cache.Add(payload, sig)
	if cache.Len() != 1 {
		t.Fatalf("Len = %d after adding one pair twice, want 1", cache.Len())
	}
}

func TestVerifiedCacheKeyIsFramed(t *testing.T) {
	cache := NewVerifiedCache(8)
	cache.Add([]byte("ab"), []byte("cd"))
	// Same concatenation, different split: must not count as verified.
	for _, pair := range [][2]string{{"abc", "d"}, {"a", "bcd"}, {"abcd", ""}, {"", "abcd"}} {
		if cache.Contains([]byte(pair[0]), []byte(pair[1])) {
			t.Errorf("cache contains (%q, %q) after adding (\"ab\", \"cd\")", pair[0], pair[1])
		}
	}
}

func TestVerifiedCacheEvictsOldest(t *testing.T) {
	const capacity = 4
	cache := NewVerifiedCache(capacity)
	pair := func(i int) ([]byte, []byte) {
		return fmt.Appendf(nil, "request %d", i), fmt.Appendf(nil, "sig %d", i)
	}
	for i := range 10 {
		cache.Add(pair(i))
		if cache.Len() > capacity {
			t.Fatalf("Len = %d after %d adds, capacity %d", cache.Len(), i+1, capacity)
		}
	}
	if cache.Len() != capacity {
		t.Fatalf("Len = %d, want %d", cache.Len(), capacity)
	}
	for i := range 10 {
		want := i >= 10-capacity
		if got := cache.Contains(pair(i)); got != want {
			t.Errorf("Contains(pair %d) = %v, want %v", i, got, want)
		}
	}
}

func TestVerifiedCacheZeroCapacity(t *testing.T) {
	for _, capacity := range []int{0, -3} {
		cache := NewVerifiedCache(capacity)
		cache.Add([]byte("p"), []byte("s"))
		if cache.Contains([]byte("p"), []byte("s")) || cache.Len() != 0 {
			t.Fatalf("cache with capacity %d remembered an entry", capacity)
		}
	}
}

func TestVerifiedCacheConcurrent(t *testing.T) {
	const capacity = 64
	cache := NewVerifiedCache(capacity)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				payload := fmt.Appendf(nil, "g%d r%d", g, i)
				cache.Add(payload, []byte("sig"))
				cache.Contains(payload, []byte("sig"))
			}
		})
	}
	wg.Wait()
	if cache.Len() != capacity {
		t.Fatalf("Len = %d after 1600 distinct adds, want %d", cache.Len(), capacity)
	}
}
