package pbft_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
)

// BenchmarkFloodingClientFairness measures what one flooding client does
// to another client's latency: the light client's p50 over sequential puts
// without the flood, then with a client that keeps 1,000 requests in
// flight (its library window lifted) and retransmits fast. It reports the
// ratio of the two p50s (the target: within 3x).
//
//	go test ./node -run '^$' -bench FloodingClientFairness -benchtime 1x
func BenchmarkFloodingClientFairness(b *testing.B) {
	net, err := localnet.Start(localnet.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	light, err := net.NewClient(300 * time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	const ops = 200
	p50 := func(tag string) time.Duration {
		lat := make([]time.Duration, 0, ops)
		for i := range ops {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			t0 := time.Now()
			_, err := light.Invoke(ctx, execution.EncodePut([]byte(fmt.Sprintf("light-%s-%d", tag, i)), []byte("v")))
			cancel()
			if err != nil {
				b.Fatalf("light client %s: %v", tag, err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return lat[len(lat)/2]
	}
	for range b.N {
		calm := p50("calm")
		flooder, err := net.NewClientWithConfig(client.Config{RetransmitTimeout: 50 * time.Millisecond, Window: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					_, _ = flooder.Invoke(ctx, execution.EncodePut([]byte(fmt.Sprintf("flood-%d-%d", w, i)), make([]byte, 256)))
				}
			}()
		}
		time.Sleep(500 * time.Millisecond) // let the flood build up (a benchmark, not a test)
		flooded := p50("flood")
		stop()
		wg.Wait()
		_ = flooder.Close()
		dropped := 0.0
		for _, n := range net.Nodes {
			dropped += n.MetricValue("pbftnode_messages_dropped_total")
		}
		b.ReportMetric(float64(calm.Microseconds())/1000, "calm-p50-ms")
		b.ReportMetric(float64(flooded.Microseconds())/1000, "flood-p50-ms")
		b.ReportMetric(float64(flooded)/float64(calm), "p50-ratio")
		b.Logf("light client p50: %s calm, %s during the flood (ratio %.2f); %.0f messages dropped by the replicas", calm, flooded, float64(flooded)/float64(calm), dropped)
	}
}
