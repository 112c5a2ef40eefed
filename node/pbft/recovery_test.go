package pbft_test

import (
	"crypto/ed25519"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

func TestRestartedReplicaCatchesUpFromItsDatabase(t *testing.T) {
	net := startNet(t, localnet.Options{Protocol: protocol.Config{CheckpointInterval: 16}})
	runWorkload(t, net, 2, 4, 20)
	if err := net.StopReplica(3); err != nil {
		t.Fatal(err)
	}
	runWorkload(t, net, 2, 4, 40)
	if err := net.StartReplica(3); err != nil {
		t.Fatal(err)
	}
	st := waitConverged(t, net)
	if net.Nodes[3].Status().ExecutedSequence != st.ExecutedSequence {
		t.Fatal("restarted replica did not catch up")
	}
	// It takes part again: the cluster commits with it and without replica 1.
	if err := net.StopReplica(1); err != nil {
		t.Fatal(err)
	}
	runWorkload(t, net, 1, 4, 8)
	waitConverged(t, net)
}

func TestWipedReplicaCatchesUpByStateTransfer(t *testing.T) {
	net := startNet(t, localnet.Options{Protocol: protocol.Config{CheckpointInterval: 16}})
	runWorkload(t, net, 2, 4, 20)
	if err := net.StopReplica(2); err != nil {
		t.Fatal(err)
	}
	if err := net.WipeReplica(2); err != nil {
		t.Fatal(err)
	}
	runWorkload(t, net, 2, 4, 40)
	if err := net.StartReplica(2); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, net)
	if got := net.Nodes[2].MetricValue("pbftnode_state_transfer_seconds"); got < 1 {
		t.Fatalf("the wiped replica completed %v state transfers, want at least 1", got)
	}
}

// corruptSnapshots is a Byzantine filter that serves wrong snapshots: it
// changes a value in every state chunk it sends and signs the result.
type corruptSnapshots struct {
	signer    *crypto.Signer
	corrupted atomic.Int64
}

func (c *corruptSnapshots) Outbound(out protocol.Outbound) []protocol.Outbound {
	if out.Kind != protocol.KindStateChunk {
		return []protocol.Outbound{out}
	}
	var body wire.ReplicaMessage
	if err := proto.Unmarshal(out.Signed.Payload, &body); err != nil {
		return []protocol.Outbound{out}
	}
	chunk := body.GetStateChunk()
	for _, e := range chunk.GetEntries() {
		if len(e.Value) > 0 && e.Key[0] == 'a' {
			e.Value = append([]byte(nil), e.Value...)
			e.Value[len(e.Value)-1] ^= 0x01
			c.corrupted.Add(1)
			break
		}
	}
	payload, _ := proto.Marshal(&body)
	out.Signed = &wire.Signed{Payload: payload, Signature: c.signer.Sign(crypto.DomainReplicaMessage, payload)}
	return []protocol.Outbound{out}
}

func (c *corruptSnapshots) Reply(*wire.Reply) bool { return true }

func TestCorruptSnapshotIsRejectedAndAnotherPeerServes(t *testing.T) {
	liar := &corruptSnapshots{}
	net := startNet(t, localnet.Options{
		Protocol: protocol.Config{CheckpointInterval: 16},
		// Replica 0 lies; a wiped replica 3 asks it first (the first of
		// the certificate's signers 0, 1, 2 it tries is 3 mod 3 = 0).
		FilterFactory: func(i int, key ed25519.PrivateKey, cluster string) pbft.Filter {
			if i != 0 {
				return nil
			}
			liar.signer = crypto.NewSigner(key, cluster)
			return liar
		},
	})
	// Replica 3 is asked for state by the liar first only when the liar
	// still holds the snapshot of the target checkpoint; on a busy
	// machine it may have moved past it and answered "unavailable" (then
	// another peer serves and nothing is corrupted). Up to three rounds.
	for round := 0; round < 3 && liar.corrupted.Load() == 0; round++ {
		if err := net.StopReplica(3); err != nil {
			t.Fatal(err)
		}
		if err := net.WipeReplica(3); err != nil {
			t.Fatal(err)
		}
		runWorkload(t, net, 2, 4, 40)
		if err := net.StartReplica(3); err != nil {
			t.Fatal(err)
		}
		waitConverged(t, net)
	}
	if liar.corrupted.Load() == 0 {
		t.Fatal("the Byzantine replica served no corrupted chunk in three rounds; the test proved nothing")
	}
	if got := net.Nodes[3].MetricValue("pbftnode_state_transfer_peer_failures_total"); got < 1 {
		t.Fatalf("the corrupted snapshot was not rejected (peer failures %v)", got)
	}
}
