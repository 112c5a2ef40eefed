package protocol

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

func TestQuorumSizes(t *testing.T) {
	for n, want := range map[int]int{4: 3, 5: 4, 6: 4, 7: 5, 10: 7, 13: 9} {
		if got := Quorum(n); got != want {
			t.Errorf("Quorum(%d) = %d, want %d", n, got, want)
		}
		// Any two quorums intersect in at least f+1 replicas.
		if f := FaultTolerance(n); 2*Quorum(n)-n < f+1 {
			t.Errorf("quorums of %d among %d intersect in fewer than f+1 = %d", Quorum(n), n, f+1)
		}
	}
}

func TestNormalCaseAllReplicasExecuteSameBatchesInOrder(t *testing.T) {
	for _, n := range []int{4, 7} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			c := newCluster(t, n, func(cfg *Config) { cfg.MaxInFlight = 2; cfg.MaxBatchSize = 16 })
			for i := range 200 {
				if err := c.replicas[0].Submit(request(byte(i%5), uint64(i/5+1), fmt.Sprint("op", i))); err != nil {
					t.Fatal(err)
				}
			}
			c.run()
			c.assertAgreement()
			for i := range c.replicas {
				got := c.executedRequests(i)
				if len(got) != 200 {
					t.Fatalf("replica %d executed %d distinct requests, want 200", i, len(got))
				}
				for k, times := range got {
					if times != 1 {
						t.Fatalf("replica %d executed %v %d times", i, k, times)
					}
				}
			}
			// Submitted before one Ready, the requests go out in full
			// batches of 16, two in flight at a time.
			if batches := len(c.executed[0]); batches != 13 {
				t.Fatalf("200 requests in %d batches; want 13 (12 full batches of 16, then 8)", batches)
			}
		})
	}
}

func TestDuplicateRequestIsOrderedOnce(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxInFlight = 1 })
	first := request(1, 7, "put")
	if err := c.replicas[0].Submit(first); err != nil {
		t.Fatal(err)
	}
	// Retransmissions while it is in flight, directly and forwarded by a backup.
	_ = c.replicas[0].Submit(first)
	_ = c.replicas[2].Submit(first)
	c.run()
	if got := c.executedRequests(0)[keyOf(first.Request)]; got != 1 {
		t.Fatalf("request executed %d times, want 1", got)
	}
}

// backupWithPrePrepare returns a cluster and replica 1 after it accepted
// a pre-prepare for sequence 1 from primary 0, and the batch's digest.
func backupWithPrePrepare(t *testing.T) (*cluster, *Replica, crypto.Digest) {
	t.Helper()
	c := newCluster(t, 4, nil)
	backup, d := backupWithPrePrepareIn(t, c)
	return c, backup, d
}

// backupWithPrePrepareIn is backupWithPrePrepare in the cluster c.
func backupWithPrePrepareIn(t *testing.T, c *cluster) (*Replica, crypto.Digest) {
	t.Helper()
	req := request(1, 1, "x")
	batch := []*wire.Signed{req.Signed}
	d := crypto.BatchDigest(batch)
	backup := c.replicas[1]
	pp := c.prePrepareFrom(0, &wire.PrePrepare{
		View: 0, Sequence: 1, Digest: digestBytes(d)}, batch)
	if err := backup.Step(pp); err != nil {
		t.Fatalf("valid pre-prepare rejected: %v", err)
	}
	rd := backup.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Kind != KindPrepare || len(rd.Persist) != 2 {
		t.Fatalf("after pre-prepare: %d messages, %d persisted; want one prepare sent and pre-prepare+prepare persisted", len(rd.Messages), len(rd.Persist))
	}
	return backup, d
}

func prepare(c *cluster, from uint32, view, seq uint64, d crypto.Digest) VerifiedMessage {
	return c.signedBy(from, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: view, Sequence: seq, Digest: digestBytes(d)}}})
}

func commit(c *cluster, from uint32, view, seq uint64, d crypto.Digest) VerifiedMessage {
	return c.signedBy(from, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{View: view, Sequence: seq, Digest: digestBytes(d)}}})
}

