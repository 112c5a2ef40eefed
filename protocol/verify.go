package protocol

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// MessageVerifier turns frames from the network into VerifiedMessages and
// ClientRequests: it decodes them, checks the sender is a cluster member,
// and checks the replica's and every client's signature. It is what the
// runtime's verification workers and the simulator run before Step and
// Submit. It is safe for concurrent use.
//
// VerifyFrames checks many frames at once: it decodes them all, gathers
// every signature they carry (the replicas' and the clients') and checks
// them together with batch verification, then reports on each frame
// exactly as ReplicaFrame, ReplicaMessage or ClientRequest would have
// (same verdict, same error). Batching never changes a verdict: the
// signature rules are those of crypto.Verify whatever the batch.
type MessageVerifier struct {
	clusterID string
	replicas  []ed25519.PublicKey
	// epoch is the configuration epoch whose messages this verifier
	// accepts (see WithEpoch); wrongEpoch counts the others it refused.
	epoch      uint64
	wrongEpoch atomic.Uint64
	cache      *crypto.VerifiedCache // may be nil
	pool       SignaturePool         // may be nil: verify inline
	sigs       *crypto.Verifier      // the pool's, or the verifier's own
	maxBatch   int
	// maxPrepared bounds the prepared certificates of a VIEW-CHANGE and
	// the pre-prepares of a NEW-VIEW (the window size).
	maxPrepared uint64
	// checkDirectCommits makes every COMMIT's signature checked, even
	// one its author's own authenticated session delivered (see
	// Frame.Sender and CheckDirectCommits).
	checkDirectCommits bool
	// viewChanges remembers the VIEW-CHANGEs (signed payload and
	// signature) this verifier verified whole, nested signatures
	// included: a NEW-VIEW repeats a quorum of them, and re-checking
	// their prepared certificates (up to WindowSize of them, each
	// 2f+1 signatures) made every backup take hundreds of milliseconds
	// to accept a NEW-VIEW under load.
	viewChanges *crypto.VerifiedCache
}

// viewChangeCacheEntries is how many verified VIEW-CHANGEs a verifier
// remembers per replica (a few views' worth).
const viewChangeCacheEntries = 8

// SignaturePool checks sets of signatures off the caller's goroutine, on
// workers the runtime owns (verifypool.Pool is one). The core only calls
// it; it never starts goroutines itself.
type SignaturePool interface {
	// Verifier returns the crypto.Verifier the pool checks with; the
	// MessageVerifier shares it (and its key cache) when the cluster IDs
	// match.
	Verifier() *crypto.Verifier
	// VerifyAll checks every job and returns one result per job, in
	// order: true exactly when crypto.Verify would return true for it
	// under the pool's cluster ID. It must be safe for concurrent use.
	VerifyAll(jobs []crypto.VerifyJob) []bool
}

// NewMessageVerifier returns a verifier for a cluster whose replica i has
// public key replicas[i]. cache remembers checked client requests so each
// is checked once per replica; pool checks large sets of signatures in
// parallel. Both may be nil (a nil interface, not a nil *verifypool.Pool).
// maxBatch bounds the requests of a pre-prepare.
func NewMessageVerifier(clusterID string, replicas []ed25519.PublicKey, cache *crypto.VerifiedCache, pool SignaturePool, maxBatch int) *MessageVerifier {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatchSize
	}
	sigs := crypto.NewVerifier(clusterID)
	if pool != nil && pool.Verifier().ClusterID() == clusterID {
		sigs = pool.Verifier()
	}
	return &MessageVerifier{clusterID: clusterID, replicas: replicas, cache: cache, pool: pool, sigs: sigs, maxBatch: maxBatch,
		maxPrepared: 2 * DefaultCheckpointInterval, viewChanges: crypto.NewVerifiedCache(viewChangeCacheEntries * len(replicas))}
}

