package protocol

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

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
type MessageVerifier struct {
	clusterID string
	replicas  []ed25519.PublicKey
	cache     *crypto.VerifiedCache // may be nil
	pool      *crypto.Pool          // may be nil: verify inline
	maxBatch  int
	// maxPrepared bounds the prepared certificates of a VIEW-CHANGE and
	// the pre-prepares of a NEW-VIEW (the window size).
	maxPrepared uint64
}

// NewMessageVerifier returns a verifier for a cluster whose replica i has
// public key replicas[i]. cache remembers checked client requests so each
// is checked once per replica; pool checks a batch's client signatures in
// parallel. Both may be nil. maxBatch bounds the requests of a pre-prepare.
func NewMessageVerifier(clusterID string, replicas []ed25519.PublicKey, cache *crypto.VerifiedCache, pool *crypto.Pool, maxBatch int) *MessageVerifier {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatchSize
	}
	return &MessageVerifier{clusterID: clusterID, replicas: replicas, cache: cache, pool: pool, maxBatch: maxBatch,
		maxPrepared: 2 * DefaultCheckpointInterval}
}

// SetWindowSize sets the largest number of sequences a VIEW-CHANGE or a
// NEW-VIEW may cover (the replicas' WindowSize).
func (v *MessageVerifier) SetWindowSize(window uint64) { v.maxPrepared = window }

// ReplicaFrame decodes and verifies one frame (a wire.ReplicaFrame)
// received from a replica or read back from the protocol log.
func (v *MessageVerifier) ReplicaFrame(frame []byte) (VerifiedMessage, error) {
	var f wire.ReplicaFrame
	if err := proto.Unmarshal(frame, &f); err != nil {
		return VerifiedMessage{}, fmt.Errorf("%w: frame: %w", ErrMalformed, err)
	}
	if f.Message == nil {
		return VerifiedMessage{}, fmt.Errorf("%w: frame without a message", ErrMalformed)
	}
	return v.verify(f.Message, f.Batch)
}

// ReplicaMessage verifies a signed replica message that carries no batch.
func (v *MessageVerifier) ReplicaMessage(signed *wire.Signed) (VerifiedMessage, error) {
	return v.verify(signed, nil)
}

// EncodeFrame encodes a message and its batch as a wire.ReplicaFrame.
func EncodeFrame(signed *wire.Signed, batch []*wire.Signed) ([]byte, error) {
	return proto.Marshal(&wire.ReplicaFrame{Message: signed, Batch: batch})
}