func TestPreparedAndCommittedNeedQuorumsOfDistinctReplicas(t *testing.T) {
	c, backup, d := backupWithPrePrepare(t)
	other := crypto.Digest{9}
	// Steps that must not make the backup prepared (it holds only its own prepare).
	for _, s := range []struct {
		name string
		m    VerifiedMessage
		want error
	}{
		{"prepare from the primary", prepare(c, 0, 0, 1, d), ErrFromPrimary},
		{"prepare for another digest", prepare(c, 2, 0, 1, other), nil},
		{"second prepare from the same replica", prepare(c, 2, 0, 1, d), ErrDuplicate},
		{"prepare for another view", prepare(c, 3, 1, 1, d), ErrWrongView},
		{"prepare beyond the next window", prepare(c, 3, 0, 1+4*DefaultCheckpointInterval, d), ErrOutsideWindow},
		{"commit before prepared", commit(c, 2, 0, 1, d), nil},
		{"commit from the same replica again", commit(c, 2, 0, 1, d), ErrDuplicate},
	} {
		if err := backup.Step(s.m); !errors.Is(err, s.want) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.want)
		}
		if backup.HasReady() {
			t.Fatalf("%s changed the replica: %+v", s.name, backup.Ready())
		}
	}
	// The second distinct matching prepare (own + replica 3 = 2f) prepares it.
	if err := backup.Step(prepare(c, 3, 0, 1, d)); err != nil {
		t.Fatal(err)
	}
	rd := backup.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Kind != KindCommit || len(rd.Committed) != 0 {
		t.Fatalf("after 2f prepares: want exactly one commit sent and nothing committed, got %+v", rd)
	}
	// Commits: own + replica 2 so far; a commit for another digest does not count.
	if err := backup.Step(commit(c, 3, 0, 1, other)); err != nil || backup.HasReady() {
		t.Fatalf("commit for another digest: err=%v ready=%v", err, backup.HasReady())
	}
	if err := backup.Step(commit(c, 0, 0, 1, d)); err != nil {
		t.Fatal(err)
	}
	rd = backup.Ready()
	if len(rd.Committed) != 1 || rd.Committed[0].Sequence != 1 || rd.Committed[0].Digest != d {
		t.Fatalf("after 2f+1 commits: committed %+v", rd.Committed)
	}
}

func TestPrePrepareChecks(t *testing.T) {
	c := newCluster(t, 4, nil)
	backup := c.replicas[1]
	req := request(1, 1, "x")
	batch := []*wire.Signed{req.Signed}
	d := crypto.BatchDigest(batch)
	pp := func(from uint32, view, seq uint64, digest crypto.Digest, reqs []*wire.Signed) VerifiedMessage {
		return c.prePrepareFrom(from, &wire.PrePrepare{
			View: view, Sequence: seq, Digest: digestBytes(digest)}, reqs)
	}
	// The verifier rejects a batch that does not match the signed digest;
	// the core checks it again.
	mismatch := pp(0, 0, 1, d, batch)
	swapped := request(2, 1, "y")
	mismatch.Batch, mismatch.Requests = []*wire.Signed{swapped.Signed}, []*wire.Request{swapped.Request}
	for _, s := range []struct {
		name string
		m    VerifiedMessage
		want error
	}{
		{"from a backup", pp(2, 0, 1, d, batch), ErrNotFromPrimary},
		{"wrong view", pp(1, 1, 1, d, batch), ErrFromSelf},
		{"future view", pp(0, 4, 1, d, batch), ErrWrongView},
		{"sequence 0", pp(0, 0, 0, d, batch), ErrStale},
		{"beyond the next window", pp(0, 0, 4*DefaultCheckpointInterval+1, d, batch), ErrOutsideWindow},
		{"digest mismatch", mismatch, ErrDigestMismatch},
	} {
		if err := backup.Step(s.m); !errors.Is(err, s.want) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.want)
		}
		if backup.HasReady() {
			t.Fatalf("%s changed the replica", s.name)
		}
	}
	// Just above the high watermark: buffered for when the window moves,
	// with no effect now.
	if err := backup.Step(pp(0, 0, 2*DefaultCheckpointInterval+1, d, batch)); err != nil || backup.HasReady() || backup.Status().Buffered != 1 {
		t.Fatalf("pre-prepare above the window: err=%v ready=%v buffered=%d", err, backup.HasReady(), backup.Status().Buffered)
	}
	if err := backup.Step(pp(0, 0, 1, d, batch)); err != nil {
		t.Fatal(err)
	}
	backup.Ready()
	// A second, different pre-prepare for the same view and sequence.
	other := []*wire.Signed{request(2, 1, "y").Signed}
	if err := backup.Step(pp(0, 0, 1, crypto.BatchDigest(other), other)); !errors.Is(err, ErrConflictingPrePrepare) {
		t.Fatalf("conflicting pre-prepare: %v", err)
	}
	if err := backup.Step(pp(0, 0, 1, d, batch)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate pre-prepare: %v", err)
	}
	if backup.HasReady() {
		t.Fatal("conflicting or duplicate pre-prepare produced actions")
	}
	if s := backup.slots[1]; s.digest != d {
		t.Fatal("the accepted pre-prepare was replaced")
	}
}

