package floor_test

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
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/internal/opstest"
)

// TestFloorRelaysEveryRequest: clients send to the primary of a floor
// cluster, which relays every request to every backup in PRE-PREPAREs
// (each backup counts the requests it received that way) and every request
// gets f+1 matching answers. (A backup's answer can be lost while the
// client's stream to it is still opening, as with a PBFT replica; the
// client's retransmission to every node covers that.)
func TestFloorRelaysEveryRequest(t *testing.T) {
	net := localnettest.Start(t, localnet.Options{Floor: true, NoSync: true, Metrics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const clients, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		cl, err := net.NewClient(500 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := localnettest.PutAll(ctx, cl, fmt.Sprintf("c%d", c), each); err != nil {
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
		// A backup counts only requests that came in a PRE-PREPARE.
		if got := opstest.Metric(t, f.MetricsAddr(), "pbftnode_committed_requests_total"); got < clients*each {
			t.Errorf("floor node %d: %v requests relayed or answered in batches, want at least %d", i, got, clients*each)
		}
	}
}

// TestFloorRefusesBadSignatures: a floor node checks client signatures as
// a PBFT replica does. A client that signs for another cluster (a
// signature that does not verify here) sends its request to every floor
// node; each counts it dropped as a bad signature, and the client gets no
// answer, while a correctly signed request is answered.
func TestFloorRefusesBadSignatures(t *testing.T) {
	net := localnettest.Start(t, localnet.Options{Floor: true, NoSync: true, Metrics: true})
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
		RetransmitTimeout: 100 * time.Millisecond, // soon sent to every node
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answered := make(chan error, 1)
	go func() {
		_, err := wrong.Invoke(ctx, execution.EncodePut([]byte("k"), []byte("v")))
		answered <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for i, f := range net.Floors {
		for opstest.Metric(t, f.MetricsAddr(), `pbftnode_messages_dropped_total{reason="bad_signature"}`) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("floor node %d never refused the request's signature", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Every node refused it, and the same bytes get the same verdict every
	// time: no answer can have come or come later.
	cancel()
	if err := <-answered; !errors.Is(err, context.Canceled) {
		t.Fatalf("a request signed for another cluster: %v, want no answer (canceled)", err)
	}
	// The same cluster answers a correctly signed request.
	good, err := net.NewClient(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := localnettest.PutAll(context.Background(), good, "good", 1); err != nil {
		t.Fatal(err)
	}
}
