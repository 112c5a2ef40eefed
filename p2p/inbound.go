package p2p

import (
	"bufio"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// handleReplicaStream reads a ReplicaProtocol stream another member opened.
// Streams from peers that are not members (or claim to be this replica) are
// reset and counted, whatever the gater let through.
func (h *Host) handleReplicaStream(s network.Stream) {
	if !h.enter() {
		_ = s.Reset()
		return
	}
	defer h.wg.Done()
	remote := s.Conn().RemotePeer()
	index, ok := h.members.Load().byID[remote]
	if !ok || int64(index) == int64(h.self) {
		h.stats.rejectedPeers.Add(1)
		h.logger.Warn("p2p: refused replica stream from a peer that is not a member",
			"peer", remote, "remote_addr", s.Conn().RemoteMultiaddr())
		_ = s.Reset()
		return
	}
	err := h.readFrames(s, int(index), h.deliverInbound)
	h.logger.Debug("p2p: inbound replica stream ended", "peer_index", index, "peer", remote, "err", err)
}

// clientSession is a replica's state for one client peer: the client's open
// ClientProtocol streams, newest last, and the bounded queue of replies a
// writer goroutine drains onto them. A session lives while the
// client has at least one open stream.
type clientSession struct {
	id      peer.ID
	queue   *frameQueue
	streams []network.Stream // guarded by Host.clientsMu
	done    chan struct{}    // closed when the last stream ends
	// limiter bounds the client's request rate over all its streams; nil
	// when unlimited.
	limiter *rate.Limiter
	// bytes paces the reading of all the client's streams (see
	// Config.ClientByteRate); nil when unpaced.
	bytes *rate.Limiter
}

// paceClient charges n frame bytes to the client's byte bucket and, when
// the bucket is empty, holds this stream's reader until it covers them:
// the client's further bytes wait in its own flow-control windows, not in
// this host's memory or CPU. The wait is at most burst/rate and ends
// early when the host closes.
func (h *Host) paceClient(sess *clientSession, n int) {
	if sess.bytes == nil {
		return
	}
	r := sess.bytes.ReserveN(time.Now(), min(n, h.clientByteBurst))
	if !r.OK() {
		return
	}
	d := r.Delay()
	if d <= 0 {
		return
	}
	h.stats.clientBytesPaced.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.ctx.Done():
	}
}

// handleClientStream registers a client's stream with its session, reads
// the client's frames into its inbound queue (see NextFrames), and
// unregisters the stream when it ends. With a client allowlist, streams
// from peers not on it are reset and counted, whatever the gater let
// through. A stream its key opened over the key's stream-opening limit
// (Config.Streams) is reset before any frame is read and counted in
// Stats.ClientStreamsRefused.
func (h *Host) handleClientStream(s network.Stream) {
	if !h.enter() {
		_ = s.Reset()
		return
	}
	defer h.wg.Done()
	remote := s.Conn().RemotePeer()
	if !h.clientAllowlist.allows(remote) {
		h.stats.rejectedPeers.Add(1)
		h.logger.Warn("p2p: refused client stream from a peer not on the client allowlist",
			"peer", remote, "remote_addr", s.Conn().RemoteMultiaddr())
		_ = s.Reset()
		return
	}
	if !h.streamGate.allow(remote) {
		h.stats.clientStreamsRefused.Add(1)
		h.logger.Debug("p2p: refused client stream over the key's stream-opening limit", "peer", remote)
		_ = s.Reset()
		return
	}
	sess := h.addClientStream(remote, s)
	if sess == nil {
		_ = s.Reset()
		return
	}
	var allow func() bool
	if sess.limiter != nil {
		allow = func() bool {
			if sess.limiter.Allow() {
				return true
			}
			h.stats.rateLimited.Add(1)
			return false
		}
	}
	err := h.readFramesLimited(s, -1, func(f Frame) {
		h.deliverInbound(f)
		h.paceClient(sess, len(f.Data))
	}, allow)
	h.removeClientStream(remote, s)
	h.logger.Debug("p2p: client stream ended", "peer", remote, "err", err)
}

