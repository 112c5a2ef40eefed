package node

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/verifypool"
	"github.com/pbftnode/pbftnode/wire"
)

// MaxVerifyDrain bounds how many frames one receiving goroutine takes at
// once; a verifying runtime checks all their signatures in one batch
// verification. It takes only frames that are already waiting: it never
// waits for more, so batching adds no latency, and batches grow with the
// load.
const MaxVerifyDrain = 64

// Arrival is one frame a receiving goroutine took: from a replica, or
// (Client) from a client.
type Arrival struct {
	Frame  p2p.Frame
	Client bool
}

// ReceiveLoop hands receive every batch of frames the host schedules
// (fairly across its sources; up to MaxVerifyDrain, only frames already
// waiting) until ctx ends or the host closes. receive runs on the
// caller's goroutine and must not keep the slice.
func ReceiveLoop(ctx context.Context, host *p2p.Host, receive func(context.Context, []Arrival)) {
	frames := make([]p2p.Frame, 0, MaxVerifyDrain)
	arrivals := make([]Arrival, 0, MaxVerifyDrain)
	for {
		var ok bool
		frames, ok = host.NextFrames(ctx, frames[:0], MaxVerifyDrain)
		for _, f := range frames {
			arrivals = append(arrivals, Arrival{Frame: f, Client: f.FromIndex < 0})
		}
		clear(frames)
		if len(arrivals) > 0 {
			receive(ctx, arrivals)
		}
		clear(arrivals)
		arrivals = arrivals[:0]
		if !ok {
			return
		}
	}
}

// NewVerifier returns the message verifier of a runtime that checks
// signatures (PBFT and the floor), with its verification pool of
// cfg.VerifyWorkers and a verified-request cache; the caller closes the
// pool.
func NewVerifier(cfg Config, maxBatch int) (*protocol.MessageVerifier, *verifypool.Pool) {
	pool := verifypool.New(cfg.ClusterID, cfg.VerifyWorkers)
	v := protocol.NewMessageVerifier(cfg.ClusterID, cfg.PublicKeys(), crypto.NewVerifiedCache(1<<16), pool, maxBatch)
	return v.CheckDirectCommits(cfg.CheckDirectCommits), pool
}

// SignedRequestOf decodes a client frame down to its signed request.
func SignedRequestOf(f p2p.Frame) (*wire.Signed, error) {
	var frame wire.ClientFrame
	if err := proto.Unmarshal(f.Data, &frame); err != nil {
		return nil, err
	}
	if frame.GetRequest() == nil {
		return nil, errors.New("client frame without a request")
	}
	return frame.GetRequest(), nil
}

// SentByItsClient reports whether the verified request req came from the
// client it names: replies go back on the stream a request came on.
func SentByItsClient(f p2p.Frame, req *wire.Request) bool {
	id, err := identity.ClientPeerID(req.ClientId)
	return err == nil && id == f.From
}

// ReasonOf maps a protocol error to a metric label of
// pbftnode_messages_dropped_total ("other" for an error it does not
// know; a runtime maps its own driver's errors beside it).
func ReasonOf(err error) string {
	for _, e := range []struct {
		err    error
		reason string
	}{
		{protocol.ErrBadSignature, "bad_signature"},
		{protocol.ErrMalformed, "malformed"},
		{protocol.ErrUnknownSender, "unknown_sender"},
		{protocol.ErrFromSelf, "from_self"},
		{protocol.ErrWrongView, "wrong_view"},
		{protocol.ErrNotFromPrimary, "not_from_primary"},
		{protocol.ErrFromPrimary, "prepare_from_primary"},
		{protocol.ErrOutsideWindow, "outside_window"},
		{protocol.ErrDigestMismatch, "digest_mismatch"},
		{protocol.ErrConflictingPrePrepare, "conflicting_pre_prepare"},
		{protocol.ErrDuplicate, "duplicate"},
		{protocol.ErrBatchTooLarge, "too_large"},
		{protocol.ErrQueueFull, "queue_full"},
		{protocol.ErrClientQueueFull, "client_queue_full"},
		{protocol.ErrCheckpointRejected, "checkpoint_rejected"},
		{protocol.ErrViewChangeRejected, "view_change_rejected"},
		{protocol.ErrNewViewRejected, "new_view_rejected"},
		{protocol.ErrStale, "stale"},
		{protocol.ErrAlreadyPrepared, "already_prepared"},
		{protocol.ErrRateLimited, "rate_limited"},
		{protocol.ErrReadOnlyOrdered, "read_only_ordered"},
	} {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return "other"
}
