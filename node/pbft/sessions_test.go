package pbft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
)

// sharedKeyClients starts a cluster and two clients that sign with one key,
// as two `pbftnode client` processes using a testnet's client.key do. Their
// request numbers are far apart, as clock-seeded ones from processes
// started a moment apart are; the second's run first.
func sharedKeyClients(t *testing.T, consensus string, sessions [2][]byte) [2]*client.Client {
	t.Helper()
	net := startNet(t, localnet.Options{Consensus: consensus})
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var cs [2]*client.Client
	for i := range cs {
		cs[i], err = net.NewClientWithConfig(client.Config{
			Key: key, Session: sessions[i], RetransmitTimeout: 200 * time.Millisecond,
			FirstRequestNumber: uint64(1_000_000 * (i + 1)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return cs
}

// TestClientsSharingAKeyBothProgress: two clients with one key and their
// own sessions each get all their requests executed and answered, though
// their request numbers are far apart and their replies go to one peer ID.
func TestClientsSharingAKeyBothProgress(t *testing.T) {
	for _, consensus := range []string{config.ConsensusPBFT, config.ConsensusRaft} {
		t.Run(consensus, func(t *testing.T) {
			cs := sharedKeyClients(t, consensus, [2][]byte{nil, nil})
			if string(cs[0].ID()) == string(cs[1].ID()) {
				t.Fatal("two clients drew the same session")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := localnettest.PutAll(ctx, cs[1], "late", 5); err != nil {
				t.Fatalf("the client with the higher numbers: %v", err)
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, c := range cs {
				wg.Go(func() { errs[i] = localnettest.PutAll(ctx, c, fmt.Sprintf("c%d", i), 20) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClientsSharingAKeyAndSessionCollide shows what sessions prevent: with
// the bare key as both clients' id, the executor sees one client, so the
// lower-numbered client's requests are too old once the other's ran, and
// are never answered.
func TestClientsSharingAKeyAndSessionCollide(t *testing.T) {
	cs := sharedKeyClients(t, config.ConsensusPBFT, [2][]byte{{}, {}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := localnettest.PutAll(ctx, cs[1], "late", 1); err != nil {
		t.Fatalf("the client with the higher numbers: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if err := localnettest.PutAll(short, cs[0], "early", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a too-old request of a shared client id: got %v, want no answer", err)
	}
}