func TestVerifierRejectsForgedMessages(t *testing.T) {
	c := newCluster(t, 4, nil)
	good := prepare(c, 2, 0, 1, crypto.Digest{1})
	frame := func(s *wire.Signed) []byte { b, _ := EncodeFrame(s, nil); return b }

	tampered := &wire.Signed{Payload: append([]byte(nil), good.Signed.Payload...), Signature: good.Signed.Signature}
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	// Replica 3 signs a message claiming to be from replica 2.
	body := &wire.ReplicaMessage{From: 2, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: 0, Sequence: 1, Digest: make([]byte, 32)}}}
	payload, _ := protoMarshal(body)
	impostor := &wire.Signed{Payload: payload, Signature: c.signers[3].Sign(crypto.DomainReplicaMessage, payload)}
	// Signed for another cluster.
	otherCluster := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(testKey(2), "other").Sign(crypto.DomainReplicaMessage, payload)}
	// Signed under the client-request domain.
	otherDomain := &wire.Signed{Payload: payload, Signature: c.signers[2].Sign(crypto.DomainClientRequest, payload)}
	// A pre-prepare carrying a request whose client signature is bad.
	bad := request(1, 1, "x")
	bad.Signed.Signature = append([]byte(nil), bad.Signed.Signature...)
	bad.Signed.Signature[0] ^= 1
	ppBody := &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{
		Sequence: 1, Digest: digestBytes(crypto.BatchDigest([]*wire.Signed{bad.Signed}))}}}
	ppPayload, _ := protoMarshal(ppBody)
	badClient := &wire.Signed{Payload: ppPayload, Signature: c.signers[0].Sign(crypto.DomainReplicaMessage, ppPayload)}

	for name, f := range map[string][]byte{
		"tampered payload":   frame(tampered),
		"impostor":           frame(impostor),
		"other cluster":      frame(otherCluster),
		"other domain":       frame(otherDomain),
		"bad client request": func() []byte { b, _ := EncodeFrame(badClient, []*wire.Signed{bad.Signed}); return b }(),
		"garbage":            {0xff, 0x01, 0x02},
		"empty":              nil,
	} {
		if _, err := c.verifier.ReplicaFrame(f); err == nil {
			t.Errorf("%s: verified, want rejected", name)
		}
	}
	if _, err := c.verifier.ReplicaFrame(frame(good.Signed)); err != nil {
		t.Fatalf("good message rejected: %v", err)
	}
}

