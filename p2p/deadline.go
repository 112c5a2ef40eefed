package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults for frames that have begun arriving.
const (
	// DefaultFrameDeadlineBase and DefaultFrameMinRate give a frame that
	// has begun arriving base + length/rate to finish: 5 s plus 4 s per
	// MiB, 21 s for a 4 MiB frame.
	DefaultFrameDeadlineBase = 5 * time.Second
	DefaultFrameMinRate      = 256 << 10 // bytes per second
	// DefaultPartialBytesPerClient bounds the claimed bytes of a client
	// key's frames still arriving (over all its streams): two frames of
	// the maximum size.
	DefaultPartialBytesPerClient = 2 * DefaultMaxFrameSize
	// DefaultPartialBytesTotal bounds them over all client keys.
	DefaultPartialBytesTotal = 64 << 20
	// DefaultReplyQueueBytes bounds the bytes queued for one client key.
	DefaultReplyQueueBytes = 8 << 20
	// DefaultClientByteRate is how many frame bytes a second one client
	// key's streams are read at, once its burst (DefaultClientByteBurst)
	// is spent: far above an honest client's need (16 benchmark clients
	// at their full speed with 4 KiB values each read about 2.5 MB/s),
	// far below what one key can push over loopback.
	DefaultClientByteRate = 8 << 20
	// DefaultClientByteBurst is the bytes a key may send at once before
	// its streams are paced; at least the frame size limit.
	DefaultClientByteBurst = 16 << 20
)

// frameDeadline is how long a frame that has begun arriving may take.
type frameDeadline struct {
	base time.Duration
	rate int // bytes per second
}

func (d frameDeadline) of(length int) time.Duration {
	return d.base + time.Duration(int64(length)*int64(time.Second)/int64(d.rate))
}

// partialBudget bounds the bytes of frames that have begun arriving but
// are not complete, per client key and in total. A frame's whole claimed
// length is reserved when its body does not arrive at once.
type partialBudget struct {
	perKey, total int

	mu    sync.Mutex
	used  int
	byKey map[peer.ID]int
}

func newPartialBudget(perKey, total int) *partialBudget {
	return &partialBudget{perKey: perKey, total: total, byKey: make(map[peer.ID]int)}
}

// reserve takes n bytes for key and reports whether they were within both
// bounds; a true return must be paired with release(key, n).
func (b *partialBudget) reserve(key peer.ID, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total || b.byKey[key]+n > b.perKey {
		return false
	}
	b.used += n
	b.byKey[key] += n
	return true
}

func (b *partialBudget) release(key peer.ID, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.byKey[key] -= n; b.byKey[key] <= 0 {
		delete(b.byKey, key)
	}
}

// errPartialBudget ends a stream whose frame would exceed the bytes of
// incomplete frames allowed.
var errPartialBudget = errors.New("p2p: too many bytes of incomplete frames")

// readFrameTimed reads one frame from s through r. Waiting for a frame to
// begin has no deadline (streams may idle); once its first byte is here,
// the frame must be complete within h.deadline.of(its length), and, when
// budget is not nil, its length is reserved from budget for key until it
// is. A frame already buffered in full is read without either.
func (h *Host) readFrameTimed(s network.Stream, r *bufio.Reader, key peer.ID, budget *partialBudget) ([]byte, error) {
	if _, err := r.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("p2p: read frame: %w", err)
	}
	if buffered(r) {
		return ReadFrame(r, h.maxFrameSize)
	}
	start := time.Now()
	if err := s.SetReadDeadline(start.Add(h.deadline.of(0))); err != nil {
		return nil, fmt.Errorf("p2p: set read deadline: %w", err)
	}
	defer func() { _ = s.SetReadDeadline(time.Time{}) }()
	length, err := readFrameLength(r, h.maxFrameSize)
	if err != nil {
		return nil, h.countTimeout(err)
	}
	if r.Buffered() < length {
		if budget != nil {
			if !budget.reserve(key, length) {
				h.stats.rejectedPartial.Add(1)
				return nil, fmt.Errorf("%w: frame of %d bytes", errPartialBudget, length)
			}
			defer budget.release(key, length)
		}
		if err := s.SetReadDeadline(start.Add(h.deadline.of(length))); err != nil {
			return nil, fmt.Errorf("p2p: set read deadline: %w", err)
		}
	}
	data, err := readFrameBody(r, length)
	return data, h.countTimeout(err)
}

// buffered reports whether r holds a whole frame (prefix and body).
func buffered(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	length, n := binary.Uvarint(b)
	return n > 0 && length <= uint64(len(b)-n)
}

// countTimeout counts err if it is a read deadline passing.
func (h *Host) countTimeout(err error) error {
	var ne net.Error
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())) {
		h.stats.incompleteFrameTimeouts.Add(1)
	}
	return err
}