// SetWindowSize sets the largest number of sequences a VIEW-CHANGE or a
// NEW-VIEW may cover (the replicas' WindowSize).
func (v *MessageVerifier) SetWindowSize(window uint64) { v.maxPrepared = window }

// CheckDirectCommits(true) makes v check the signature of every COMMIT,
// as it does every other message's, instead of taking a COMMIT its
// author's own session delivered on that session's word (Frame.Sender).
// It returns v, for chaining.
func (v *MessageVerifier) CheckDirectCommits(on bool) *MessageVerifier {
	v.checkDirectCommits = on
	return v
}

// Frame is one input of VerifyFrames: exactly one of ReplicaFrame,
// ReplicaMessage and ClientRequest is set.
type Frame struct {
	// ReplicaFrame is an encoded wire.ReplicaFrame, as ReplicaFrame takes.
	ReplicaFrame []byte
	// ReplicaMessage is a signed replica message without a batch, as
	// ReplicaMessage takes.
	ReplicaMessage *wire.Signed
	// ClientRequest is a client's signed request, as ClientRequest takes.
	ClientRequest *wire.Signed
	// Sender is the Ed25519 public key of the peer whose authenticated
	// session delivered the frame (the transport's Noise handshake proved
	// it holds the private key, and the session's AEAD that the bytes are
	// the ones it sent), or nil when that is unknown (a frame read back
	// from the protocol log, a simulator's message without a sender).
	//
	// A COMMIT whose author (its From) has exactly this key is taken on
	// the session's word, without its signature checked: it is that
	// replica's vote as surely as if its signature had been checked, and
	// a COMMIT counts only as its author's vote at the replica that got
	// it. What a signature adds is that others can check it too, and the
	// core never hands such a COMMIT on unchecked (VerifiedMessage.
	// ByChannel, Config.RelayCheck). Every other message keeps its
	// signature check: PRE-PREPAREs and PREPAREs make up the prepared
	// certificates a replica must be able to show at a view change, and
	// checkpoint votes the certificates of state transfer.
	Sender []byte
}

// Verified is VerifyFrames' verdict on one Frame: Message for a replica
// frame or message, Request for a client request, or Err.
type Verified struct {
	Message VerifiedMessage
	Request ClientRequest
	Err     error
}

// ReplicaFrame decodes and verifies one frame (a wire.ReplicaFrame)
// received from a replica or read back from the protocol log.
func (v *MessageVerifier) ReplicaFrame(frame []byte) (VerifiedMessage, error) {
	out := v.VerifyFrames([]Frame{{ReplicaFrame: frame}})[0]
	return out.Message, out.Err
}

// ReplicaMessage verifies a signed replica message that carries no batch.
func (v *MessageVerifier) ReplicaMessage(signed *wire.Signed) (VerifiedMessage, error) {
	out := v.VerifyFrames([]Frame{{ReplicaMessage: signed}})[0]
	return out.Message, out.Err
}

// ClientRequest verifies a signed request received from a client.
func (v *MessageVerifier) ClientRequest(signed *wire.Signed) (ClientRequest, error) {
	out := v.VerifyFrames([]Frame{{ClientRequest: signed}})[0]
	return out.Request, out.Err
}

// EncodeFrame encodes a message and its batch as a wire.ReplicaFrame.
func EncodeFrame(signed *wire.Signed, batch []*wire.Signed) ([]byte, error) {
	return proto.Marshal(&wire.ReplicaFrame{Message: signed, Batch: batch})
}

// pendingFrame is one frame between decoding and the signature verdicts.
// The checks run in this order, and the first that fails names the error:
// decoding (err), the replica's signature (outer), the structure that
// follows it (after), a certificate's nested signatures (deferred to
// finish and checked one by one: certificates are rare), then the clients'
// signatures (requests).
type pendingFrame struct {
	err    error
	signed *wire.Signed
	batch  []*wire.Signed
	body   *wire.ReplicaMessage
	outer  int // index of the replica's signature in the jobs (unless byChannel)
	// byChannel: a COMMIT from its author's own session, signature unchecked
	byChannel bool
	after     error
	deferred  bool
	requests  pendingRequests
	client    bool // a client request: no replica signature
}

