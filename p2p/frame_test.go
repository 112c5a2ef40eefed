package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func encodeFrames(t testing.TB, maxSize int, frames ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f, maxSize); err != nil {
			t.Fatalf("WriteFrame(%d bytes): %v", len(f), err)
		}
	}
	return buf.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	const maxSize = 1 << 20
	frames := [][]byte{
		{},
		[]byte("x"),
		bytes.Repeat([]byte{0xab}, 127), // one-byte prefix boundary
		bytes.Repeat([]byte{0xcd}, 128), // two-byte prefix
		bytes.Repeat([]byte{0x01}, eagerAllocLimit),
		bytes.Repeat([]byte{0x02}, eagerAllocLimit+1), // grown as it arrives
		bytes.Repeat([]byte{0xef}, maxSize),
	}
	r := bytes.NewReader(encodeFrames(t, maxSize, frames...))
	for i, want := range frames {
		got, err := ReadFrame(r, maxSize)
		if err != nil {
			t.Fatalf("frame %d: ReadFrame: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d bytes equal to what was written", i, len(got), len(want))
		}
	}
	if _, err := ReadFrame(r, maxSize); err != io.EOF {
		t.Fatalf("after the last frame: err = %v, want io.EOF", err)
	}
}

func TestWriteFrameRefusesOversized(t *testing.T) {
	var buf bytes.Buffer
	err := WriteFrame(&buf, make([]byte, 11), 10)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("an oversized frame wrote %d bytes", buf.Len())
	}
}

// gigabytePrefix is a length prefix claiming a 1 GiB body, with no body.
func gigabytePrefix() []byte {
	return binary.AppendUvarint(nil, 1<<30)
}

func TestReadFrameRefusesOversizedPrefixWithoutAllocating(t *testing.T) {
	input := gigabytePrefix()
	_, err := ReadFrame(bytes.NewReader(input), DefaultMaxFrameSize)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}

	// The refusal must cost a few small allocations (the error), never the
	// claimed size: measure both the count and the bytes allocated.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ReadFrame(bytes.NewReader(input), DefaultMaxFrameSize); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("err = %v, want ErrFrameTooLarge", err)
		}
	})
	runtime.ReadMemStats(&after)
	if allocs > 8 {
		t.Errorf("refusing an oversized prefix made %.0f allocations per call, want at most 8", allocs)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("101 refusals allocated %d bytes in total; the claimed size must never be allocated", grew)
	}
}

func TestReadFrameOversizedPrefixOnPipeDoesNotWaitForBody(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		// Write only the prefix and keep the pipe open: the reader must
		// reject the frame from the prefix alone.
		_, _ = pw.Write(gigabytePrefix())
	}()
	_, err := ReadFrame(bufio.NewReader(pr), 1024)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	_ = pw.Close()
}

func TestReadFrameLargeClaimAllocatesWhatArrives(t *testing.T) {
	// 3 MiB claimed, within the 4 MiB limit, but only 10 bytes sent.
	input := append(binary.AppendUvarint(nil, 3<<20), "ten bytes."...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 10
	for range runs {
		if _, err := ReadFrame(bytes.NewReader(input), DefaultMaxFrameSize); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 2*eagerAllocLimit {
		t.Fatalf("a stalled 3 MiB claim allocated %d bytes per read, want at most %d", perRun, 2*eagerAllocLimit)
	}
}

func TestReadFrameMalformedInput(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
	}{
		{"truncated prefix", []byte{0x80}},
		{"truncated body", append(binary.AppendUvarint(nil, 10), "short"...)},
		{"prefix without body", binary.AppendUvarint(nil, 3)},
		{"varint overflow", bytes.Repeat([]byte{0xff}, 11)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := ReadFrame(bytes.NewReader(tc.input), DefaultMaxFrameSize)
			if err == nil {
				t.Fatalf("ReadFrame accepted malformed input and returned %d bytes", len(data))
			}
			if err == io.EOF {
				t.Fatalf("malformed input reported as a clean io.EOF")
			}
		})
	}
	_, err := ReadFrame(bytes.NewReader(append(binary.AppendUvarint(nil, 10), "short"...)), DefaultMaxFrameSize)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	const maxSize = 1 << 12
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add(append(binary.AppendUvarint(nil, 5), "hello"...))
	f.Add(append(binary.AppendUvarint(nil, 5), "hel"...))
	f.Add(gigabytePrefix())
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(append(append(binary.AppendUvarint(nil, 1), 'a'), binary.AppendUvarint(nil, maxSize+1)...))
	f.Fuzz(func(t *testing.T, input []byte) {
		r := bytes.NewReader(input)
		for {
			consumedBefore := len(input) - r.Len()
			data, err := ReadFrame(r, maxSize)
			if err != nil {
				return
			}
			if len(data) > maxSize {
				t.Fatalf("ReadFrame returned %d bytes, above the %d limit", len(data), maxSize)
			}
			// The body is the tail of the bytes consumed, after a prefix of
			// at most binary.MaxVarintLen64 bytes.
			consumed := input[consumedBefore : len(input)-r.Len()]
			prefixLen := len(consumed) - len(data)
			if prefixLen < 1 || prefixLen > binary.MaxVarintLen64 || !bytes.Equal(consumed[prefixLen:], data) {
				t.Fatalf("frame %x does not end the consumed bytes %x after a valid prefix", data, consumed)
			}
		}
	})
}
