package replica

import (
	"log/slog"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// Storage is the replica's durable protocol state: the view, the protocol
// log above the stable checkpoint and the stable checkpoint's certificate.
// *storage.DB implements it; MemoryStorage is the in-memory one.
//
// Contract: a Save or Append returns only once what it stored survives a
// crash (as far as the implementation promises durability); on error
// nothing of the call is visible to later loads. The driver calls it from
// its caller's goroutine only.
type Storage interface {
	// SaveViewState stores the view and whether it was entered (false:
	// still changing to it).
	SaveViewState(view uint64, active bool) error
	// LoadViewState returns what SaveViewState stored; found is false
	// when nothing was.
	LoadViewState() (view uint64, active, found bool, err error)
	// AppendLog stores entries atomically. Signed holds the encoded frame
	// (protocol.EncodeFrame) or, for KindPreparedCertificate, the encoded
	// wire.PreparedCertificate.
	// It returns once they survive a crash, and so does every entry
	// WriteLog stored before them.
	AppendLog(entries []storage.LogEntry) error
	// WriteLog stores entries atomically, as AppendLog does, but may
	// return before they are durable: a crash may lose them and every
	// entry written after them, never an earlier one, until the next
	// AppendLog. The Driver uses it for a Ready whose messages all may go
	// before its log is durable (see logMustBeDurable).
	WriteLog(entries []storage.LogEntry) error
	// LoadLog returns the entries with Sequence >= fromSeq ordered by
	// (sequence, view, kind).
	LoadLog(fromSeq uint64) ([]storage.LogEntry, error)
	// SaveStableCheckpoint stores the encoded wire.CheckpointCertificate
	// of the latest stable checkpoint.
	SaveStableCheckpoint(encodedCert []byte) error
	// LoadStableCheckpoint returns what SaveStableCheckpoint stored last.
	LoadStableCheckpoint() (encodedCert []byte, found bool, err error)
}

// BackgroundAppender is a Storage that can append to the log on another
// goroutine. StartAppendLog begins AppendLog(entries) and returns at once;
// wait blocks until that append is durable and returns its error. The
// Driver calls wait before anything that depends on the entries (sends,
// executions that need them, the next Storage call), so the only work that
// overlaps the append is the execution of committed batches that do not
// depend on it (executableBeforePersist). A Storage that is not one appends
// on the Driver's goroutine.
type BackgroundAppender interface {
	StartAppendLog(entries []storage.LogEntry) (wait func() error)
}

// Network carries what the replica sends. Both calls must not block on
// the peer (queue or drop instead) and must not call back into the
// Driver.
type Network interface {
	// Send sends an encoded frame (protocol.EncodeFrame of out.Signed and
	// out.Batch) to replica out.To, or to every other replica for
	// protocol.Broadcast. out is what the Filter let out.
	Send(out protocol.Outbound, frame []byte)
	// Reply sends r to the client r.ClientId names; r went through the
	// Filter.
	Reply(r *wire.Reply)
}

// Executor is the application side the driver runs: *execution.Executor
// implements it. Apply is called with consecutive sequences only.
type Executor interface {
	Status(clientID []byte, requestNumber uint64) execution.RequestStatus
	CachedReply(clientID []byte, requestNumber uint64) ([]byte, bool)
	Apply(sequence uint64, requests []execution.Request) ([]execution.Reply, error)
	TakeSnapshot() (*execution.StateSnapshot, error)
	LastExecuted() uint64
	StateDigest() [32]byte
	// Read answers a read-only operation on the current state (see
	// execution.Executor.Read); execution.ErrNotReadOnly for others.
	Read(clientID, op []byte) ([]byte, error)
	// The restore side, for state transfer.
	RestoreBegin() error
	RestoreChunk(entries []*wire.KeyValue) error
	RestoreFinishExpect(digest [32]byte) ([32]byte, error)
	RestoreAbort() error
}

// RollbackExecutor is an optional side of an Executor, found by type
// assertion (*execution.Executor implements it): it keeps enough to
// rebuild the state at any executed sequence above the stable checkpoint,
// across restarts, so that a replica that executed past its stable
// checkpoint and restarted can still serve that checkpoint's state (the
// snapshot TakeSnapshot took there died with the process).
type RollbackExecutor interface {
	// SetRollbackInterval has SnapshotAt serve only multiples of k (the
	// checkpoint interval), which lets the executor keep one record per
	// key per interval instead of one per batch.
	SetRollbackInterval(k uint64)
	// TrackRollback makes later Applies keep what SnapshotAt needs, and
	// forgets what only the state at or below stable would need.
	TrackRollback(stable uint64) error
	// SnapshotAt returns the state at executed sequence seq, at most
	// LastExecuted (its Digest may be unset: fetchers check the whole
	// state against the certificate).
	SnapshotAt(seq uint64) (*execution.StateSnapshot, error)
}

// Snapshots keeps the state snapshots taken at checkpoints, which the
// runtime serves to replicas that transfer state. Calls come from the
// driver's caller goroutine; the implementation may hand them to another
// goroutine.
type Snapshots interface {
	// Checkpointed hands over the snapshot taken after executing
	// snap.Sequence(); the implementation owns it (and must Release it).
	Checkpointed(snap *execution.StateSnapshot)
	// Stable says the certificate of checkpoint seq is stored durably:
	// snapshots below seq may be released and the log at or below seq
	// deleted (Storage's LoadLog never reads below it again).
	Stable(seq uint64)
}

// Filter rewrites what a replica sends. A correct replica has none; the
// byzantine package implements the fault-injection strategies with it, so
// the protocol core carries no fault code.
type Filter interface {
	// Outbound returns the messages to send instead of out (none to drop
	// it, several to equivocate).
	Outbound(out protocol.Outbound) []protocol.Outbound
	// Reply may change a reply before it goes to the client; false drops it.
	Reply(r *wire.Reply) bool
}

// Injector is an optional hook of a Filter, found by type assertion: the
// driver calls Inject once per Tick (tick counts the driver's ticks from
// 1; st is the core's status after the tick) and encodes and sends every
// message it returns, as it does the core's, without filtering it. Fault
// injection uses it to send traffic of its own on the protocol's clock.
type Injector interface {
	Inject(tick uint64, st protocol.Status) []protocol.Outbound
}

// Delayer is an optional hook of a Filter, found by type assertion: for
// each message the Filter lets out, Delay returns how many ticks the
// driver holds it before sending (0: send now). Held frames wait in a
// tick-ordered queue bounded by maxHeldFrames and maxHeldBytes; a frame
// that does not fit goes at once.
type Delayer interface {
	Delay(out protocol.Outbound) uint64
}

// Observer receives the driver's events, for metrics, logs and the
// simulator's checks. Every method is called on the driver's caller
// goroutine and must not call back into the Driver. NopObserver
// implements all of them as no-ops; embed it to pick some.
type Observer interface {
	// Ready is called with each Ready before it is handled.
	Ready(rd *protocol.Ready)
	// Executing is called with batch b before it is applied.
	Executing(b protocol.CommittedBatch)
	// Executed is called after batch b was applied, before its replies
	// are sent.
	Executed(b protocol.CommittedBatch)
	// Stable is called after the certificate of checkpoint seq was stored.
	Stable(seq uint64)
	// TransferStarted: a state transfer to checkpoint seq began (or was
	// retargeted to it); executed is what the executor had executed.
	TransferStarted(seq, executed uint64)
	// TransferRejected: the peer asked failed (reason: timeout,
	// unavailable, bad_chunk, digest_mismatch); the next peer is asked.
	TransferRejected(seq uint64, peer uint32, reason string, err error)
	// TransferReceived: a chunk of entries entries was restored.
	TransferReceived(entries int)
	// TransferInstalled: checkpoint seq was installed from peer's state
	// (bytes of keys and values).
	TransferInstalled(seq uint64, peer uint32, bytes int)
}

// NopObserver is an Observer that does nothing.
type NopObserver struct{}

func (NopObserver) Ready(*protocol.Ready)                          {}
func (NopObserver) Executing(protocol.CommittedBatch)              {}
func (NopObserver) Executed(protocol.CommittedBatch)               {}
func (NopObserver) Stable(uint64)                                  {}
func (NopObserver) TransferStarted(uint64, uint64)                 {}
func (NopObserver) TransferRejected(uint64, uint32, string, error) {}
func (NopObserver) TransferReceived(int)                           {}
func (NopObserver) TransferInstalled(uint64, uint32, int)          {}

// Config is what a Driver needs. Every field but Filter, Observer and
// Logger is required.
type Config struct {
	// Core configures the protocol core; Core.ID, Core.N and Core.Signer
	// must be set (the driver signs its state requests with Core.Signer).
	Core      protocol.Config
	Storage   Storage
	Network   Network
	Executor  Executor
	Snapshots Snapshots
	// Verifier checks what recovery reads back from Storage, as if it came
	// from the network.
	Verifier *protocol.MessageVerifier
	// Receipts says whether and where the driver attaches receipts
	// (ReceiptMode; the zero value is ReceiptsOff).
	Receipts ReceiptMode
	// CommittedRepliesOnly turns tentative replies off (tentative.go):
	// every reply waits for its batch to commit, whatever the request
	// asks.
	CommittedRepliesOnly bool
	// Filter, when set, makes the replica Byzantine (fault injection).
	Filter Filter
	// Epochs, when set, makes the driver follow configuration epochs
	// (epoch.go); nil runs the genesis configuration of Core forever.
	Epochs *Epochs
	// TransferWindow is how many state chunks one state request asks for
	// (statetransfer.Config.Window; 0 means 1): every server of this
	// replica's state requests must answer whole windows
	// (statetransfer.ServeChunks or Rest).
	TransferWindow int
	Observer       Observer
	Logger         *slog.Logger
}
