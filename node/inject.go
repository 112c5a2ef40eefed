package node

import (
	"container/heap"

	"github.com/pbftnode/pbftnode/protocol"
)

// Bounds of the queue of frames a Delayer holds.
const (
	maxHeldFrames = 4096
	maxHeldBytes  = 64 << 20
)

// heldFrame is an encoded frame a Delayer holds until tick due.
type heldFrame struct {
	due   uint64
	order uint64 // first held, first sent among frames due at one tick
	to    uint32
	kind  protocol.Kind
	frame []byte
}

// heldFrames is a min-heap of held frames by (due, order).
type heldFrames []heldFrame

func (h heldFrames) Len() int { return len(h) }
func (h heldFrames) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].order < h[j].order
}
func (h heldFrames) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heldFrames) Push(x any)   { *h = append(*h, x.(heldFrame)) }
func (h *heldFrames) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = heldFrame{}
	*h = old[:len(old)-1]
	return f
}

// faultHooks is the event loop's state for a Filter's optional Injector
// and Delayer hooks; owned by the event loop.
type faultHooks struct {
	tick   uint64
	held   heldFrames
	bytes  int
	orders uint64
}

// injectTick advances the hooks' tick count, sends the held frames now
// due, and sends what the Filter's Injector returns. Called on every tick
// of the event loop.
func (n *Node) injectTick() {
	h := &n.hooks
	h.tick++
	for len(h.held) > 0 && h.held[0].due <= h.tick {
		f := heap.Pop(&h.held).(heldFrame)
		h.bytes -= len(f.frame)
		n.transmit(f.to, f.kind, f.frame)
	}
	inj, ok := n.cfg.Filter.(Injector)
	if !ok {
		return
	}
	for _, o := range inj.Inject(h.tick, n.core.Status()) {
		b, err := protocol.EncodeFrame(o.Signed, o.Batch)
		if err != nil {
			n.log.Debug("fault injection: encode", "err", err)
			continue
		}
		n.transmit(o.To, o.Kind, b)
	}
}

// hold queues an encoded frame for ticks ticks; it reports false, and
// queues nothing, when the queue is full (in frames or bytes).
func (n *Node) hold(ticks uint64, to uint32, kind protocol.Kind, frame []byte) bool {
	h := &n.hooks
	if len(h.held) >= maxHeldFrames || h.bytes+len(frame) > maxHeldBytes {
		return false
	}
	h.orders++
	heap.Push(&h.held, heldFrame{due: h.tick + ticks, order: h.orders, to: to, kind: kind, frame: frame})
	h.bytes += len(frame)
	return true
}

// transmit sends an encoded frame to one replica, or to all others for
// protocol.Broadcast, and counts it.
func (n *Node) transmit(to uint32, kind protocol.Kind, b []byte) {
	if to == protocol.Broadcast {
		n.host.Broadcast(b)
	} else {
		n.host.Send(to, b)
	}
	n.metrics.sent.WithLabelValues(kind.String()).Inc()
	n.metrics.ops.bytesSent.WithLabelValues(kind.String()).Add(float64(len(b)))
}