// pendingRequests are decoded client requests whose signatures wait in the
// jobs: jobs[i] is the job index of signed[i] once queued, toQueue before,
// or vouched when the cache vouched for it.
type pendingRequests struct {
	signed []*wire.Signed
	reqs   []*wire.Request
	checks []crypto.RequestCheck // what each signature stands for (crypto.CheckOfRequest)
	jobs   []int
	keys   []crypto.Digest // cache keys (with a cache)
}

// VerifyFrames verifies frames together and returns one verdict per frame,
// in order; each verdict is what ReplicaFrame, ReplicaMessage or
// ClientRequest returns for that frame alone. The signatures are checked
// with batch verification (spread over the pool's workers when there are
// many) in two rounds: first the replicas' signatures of all frames, then
// the clients' signatures of the client requests and of the frames that
// passed the first round, skipping requests the cache vouches for. A
// frame with a bad replica signature thus costs one check, never the
// checks of the requests it carries.
func (v *MessageVerifier) VerifyFrames(frames []Frame) []Verified {
	return v.VerifyFramesAdmitting(frames, nil)
}

// Admission is a cheap check of a decoded replica message that runs before
// any of its signatures is checked: a non-nil error is the frame's verdict
// and no signature of the frame is checked. It must only refuse what the
// core would drop anyway, or keep without using (see AdmitNormalCase).
type Admission func(body *wire.ReplicaMessage) error

// VerifyFramesAdmitting is VerifyFrames that first asks admit (when not
// nil) about every replica frame or message, once decoded: decode, admit,
// then verify. Frames read back from the protocol log must not be
// admitted this way.
func (v *MessageVerifier) VerifyFramesAdmitting(frames []Frame, admit Admission) []Verified {
	pending := make([]pendingFrame, len(frames))
	var outerJobs []crypto.VerifyJob
	// The requests of one bundle come together, in a pre-prepare, or
	// interleaved with others' in the client frames of one round: one
	// checker hashes each bundle's inner nodes and builds its statement
	// once for the whole round.
	var round crypto.RequestChecker
	checker := &round
	for i, f := range frames {
		p := &pending[i]
		switch {
		case f.ClientRequest != nil:
			p.client = true
			p.requests, p.err = v.decodeRequests([]*wire.Signed{f.ClientRequest}, checker)
		case f.ReplicaMessage != nil:
			v.decodeAdmitted(p, f.ReplicaMessage, nil, &outerJobs, admit, f.Sender, checker)
		default:
			var rf wire.ReplicaFrame
			if err := proto.Unmarshal(f.ReplicaFrame, &rf); err != nil {
				p.err = fmt.Errorf("%w: frame: %w", ErrMalformed, err)
				continue
			}
			if rf.Message == nil {
				p.err = fmt.Errorf("%w: frame without a message", ErrMalformed)
				continue
			}
			v.decodeAdmitted(p, rf.Message, rf.Batch, &outerJobs, admit, f.Sender, checker)
		}
	}
	outerOK := v.verifyJobs(outerJobs)
	var jobs []crypto.VerifyJob
	// With a cache, a request that appears twice among the frames (from
	// its client and inside a pre-prepare, say) is checked once.
	var seen map[crypto.Digest]int
	if v.cache != nil {
		seen = make(map[crypto.Digest]int)
	}
	for i := range pending {
		p := &pending[i]
		if p.err == nil && p.after == nil && (p.client || p.byChannel || outerOK[p.outer]) {
			p.requests.queue(&jobs, seen)
		}
	}
	ok := v.verifyJobs(jobs)
	out := make([]Verified, len(frames))
	for i := range pending {
		v.finish(&pending[i], outerOK, ok, &out[i])
	}
	return out
}

