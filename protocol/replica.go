package protocol

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// Replica is one PBFT replica's protocol state. It is not safe for
// concurrent use: one goroutine (the runtime's event loop, or the
// simulator) owns it.
type Replica struct {
	cfg    Config
	quorum int

	view          uint64
	window        checkpoint.Window
	checkpoints   *checkpoint.Tracker
	nextSequence  uint64 // primary: next sequence to assign
	lastCommitted uint64 // highest sequence handed out in Ready.Committed
	// endAt, when not 0, is the last sequence of this epoch (EndAt);
	// adopting is true while a NEW-VIEW's re-proposals are installed
	// (no fill batch then: see canFill).
	endAt    uint64
	adopting bool

	slots    map[uint64]*slot
	requests *requestTracker
	// pace is the primary's per-key allowance for large requests (pace.go).
	pace *largePace
	// batchWait counts ticks the primary has held a partial batch.
	batchWait int
	// idleTicks counts ticks without progress while agreement is open.
	idleTicks       int
	retransmissions uint64
	// ownCheckpoints holds this replica's checkpoint votes above the stable
	// checkpoint, for retransmission.
	ownCheckpoints map[uint64]*wire.Signed
	// future buffers messages for the sequences just above the window.
	future *futureBuffer
	// ticks counts Tick calls; fetchAnswered rate-limits Fetch answers.
	ticks         uint64
	fetchAnswered map[uint32]uint64
	// serve bounds per peer what this replica sends on request (batch
	// replies, Fetch answers' batches; see serve.go).
	serve *serveBudget
	// serveLimited counts batches left out of Fetch answers by the budget.
	serveLimited uint64
	fetchesSent  uint64
	// lastFetch is the tick of the last Fetch this replica broadcast.
	lastFetch uint64
	// adoptedCommits counts sequences decided by a commit certificate for
	// a batch this replica had not accepted.
	adoptedCommits uint64
	// commitsByChannel counts the COMMITs counted on their author's
	// session's word; relayRefused those of them RelayCheck refused.
	commitsByChannel, relayRefused uint64
	// transferring is the checkpoint a state transfer is fetching.
	transferring *checkpoint.Certificate
	// early decides which PREPAREs go before their log entry is durable
	// and which a restarted replica withholds (early.go).
	early earlyPrepares

	// View change. viewActive is false from a replica's VIEW-CHANGE until
	// it accepts the NEW-VIEW of r.view.
	vcConfig             viewchange.Config
	viewActive           bool
	vcTimer, vcAttempts  int
	viewChangesStarted   uint64
	viewChangesCompleted uint64
	newViewSent          bool
	ownViewChange        *wire.Signed
	lastNewView          *wire.Signed
	// latestVC is each replica's highest-view VIEW-CHANGE above r.view.
	latestVC map[uint32]viewchange.ViewChange
	// prepared is the highest-view prepared certificate per sequence
	// above the stable checkpoint.
	prepared map[uint64]viewchange.PreparedCertificate
	// preparedRun is the newest run of consecutive sequences this
	// replica prepared in one view (Status.PreparedRun): the PREPAREs of
	// that view for those sequences are of no more use to it.
	preparedRun PreparedRun
	// highestPrepared is the highest sequence this replica ever prepared
	// (and so sent a COMMIT for) in any view; see HighestPrepared.
	highestPrepared uint64
	// retained holds, by digest, the batches of the pre-prepares this
	// replica logged above the stable checkpoint, in any view, so that it
	// can serve a re-proposed one whose slot is gone (see retainBatch).
	retained map[crypto.Digest]*retainedBatch
	// pendingView holds messages for r.view received before its NEW-VIEW.
	pendingView []VerifiedMessage
	// suspects is each replica's highest suspected-into view above r.view.
	suspects     map[uint32]uint64
	suspectsSent uint64
	// timerBase is when the current view (or the last state transfer)
	// started; lastSuspect when this replica last suspected.
	timerBase, lastSuspect uint64
	// head is the view-change timer of the oldest client-sent request
	// pending here; orderedLarge counts the large bytes of every batch
	// this replica logged a pre-prepare for (the timer's credit); monitor
	// watches the primary's throughput (see liveness.go).
	head         headTimer
	orderedLarge uint64
	monitor      primaryMonitor

	ready Ready
}

