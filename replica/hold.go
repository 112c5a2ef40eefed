package replica

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
	out   protocol.Outbound
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

// faultHooks is the driver's state for a Filter's optional Injector and
// Delayer hooks.
type faultHooks struct {
	tick   uint64
	held   heldFrames
	bytes  int
	orders uint64
}

// injectTick advances the hooks' tick count, sends the held frames now
// due, and sends what the Filter's Injector returns.
func (d *Driver) injectTick() {
	h := &d.hooks
	h.tick++
	for len(h.held) > 0 && h.held[0].due <= h.tick {
		f := heap.Pop(&h.held).(heldFrame)
		h.bytes -= len(f.frame)
		d.net.Send(f.out, f.frame)
	}
	inj, ok := d.cfg.Filter.(Injector)
	if !ok {
		return
	}
	for _, o := range inj.Inject(h.tick, d.core.Status()) {
		b, err := protocol.EncodeFrame(o.Signed, o.Batch)
		if err != nil {
			d.log.Debug("fault injection: encode", "err", err)
			continue
		}
		d.net.Send(o, b)
	}
}

// hold queues an encoded frame for ticks ticks; it reports false, and
// queues nothing, when the queue is full (in frames or bytes).
func (d *Driver) hold(ticks uint64, out protocol.Outbound, frame []byte) bool {
	h := &d.hooks
	if len(h.held) >= maxHeldFrames || h.bytes+len(frame) > maxHeldBytes {
		return false
	}
	h.orders++
	heap.Push(&h.held, heldFrame{due: h.tick + ticks, order: h.orders, out: out, frame: frame})
	h.bytes += len(frame)
	return true
}
