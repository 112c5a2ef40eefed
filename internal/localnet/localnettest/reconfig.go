package localnettest

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
)

// MustChangeConfig signs ch with the administrator key admin and orders it
// through c (client.ChangeConfig, which follows the membership as it
// changes), failing the test unless the cluster answers within timeout
// that it applied the change. It returns the result.
func MustChangeConfig(t *testing.T, c *client.Client, admin ed25519.PrivateKey, ch membership.Change, timeout time.Duration) string {
	t.Helper()
	sc := membership.SignedChange{Change: ch.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(c.ClusterID(), sc.Change, admin))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := c.ChangeConfig(ctx, sc.Encode())
	if err != nil {
		t.Fatalf("%s: %v", ch, err)
	}
	if !strings.HasPrefix(string(res), execution.ConfigChangeAccepted) {
		t.Fatalf("%s: %q", ch, res)
	}
	return string(res)
}

// WaitFor polls cond until it holds, failing the test after limit: for
// states that come about in the background (an epoch every member
// reports, a leader).
func WaitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
