package protocol

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// What a replica sends must not depend on Go's map iteration order: the
// simulator replays a seed exactly only if every core's output is a
// function of its inputs. These tests set up state held in maps (own
// checkpoint votes, slots waiting for one batch) and check that the
// messages come out in sequence order, repeatedly: Go starts each
// iteration of a map at a random entry, so map order would get four
// entries sorted in about one iteration of four.

const orderRepeats = 20

// sequencesOf returns the sequence numbers of the messages of kind in rd.
func sequencesOf(t *testing.T, rd Ready, kind Kind) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, out := range rd.Messages {
		if out.Kind != kind {
			continue
		}
		m, ok := decodeForTest(out.Signed)
		if !ok {
			t.Fatalf("undecodable %v message", kind)
		}
		switch b := m.Body.(type) {
		case *wire.ReplicaMessage_Checkpoint:
			seqs = append(seqs, b.Checkpoint.Sequence)
		case *wire.ReplicaMessage_Prepare:
			seqs = append(seqs, b.Prepare.Sequence)
		}
	}
	return seqs
}

func decodeForTest(s *wire.Signed) (*wire.ReplicaMessage, bool) {
	var m wire.ReplicaMessage
	if err := proto.Unmarshal(s.Payload, &m); err != nil {
		return nil, false
	}
	return &m, true
}

func requireAscending(t *testing.T, what string, seqs []uint64, want int) {
	t.Helper()
	if len(seqs) != want {
		t.Fatalf("%s: %d messages %v, want %d", what, len(seqs), seqs, want)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("%s: sequences %v, want ascending", what, seqs)
		}
	}
}

// replicaWithCheckpointVotes returns replica 1 of 4 holding its own
// checkpoint votes for four checkpoints above its stable one.
func replicaWithCheckpointVotes(t *testing.T) *Replica {
	t.Helper()
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval, cfg.WindowSize = 2, 16 })
	r := c.replicas[1]
	for seq := uint64(2); seq <= 8; seq += 2 {
		r.ownCheckpoints[seq] = r.sign(&wire.ReplicaMessage{Body: &wire.ReplicaMessage_Checkpoint{
			Checkpoint: &wire.Checkpoint{Sequence: seq, StateDigest: make([]byte, 32)}}})
	}
	return r
}

func TestRetransmitSendsCheckpointVotesInSequenceOrder(t *testing.T) {
	r := replicaWithCheckpointVotes(t)
	for range orderRepeats {
		r.retransmit()
		requireAscending(t, "retransmitted checkpoint votes", sequencesOf(t, r.Ready(), KindCheckpoint), 4)
	}
}

func TestFetchAnswerSendsCheckpointVotesInSequenceOrder(t *testing.T) {
	r := replicaWithCheckpointVotes(t)
	for range orderRepeats {
		clear(r.fetchAnswered) // answer every time
		if err := r.stepFetch(2, &wire.Fetch{View: r.view, ViewActive: true}); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		requireAscending(t, "checkpoint votes answering a fetch", sequencesOf(t, r.Ready(), KindCheckpoint), 4)
	}
}

// TestBatchReplyPreparesWaitingSlotsInSequenceOrder: a backup holding
// pre-prepares without their batch for several sequences with one digest
// (as after a NEW-VIEW) prepares them in sequence order once the batch
// arrives.
func TestBatchReplyPreparesWaitingSlotsInSequenceOrder(t *testing.T) {
	for range orderRepeats {
		c := newCluster(t, 4, nil)
		r := c.replicas[1]
		req := request(1, 1, "put x 1")
		batch := []*wire.Signed{req.Signed}
		d := crypto.BatchDigest(batch)
		for seq := uint64(1); seq <= 4; seq++ {
			pp := c.replicas[0].sign(&wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{
				PrePrepare: &wire.PrePrepare{View: 0, Sequence: seq, Digest: d[:]}}})
			r.slots[seq] = &slot{view: 0, prePrepare: pp, digest: d, prepares: map[uint32]vote{}, commits: map[uint32]vote{}}
		}
		reply := VerifiedMessage{
			Body:     &wire.ReplicaMessage{From: 2, Body: &wire.ReplicaMessage_BatchReply{BatchReply: &wire.BatchReply{Digest: d[:], Requests: batch}}},
			Batch:    batch,
			Requests: []*wire.Request{req.Request},
		}
		if err := r.stepBatchReply(reply); err != nil {
			t.Fatalf("batch reply: %v", err)
		}
		requireAscending(t, "prepares of the slots the batch completes", sequencesOf(t, r.Ready(), KindPrepare), 4)
	}
}

// TestTopDigestBreaksTiesByDigest: with two digests holding equally many
// commits (possible only with a planted commit quorum of f+1), the lower
// digest is the top one, whatever the map's order.
func TestTopDigestBreaksTiesByDigest(t *testing.T) {
	low, high := crypto.Digest{1}, crypto.Digest{2}
	votes := map[uint32]vote{0: {digest: high}, 1: {digest: low}, 2: {digest: high}, 3: {digest: low}}
	for range orderRepeats {
		if d, n := topDigest(votes); d != low || n != 2 {
			t.Fatalf("topDigest = %x with %d votes, want %x with 2", d[:1], n, low[:1])
		}
	}
	votes[4] = vote{digest: high}
	if d, n := topDigest(votes); d != high || n != 3 {
		t.Fatalf("topDigest = %x with %d votes, want %x with 3", d[:1], n, high[:1])
	}
}
