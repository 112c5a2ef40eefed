package protocol

import (
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// batchBytesSent sums the batch bytes of the messages of kind in rd
// addressed to replica to.
func batchBytesSent(rd Ready, to uint32, kind Kind) (n, frames int) {
	for _, m := range rd.Messages {
		if m.Kind == kind && (m.To == to || m.To == Broadcast) {
			n += batchBytes(m.Batch)
			frames++
		}
	}
	return n, frames
}

// committedBatch commits one batch of large requests and returns its
// digest.
func committedLargeBatch(t *testing.T, c *cluster) []byte {
	t.Helper()
	for i := range 3 {
		if err := c.replicas[0].Submit(sessionRequest(1, "s", uint64(i+1), 256<<10)); err != nil {
			t.Fatal(err)
		}
	}
	c.run()
	if len(c.executed[1]) == 0 {
		t.Fatal("nothing committed")
	}
	d := c.executed[1][0].Digest
	return d[:]
}

func TestBatchRequestFloodIsBoundedPerPeer(t *testing.T) {
	c := newCluster(t, 4, nil)
	digest := committedLargeBatch(t, c)
	victim := c.replicas[1]
	victim.Ready()
	answered, limited := 0, 0
	for range 200 {
		m := c.signedBy(3, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_BatchRequest{BatchRequest: &wire.BatchRequest{Digest: digest}}})
		switch err := victim.Step(m); err {
		case nil:
			answered++
		case ErrRateLimited:
			limited++
		default:
			t.Fatal(err)
		}
	}
	sent := 0
	for _, m := range victim.Ready().Messages {
		if m.Kind == KindBatchReply {
			sent += len(m.Signed.Payload)
		}
	}
	budget := victim.Config().MaxServeBytesPerPeer
	if sent > budget+budget/8 || answered == 0 || limited == 0 {
		t.Fatalf("200 BATCH-REQUESTs: %d answered (%d bytes), %d refused; budget %d bytes per period", answered, sent, limited, budget)
	}
	// Another replica's budget is its own.
	m := c.signedBy(2, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_BatchRequest{BatchRequest: &wire.BatchRequest{Digest: digest}}})
	if err := victim.Step(m); err != nil {
		t.Fatalf("replica 2's BATCH-REQUEST refused during replica 3's flood: %v", err)
	}
	// After a period the flooder's budget is back.
	for range victim.Config().RetransmitTicks {
		victim.Tick()
	}
	victim.Ready()
	m = c.signedBy(3, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_BatchRequest{BatchRequest: &wire.BatchRequest{Digest: digest}}})
	if err := victim.Step(m); err != nil {
		t.Fatalf("a BATCH-REQUEST one period later refused: %v", err)
	}
}

// A Fetch answer carries batches only within the asker's serve budget;
// the votes still go, and the asker gets the batches it lacks later.
func TestFetchAnswersAreBoundedInBytes(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchBytes = 300 << 10 })
	// Replica 3 misses everything; 12 batches of ~256 KiB commit without it.
	c.drop = func(from, to uint32, _ Kind) bool { return from == 3 || to == 3 }
	for i := range 12 {
		if err := c.replicas[0].Submit(sessionRequest(byte(1+i%4), "s", uint64(i/4+1), 256<<10)); err != nil {
			t.Fatal(err)
		}
		c.run()
	}
	if len(c.executed[1]) != 12 {
		t.Fatalf("%d batches committed, want 12", len(c.executed[1]))
	}
	helper := c.replicas[1]
	helper.Ready()
	if err := helper.Step(c.signedBy(3, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Fetch{Fetch: &wire.Fetch{View: 0, ViewActive: true}}})); err != nil {
		t.Fatal(err)
	}
	sent, _ := batchBytesSent(helper.Ready(), 3, KindPrePrepare)
	if budget := helper.Config().MaxServeBytesPerPeer; sent > budget || sent == 0 {
		t.Fatalf("a Fetch answer carried %d batch bytes; budget %d", sent, budget)
	}
	if helper.Status().ServeLimited == 0 {
		t.Fatal("no batch was left out; the scenario did not exceed the budget")
	}
	// Legitimate catch-up still completes: with the link back, replica 3
	// gets everything through Fetch, BATCH-REQUEST and retransmission.
	c.drop = nil
	c.tickUntil(20*DefaultRetransmitTicks, "replica 3 to catch up", func() bool { return len(c.executed[3]) == 12 })
	c.assertAgreement()
}