// New returns a replica in view 0 with an empty log, at cfg.Base.
func New(cfg Config) (*Replica, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	quorum := Quorum(cfg.N)
	// Checkpoint votes are accepted as far ahead as the window reaches.
	tracker, err := checkpoint.NewTracker(cfg.N, quorum, cfg.CheckpointInterval, cfg.WindowSize)
	if err != nil {
		return nil, fmt.Errorf("protocol: %w", err)
	}
	r := &Replica{
		cfg:          cfg,
		quorum:       quorum,
		window:       checkpoint.Window{Low: 0, Size: cfg.WindowSize},
		checkpoints:  tracker,
		nextSequence: 1,
		slots:        make(map[uint64]*slot),
		requests: newRequestTracker(trackerLimits{total: cfg.MaxPendingRequests, totalBytes: cfg.MaxPendingBytes,
			perClient: cfg.MaxPendingPerClient, perKey: cfg.MaxPendingPerKey, perKeyBytes: cfg.MaxPendingBytesPerKey}),

		pace:           newLargePace(largePaceBurst),
		early:          earlyPrepares{span: earlyPrepareSpan * uint64(cfg.MaxInFlight)},
		ownCheckpoints: make(map[uint64]*wire.Signed),
		future:         newFutureBuffer(cfg.N),
		fetchAnswered:  make(map[uint32]uint64),
		serve:          newServeBudget(cfg.MaxServeBytesPerPeer, cfg.MaxServeRequestsPerPeer, cfg.RetransmitTicks),
		viewActive:     true,
		latestVC:       make(map[uint32]viewchange.ViewChange),
		suspects:       make(map[uint32]uint64),
		prepared:       make(map[uint64]viewchange.PreparedCertificate),
		retained:       make(map[crypto.Digest]*retainedBatch),
		vcConfig: viewchange.Config{N: cfg.N, Quorum: cfg.ViewChangeQuorum, CheckpointInterval: cfg.CheckpointInterval,
			WindowSize: cfg.WindowSize, NullDigest: crypto.BatchDigest(nil), Epoch: cfg.Epoch, Base: cfg.Base},
	}
	r.startAtBase()
	return r, nil
}

// ID returns this replica's index.
func (r *Replica) ID() uint32 { return r.cfg.ID }

// View returns the current view.
func (r *Replica) View() uint64 { return r.view }

// HighestPrepared returns the highest sequence this replica prepared (and
// so voted to commit) in any view, since it started or recovered. Every
// batch that committed before now at a quorum including this replica is
// at or below it: the read-only path answers only once this replica has
// executed up to the HighestPrepared of the read's arrival.
func (r *Replica) HighestPrepared() uint64 { return r.highestPrepared }

// IsPrimary reports whether this replica is the current view's primary.
func (r *Replica) IsPrimary() bool { return r.primary(r.view) == r.cfg.ID }

// ViewActive reports whether the replica runs the normal case in its view
// (false while it changes views).
func (r *Replica) ViewActive() bool { return r.viewActive }

// Status returns the replica's position.
func (r *Replica) Status() Status {
	return Status{
		ID:               r.cfg.ID,
		View:             r.view,
		Primary:          r.primary(r.view),
		LowWatermark:     r.window.Low,
		HighWatermark:    r.window.High(),
		LastCommitted:    r.lastCommitted,
		NextSequence:     r.nextSequence,
		PendingRequests:  r.requests.len(),
		ClientPending:    r.requests.fromClients,
		Slots:            len(r.slots),
		Retransmissions:  r.retransmissions,
		Buffered:         r.future.len(),
		FetchesSent:      r.fetchesSent,
		AdoptedCommits:   r.adoptedCommits,
		CommitsByChannel: r.commitsByChannel,
		RelayRefused:     r.relayRefused,
		PreparesWithheld: r.early.withheld,
		PreparedRun:      r.preparedRun,
		Transferring:     r.transferring != nil,

		ViewActive:           r.viewActive,
		ViewChangesStarted:   r.viewChangesStarted,
		ViewChangesCompleted: r.viewChangesCompleted,
		SuspectsSent:         r.suspectsSent,
		SlowPrimarySuspects:  r.monitor.suspects,
		ServeLimited:         r.serveLimited,
	}
}

