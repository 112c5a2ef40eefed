package pbft_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
)

// BenchmarkLightLoadLatency measures one client with one operation
// outstanding against PBFT n=4 and Raft n=3, in-process (internal/localnet,
// libp2p on loopback, fsync on), one after the other in the same run, and
// reports each p50 and their ratio (issue #7's target: PBFT's p50 at most
// 2x Raft's). 400 puts each, after 50 warm-up puts. PBFTNODE_BENCH_SYNC=0
// turns fsync off.
//
//	go test ./node -run '^$' -bench LightLoadLatency -benchtime 1x
func BenchmarkLightLoadLatency(b *testing.B) {
	for range b.N {
		pbft := lightLoadP50(b, config.ConsensusPBFT, 4)
		raft := lightLoadP50(b, config.ConsensusRaft, 3)
		b.ReportMetric(float64(pbft.Microseconds())/1000, "pbft-p50-ms")
		b.ReportMetric(float64(raft.Microseconds())/1000, "raft-p50-ms")
		b.ReportMetric(float64(pbft)/float64(raft), "p50-ratio")
	}
}

func lightLoadP50(b *testing.B, protocol string, n int) time.Duration {
	b.Helper()
	net, err := localnet.Start(localnet.Options{Replicas: n, Consensus: protocol, NoSync: os.Getenv("PBFTNODE_BENCH_SYNC") == "0"})
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	c, err := net.NewClient(time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lat []time.Duration
	for i := range 450 {
		start := time.Now()
		if _, err := c.Invoke(ctx, execution.EncodePut(fmt.Appendf(nil, "k%d", i%50), []byte("value-0123456789"))); err != nil {
			b.Fatalf("%s put %d: %v", protocol, i, err)
		}
		if i >= 50 {
			lat = append(lat, time.Since(start))
		}
	}
	slices.Sort(lat)
	b.Logf("%s n=%d: p50 %v p90 %v p99 %v", protocol, n, lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100])
	return lat[len(lat)/2]
}