// A replica that executed exactly to the others' stable checkpoint (it
// replayed the log there) but holds no certificate for it gets the
// certificate in a Fetch answer: without it its window would never move
// past the checkpoint, since the others no longer send those votes.
func TestFetchAtTheStableCheckpointGetsItsCertificate(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 2 })
	for i := range 2 {
		if err := c.replicas[0].Submit(sessionRequest(1, "s", uint64(i+1), 16)); err != nil {
			t.Fatal(err)
		}
		c.run()
	}
	helper := c.replicas[1]
	if low := helper.Status().LowWatermark; low != 2 {
		t.Fatalf("helper's stable checkpoint %d, want 2", low)
	}
	helper.Ready()
	fetch := &wire.Fetch{FromSequence: 2, View: 0, ViewActive: true}
	if err := helper.Step(c.signedBy(3, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Fetch{Fetch: fetch}})); err != nil {
		t.Fatal(err)
	}
	for _, m := range helper.Ready().Messages {
		if m.Kind == KindCheckpointCertificate && m.To == 3 {
			return
		}
	}
	t.Fatal("a Fetch from the stable checkpoint got no certificate")
}

// A peer that asks every tick is refilled at the budget's rate: a refill
// of one tick adds its share (it used to round down to nothing and reset
// the refill clock, shutting such a peer out for good).
func TestServeBudgetRefillsAPeerThatAsksEveryTick(t *testing.T) {
	b := newServeBudget(1<<20, 64, 150)
	answered := 0
	for now := range uint64(3000) {
		if b.takeRequest(1, now) {
			answered++
		}
	}
	// 64 at once, then 64 per 150 ticks: 64 + 64*2999/150 = 1343.
	if answered < 1300 || answered > 1344 {
		t.Fatalf("%d of 3000 requests, one per tick, answered; want about 1343", answered)
	}
}

// A replica that executed past the others' stable checkpoint without its
// votes (they were lost) converges in an idle cluster: a Fetch answer
// carries the certificate even to an asker above it, so its window moves
// and it executes what the others hold above its old window. Without the
// certificate it stayed at its high watermark forever: the others never
// send a stable checkpoint's votes again, and no new load came to make the
// next checkpoint.
func TestIdleClusterBringsAReplicaPastAStableCheckpointItMissed(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval, cfg.WindowSize = 4, 5 })
	c.drop = func(_, to uint32, kind Kind) bool { return to == 3 && kind == KindCheckpoint }
	for i := range 7 {
		if err := c.replicas[0].Submit(sessionRequest(1, "s", uint64(i+1), 16)); err != nil {
			t.Fatal(err)
		}
		c.run()
	}
	if got := len(c.executed[0]); got != 7 {
		t.Fatalf("replica 0 executed %d, want 7", got)
	}
	if st := c.replicas[3].Status(); len(c.executed[3]) != 5 || st.LowWatermark != 0 {
		t.Fatalf("replica 3 executed %d with low watermark %d; the scenario wants 5 and 0", len(c.executed[3]), st.LowWatermark)
	}
	// The cluster is idle from here on; nothing is lost any more.
	c.drop = nil
	c.tickUntil(10*DefaultRetransmitTicks, "replica 3 to catch up in an idle cluster", func() bool {
		return len(c.executed[3]) == 7 && c.replicas[3].Status().LowWatermark == c.replicas[0].Status().LowWatermark
	})
	if c.behind[3] != nil {
		t.Fatalf("replica 3 asked for a state transfer to %d; it had the log", c.behind[3].Sequence)
	}
	c.assertAgreement()
}

// FetchSoon broadcasts a Fetch, but not twice within the Fetch rate period.
func TestFetchSoonIsRateLimited(t *testing.T) {
	c := newCluster(t, 4, nil)
	r := c.replicas[3]
	r.Ready()
	fetches := func() int {
		n := 0
		for _, m := range r.Ready().Messages {
			if m.Kind == KindFetch {
				n++
			}
		}
		return n
	}
	r.FetchSoon()
	if got := fetches(); got != 1 {
		t.Fatalf("%d Fetches, want 1", got)
	}
	r.FetchSoon()
	if got := fetches(); got != 0 {
		t.Fatalf("%d Fetches right after one, want 0", got)
	}
	for range r.Config().RetransmitTicks / 4 {
		r.Tick()
	}
	r.Ready()
	r.FetchSoon()
	if got := fetches(); got != 1 {
		t.Fatalf("%d Fetches a period later, want 1", got)
	}
}
