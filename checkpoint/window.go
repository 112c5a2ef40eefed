package checkpoint

// Window is the range of sequence numbers a replica accepts protocol
// messages for: (Low, Low+Size]. Low is the stable checkpoint's sequence.
type Window struct {
	Low  uint64
	Size uint64
}

// High returns the high watermark, the largest sequence in the window.
func (w Window) High() uint64 { return w.Low + w.Size }

// Contains reports whether seq lies in (Low, High].
func (w Window) Contains(seq uint64) bool { return seq > w.Low && seq <= w.High() }