// verifyJobs checks jobs on the pool, or inline without one.
func (v *MessageVerifier) verifyJobs(jobs []crypto.VerifyJob) []bool {
	if len(jobs) == 0 {
		return nil
	}
	if v.pool != nil {
		return v.pool.VerifyAll(jobs)
	}
	return v.sigs.VerifyBatch(jobs)
}

// decodeReplica decodes a signed replica message (with the batch beside
// it) and queues its signatures, recording the first failed check.
func (v *MessageVerifier) decodeReplica(p *pendingFrame, signed *wire.Signed, batch []*wire.Signed, outerJobs *[]crypto.VerifyJob) {
	v.decodeAdmitted(p, signed, batch, outerJobs, nil, nil, new(crypto.RequestChecker))
}

// decodeAdmitted is decodeReplica that asks admit (when not nil) about the
// decoded message before queuing any signature, and takes a COMMIT that
// sender (the frame's Frame.Sender) authored without a signature check.
// The client requests it carries are checked through checker.
func (v *MessageVerifier) decodeAdmitted(p *pendingFrame, signed *wire.Signed, batch []*wire.Signed, outerJobs *[]crypto.VerifyJob, admit Admission, sender []byte, checker *crypto.RequestChecker) {
	p.signed, p.batch = signed, batch
	var body wire.ReplicaMessage
	if err := proto.Unmarshal(signed.GetPayload(), &body); err != nil {
		p.err = fmt.Errorf("%w: replica message: %w", ErrMalformed, err)
		return
	}
	// The epoch first: a sender's position means nothing in another epoch.
	if err := v.checkEpoch(&body); err != nil {
		p.err = err
		return
	}
	if int64(body.From) >= int64(len(v.replicas)) {
		p.err = ErrUnknownSender
		return
	}
	if admit != nil {
		if err := admit(&body); err != nil {
			p.err = err
			return
		}
	}
	p.body = &body
	if p.byChannel = v.byChannel(&body, sender); !p.byChannel {
		p.outer = len(*outerJobs)
		*outerJobs = append(*outerJobs, crypto.VerifyJob{
			PublicKey: v.replicas[body.From], Domain: crypto.DomainReplicaMessage,
			Payload: signed.GetPayload(), Signature: signed.GetSignature(),
		})
	}
	if _, isPrePrepare := body.Body.(*wire.ReplicaMessage_PrePrepare); !isPrePrepare && len(batch) > 0 {
		p.after = fmt.Errorf("%w: batch beside a message that is not a pre-prepare", ErrMalformed)
		return
	}
	switch b := body.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		if b.PrePrepare == nil {
			p.after = ErrMalformed
			return
		}
		if len(batch) > v.maxBatch {
			p.after = ErrBatchTooLarge
			return
		}
		if d := crypto.BatchDigest(batch); !bytes.Equal(d[:], b.PrePrepare.Digest) {
			p.after = ErrDigestMismatch
			return
		}
		p.requests, p.after = v.decodeRequests(batch, checker)
	case *wire.ReplicaMessage_ForwardedRequest:
		p.requests, p.after = v.decodeRequests([]*wire.Signed{b.ForwardedRequest}, checker)
	case *wire.ReplicaMessage_Prepare:
		if b.Prepare == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_Commit:
		if b.Commit == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_Checkpoint:
		if b.Checkpoint == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_Fetch:
		if b.Fetch == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_StateRequest:
		if b.StateRequest == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_StateChunk:
		if b.StateChunk == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_Suspect:
		if b.Suspect == nil {
			p.after = ErrMalformed
		}
	case *wire.ReplicaMessage_BatchRequest:
		if _, err := digestOf(b.BatchRequest.GetDigest()); err != nil {
			p.after = err
		}
	case *wire.ReplicaMessage_BatchReply:
		br := b.BatchReply
		if br == nil || len(br.Requests) > v.maxBatch {
			p.after = fmt.Errorf("%w: batch reply", ErrMalformed)
			return
		}
		if d := crypto.BatchDigest(br.Requests); !bytes.Equal(d[:], br.Digest) {
			p.after = ErrDigestMismatch
			return
		}
		p.requests, p.after = v.decodeRequests(br.Requests, checker)
	case *wire.ReplicaMessage_CheckpointCertificate, *wire.ReplicaMessage_ViewChange, *wire.ReplicaMessage_NewView:
		p.deferred = true
	default:
		p.after = fmt.Errorf("%w: unknown message type", ErrMalformed)
	}
}

