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
//
// A client's f+1 answers can come before a backup has received the
// PRE-PREPARE of the same request (the primary and another backup answer
// first), so the test waits for the backups' counts rather than reading
// them once the clients are done; and it starts the load only once a
// first request has reached every node, so that the links are up.
func TestFloorRelaysEveryRequest(t *testing.T) {
	net := localnettest.Start(t, localnet.Options{Floor: true, NoSync: true, Metrics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	warm, err := net.NewClient(500 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	if err := localnettest.PutAll(ctx, warm, "warm", 1); err != nil {
		t.Fatal(err)
	}
	waitRelayed(t, net, 1)
	const clients, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		cl, err := net.NewClient(500 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
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
	waitRelayed(t, net, 1+clients*each)
	for i, f := range net.Floors {
		if st := f.Status(); !st.ViewActive || st.Leader != 0 || st.ExecutedSequence == 0 {
			t.Errorf("floor node %d status %+v: want an active view led by replica 0, with batches relayed or answered", i, st)
		}
	}
}

// waitRelayed waits until every floor node counts at least want requests
// relayed (primary) or received in PRE-PREPAREs (backups), or fails the
// test after a generous deadline.
func waitRelayed(t *testing.T, net *localnet.Net, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for i, f := range net.Floors {
		for {
			got := opstest.Metric(t, f.MetricsAddr(), "pbftnode_committed_requests_total")
			if got >= float64(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("floor node %d: %v requests relayed or answered in batches, want at least %d", i, got, want)
			}
			time.Sleep(20 * time.Millisecond)
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
