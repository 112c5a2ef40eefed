package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/client"
)

// sharedCounter is the counter every client adds 1 to.
const sharedCounter = "shared"

// ownCounter is the counter only client i adds to (i+1 each time).
func ownCounter(i int) string { return fmt.Sprintf("client-%d", i) }

// runClients runs clients concurrently, each with its own session of the
// testnet's client key, for rounds first..last. In each round, client i
// adds i+1 to its own counter and 1 to the shared counter, the two at
// once; at the end it reads its counter back. It checks that its own
// counter's values are round*(i+1), in order, and returns the values the
// adds to the shared counter returned (expectedCounters checks them).
func runClients(ctx context.Context, dir string, clients, first, last int) ([]int64, error) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		shared []int64
		errs   = make([]error, clients)
	)
	for i := range clients {
		wg.Go(func() {
			values, err := runClient(ctx, dir, i, first, last)
			mu.Lock()
			defer mu.Unlock()
			shared = append(shared, values...)
			errs[i] = err
		})
	}
	wg.Wait()
	return shared, errors.Join(errs...)
}

// expectedCounters checks the shared counter's results over the whole
// run: 1..clients*rounds, each once (each add saw every add ordered
// before it). It returns the counters the replicas must hold.
func expectedCounters(w workload, shared []int64) (map[string]int64, error) {
	total := int64(w.clients * w.rounds)
	slices.Sort(shared)
	for k, v := range shared {
		if v != int64(k)+1 {
			return nil, fmt.Errorf("the shared counter's results are not 1..%d, each once: %v", total, shared)
		}
	}
	if len(shared) != int(total) {
		return nil, fmt.Errorf("%d results of adds to the shared counter, want %d", len(shared), total)
	}
	expected := map[string]int64{sharedCounter: total}
	for i := range w.clients {
		expected[ownCounter(i)] = int64(w.rounds * (i + 1))
	}
	return expected, nil
}

// runClient is client i's part of runClients; it returns the values its
// adds to the shared counter returned.
func runClient(ctx context.Context, dir string, i, first, last int) ([]int64, error) {
	c, err := pbftnode.Dial(dir)
	if err != nil {
		return nil, fmt.Errorf("client %d: %w", i, err)
	}
	defer c.Close()
	own, delta := ownCounter(i), int64(i+1)
	var shared []int64
	for round := first; round <= last; round++ {
		var sharedValue int64
		var sharedErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			sharedValue, sharedErr = invoke(ctx, c, EncodeAdd(sharedCounter, 1))
		}()
		ownValue, err := invoke(ctx, c, EncodeAdd(own, delta))
		<-done
		if err = errors.Join(err, sharedErr); err != nil {
			return nil, fmt.Errorf("client %d, round %d: %w", i, round, err)
		}
		if want := int64(round) * delta; ownValue != want {
			return nil, fmt.Errorf("client %d, round %d: %s is %d after the add, want %d", i, round, own, ownValue, want)
		}
		shared = append(shared, sharedValue)
	}
	got, err := invoke(ctx, c, EncodeRead(own))
	if err != nil {
		return nil, fmt.Errorf("client %d: read: %w", i, err)
	}
	if want := int64(last) * delta; got != want {
		return nil, fmt.Errorf("client %d: read %s = %d, want %d", i, own, got, want)
	}
	return shared, nil
}

// invoke sends one operation and decodes its result.
func invoke(ctx context.Context, c *client.Client, op []byte) (int64, error) {
	res, err := c.Invoke(ctx, op)
	if err != nil {
		return 0, err
	}
	return DecodeResult(res)
}
