package protocol

import "testing"

// On entering a new view, a backup relays the requests clients sent it to
// the new primary only after its prepares for the re-proposals, and at
// most one batch of them: a bulk relay ahead of the votes overflowed the
// runtime's bounded per-peer queue, the prepares were dropped, and the
// new view stalled until retransmission. With the default MaxBatchSize
// (512) the relay is bounded by maxRelayedRequests (256).
func TestNewViewRelayComesAfterPreparesAndIsBounded(t *testing.T) {
	t.Run("MaxBatchSize 4", func(t *testing.T) { relayAfterViewChange(t, 4, 4, 10, 4) })
	t.Run("default MaxBatchSize", func(t *testing.T) {
		relayAfterViewChange(t, 0, 7, 60, maxRelayedRequests)
	})
}

// relayAfterViewChange runs the scenario above with batches of maxBatch
// (0: the default) and clients clients sending perClient requests each,
// and checks that replica 2 relays at most bound of them, after its
// prepares.
func relayAfterViewChange(t *testing.T, maxBatch, clients, perClient, bound int) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.MaxBatchSize = maxBatch })
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
	for client := byte(2); client < byte(2+clients); client++ {
		broadcastRequests(t, c, client, 0, perClient)
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
	if forwards > bound {
		t.Fatalf("replica 2 relayed %d requests to the new primary; want at most %d", forwards, bound)
	}
	if forwards < min(bound, clients*perClient)/2 {
		t.Fatalf("replica 2 relayed only %d requests; the bound (%d) was not exercised", forwards, bound)
	}
	c.assertAgreement()
}