func TestExecutionWaitsForEarlierSequences(t *testing.T) {
	c := newCluster(t, 4, nil)
	backup := c.replicas[1]
	var digests []crypto.Digest
	for seq := uint64(1); seq <= 2; seq++ {
		batch := []*wire.Signed{request(1, seq, "x").Signed}
		d := crypto.BatchDigest(batch)
		digests = append(digests, d)
		if err := backup.Step(c.prePrepareFrom(0, &wire.PrePrepare{
			Sequence: seq, Digest: digestBytes(d)}, batch)); err != nil {
			t.Fatal(err)
		}
	}
	finish := func(seq uint64) []CommittedBatch {
		d := digests[seq-1]
		for _, m := range []VerifiedMessage{prepare(c, 2, 0, seq, d), commit(c, 0, 0, seq, d), commit(c, 2, 0, seq, d)} {
			if err := backup.Step(m); err != nil {
				t.Fatal(err)
			}
		}
		return backup.Ready().Committed
	}
	if got := finish(2); len(got) != 0 {
		t.Fatalf("sequence 2 executed before 1: %+v", got)
	}
	got := finish(1)
	if len(got) != 2 || got[0].Sequence != 1 || got[1].Sequence != 2 {
		t.Fatalf("after 1 commits: %+v, want 1 then 2", got)
	}
}

func TestOneSilentBackupDoesNotStopCommits(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.drop = func(from, to uint32, _ Kind) bool { return from == 3 || to == 3 }
	for i := range 20 {
		if err := c.replicas[0].Submit(request(1, uint64(i+1), "op")); err != nil {
			t.Fatal(err)
		}
	}
	c.run()
	c.assertAgreement()
	for i := range 3 {
		if got := len(c.executedRequests(i)); got != 20 {
			t.Fatalf("replica %d executed %d requests with a backup down, want 20", i, got)
		}
	}
	if len(c.executed[3]) != 0 {
		t.Fatal("the isolated backup executed something")
	}
}

func TestCheckpointsMoveWindowAndBoundTheLog(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 4; cfg.MaxInFlight = 1 })
	maxSlots := 0
	for i := range 100 {
		if err := c.replicas[0].Submit(request(1, uint64(i+1), "op")); err != nil {
			t.Fatal(err)
		}
		c.run()
		for _, r := range c.replicas {
			maxSlots = max(maxSlots, len(r.slots))
		}
	}
	c.assertAgreement()
	for i, r := range c.replicas {
		st := r.Status()
		if st.LastCommitted != 100 || st.LowWatermark != 100 {
			t.Fatalf("replica %d: committed %d, low watermark %d; want 100 and 100", i, st.LastCommitted, st.LowWatermark)
		}
		if r.checkpoints.PendingVotes() != 0 {
			t.Fatalf("replica %d kept %d checkpoint votes at or below stable", i, r.checkpoints.PendingVotes())
		}
	}
	if maxSlots > 8 {
		t.Fatalf("log held %d slots, more than the window of 8", maxSlots)
	}
}

func TestWindowFullStallsUntilCheckpointStable(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.CheckpointInterval = 2
		cfg.WindowSize = 4
		cfg.MaxInFlight = 10
		cfg.MaxBatchSize = 1
	})
	// Withhold checkpoints: the primary may not propose beyond the window.
	c.drop = func(_, _ uint32, k Kind) bool { return k == KindCheckpoint }
	for i := range 10 {
		_ = c.replicas[0].Submit(request(1, uint64(i+1), "op"))
	}
	c.run()
	if got := c.replicas[0].Status(); got.LastCommitted != 4 || got.NextSequence != 5 {
		t.Fatalf("without stable checkpoints: committed %d, next %d; want 4 and 5", got.LastCommitted, got.NextSequence)
	}
	c.drop = nil
	// The checkpoint votes were lost; retransmission after idle ticks
	// makes them stable and the primary proposes again.
	c.tick(DefaultRetransmitTicks - 1)
	if got := c.replicas[0].Status(); got.LastCommitted != 4 {
		t.Fatalf("progress before the retransmission timeout: committed %d", got.LastCommitted)
	}
	c.tick(1)
	if got := c.replicas[0].Status().Retransmissions; got != 1 {
		t.Fatalf("retransmissions = %d, want 1", got)
	}
	if got := c.replicas[0].Status(); got.LastCommitted != 10 {
		t.Fatalf("after the checkpoint at 4 became stable: committed %d, want all 10", got.LastCommitted)
	}
}

