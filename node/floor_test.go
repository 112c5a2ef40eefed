package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
)

// TestFloorAnswersThroughTheRelay: a floor cluster answers every request
// with f+1 matching replies although clients send only to the primary
// (their retransmission timeout is longer than the test), so the backups'
// answers can only come from the PRE-PREPAREs the primary relayed; each
// backup counts the batches it answered.
func TestFloorAnswersThroughTheRelay(t *testing.T) {
	net := startNet(t, localnet.Options{Floor: true, NoSync: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const clients, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		cl, err := net.NewClient(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := putAll(ctx, cl, fmt.Sprintf("c%d", c), each); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, f := range net.Floors {
		st := f.Status()
		if st.ExecutedSequence == 0 {
			t.Errorf("floor node %d relayed or answered no batch", i)
		}
		if !st.ViewActive || st.Leader != 0 {
			t.Errorf("floor node %d status %+v: want an active view led by replica 0", i, st)
		}
	}
}

// TestFloorRefusesBadSignatures: a floor node checks client signatures as
// a PBFT replica does, so a client that signs for another cluster (a
// signature that does not verify here) gets no answer at all.
func TestFloorRefusesBadSignatures(t *testing.T) {
	net := startNet(t, localnet.Options{Floor: true, NoSync: true})
	members, err := net.Members()
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := client.New(client.Config{
		ClusterID: net.ClusterID + "-other", Key: key, Replicas: members,
		RetransmitTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := wrong.Invoke(ctx, execution.EncodePut([]byte("k"), []byte("v"))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request signed for another cluster: %v, want no answer (deadline exceeded)", err)
	}
	// The same cluster answers a correctly signed request.
	good, err := net.NewClient(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := putAll(context.Background(), good, "good", 1); err != nil {
		t.Fatal(err)
	}
}