func (v *MessageVerifier) verify(signed *wire.Signed, batch []*wire.Signed) (VerifiedMessage, error) {
	var body wire.ReplicaMessage
	if err := proto.Unmarshal(signed.Payload, &body); err != nil {
		return VerifiedMessage{}, fmt.Errorf("%w: replica message: %w", ErrMalformed, err)
	}
	if int64(body.From) >= int64(len(v.replicas)) {
		return VerifiedMessage{}, ErrUnknownSender
	}
	if !crypto.Verify(v.replicas[body.From], v.clusterID, crypto.DomainReplicaMessage, signed.Payload, signed.Signature) {
		return VerifiedMessage{}, fmt.Errorf("%w from replica %d", ErrBadSignature, body.From)
	}
	m := VerifiedMessage{Signed: signed, Body: &body}
	if _, isPrePrepare := body.Body.(*wire.ReplicaMessage_PrePrepare); !isPrePrepare && len(batch) > 0 {
		return VerifiedMessage{}, fmt.Errorf("%w: batch beside a message that is not a pre-prepare", ErrMalformed)
	}
	switch b := body.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		if b.PrePrepare == nil {
			return VerifiedMessage{}, ErrMalformed
		}
		if len(batch) > v.maxBatch {
			return VerifiedMessage{}, ErrBatchTooLarge
		}
		if d := crypto.BatchDigest(batch); !bytes.Equal(d[:], b.PrePrepare.Digest) {
			return VerifiedMessage{}, ErrDigestMismatch
		}
		reqs, err := v.requests(batch)
		if err != nil {
			return VerifiedMessage{}, err
		}
		m.Batch, m.Requests = batch, reqs
	case *wire.ReplicaMessage_ForwardedRequest:
		reqs, err := v.requests([]*wire.Signed{b.ForwardedRequest})
		if err != nil {
			return VerifiedMessage{}, err
		}
		m.Requests = reqs
	case *wire.ReplicaMessage_Prepare:
		if b.Prepare == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_Commit:
		if b.Commit == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_Checkpoint:
		if b.Checkpoint == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_CheckpointCertificate:
		votes, err := v.checkpointVotes(b.CheckpointCertificate.GetVotes())
		if err != nil {
			return VerifiedMessage{}, err
		}
		m.Votes = votes
	case *wire.ReplicaMessage_Fetch:
		if b.Fetch == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_StateRequest:
		if b.StateRequest == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_StateChunk:
		if b.StateChunk == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_ViewChange:
		vc, err := v.viewChange(body.From, signed, b.ViewChange)
		if err != nil {
			return VerifiedMessage{}, err
		}
		m.ViewChange = &vc
	case *wire.ReplicaMessage_NewView:
		nv, err := v.newView(b.NewView)
		if err != nil {
			return VerifiedMessage{}, err
		}
		m.NewView = nv
	case *wire.ReplicaMessage_Suspect:
		if b.Suspect == nil {
			return VerifiedMessage{}, ErrMalformed
		}
	case *wire.ReplicaMessage_BatchRequest:
		if _, err := digestOf(b.BatchRequest.GetDigest()); err != nil {
			return VerifiedMessage{}, err
		}
	case *wire.ReplicaMessage_BatchReply:
		reqs, err := v.batchReply(b.BatchReply)
		if err != nil {
			return VerifiedMessage{}, err
		}
		m.Batch, m.Requests = b.BatchReply.Requests, reqs
	default:
		return VerifiedMessage{}, fmt.Errorf("%w: unknown message type", ErrMalformed)
	}
	return m, nil
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
		if int64(body.From) >= int64(len(v.replicas)) {
			return nil, ErrUnknownSender
		}
		if !crypto.Verify(v.replicas[body.From], v.clusterID, crypto.DomainReplicaMessage, s.Payload, s.Signature) {
			return nil, fmt.Errorf("%w: certificate vote from replica %d", ErrBadSignature, body.From)
		}
		votes[i] = checkpoint.Vote{Replica: body.From, Sequence: cp.Sequence, Signed: s}
		copy(votes[i].StateDigest[:], cp.StateDigest)
	}
	return votes, nil
}

// ClientRequest verifies a signed request received from a client.
func (v *MessageVerifier) ClientRequest(signed *wire.Signed) (ClientRequest, error) {
	reqs, err := v.requests([]*wire.Signed{signed})
	if err != nil {
		return ClientRequest{}, err
	}
	return ClientRequest{Signed: signed, Request: reqs[0]}, nil
}

// requests decodes signed client requests and checks their signatures,
// skipping those the cache has seen verified.
func (v *MessageVerifier) requests(signed []*wire.Signed) ([]*wire.Request, error) {
	reqs := make([]*wire.Request, len(signed))
	var jobs []crypto.VerifyJob
	for i, s := range signed {
		if s == nil {
			return nil, fmt.Errorf("%w: empty request", ErrMalformed)
		}
		var req wire.Request
		if err := proto.Unmarshal(s.Payload, &req); err != nil {
			return nil, fmt.Errorf("%w: request: %w", ErrMalformed, err)
		}
		if len(req.ClientId) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: client id of %d bytes", ErrMalformed, len(req.ClientId))
		}
		reqs[i] = &req
		if v.cache != nil && v.cache.Contains(s.Payload, s.Signature) {
			continue
		}
		jobs = append(jobs, crypto.VerifyJob{
			PublicKey: ed25519.PublicKey(req.ClientId), Domain: crypto.DomainClientRequest,
			Payload: s.Payload, Signature: s.Signature,
		})
	}
	var ok []bool
	if v.pool != nil && len(jobs) > 1 {
		ok = v.pool.VerifyAll(jobs)
	} else {
		ok = make([]bool, len(jobs))
		for i, j := range jobs {
			ok[i] = crypto.Verify(j.PublicKey, v.clusterID, j.Domain, j.Payload, j.Signature)
		}
	}
	for i, good := range ok {
		if !good {
			return nil, fmt.Errorf("%w: client request", ErrBadSignature)
		}
		if v.cache != nil {
			v.cache.Add(jobs[i].Payload, jobs[i].Signature)
		}
	}
	return reqs, nil
}