func TestMalformedInputsNeverPanic(t *testing.T) {
	c := newCluster(t, 4, nil)
	r := c.replicas[1]
	for _, m := range []VerifiedMessage{
		{},
		{Signed: &wire.Signed{}, Body: &wire.ReplicaMessage{}},
		{Signed: &wire.Signed{}, Body: &wire.ReplicaMessage{From: 99}},
		{Signed: &wire.Signed{}, Body: &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{Sequence: 1, Digest: []byte{1}}}}},
		{Signed: &wire.Signed{}, Body: &wire.ReplicaMessage{From: 2, Body: &wire.ReplicaMessage_Checkpoint{Checkpoint: &wire.Checkpoint{Sequence: 128, StateDigest: []byte{1}}}}},
		{Signed: &wire.Signed{}, Body: &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: 1}}}},
		{Signed: &wire.Signed{}, Body: &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_ForwardedRequest{}}},
	} {
		if err := r.Step(m); err == nil {
			t.Errorf("Step(%v) accepted a malformed message", m.Body)
		}
	}
	if err := r.Submit(ClientRequest{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty client request: %v", err)
	}
	if r.HasReady() {
		t.Fatal("malformed input produced actions")
	}
}

func TestLaggingReplicaBuffersMessagesAboveItsWindow(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.CheckpointInterval = 2
		cfg.WindowSize = 4
		cfg.MaxBatchSize = 1
	})
	// Replica 3 never hears of the checkpoint at 2, and hears of the one at
	// 4 only late, so its window is still (0, 4] when the primary, whose
	// window moved on, sends it pre-prepares for 5 and 6.
	c.dropFrame = func(_, to uint32, kind Kind, frame []byte) bool {
		return to == 3 && kind == KindCheckpoint && c.checkpointSeq(frame) == 2
	}
	c.hold = func(m pending) bool {
		return m.to == 3 && m.kind == KindCheckpoint && c.checkpointSeq(m.frame) == 4 &&
			c.replicas[3].Status().Buffered == 0 && c.replicas[0].Status().LastCommitted < 8
	}
	maxBuffered := 0
	c.afterStep = func() { maxBuffered = max(maxBuffered, c.replicas[3].Status().Buffered) }
	for i := range 12 {
		_ = c.replicas[0].Submit(request(1, uint64(i+1), "op"))
	}
	c.run()
	c.assertAgreement()
	if maxBuffered == 0 {
		t.Fatal("replica 3 never buffered a message above its window; the scenario did not happen")
	}
	if got := len(c.executed[3]); got != 12 {
		t.Fatalf("lagging replica executed %d batches, want 12", got)
	}
	if got := c.replicas[3].Status().Buffered; got != 0 {
		t.Fatalf("%d messages left buffered", got)
	}
}

func TestAFloodingClientHoldsAtMostItsShareOfTheQueue(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxInFlight = 1 })
	// Nothing commits (the backups never hear of anything), so everything
	// the flooder sends stays pending at the primary.
	c.drop = func(_, _ uint32, _ Kind) bool { return true }
	primary := c.replicas[0]
	refused := 0
	for i := range 500 {
		if err := primary.Submit(request(1, uint64(i+1), "flood")); errors.Is(err, ErrClientQueueFull) {
			refused++
		}
	}
	if got := primary.Status().PendingRequests; got != DefaultMaxPendingPerClient {
		t.Fatalf("flooder holds %d pending requests, want the per-client bound %d", got, DefaultMaxPendingPerClient)
	}
	if refused != 500-DefaultMaxPendingPerClient {
		t.Fatalf("%d requests refused, want %d", refused, 500-DefaultMaxPendingPerClient)
	}
	if err := primary.Submit(request(2, 1, "other")); err != nil {
		t.Fatalf("another client's request refused during the flood: %v", err)
	}
}

