package protocol

import "testing"

// On entering a new view, a backup relays the requests clients sent it to
// the new primary only after its prepares for the re-proposals, and at
// most one batch of them: a bulk relay ahead of the votes overflowed the
// runtime's bounded per-peer queue, the prepares were dropped, and the
// new view stalled until retransmission.
func TestNewViewRelayComesAfterPreparesAndIsBounded(t *testing.T) {
	const batch = 4
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = batch })
	// Sequences prepare in view 0 but do not commit: the NEW-VIEW
	// re-proposes them.
	c.drop = func(_, _ uint32, kind Kind) bool { return kind == KindCommit }
	submitN(t, c, 0, 8, 1)
	c.run()
	// The primary goes silent; clients send many requests to everyone.
	var stream []Kind // what replica 2 sends replica 1, in order
	c.drop = func(from, to uint32, kind Kind) bool {
		if from == 2 && to == 1 {
			stream = append(stream, kind)
		}
		return from == 0 || to == 0
	}
	for client := byte(2); client < 6; client++ {
		broadcastRequests(t, c, client, 0, 10)
	}
	c.run()
	c.tickUntil(3*DefaultViewChangeTimeoutTicks, "view change to view 1", func() bool { return c.allActiveIn(1, 0) })
	c.run()

	lastVC := -1
	for i, k := range stream {
		if k == KindViewChange {
			lastVC = i
		}
	}
	if lastVC < 0 {
		t.Fatal("replica 2 sent no VIEW-CHANGE to replica 1")
	}
	firstPrepare, firstForward, forwards := -1, -1, 0
	for i, k := range stream[lastVC+1:] {
		switch k {
		case KindPrepare:
			if firstPrepare < 0 {
				firstPrepare = i
			}
		case KindForward:
			forwards++
			if firstForward < 0 {
				firstForward = i
			}
		}
	}
	if firstPrepare < 0 || firstForward < 0 {
		t.Fatalf("after its VIEW-CHANGE replica 2 sent %v; want prepares and relayed requests", stream[lastVC+1:])
	}
	if firstForward < firstPrepare {
		t.Fatalf("relayed requests went before the new view's prepares: %v", stream[lastVC+1:])
	}
	if forwards > batch {
		t.Fatalf("replica 2 relayed %d requests to the new primary; want at most one batch (%d)", forwards, batch)
	}
	c.assertAgreement()
}
