// Package localnettest starts local clusters (internal/localnet) for
// tests: one helper the runtimes' tests share, so that each runtime's
// package does not carry its own copy.
package localnettest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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

// Metric reads one series (name and labels as exposed) from the /metrics
// endpoint at addr, 0 when absent.
func Metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	body := MetricsText(t, addr)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// MetricsText fetches the /metrics exposition at addr.
func MetricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
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

// Get fetches url and returns its status code and body.
func Get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