// A client's requests that the primary has ordered but not yet committed
// do not count against the per-client bound: the client stops counting a
// request once f+1 replicas answered, which may be before this replica
// committed it, and its next requests must not be refused for that.
func TestOrderedRequestsLeaveTheClientBound(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxInFlight = 1 })
	c.drop = func(_, _ uint32, _ Kind) bool { return true }
	primary := c.replicas[0]
	const bound = DefaultMaxPendingPerClient
	for i := range bound {
		if err := primary.Submit(request(1, uint64(i+1), "first")); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	ordered := 0
	for _, m := range primary.Ready().Messages {
		if m.Kind == KindPrePrepare {
			ordered += len(m.Batch)
		}
	}
	if ordered != bound {
		t.Fatalf("the primary ordered %d requests, want %d", ordered, bound)
	}
	for i := bound; i < 2*bound; i++ {
		if err := primary.Submit(request(1, uint64(i+1), "second")); err != nil {
			t.Fatalf("request %d, with the first %d ordered: %v", i+1, bound, err)
		}
	}
	if err := primary.Submit(request(1, 2*bound+1, "third")); !errors.Is(err, ErrClientQueueFull) {
		t.Fatalf("request %d with %d queued: got %v, want ErrClientQueueFull", 2*bound+1, bound, err)
	}
	if got := primary.Status().PendingRequests; got != 2*bound {
		t.Fatalf("%d requests pending, want %d", got, 2*bound)
	}
}

// Requests handed to the primary between two Ready calls go out together,
// even while earlier batches are in flight with room for more: the
// primary cuts batches at Ready, not at each Submit.
func TestPrimaryBatchesABurstOfRequests(t *testing.T) {
	c := newCluster(t, 4, nil)
	primary := c.replicas[0]
	prePrepares := func(rd Ready) (batches, requests int) {
		for _, m := range rd.Messages {
			if m.Kind == KindPrePrepare {
				batches++
				requests += len(m.Batch)
			}
		}
		return batches, requests
	}
	if err := primary.Submit(request(1, 1, "first")); err != nil {
		t.Fatal(err)
	}
	if b, r := prePrepares(primary.Ready()); b != 1 || r != 1 {
		t.Fatalf("a lone request: %d batches of %d requests; want it proposed at once", b, r)
	}
	for i := range 50 {
		if err := primary.Submit(request(byte(2+i%4), uint64(i/4+1), fmt.Sprint("burst", i))); err != nil {
			t.Fatal(err)
		}
	}
	if !primary.HasReady() {
		t.Fatal("HasReady is false with 50 requests queued and room in flight")
	}
	if b, r := prePrepares(primary.Ready()); b != 1 || r != 50 {
		t.Fatalf("a burst of 50 requests went out in %d batches (%d requests); want one batch", b, r)
	}
}

