package protocol

import (
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

func submitN(t *testing.T, c *cluster, from, n int, client byte) {
	t.Helper()
	for i := range n {
		if err := c.replicas[0].Submit(request(client, uint64(from+i+1), "op")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestartedBackupResumesFromItsLog(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 4; cfg.MaxBatchSize = 1 })
	submitN(t, c, 0, 10, 1)
	c.run()
	c.restart(2)
	if st := c.replicas[2].Status(); st.LastCommitted != 10 || st.LowWatermark != 8 {
		t.Fatalf("restarted replica: committed %d, low %d; want 10 and 8", st.LastCommitted, st.LowWatermark)
	}
	submitN(t, c, 10, 10, 1)
	c.run()
	c.assertAgreement()
	if got := len(c.executed[2]); got != 20 {
		t.Fatalf("restarted replica executed %d batches, want 20", got)
	}
}

func TestRestartedPrimaryNeverReusesASequence(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	// The primary proposes sequence 1, logs it, and crashes before anyone
	// hears of it.
	c.drop = func(from, _ uint32, _ Kind) bool { return from == 0 }
	submitN(t, c, 0, 1, 1)
	c.run()
	c.drop = nil
	c.restart(0)
	c.collect() // the restored primary's Fetch
	_ = c.replicas[0].Submit(request(2, 1, "other"))
	rd := c.replicas[0].Ready()
	for _, m := range rd.Messages {
		if m.Kind != KindPrePrepare {
			continue
		}
		vm := c.decode(m)
		if pp := vm.Body.GetPrePrepare(); pp.Sequence == 1 && len(vm.Requests) == 1 && string(vm.Requests[0].Operation) == "other" {
			t.Fatal("restarted primary assigned sequence 1 to a different batch: equivocation")
		}
	}
}

func TestRestartedBackupNeverPreparesAConflictingBatch(t *testing.T) {
	c := newCluster(t, 4, nil)
	batch := []*wire.Signed{request(1, 1, "x").Signed}
	d := crypto.BatchDigest(batch)
	pp := c.prePrepareFrom(0, &wire.PrePrepare{Sequence: 1, Digest: digestBytes(d)}, batch)
	if err := c.replicas[1].Step(pp); err != nil {
		t.Fatal(err)
	}
	c.collect()
	c.queue = nil
	c.restart(1)
	c.replicas[1].Ready()
	other := []*wire.Signed{request(2, 1, "y").Signed}
	conflicting := c.prePrepareFrom(0, &wire.PrePrepare{
		Sequence: 1, Digest: digestBytes(crypto.BatchDigest(other))}, other)
	if err := c.replicas[1].Step(conflicting); !errors.Is(err, ErrConflictingPrePrepare) {
		t.Fatalf("conflicting pre-prepare after restart: %v", err)
	}
	if c.replicas[1].HasReady() {
		t.Fatal("restarted backup acted on a conflicting pre-prepare")
	}
}

func TestLaggingReplicaCatchesUpByFetch(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = 1 })
	c.drop = func(from, to uint32, _ Kind) bool { return to == 3 || from == 3 }
	submitN(t, c, 0, 20, 1)
	c.run()
	c.drop = nil
	if len(c.executed[3]) != 0 {
		t.Fatal("isolated replica executed something")
	}
	// Idle ticks: replica 3 asks the others, who resend their log.
	c.tick(DefaultRetransmitTicks)
	c.assertAgreement()
	if got := len(c.executed[3]); got != 20 {
		t.Fatalf("lagging replica executed %d of 20 after a fetch", got)
	}
	if c.replicas[3].Status().FetchesSent == 0 {
		t.Fatal("no fetch was sent")
	}
}

func TestReplicaBehindAStableCheckpointAsksForStateTransfer(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 4; cfg.MaxBatchSize = 1 })
	c.drop = func(from, to uint32, _ Kind) bool { return to == 3 || from == 3 }
	submitN(t, c, 0, 22, 1)
	c.run()
	c.drop = nil
	c.tick(DefaultRetransmitTicks)
	cert := c.behind[3]
	if cert == nil || cert.Sequence != 20 {
		t.Fatalf("replica 3 behind the others' stable checkpoint 20 asked for %+v", cert)
	}
	c.transferState(3, 0)
	c.run()
	c.tick(DefaultRetransmitTicks)
	c.assertAgreement()
	if got := len(c.executed[3]); got != 22 {
		t.Fatalf("after state transfer replica 3 has %d of 22 batches", got)
	}
	submitN(t, c, 22, 5, 1)
	c.run()
	c.assertAgreement()
	for i := range c.replicas {
		if got := len(c.executed[i]); got != 27 {
			t.Fatalf("replica %d executed %d of 27", i, got)
		}
	}
}

func TestForgedCheckpointCertificateIsRejected(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 4 })
	vote := func(from uint32, d byte) *wire.Signed {
		return c.signedBy(from, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Checkpoint{Checkpoint: &wire.Checkpoint{Sequence: 8, StateDigest: digestBytes(crypto.Digest{d})}}}).Signed
	}
	for name, votes := range map[string][]*wire.Signed{
		"two votes":           {vote(0, 1), vote(2, 1)},
		"same signer twice":   {vote(0, 1), vote(0, 1), vote(2, 1)},
		"conflicting digests": {vote(0, 1), vote(2, 1), vote(3, 2)},
	} {
		m := c.signedBy(2, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_CheckpointCertificate{CheckpointCertificate: &wire.CheckpointCertificate{Votes: votes}}})
		if err := c.replicas[1].Step(m); !errors.Is(err, ErrCheckpointRejected) {
			t.Errorf("%s: err = %v, want rejected", name, err)
		}
		if c.replicas[1].HasReady() || c.replicas[1].StableCheckpoint().Sequence != 0 {
			t.Fatalf("%s changed the replica", name)
		}
	}
	// A vote whose signature is bad never passes the verifier.
	bad := vote(3, 1)
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[5] ^= 1
	body := &wire.ReplicaMessage{From: 2, Body: &wire.ReplicaMessage_CheckpointCertificate{CheckpointCertificate: &wire.CheckpointCertificate{Votes: []*wire.Signed{vote(0, 1), vote(1, 1), bad}}}}
	payload, _ := protoMarshal(body)
	frame, _ := EncodeFrame(&wire.Signed{Payload: payload, Signature: c.signers[2].Sign(crypto.DomainReplicaMessage, payload)}, nil)
	if _, err := c.verifier.ReplicaFrame(frame); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("certificate with a forged vote: %v", err)
	}
}
