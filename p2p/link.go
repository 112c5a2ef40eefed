package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/pbftnode/pbftnode/p2p/identity"
)

// writeBufferSize is the buffer between a peer's queue and its stream; a
// burst of queued frames is flushed in writes of about this size.
const writeBufferSize = 64 << 10

// outLink maintains this host's outbound stream to one member: it dials,
// drains the member's queue onto the stream, and redials with backoff when
// the stream breaks. On a replica host the stream speaks ReplicaProtocol and
// is write-only; on a client host it speaks ClientProtocol and the member's
// replies are read from it.
type outLink struct {
	h      *Host
	member Member
	proto  protocol.ID
	queue  *frameQueue
	wake   chan struct{} // signalled when the member's address changes
}

func newOutLink(h *Host, m Member, proto protocol.ID) *outLink {
	return &outLink{
		h:      h,
		member: m,
		proto:  proto,
		queue:  newFrameQueue(h.queueSize, 0),
		wake:   make(chan struct{}, 1),
	}
}

// wakeUp makes a link that is waiting to redial try again now.
func (l *outLink) wakeUp() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run is the link's goroutine; it returns when the host closes. The caller
// has registered it with h.enter.
func (l *outLink) run() {
	defer l.h.wg.Done()
	ctx := l.h.ctx
	log := l.h.logger.With("peer_index", l.member.Index, "peer", l.member.ID, "protocol", l.proto)
	bo := newBackoff(l.h.backoffMin, l.h.backoffMax, l.h.rng)
	for ctx.Err() == nil {
		s, err := l.open(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := bo.next()
			log.Debug("p2p: dial failed; will retry", "err", err, "retry_in", delay)
			l.wait(ctx, delay)
			continue
		}
		opened := time.Now()
		log.Debug("p2p: stream open")
		err = l.serve(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if time.Since(opened) >= l.h.backoffMax {
			bo.reset()
		}
		delay := bo.next()
		log.Info("p2p: stream to peer lost; reconnecting", "err", err, "retry_in", delay)
		l.wait(ctx, delay)
	}
}

// wait sleeps for delay, or less if the host closes or the link is woken.
func (l *outLink) wait(ctx context.Context, delay time.Duration) {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-l.wake:
	case <-t.C:
	}
}

// open dials the member and negotiates a stream. The swarm's own dial
// backoff is cleared first: the link's backoff already paces redials, and
// the swarm's would otherwise delay reconnecting to a restarted peer.
func (l *outLink) open(ctx context.Context) (network.Stream, error) {
	if b, ok := l.h.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		b.Backoff().Clear(l.member.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, l.h.dialTimeout)
	defer cancel()
	s, err := l.h.host.NewStream(ctx, l.member.ID, l.proto)
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s stream to member %d: %w", l.proto, l.member.Index, err)
	}
	return s, nil
}

// serve drains the queue onto s until s breaks or the host closes, and
// returns why it stopped. s is reset before serve returns.
func (l *outLink) serve(ctx context.Context, s network.Stream) error {
	readerDone := make(chan error, 1)
	if !l.h.enter() {
		_ = s.Reset()
		return errors.New("p2p: host closing")
	}
	go func() {
		defer l.h.wg.Done()
		readerDone <- l.readBack(s)
	}()
	w := bufio.NewWriterSize(s, writeBufferSize)
	var batch [][]byte
	for {
		select {
		case <-ctx.Done():
			_ = s.Reset()
			<-readerDone
			return ctx.Err()
		case err := <-readerDone:
			_ = s.Reset()
			return err
		case frame := <-l.queue.frames:
			l.queue.taken(frame)
			batch = drainBatch(append(batch[:0], frame), l.queue)
			err := l.h.writeFrames(s, w, batch)
			clear(batch)
			if err != nil {
				_ = s.Reset()
				<-readerDone
				return err
			}
		}
	}
}

// readBack reads what the member writes on the link's stream until the
// stream ends, and returns why it ended. On ClientProtocol these are the
// replica's replies. On ReplicaProtocol the member must write nothing, so
// any byte is a protocol violation that ends the stream.
func (l *outLink) readBack(s network.Stream) error {
	if l.proto != ClientProtocol {
		var b [1]byte
		n, err := s.Read(b[:])
		if n > 0 {
			l.h.logger.Warn("p2p: member wrote on a replica stream it did not open; closing it",
				"peer_index", l.member.Index, "peer", l.member.ID)
			return errors.New("p2p: unexpected data on outbound replica stream")
		}
		return fmt.Errorf("p2p: replica stream closed: %w", err)
	}
	return l.h.readFrames(s, int(l.member.Index), l.h.deliverReply)
}

// writeFrames writes frames to s through w and flushes, within the write
// timeout.
func (h *Host) writeFrames(s network.Stream, w *bufio.Writer, frames [][]byte) error {
	if err := s.SetWriteDeadline(time.Now().Add(h.writeTimeout)); err != nil {
		return fmt.Errorf("p2p: set write deadline: %w", err)
	}
	bytes := 0
	for _, f := range frames {
		if err := WriteFrame(w, f, h.maxFrameSize); err != nil {
			return err
		}
		bytes += len(f)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("p2p: flush frames: %w", err)
	}
	h.stats.framesSent.Add(uint64(len(frames)))
	h.stats.bytesSent.Add(uint64(bytes))
	return nil
}

// readFrames reads frames from s and hands them to deliver as coming from
// (remote peer, fromIndex) until the stream ends or misbehaves; the stream
// is reset before it returns. An oversized length prefix is logged, counted
// and ends the stream without allocating the claimed size; so does a frame
// that does not complete within its deadline, or a client's frame beyond
// the bytes of incomplete frames allowed.
func (h *Host) readFrames(s network.Stream, fromIndex int, deliver func(Frame)) error {
	return h.readFramesLimited(s, fromIndex, deliver, nil)
}

// readFramesLimited is readFrames that drops, after reading it, every frame
// allow refuses (nil: none).
func (h *Host) readFramesLimited(s network.Stream, fromIndex int, deliver func(Frame), allow func() bool) error {
	defer func() { _ = s.Reset() }()
	from := s.Conn().RemotePeer()
	fromKey := identity.Ed25519KeyOfPeerID(from)
	var budget *partialBudget
	if fromIndex < 0 {
		budget = h.partial // nil on a client host
	}
	r := bufio.NewReader(s)
	for {
		if err := h.pauseWhileBackedOff(Frame{From: from, FromIndex: fromIndex}); err != nil {
			return err
		}
		data, err := h.readFrameTimed(s, r, from, budget)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				h.stats.rejectedOversized.Add(1)
				h.logger.Error("p2p: peer sent an oversized frame; closing the stream",
					"peer", from, "peer_index", fromIndex, "protocol", s.Protocol(), "err", err)
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("p2p: stream from %s ended: %w", from, err)
			}
			return fmt.Errorf("p2p: read from %s: %w", from, err)
		}
		if allow != nil && !allow() {
			continue
		}
		deliver(Frame{From: from, FromIndex: fromIndex, FromKey: fromKey, Data: data})
	}
}
