package protocol

import (
	"errors"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// Reasons Step and Submit drop an input. Dropping changes nothing.
var (
	ErrMalformed             = errors.New("malformed message")
	ErrBadSignature          = errors.New("bad signature")
	ErrUnknownSender         = errors.New("sender outside the cluster")
	ErrFromSelf              = errors.New("message claims to come from this replica")
	ErrWrongView             = errors.New("message for another view")
	ErrNotFromPrimary        = errors.New("pre-prepare not from the view's primary")
	ErrFromPrimary           = errors.New("prepare from the view's primary")
	ErrOutsideWindow         = errors.New("sequence outside the watermark window")
	ErrStale                 = errors.New("sequence at or below the stable checkpoint")
	ErrAlreadyPrepared       = errors.New("prepare for a sequence already prepared in its view")
	ErrDigestMismatch        = errors.New("digest does not match the batch")
	ErrConflictingPrePrepare = errors.New("a different pre-prepare was already accepted for this view and sequence")
	ErrDuplicate             = errors.New("duplicate message")
	ErrBatchTooLarge         = errors.New("batch exceeds the size limits")
	ErrQueueFull             = errors.New("request queue full")
	ErrClientQueueFull       = errors.New("too many pending requests from this client")
	ErrCheckpointRejected    = errors.New("checkpoint vote rejected")
	ErrViewChangeRejected    = errors.New("view change rejected")
	ErrNewViewRejected       = errors.New("new view rejected")
	ErrChangingView          = errors.New("replica is changing views")
	ErrRateLimited           = errors.New("the sender used its budget for this period")
	// ErrReadOnlyOrdered: a read-only request (wire.Request.read_only)
	// reached the ordering path (submitted, relayed, or in a batch); it
	// is only ever answered by the replica it was sent to.
	ErrReadOnlyOrdered = errors.New("read-only request on the ordering path")
)

// VerifiedMessage is a replica message whose signature the runtime checked
// against the key of replica Body.From.
type VerifiedMessage struct {
	// Signed is the frame as received; certificates keep it as proof.
	Signed *wire.Signed
	// Body is Signed.Payload decoded.
	Body *wire.ReplicaMessage
	// Batch is a pre-prepare's batch of signed client requests (from the
	// frame, bound by the signed digest), or a batch reply's requests.
	Batch []*wire.Signed
	// Requests are the decoded payloads of Batch (their client signatures
	// checked), or of a forwarded request; nil otherwise.
	Requests []*wire.Request
	// Votes are a checkpoint certificate's votes (signatures checked).
	Votes []checkpoint.Vote
	// ViewChange and NewView are decoded, with every nested signature
	// checked; their structure is the core's to validate.
	ViewChange *viewchange.ViewChange
	NewView    *VerifiedNewView
	// ByChannel marks a COMMIT taken on the word of its author's own
	// authenticated session (Frame.Sender): its signature was not
	// checked. It counts as its author's vote here; the core relays it
	// only once Config.RelayCheck has checked it.
	ByChannel bool
}

// ClientRequest is a client request whose client signature was checked.
type ClientRequest struct {
	Signed  *wire.Signed
	Request *wire.Request
}

// Outbound is a signed message to send. To is a replica index, or
// Broadcast for every other replica.
type Outbound struct {
	To     uint32
	Signed *wire.Signed
	// Batch travels beside a pre-prepare (wire.ReplicaFrame.batch).
	Batch []*wire.Signed
	Kind  Kind
	// BeforePersist marks a message the runtime may send before the
	// Ready's Persist is durable: the primary's own PRE-PREPAREs and a
	// backup's PREPAREs. A crash between sending and persisting one cannot
	// lead to a contradiction, because a restarted replica never proposes
	// (Restore abdicates) or prepares (see prepare) again in the view it
	// restored. Its later messages for that sequence (a COMMIT) come in
	// later Readys, and are never BeforePersist: the runtime makes the
	// log durable before sending them.
	BeforePersist bool
}

// Broadcast as Outbound.To addresses every replica but the sender.
const Broadcast = ^uint32(0)

// Kind names a protocol message type (for logs, metrics and persistence).
type Kind byte

// Message kinds; the byte values are stored in the protocol log.
const (
	KindPrePrepare Kind = 'P'
	KindPrepare    Kind = 'p'
	KindCommit     Kind = 'c'
	KindCheckpoint Kind = 'k'
	KindForward    Kind = 'f'
	// Kinds that are never persisted.
	KindFetch                 Kind = 'F'
	KindCheckpointCertificate Kind = 'K'
	KindStateRequest          Kind = 'r'
	KindStateChunk            Kind = 's'
	KindViewChange            Kind = 'V'
	KindNewView               Kind = 'N'
	KindBatchRequest          Kind = 'b'
	KindBatchReply            Kind = 'B'
	KindSuspect               Kind = 'S'
	// KindPreparedCertificate is persisted: a certificate this replica
	// assembled, which its VIEW-CHANGEs must carry even after a crash.
	KindPreparedCertificate Kind = 'C'
)

func (k Kind) String() string {
	switch k {
	case KindPrePrepare:
		return "pre_prepare"
	case KindPrepare:
		return "prepare"
	case KindCommit:
		return "commit"
	case KindCheckpoint:
		return "checkpoint"
	case KindForward:
		return "forwarded_request"
	case KindFetch:
		return "fetch"
	case KindCheckpointCertificate:
		return "checkpoint_certificate"
	case KindStateRequest:
		return "state_request"
	case KindStateChunk:
		return "state_chunk"
	case KindViewChange:
		return "view_change"
	case KindNewView:
		return "new_view"
	case KindBatchRequest:
		return "batch_request"
	case KindBatchReply:
		return "batch_reply"
	case KindSuspect:
		return "suspect"
	case KindPreparedCertificate:
		return "prepared_certificate"
	}
	return "unknown"
}

// LogEntry is a message the replica accepted or sent that safety needs
// after a crash. It must be durable before Ready.Messages are sent.
type LogEntry struct {
	View, Sequence uint64
	Kind           Kind
	Signed         *wire.Signed
	Batch          []*wire.Signed // a pre-prepare's batch
	// Certificate is set (and Signed nil) for KindPreparedCertificate.
	Certificate *wire.PreparedCertificate
}

// CommittedBatch is a batch committed at Sequence, to be executed in order.
// Requests is empty for a null request.
type CommittedBatch struct {
	View, Sequence uint64
	Digest         crypto.Digest
	Requests       []*wire.Request
}

// Ready is what the runtime must do after an input, in this order: persist
// Persist (synced), then send Messages, then execute Committed in order. A
// committed batch with no entry in Persist (in a Ready that does not change
// the view) does not depend on Persist and may execute before it (see
// replica.executableBeforePersist).
// StableCheckpoint, when set, allows deleting the log at or below it.
// Behind, when set, is a stable checkpoint above what this replica has
// executed: it must catch up by state transfer.
type Ready struct {
	// View, when set, is the view to persist (with Persist, before
	// Messages are sent), and ViewActive whether the replica entered it or
	// is still changing to it: a replica never returns to a lower view, and
	// one restarted mid-change resumes the change.
	View       *uint64
	ViewActive bool
	Persist    []LogEntry
	Messages   []Outbound
	Committed  []CommittedBatch
	// Prepared are the batches this replica prepared in this Ready (in
	// the order it prepared them), each with its COMMIT in Messages: once
	// Persist is durable and that COMMIT sent, the prepared certificate
	// survives a crash, and the runtime may execute the batch tentatively
	// (without applying it to its state until it commits) and send
	// tentative replies (replica's tentative execution). A batch of
	// Prepared may also be in Committed (then it executes as usual).
	Prepared         []CommittedBatch
	StableCheckpoint *checkpoint.Certificate
	Behind           *checkpoint.Certificate
}

// Empty reports whether there is nothing to do.
func (rd *Ready) Empty() bool {
	return rd.View == nil && len(rd.Persist) == 0 && len(rd.Messages) == 0 && len(rd.Committed) == 0 && len(rd.Prepared) == 0 &&
		rd.StableCheckpoint == nil && rd.Behind == nil
}

// Status is a snapshot of the replica's position, for metrics and tests.
type Status struct {
	ID              uint32
	View            uint64
	Primary         uint32
	LowWatermark    uint64
	HighWatermark   uint64
	LastCommitted   uint64
	NextSequence    uint64
	PendingRequests int
	// ClientPending counts pending requests that clients sent to this
	// replica: the ones its view-change timer watches.
	ClientPending   int
	Slots           int
	Retransmissions uint64
	Buffered        int
	FetchesSent     uint64
	AdoptedCommits  uint64
	// CommitsByChannel counts the COMMITs counted without a signature
	// check, on the word of their author's own session
	// (VerifiedMessage.ByChannel); RelayRefused those of them whose
	// signature Config.RelayCheck later refused (never relayed: the
	// author is faulty).
	CommitsByChannel uint64
	RelayRefused     uint64
	Transferring     bool
	// ViewActive is false while the replica changes views.
	ViewActive           bool
	ViewChangesStarted   uint64
	ViewChangesCompleted uint64
	SuspectsSent         uint64
	// SlowPrimarySuspects counts the times the slow-primary monitor
	// suspected the primary (see liveness.go).
	SlowPrimarySuspects uint64
	// ServeLimited counts batches left out of Fetch answers because the
	// asker had used its serve budget (see serve.go).
	ServeLimited uint64
	// PreparesWithheld counts the PREPAREs a restarted replica did not
	// send in the view it restored, for sequences it may have prepared
	// before the crash (see Replica.Restore).
	PreparesWithheld uint64
	// PreparedRun is the newest run of consecutive sequences the replica
	// prepared in one view (AdmitNormalCase drops the PREPAREs of that
	// view for them unchecked).
	PreparedRun PreparedRun
}

// PreparedRun is a run of consecutive sequences, From to Through, all
// prepared in View by a replica (none when Through is 0). A slot that is
// prepared stays prepared in its view, so a published run never claims
// too much, however old: further PREPAREs of View for those sequences
// cannot change what the replica does (it has its certificate and sent
// its COMMIT).
type PreparedRun struct {
	View, From, Through uint64
}

// add extends the run with seq, prepared in view: the next sequence of
// the run's view extends it; a sequence of another view, or one past a
// gap, starts a new run; an older one leaves it as it is.
func (p *PreparedRun) add(view, seq uint64) {
	switch {
	case p.Through != 0 && view == p.View && seq == p.Through+1:
		p.Through = seq
	case p.Through == 0 || view != p.View || seq > p.Through+1:
		*p = PreparedRun{View: view, From: seq, Through: seq}
	}
}

// Holds reports whether the run covers seq in view.
func (p PreparedRun) Holds(view, seq uint64) bool {
	return p.Through != 0 && view == p.View && seq >= p.From && seq <= p.Through
}
