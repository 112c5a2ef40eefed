package crypto

import (
	"math/rand"
	"testing"
)

func TestKeyCacheEvicts(t *testing.T) {
	c := newKeyCache(3)
	signers := make([]*Signer, 5)
	for i := range signers {
		key, err := GenerateKey(rand.New(rand.NewSource(int64(100 + i))))
		if err != nil {
			t.Fatal(err)
		}
		signers[i] = NewSigner(key, "test-cluster")
	}
	for _, s := range signers {
		if c.get(s.Public()) == nil {
			t.Fatal("valid key not expanded")
		}
	}
	if len(c.entries) != 3 || len(c.order) != 3 {
		t.Fatalf("cache holds %d entries, %d in order; want 3", len(c.entries), len(c.order))
	}
	if x := c.get(signers[4].Public()); x == nil || x != c.get(signers[4].Public()) {
		t.Fatal("a cached key is expanded again")
	}
}
