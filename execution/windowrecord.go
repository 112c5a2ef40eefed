package execution

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
	"math/bits"
	"slices"
)

// The compact form of a client window record, which encode writes for
// every window that keeps the clientWindow invariant:
//
//	uvarint(high) || 0x00 || bitmap (8 bytes, little-endian) || form || results
//
// then the lastSeq trailer as in the listed form. The 0x00 stands where
// the listed form has its entry count, which is never 0 there, so a
// decoder tells the two apart and reads records of either. Bit d of the
// bitmap is set when request high-d executed (bit 0 always is). With form
// compactShared, results is uvarint(len r) || r, the result of every
// entry; with compactEach (only when the results are not all equal), it is
// uvarint(len r) || r for each entry, oldest first.
//
// A window of 64 puts, whose results are all the same two bytes, takes
// about 19 bytes instead of about 390 in the listed form: each batch
// rewrites the windows of the clients it served, so at small batches
// these records were most of what the executor wrote.
const (
	compactShared = 1
	compactEach   = 2
	bitmapBytes   = 8
)

// oldestFirst yields the bits set in bitmap from the highest down: the
// distances below high of a window's entries, oldest entry first.
func oldestFirst(bitmap uint64) iter.Seq[int] {
	return func(yield func(int) bool) {
		for m := bitmap; m != 0; {
			d := 63 - bits.LeadingZeros64(m)
			m &^= 1 << d
			if !yield(d) {
				return
			}
		}
	}
}

// appendCompactEntries appends the compact form's marker, bitmap, form and
// results: results[d] is the result of request high-d for each bit d of
// bitmap.
func appendCompactEntries(out []byte, bitmap uint64, results *[ClientWindow][]byte) []byte {
	out = append(out, 0)
	out = binary.LittleEndian.AppendUint64(out, bitmap)
	oldest := 63 - bits.LeadingZeros64(bitmap|1)
	shared := true
	for d := range oldestFirst(bitmap) {
		if !bytes.Equal(results[d], results[oldest]) {
			shared = false
			break
		}
	}
	if shared {
		out = append(out, compactShared)
		out = binary.AppendUvarint(out, uint64(len(results[oldest])))
		return append(out, results[oldest]...)
	}
	out = append(out, compactEach)
	for d := range oldestFirst(bitmap) {
		out = binary.AppendUvarint(out, uint64(len(results[d])))
		out = append(out, results[d]...)
	}
	return out
}

// decodeCompactWindow parses the compact form after its 0x00 marker and
// returns the window and the bytes after its results. It accepts only what
// appendCompactEntries writes: high executed, no request below 0, minimal
// lengths, the shared form for a window whose results are all equal (one
// encoding per window).
func decodeCompactWindow(clientID string, high uint64, b []byte) (*clientWindow, []byte, error) {
	if len(b) < bitmapBytes+1 {
		return nil, nil, fmt.Errorf("%w: compact record of %d bytes", errCorruptWindow, len(b))
	}
	bitmap, form := binary.LittleEndian.Uint64(b), b[bitmapBytes]
	b = b[bitmapBytes+1:]
	oldest := 63 - bits.LeadingZeros64(bitmap|1)
	switch {
	case bitmap&1 == 0:
		return nil, nil, fmt.Errorf("%w: highest request number %d has no entry", errCorruptWindow, high)
	case uint64(oldest) > high:
		return nil, nil, fmt.Errorf("%w: entry %d below request number 0 (highest %d)", errCorruptWindow, oldest, high)
	}
	next := func() ([]byte, error) {
		size, n := binary.Uvarint(b)
		if n <= 0 || n != uvarintLen(size) || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bad result length", errCorruptWindow)
		}
		r := slices.Clone(b[n : n+int(size)])
		b = b[n+int(size):]
		return r, nil
	}
	w := &clientWindow{high: high, entries: make(map[uint64]windowEntry, bits.OnesCount64(bitmap))}
	put := func(d int, r []byte) {
		n := high - uint64(d)
		w.entries[n] = windowEntry{result: r, hash: replyHash(clientID, n, r)}
	}
	switch form {
	case compactShared:
		r, err := next()
		if err != nil {
			return nil, nil, err
		}
		for d := range oldestFirst(bitmap) {
			put(d, r)
		}
	case compactEach:
		var first []byte
		equal := true
		for d := range oldestFirst(bitmap) {
			r, err := next()
			if err != nil {
				return nil, nil, err
			}
			if d == oldest {
				first = r
			}
			equal = equal && bytes.Equal(r, first)
			put(d, r)
		}
		if equal {
			return nil, nil, fmt.Errorf("%w: equal results in the per-entry form", errCorruptWindow)
		}
	default:
		return nil, nil, fmt.Errorf("%w: unknown compact form %d", errCorruptWindow, form)
	}
	return w, b, nil
}