// byChannel reports whether body is a COMMIT that sender, the key of the
// session that delivered it, authored (see Frame.Sender).
func (v *MessageVerifier) byChannel(body *wire.ReplicaMessage, sender []byte) bool {
	if v.checkDirectCommits || len(sender) != ed25519.PublicKeySize {
		return false
	}
	if _, ok := body.Body.(*wire.ReplicaMessage_Commit); !ok {
		return false
	}
	return bytes.Equal(sender, v.replicas[body.From])
}

// ErrNotAdmitted marks a frame an Admission refused before verification;
// it wraps the reason (ErrStale, ErrOutsideWindow or ErrAlreadyPrepared).
var ErrNotAdmitted = errors.New("dropped before verification")

// Watermarks are what AdmitNormalCase needs of a replica's state: its
// view, its low watermark, its window size and its newest run of prepared
// sequences, published together.
type Watermarks struct {
	View, Low, Window uint64
	Prepared          PreparedRun
}

// AdmitNormalCase refuses the normal-case messages (PRE-PREPARE, PREPARE,
// COMMIT) that a replica whose state was w, or any later state, drops
// without using them: those of a view below w.View (Step drops every
// normal-case message of another view, and views only grow), at a
// sequence at or below w.Low (stale: the low watermark only grows), or
// beyond w.Low+2*w.Window (outside the window and beyond what the future
// buffer takes: such a sequence becomes usable only once the low
// watermark has moved, by a checkpoint the sender will have to prove
// anyway). It also refuses a PREPARE for a sequence the replica already
// prepared in the PREPARE's view (w.Prepared): the core would only store
// it beside the 2f it has, which make its certificate and its COMMIT,
// so a late PREPARE costs no signature check. Every other message, of
// any kind, is admitted: Fetch answers, checkpoint certificates, view
// changes and messages of later views.
func AdmitNormalCase(body *wire.ReplicaMessage, w Watermarks) error {
	var view, seq uint64
	switch b := body.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		view, seq = b.PrePrepare.GetView(), b.PrePrepare.GetSequence()
	case *wire.ReplicaMessage_Prepare:
		view, seq = b.Prepare.GetView(), b.Prepare.GetSequence()
	case *wire.ReplicaMessage_Commit:
		view, seq = b.Commit.GetView(), b.Commit.GetSequence()
	default:
		return nil
	}
	switch {
	case view < w.View:
		return fmt.Errorf("%w: %w: view %d below %d", ErrNotAdmitted, ErrStale, view, w.View)
	case seq <= w.Low:
		return fmt.Errorf("%w: %w: sequence %d at or below %d", ErrNotAdmitted, ErrStale, seq, w.Low)
	case w.Window > 0 && seq > w.Low+2*w.Window:
		return fmt.Errorf("%w: %w: sequence %d beyond %d", ErrNotAdmitted, ErrOutsideWindow, seq, w.Low+2*w.Window)
	}
	if _, prepare := body.Body.(*wire.ReplicaMessage_Prepare); prepare && w.Prepared.Holds(view, seq) {
		return fmt.Errorf("%w: %w: sequence %d, view %d", ErrNotAdmitted, ErrAlreadyPrepared, seq, view)
	}
	return nil
}