// TestPartialBatchesWaitForThePipeline checks MaxPartialInFlight: while two
// batches are in flight a partial batch is held (so requests gather into a
// larger one), a full batch still goes out, and the held requests go out
// when a batch commits, or after BatchDelayTicks when that is set.
func TestPartialBatchesWaitForThePipeline(t *testing.T) {
	submit := func(t *testing.T, r *Replica, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := r.Submit(request(byte(10+i%16), uint64(i/16+1), fmt.Sprint("op", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// proposed collects every replica's Ready (queueing, not delivering,
	// the messages) and returns the sizes of the primary's pre-prepares
	// since the last call.
	seen := 0
	proposed := func(c *cluster) []int {
		c.collect()
		var sizes []int
		for _, e := range c.persisted[0][seen:] {
			if e.Kind == KindPrePrepare {
				sizes = append(sizes, len(e.Batch))
			}
		}
		seen = len(c.persisted[0])
		return sizes
	}

	t.Run("held until a commit", func(t *testing.T) {
		seen = 0
		c := newCluster(t, 4, nil)
		primary := c.replicas[0]
		for i := range 2 {
			submit(t, primary, i, i+1)
			if got := proposed(c); len(got) != 1 {
				t.Fatalf("partial batch %d with %d in flight: proposed %v, want one batch", i+1, i, got)
			}
		}
		submit(t, primary, 2, 3)
		if primary.HasReady() {
			t.Fatal("HasReady with 2 partial batches in flight: a third partial batch should wait")
		}
		primary.Tick() // BatchDelayTicks is 0: ticks do not release it
		if got := proposed(c); len(got) != 0 {
			t.Fatalf("proposed %v with 2 partial batches in flight; BatchDelayTicks 0 must wait for a commit", got)
		}
		submit(t, primary, 3, 3+DefaultMaxBatchSize) // now a full batch is queued
		if got := proposed(c); len(got) != 1 || got[0] != DefaultMaxBatchSize {
			t.Fatalf("full batch: proposed %v, want one of %d", got, DefaultMaxBatchSize)
		}
		c.run() // commits everything, which releases the last partial batch
		total := 3 + DefaultMaxBatchSize
		for i := range c.replicas {
			if got := len(c.executedRequests(i)); got != total {
				t.Fatalf("replica %d executed %d requests, want %d", i, got, total)
			}
		}
		c.assertAgreement()
	})

	t.Run("released by BatchDelayTicks", func(t *testing.T) {
		seen = 0
		c := newCluster(t, 4, func(cfg *Config) { cfg.BatchDelayTicks = 3 })
		primary := c.replicas[0]
		submit(t, primary, 0, 1)
		proposed(c)
		submit(t, primary, 1, 2)
		proposed(c)
		submit(t, primary, 2, 3)
		for tick := 1; tick <= 3; tick++ {
			primary.Tick()
			got := proposed(c)
			if tick < 3 && len(got) != 0 {
				t.Fatalf("after %d of 3 delay ticks: proposed %v, want nothing yet", tick, got)
			}
			if tick == 3 && len(got) != 1 {
				t.Fatalf("after 3 delay ticks: proposed %v, want the held batch", got)
			}
		}
	})

	t.Run("a partial batch waits behind a batch that is not small", func(t *testing.T) {
		seen = 0
		c := newCluster(t, 4, nil)
		primary := c.replicas[0]
		submit(t, primary, 0, DefaultPipelinedBatchBelow)
		if got := proposed(c); len(got) != 1 || got[0] != DefaultPipelinedBatchBelow {
			t.Fatalf("first batch: proposed %v, want one of %d", got, DefaultPipelinedBatchBelow)
		}
		submit(t, primary, DefaultPipelinedBatchBelow, DefaultPipelinedBatchBelow+3)
		if primary.HasReady() {
			t.Fatalf("HasReady with a batch of %d in flight: the partial batch should wait for its commit", DefaultPipelinedBatchBelow)
		}
		c.run()
		for i := range c.replicas {
			if got := len(c.executedRequests(i)); got != DefaultPipelinedBatchBelow+3 {
				t.Fatalf("replica %d executed %d requests, want %d", i, got, DefaultPipelinedBatchBelow+3)
			}
		}
		// Behind a small batch it goes out at once (the subtest above).
		seen = 0
		c = newCluster(t, 4, nil)
		primary = c.replicas[0]
		submit(t, primary, 0, DefaultPipelinedBatchBelow-1)
		proposed(c)
		submit(t, primary, DefaultPipelinedBatchBelow-1, DefaultPipelinedBatchBelow)
		if got := proposed(c); len(got) != 1 || got[0] != 1 {
			t.Fatalf("behind a batch of %d: proposed %v, want one batch of 1", DefaultPipelinedBatchBelow-1, got)
		}
	})

	t.Run("limit equal to MaxInFlight cuts at once", func(t *testing.T) {
		seen = 0
		c := newCluster(t, 4, func(cfg *Config) { cfg.MaxInFlight, cfg.MaxPartialInFlight = 4, 4 })
		primary := c.replicas[0]
		for i := range 4 {
			submit(t, primary, i, i+1)
			if got := proposed(c); len(got) != 1 {
				t.Fatalf("partial batch %d: proposed %v, want one batch", i+1, got)
			}
		}
		submit(t, primary, 4, 5)
		if primary.HasReady() {
			t.Fatal("HasReady with MaxInFlight batches in flight")
		}
	})
}
