package pbft

import (
	"time"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// The PBFT runtime's side of the replica driver: what it plugs into
// replica.Driver. Every method runs on the event loop's goroutine.

// driverStorage is the database, with the log appends timed.
type driverStorage struct {
	*storage.DB
	m *node.Metrics
}

// AppendLog implements replica.Storage.
func (s driverStorage) AppendLog(entries []storage.LogEntry) error {
	start := time.Now()
	if err := s.DB.AppendLog(entries); err != nil {
		return err
	}
	s.m.PersistSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// WriteLog implements replica.Storage, counting the unsynced writes.
func (s driverStorage) WriteLog(entries []storage.LogEntry) error {
	if err := s.DB.WriteLog(entries); err != nil {
		return err
	}
	s.m.LogWrites.Inc()
	return nil
}

// StartAppendLog implements replica.BackgroundAppender: the append (and its
// fsync) runs on its own goroutine while the event loop executes the
// committed batches that do not depend on it; wait returns its result.
// goleveldb is safe for the executor's concurrent writes.
func (s driverStorage) StartAppendLog(entries []storage.LogEntry) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- s.AppendLog(entries) }()
	return func() error { return <-done }
}

// driverNetwork sends through the transport and counts what it sends.
type driverNetwork struct{ n *Node }

// Send implements replica.Network.
func (d driverNetwork) Send(out protocol.Outbound, frame []byte) {
	d.n.transmit(out.To, out.Kind, frame)
}

// Reply implements replica.Network: the reply goes back on the stream of
// the client it names (requests are admitted only from their own client).
// A read-only reply waits for the end of the event loop's step, to go
// with the client's other answers of that step (holdReadReply).
func (d driverNetwork) Reply(r *wire.Reply) {
	if r.GetReadOnly() {
		d.n.holdReadReply(r)
		return
	}
	// The verifier admits only well-formed client ids.
	node.ReplyToClient(d.n.Host, d.n.metrics, r)
}

// transmit sends an encoded frame to the replica at core position to, or
// to all other members of the epoch in force for protocol.Broadcast, and
// counts it. With epochs positions map to member indices (MemberAt); the
// transport may also hold the previous and next configurations' members,
// which a broadcast does not reach.
func (n *Node) transmit(to uint32, kind protocol.Kind, b []byte) {
	switch {
	case !n.epochs && to == protocol.Broadcast:
		n.Host.Broadcast(b)
	case to == protocol.Broadcast:
		st := n.epochStatus()
		for _, m := range st.Config.Members {
			if m.Index != n.cfg.Index {
				n.Host.Send(m.Index, b)
			}
		}
	default:
		index, ok := n.driver.MemberAt(to)
		if !ok {
			n.drop("unroutable", "to", to)
			return
		}
		n.Host.Send(index, b)
	}
	n.metrics.CountSent(kind.String(), len(b))
}

// driverSnapshots hands snapshots and stable checkpoints to the snapshot
// server (serveSnapshots), off the event loop.
type driverSnapshots struct{ n *Node }

// Checkpointed implements replica.Snapshots.
func (d driverSnapshots) Checkpointed(snap *execution.StateSnapshot) {
	select {
	case d.n.snapshotEvents <- snapshotEvent{add: snap}:
	default:
		snap.Release() // the server is far behind; peers will ask others
	}
}

// Stable implements replica.Snapshots.
func (d driverSnapshots) Stable(seq uint64) {
	select {
	case d.n.snapshotEvents <- snapshotEvent{stable: seq}:
	default: // older snapshots and log entries go with the next one
	}
}

// driverObserver turns the driver's events into metrics and logs.
type driverObserver struct {
	n *Node
	// transferStarted is when the state transfer in progress began.
	transferStarted time.Time
}

// Ready implements replica.Observer.
func (o *driverObserver) Ready(rd *protocol.Ready) {
	o.n.phases.observe(rd, o.n.metrics.Ops, time.Now())
}

// Executing implements replica.Observer.
func (o *driverObserver) Executing(protocol.CommittedBatch) {}

// Executed implements replica.Observer.
func (o *driverObserver) Executed(b protocol.CommittedBatch) {
	m := o.n.metrics
	m.CommittedBatches.Inc()
	m.CommittedRequests.Add(float64(len(b.Requests)))
	m.BatchSize.Observe(float64(len(b.Requests)))
	m.ExecutedSequence.Set(float64(b.Sequence))
	o.n.phases.executed(b.Sequence, m.Ops, time.Now())
}

// Stable implements replica.Observer.
func (o *driverObserver) Stable(seq uint64) {
	o.n.metrics.StableCheckpoint.Set(float64(seq))
	o.n.metrics.CheckpointsStable.Inc()
	o.n.phases.forgetBelow(seq)
}

// TransferStarted implements replica.Observer.
func (o *driverObserver) TransferStarted(uint64, uint64) {
	o.transferStarted = time.Now()
	o.n.metrics.StateTransfers.Inc()
}

// TransferRejected implements replica.Observer.
func (o *driverObserver) TransferRejected(_ uint64, _ uint32, reason string, _ error) {
	o.n.metrics.StateTransferRejected.WithLabelValues(reason).Inc()
}

// TransferReceived implements replica.Observer.
func (o *driverObserver) TransferReceived(entries int) {
	o.n.metrics.StateReceivedEntries.Add(float64(entries))
}

// TransferInstalled implements replica.Observer.
func (o *driverObserver) TransferInstalled(seq uint64, _ uint32, _ int) {
	took := time.Since(o.transferStarted)
	o.n.metrics.StateTransferSeconds.Observe(took.Seconds())
	o.n.log.Info("state transfer: took", "checkpoint", seq, "took", took.Round(time.Millisecond))
}