// finish turns a pending frame and the signature verdicts into the frame's
// verdict.
func (v *MessageVerifier) finish(p *pendingFrame, outerOK, ok []bool, out *Verified) {
	if p.err != nil {
		out.Err = p.err
		return
	}
	if p.client {
		if err := v.checkRequests(&p.requests, ok); err != nil {
			out.Err = err
			return
		}
		out.Request = ClientRequest{Signed: p.requests.signed[0], Request: p.requests.reqs[0]}
		return
	}
	if !p.byChannel && !outerOK[p.outer] {
		out.Err = fmt.Errorf("%w from replica %d", ErrBadSignature, p.body.From)
		return
	}
	if p.after != nil {
		out.Err = p.after
		return
	}
	m := VerifiedMessage{Signed: p.signed, Body: p.body, ByChannel: p.byChannel}
	switch b := p.body.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		if err := v.checkRequests(&p.requests, ok); err != nil {
			out.Err = err
			return
		}
		m.Batch, m.Requests = p.batch, p.requests.reqs
	case *wire.ReplicaMessage_ForwardedRequest:
		if err := v.checkRequests(&p.requests, ok); err != nil {
			out.Err = err
			return
		}
		m.Requests = p.requests.reqs
	case *wire.ReplicaMessage_BatchReply:
		if err := v.checkRequests(&p.requests, ok); err != nil {
			out.Err = err
			return
		}
		m.Batch, m.Requests = b.BatchReply.Requests, p.requests.reqs
	case *wire.ReplicaMessage_CheckpointCertificate:
		votes, err := v.checkpointVotes(b.CheckpointCertificate.GetVotes())
		if err != nil {
			out.Err = err
			return
		}
		m.Votes = votes
	case *wire.ReplicaMessage_ViewChange:
		vc, err := v.viewChangeFrame(p.body.From, p.signed, b.ViewChange)
		if err != nil {
			out.Err = err
			return
		}
		m.ViewChange = &vc
	case *wire.ReplicaMessage_NewView:
		nv, err := v.newView(b.NewView)
		if err != nil {
			out.Err = err
			return
		}
		m.NewView = nv
	}
	out.Message = m
}

// CheckpointCertificate verifies a stored or received certificate's votes
// and that they prove a stable checkpoint among the verifier's replicas
// (quorum votes, taken every interval sequences).
func (v *MessageVerifier) CheckpointCertificate(c *wire.CheckpointCertificate, quorum int, interval uint64) (checkpoint.Certificate, error) {
	votes, err := v.checkpointVotes(c.GetVotes())
	if err != nil {
		return checkpoint.Certificate{}, err
	}
	return checkpoint.VerifyCertificate(votes, len(v.replicas), quorum, interval)
}

// checkpointVotes verifies the signed CHECKPOINT messages of a
// certificate; whether they make a quorum is the core's check.
func (v *MessageVerifier) checkpointVotes(signed []*wire.Signed) ([]checkpoint.Vote, error) {
	return checked(v, func(sigs *nestedSigs) ([]checkpoint.Vote, error) { return v.queueCheckpointVotes(signed, sigs) })
}

// queueCheckpointVotes decodes the signed CHECKPOINT messages of a
// certificate, queuing their signatures on sigs.
func (v *MessageVerifier) queueCheckpointVotes(signed []*wire.Signed, sigs *nestedSigs) ([]checkpoint.Vote, error) {
	if len(signed) == 0 || len(signed) > len(v.replicas) {
		return nil, fmt.Errorf("%w: certificate with %d votes", ErrMalformed, len(signed))
	}
	votes := make([]checkpoint.Vote, len(signed))
	for i, s := range signed {
		if s == nil {
			return nil, ErrMalformed
		}
		var body wire.ReplicaMessage
		if err := proto.Unmarshal(s.Payload, &body); err != nil {
			return nil, fmt.Errorf("%w: certificate vote: %w", ErrMalformed, err)
		}
		cp := body.GetCheckpoint()
		if cp == nil || len(cp.StateDigest) != 32 {
			return nil, fmt.Errorf("%w: certificate vote is not a checkpoint", ErrMalformed)
		}
		if err := v.checkEpoch(&body); err != nil {
			return nil, err
		}
		if int64(body.From) >= int64(len(v.replicas)) {
			return nil, ErrUnknownSender
		}
		sigs.add(v, body.From, s)
		votes[i] = checkpoint.Vote{Replica: body.From, Sequence: cp.Sequence, Signed: s}
		copy(votes[i].StateDigest[:], cp.StateDigest)
	}
	return votes, nil
}

