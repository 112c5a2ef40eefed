package localnettest

import (
	"context"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
)

// Start starts a local cluster with fsync off and closes it when the test
// ends; it skips the test in -short mode (a libp2p cluster is slow to
// start) and fails it if the cluster does not start.
func Start(t *testing.T, opts localnet.Options) *localnet.Net {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a libp2p cluster")
	}
	opts.NoSync = true
	net, err := localnet.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = net.Close() })
	return net
}

// PutAll has c put n keys, one after another, and returns the first error.
func PutAll(ctx context.Context, c *client.Client, name string, n int) error {
	for i := range n {
		raw, err := c.Invoke(ctx, execution.EncodePut([]byte(fmt.Sprintf("%s-%d", name, i)), []byte("v")))
		if err != nil {
			return err
		}
		if res, err := execution.DecodeResult(raw); err != nil || !res.Ok {
			return fmt.Errorf("put %d: result %v, %w", i, res, err)
		}
	}
	return nil
}
