package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// DefaultMaxFrameSize is the frame size limit used when Config.MaxFrameSize
// is zero.
const DefaultMaxFrameSize = 4 << 20

// ErrFrameTooLarge reports a frame whose length exceeds the size limit. When
// reading, the length prefix is checked before any buffer is allocated.
var ErrFrameTooLarge = errors.New("p2p: frame exceeds size limit")

// ByteReader is what ReadFrame reads from: a *bufio.Reader or a
// *bytes.Reader, for example.
type ByteReader interface {
	io.Reader
	io.ByteReader
}

// ReadFrame reads one frame: a uvarint length followed by that many bytes.
// A length above maxSize is refused with ErrFrameTooLarge before anything is
// allocated for the body, so a hostile prefix cannot make the reader allocate
// what it claims. A malformed prefix or a body cut short by the end of the
// input is an error wrapping io.ErrUnexpectedEOF or the varint error; a
// clean end of input before the first prefix byte is io.EOF. The returned
// slice is newly allocated and owned by the caller.
func ReadFrame(r ByteReader, maxSize int) ([]byte, error) {
	length, err := readFrameLength(r, maxSize)
	if err != nil {
		return nil, err
	}
	return readFrameBody(r, length)
}

// readFrameLength reads and checks a frame's length prefix, as ReadFrame.
func readFrameLength(r ByteReader, maxSize int) (int, error) {
	length, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("p2p: read frame length: %w", err)
	}
	if maxSize < 0 || length > uint64(maxSize) {
		return 0, fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, length, maxSize)
	}
	return int(length), nil
}

// readFrameBody reads a frame body of length bytes, as ReadFrame.
func readFrameBody(r io.Reader, length int) ([]byte, error) {
	data, err := readBody(r, length)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("p2p: read frame body (%d bytes): %w", length, err)
	}
	return data, nil
}

// eagerAllocLimit is the largest body ReadFrame allocates in full up front.
// Larger bodies grow their buffer (doubling) as bytes actually arrive, so a
// peer that claims a large frame within the limit and then stalls holds
// memory in proportion to what it sent, not to what it claimed.
const eagerAllocLimit = 64 << 10

func readBody(r io.Reader, length int) ([]byte, error) {
	if length <= eagerAllocLimit {
		data := make([]byte, length)
		_, err := io.ReadFull(r, data)
		return data, err
	}
	data := make([]byte, 0, eagerAllocLimit)
	for len(data) < length {
		if len(data) == cap(data) {
			data = slices.Grow(data, min(cap(data), length-len(data)))
		}
		n, err := r.Read(data[len(data):min(cap(data), length)])
		data = data[:len(data)+n]
		if err != nil && len(data) < length {
			return nil, err
		}
	}
	return data, nil
}

// WriteFrame writes frame with its uvarint length prefix. It refuses frames
// longer than maxSize with ErrFrameTooLarge, so a peer never receives a frame
// it would have to reject. w is typically a *bufio.Writer the caller flushes.
func WriteFrame(w io.Writer, frame []byte, maxSize int) error {
	if len(frame) > maxSize {
		return fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, len(frame), maxSize)
	}
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(frame)))
	if _, err := w.Write(prefix[:n]); err != nil {
		return fmt.Errorf("p2p: write frame length: %w", err)
	}
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("p2p: write frame body: %w", err)
	}
	return nil
}