// Markers in pendingRequests.jobs.
const (
	vouched = -1 // the cache vouched for the request
	toQueue = -2 // its signature must be checked
)

// decodeRequests decodes signed client requests, works out the check each
// signature stands for through checker (a bundle signature's proof is
// checked here) and notes which the cache has not vouched for. The error
// is that of the first request that does not decode or whose signature
// field is malformed (checked before any signature).
func (v *MessageVerifier) decodeRequests(signed []*wire.Signed, checker *crypto.RequestChecker) (pendingRequests, error) {
	p := pendingRequests{
		signed: signed, reqs: make([]*wire.Request, len(signed)),
		checks: make([]crypto.RequestCheck, len(signed)), jobs: make([]int, len(signed)),
	}
	if v.cache != nil {
		p.keys = make([]crypto.Digest, len(signed))
	}
	for i, s := range signed {
		if s == nil {
			return pendingRequests{}, fmt.Errorf("%w: empty request", ErrMalformed)
		}
		var req wire.Request
		if err := proto.Unmarshal(s.Payload, &req); err != nil {
			return pendingRequests{}, fmt.Errorf("%w: request: %w", ErrMalformed, err)
		}
		if _, err := crypto.ClientPublicKey(req.ClientId); err != nil {
			return pendingRequests{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if req.ReadOnly {
			return pendingRequests{}, ErrReadOnlyOrdered
		}
		check, err := checker.Check(req.ClientId, s.Payload, s.Signature)
		if err != nil {
			return pendingRequests{}, fmt.Errorf("%w: client request: %w", ErrBadSignature, err)
		}
		p.reqs[i] = &req
		p.checks[i] = check
		p.jobs[i] = toQueue
		if v.cache != nil {
			p.keys[i] = checker.Key(check)
			if v.cache.ContainsKey(p.keys[i]) {
				p.jobs[i] = vouched
			}
		}
	}
	return p, nil
}

// queue appends the signatures p must have checked to jobs. seen (nil
// without a cache) maps the cache keys already queued to their jobs, so a
// pair queued before is not queued again.
func (p *pendingRequests) queue(jobs *[]crypto.VerifyJob, seen map[crypto.Digest]int) {
	for i, j := range p.jobs {
		if j != toQueue {
			continue
		}
		if seen != nil {
			if prev, ok := seen[p.keys[i]]; ok {
				p.jobs[i] = prev
				continue
			}
			seen[p.keys[i]] = len(*jobs)
		}
		c := &p.checks[i]
		p.jobs[i] = len(*jobs)
		*jobs = append(*jobs, crypto.VerifyJob{
			PublicKey: p.reqs[i].ClientId[:ed25519.PublicKeySize], Domain: c.Domain,
			Payload: c.Payload, Signature: c.Signature,
		})
	}
}

// checkRequests reports whether every queued client signature of p
// verified, and remembers in the cache those that did.
func (v *MessageVerifier) checkRequests(p *pendingRequests, ok []bool) error {
	var err error
	for i, j := range p.jobs {
		if j == vouched {
			continue
		}
		if j < 0 { // not queued: never happens, but never vouch for it
			return fmt.Errorf("%w: client request not checked", ErrBadSignature)
		}
		if !ok[j] {
			if err == nil {
				err = fmt.Errorf("%w: client request", ErrBadSignature)
			}
			continue
		}
		if v.cache != nil {
			v.cache.AddKey(p.keys[i])
		}
	}
	return err
}