// Watermarks returns what AdmitNormalCase needs of the replica's state
// now: its view, low watermark, window size and newest prepared run.
func (r *Replica) Watermarks() Watermarks {
	return Watermarks{View: r.view, Low: r.window.Low, Window: r.cfg.WindowSize, Prepared: r.preparedRun}
}

// HasReady reports whether Ready would return something to do.
func (r *Replica) HasReady() bool { return !r.ready.Empty() || r.canPropose() || r.canFill() }

// Ready returns the actions accumulated since the last call and clears
// them. The caller must persist rd.View and rd.Persist before sending
// rd.Messages (except those marked BeforePersist, which it may send
// first), and execute rd.Committed in order, and must have carried out a
// Ready before it asks for the next (the core then counts what it made
// durable: see earlyPrepares).
//
// On the primary, Ready first cuts batches from the requests queued since
// the last call (Submit only queues), so a burst of requests handed to the
// replica between two Ready calls goes out in as few batches as the limits
// allow, while a lone request goes out at once.
func (r *Replica) Ready() Ready {
	r.propose()
	rd := r.ready
	r.ready = Ready{}
	r.early.readied(r.view, r.window.Low)
	return rd
}

// Tick advances the replica's logical clock by one tick.
func (r *Replica) Tick() {
	r.ticks++
	if r.IsPrimary() && r.requests.queued() > 0 {
		r.batchWait++
		r.propose()
	}
	r.retransmitTick()
	r.viewChangeTick()
}

// Submit hands the replica a client request whose signature was checked.
// The primary queues it for a batch; a backup relays it to the primary once
// (the client sends to every replica when the primary seems slow).
func (r *Replica) Submit(req ClientRequest) error {
	if req.Signed == nil || req.Request == nil || len(req.Request.ClientId) == 0 {
		return ErrMalformed
	}
	if err := r.checkRequestSize(req.Signed); err != nil {
		return err
	}
	primary := r.IsPrimary() && r.viewActive
	added, err := r.requests.add(req, primary, r.ticks)
	if err != nil || !added {
		return err
	}
	if primary {
		return nil // proposed at the next Ready
	}
	if !r.viewActive {
		return nil // kept for the new primary
	}
	r.send(r.primary(r.view), KindForward, &wire.ReplicaMessage{
		Body: &wire.ReplicaMessage_ForwardedRequest{ForwardedRequest: req.Signed},
	})
	return nil
}

// Step hands the replica a message from another replica whose signature
// was checked. It returns why the message was dropped, or nil.
func (r *Replica) Step(m VerifiedMessage) error {
	if m.Body == nil || m.Signed == nil {
		return ErrMalformed
	}
	from := m.Body.From
	switch {
	case int64(from) >= int64(r.cfg.N):
		return ErrUnknownSender
	case from == r.cfg.ID:
		return ErrFromSelf
	case m.Body.Epoch != r.cfg.Epoch:
		return ErrWrongEpoch
	}
	if !r.viewActive && r.bufferForNewView(m) {
		return nil
	}
	switch body := m.Body.Body.(type) {
	case *wire.ReplicaMessage_ViewChange:
		return r.stepViewChange(from, m.ViewChange)
	case *wire.ReplicaMessage_NewView:
		return r.stepNewView(from, m.Signed, m.NewView)
	case *wire.ReplicaMessage_BatchRequest:
		return r.stepBatchRequest(from, body.BatchRequest)
	case *wire.ReplicaMessage_Suspect:
		return r.stepSuspect(from, body.Suspect)
	case *wire.ReplicaMessage_BatchReply:
		return r.stepBatchReply(m)
	case *wire.ReplicaMessage_PrePrepare:
		if body.PrePrepare == nil {
			return ErrMalformed
		}
		if from == r.primary(r.view) && r.deferIfAhead(body.PrePrepare.View, body.PrePrepare.Sequence, m) {
			return nil
		}
		return r.stepPrePrepare(from, body.PrePrepare, m)
	case *wire.ReplicaMessage_Prepare:
		if r.deferIfAhead(body.Prepare.GetView(), body.Prepare.GetSequence(), m) {
			return nil
		}
		return r.stepPrepare(from, body.Prepare, m.Signed)
	case *wire.ReplicaMessage_Commit:
		if r.deferIfAhead(body.Commit.GetView(), body.Commit.GetSequence(), m) {
			return nil
		}
		return r.stepCommit(from, body.Commit, m.Signed, m.ByChannel)
	case *wire.ReplicaMessage_Checkpoint:
		return r.stepCheckpoint(from, body.Checkpoint, m.Signed)
	case *wire.ReplicaMessage_Fetch:
		if body.Fetch == nil {
			return ErrMalformed
		}
		return r.stepFetch(from, body.Fetch)
	case *wire.ReplicaMessage_CheckpointCertificate:
		return r.stepCheckpointCertificate(m.Votes)
	case *wire.ReplicaMessage_ForwardedRequest:
		if len(m.Requests) != 1 {
			return ErrMalformed
		}
		if !r.IsPrimary() || !r.viewActive {
			return nil // only the primary orders; the sender will time out on its own
		}
		return r.Submit(ClientRequest{Signed: body.ForwardedRequest, Request: m.Requests[0]})
	default:
		return ErrMalformed
	}
}