// addClientStream adds s to the client's session, creating the session and
// its writer on the client's first stream. It returns nil if the host is
// closing.
func (h *Host) addClientStream(client peer.ID, s network.Stream) *clientSession {
	h.clientsMu.Lock()
	defer h.clientsMu.Unlock()
	sess, ok := h.clients[client]
	if !ok {
		if !h.enter() {
			return nil
		}
		sess = &clientSession{id: client, queue: newFrameQueue(h.queueSize, h.replyQueueBytes), done: make(chan struct{})}
		if h.clientRate > 0 {
			sess.limiter = rate.NewLimiter(rate.Limit(h.clientRate), h.clientBurst)
		}
		if h.clientByteRate > 0 {
			sess.bytes = rate.NewLimiter(rate.Limit(h.clientByteRate), h.clientByteBurst)
		}
		h.clients[client] = sess
		go h.runClientSession(sess)
	}
	sess.streams = append(sess.streams, s)
	return sess
}

// removeClientStream drops s from the client's session and ends the session
// when it was the last stream.
func (h *Host) removeClientStream(client peer.ID, s network.Stream) {
	h.clientsMu.Lock()
	defer h.clientsMu.Unlock()
	sess, ok := h.clients[client]
	if !ok {
		return
	}
	sess.streams = slices.DeleteFunc(sess.streams, func(x network.Stream) bool { return x == s })
	if len(sess.streams) == 0 {
		delete(h.clients, client)
		close(sess.done)
	}
}

// clientStreams returns a copy of the client's open streams, oldest first.
func (h *Host) clientStreams(sess *clientSession, into []network.Stream) []network.Stream {
	h.clientsMu.Lock()
	defer h.clientsMu.Unlock()
	return append(into[:0], sess.streams...)
}

// runClientSession drains a client's reply queue onto every stream the
// client has open to this replica, until the session or the host ends.
// Processes that share a client key share a peer ID, so each of them has
// a stream here and the replica cannot tell which one a reply is for; the
// client library drops replies for other sessions. A client normally has
// one stream, so this costs nothing then. A stream that fails a write is
// reset; its handler then removes it.
func (h *Host) runClientSession(sess *clientSession) {
	defer h.wg.Done()
	var (
		streams []network.Stream
		batch   [][]byte
		writers = make(map[network.Stream]*bufio.Writer)
	)
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-sess.done:
			return
		case frame := <-sess.queue.frames:
			sess.queue.taken(frame)
			batch = drainBatch(append(batch[:0], frame), sess.queue)
			streams = h.clientStreams(sess, streams)
			if len(streams) == 0 {
				h.stats.droppedNoRoute.Add(uint64(len(batch)))
				continue
			}
			for s := range writers {
				if !slices.Contains(streams, s) {
					delete(writers, s)
				}
			}
			for _, s := range streams {
				w, ok := writers[s]
				if !ok {
					w = bufio.NewWriterSize(s, writeBufferSize)
					writers[s] = w
				}
				if err := h.writeFrames(s, w, batch); err != nil {
					h.logger.Debug("p2p: write to client failed; resetting its stream", "peer", sess.id, "err", err)
					_ = s.Reset()
					delete(writers, s)
				}
			}
			clear(batch)
		}
	}
}

// SendToClient enqueues frame for client on its reply queue, bounded in
// frames (PeerQueueSize) and bytes (ReplyQueueBytes); it is written on
// every stream the client has open to this replica, and a stream that
// does not take it within WriteTimeout is reset. It returns false, and
// counts the drop, if the client has no open stream, its queue is full or
// the frame exceeds MaxFrameSize. A queued reply marks the key
// established (MarkClientEstablished). The caller must not modify frame
// after a successful call.
func (h *Host) SendToClient(client peer.ID, frame []byte) bool {
	h.clientsMu.Lock()
	sess, ok := h.clients[client]
	h.clientsMu.Unlock()
	if !ok {
		h.stats.droppedNoRoute.Add(1)
		return false
	}
	if len(frame) > h.maxFrameSize {
		h.stats.rejectedOversized.Add(1)
		h.logger.Error("p2p: reply exceeds size limit", "peer", client, "length", len(frame), "limit", h.maxFrameSize)
		return false
	}
	if !sess.queue.push(frame) {
		h.stats.droppedQueueFull.Add(1)
		return false
	}
	h.MarkClientEstablished(client)
	return true
}