// send signs body as this replica and queues it for to (or Broadcast).
func (r *Replica) send(to uint32, kind Kind, body *wire.ReplicaMessage) *wire.Signed {
	signed := r.sign(body)
	r.ready.Messages = append(r.ready.Messages, Outbound{To: to, Signed: signed, Kind: kind})
	return signed
}

func (r *Replica) sign(body *wire.ReplicaMessage) *wire.Signed {
	body.From, body.Epoch = r.cfg.ID, r.cfg.Epoch
	payload, err := proto.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("protocol: marshal own message: %v", err)) // generated types always marshal
	}
	return &wire.Signed{Payload: payload, Signature: r.cfg.Signer.Sign(crypto.DomainReplicaMessage, payload)}
}

func (r *Replica) persist(view, seq uint64, kind Kind, signed *wire.Signed) {
	r.ready.Persist = append(r.ready.Persist, LogEntry{View: view, Sequence: seq, Kind: kind, Signed: signed})
}

func (r *Replica) checkRequestSize(s *wire.Signed) error {
	if len(s.Payload)+len(s.Signature) > r.cfg.MaxBatchBytes {
		return ErrBatchTooLarge
	}
	return nil
}

// CheckpointInterval returns K: the runtime calls CheckpointExecuted after
// executing each multiple of it.
func (r *Replica) CheckpointInterval() uint64 { return r.cfg.CheckpointInterval }

// bufferForNewView keeps a normal-case message for the view this replica
// is changing to until the NEW-VIEW arrives (at most 3N per window slot),
// and drops normal-case messages for other views. It reports whether it
// took the message.
func (r *Replica) bufferForNewView(m VerifiedMessage) bool {
	var view uint64
	switch {
	case m.Body.GetPrePrepare() != nil:
		view = m.Body.GetPrePrepare().View
	case m.Body.GetPrepare() != nil:
		view = m.Body.GetPrepare().View
	case m.Body.GetCommit() != nil:
		view = m.Body.GetCommit().View
	default:
		return false
	}
	if view == r.view && uint64(len(r.pendingView)) < 3*uint64(r.cfg.N)*r.cfg.WindowSize {
		r.pendingView = append(r.pendingView, m)
	}
	return true
}

// Config returns the replica's configuration with defaults applied.
func (r *Replica) Config() Config { return r.cfg }

// PruneRequests forgets the client requests that executed outside this
// replica's view of the log (by state transfer, or in a view it missed):
// done reports, from the executor, whether a request executed or can no
// longer execute. The runtime calls it at stable checkpoints and after a
// state transfer; without it such requests would stay pending forever,
// holding their client's share of the queue and running the view-change
// timer.
func (r *Replica) PruneRequests(done func(clientID []byte, number uint64) bool) int {
	return r.requests.prune(done)
}
