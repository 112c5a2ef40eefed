package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// scanFile reads the segment at path, calling fn with each record, and
// returns the offset just past the last whole record. limit, when not
// negative, is where the records end (known from an earlier scan or from
// the appends). Without a limit the records end at a zero header or at the
// end of the file; a record that does not check out (bad length, short,
// checksum mismatch) ends them too when torn is set (the last segment of a
// crashed WAL), and is ErrCorrupt otherwise.
func scanFile(path string, limit int64, maxRecord int, torn bool, fn func(tag uint64, data []byte) error) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != magic {
		if torn && limit < 0 && (err != nil || allZero(head)) {
			return 0, nil // created but never made ready: no records
		}
		return 0, fmt.Errorf("%w: %s: bad magic", ErrCorrupt, path)
	}
	s := scanner{r: r, off: int64(len(magic)), limit: limit, maxRecord: maxRecord}
	for {
		tag, data, err := s.next()
		if errors.Is(err, io.EOF) {
			return s.off, nil
		}
		if err != nil {
			if torn && limit < 0 {
				return s.off, nil
			}
			return s.off, fmt.Errorf("%w: %s at offset %d: %w", ErrCorrupt, path, s.off, err)
		}
		if err := fn(tag, data); err != nil {
			return s.off, err
		}
		s.off += headerLen + int64(len(data))
	}
}

type scanner struct {
	r         *bufio.Reader
	off       int64
	limit     int64
	maxRecord int
	header    [headerLen]byte
	data      []byte
}

// next returns the record at s.off, io.EOF where the records end, or what
// is wrong with the bytes there.
func (s *scanner) next() (uint64, []byte, error) {
	if s.limit >= 0 && s.off >= s.limit {
		return 0, nil, io.EOF
	}
	n, err := io.ReadFull(s.r, s.header[:])
	if s.limit < 0 && allZero(s.header[:n]) {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, fmt.Errorf("short header: %w", err)
	}
	length := binary.LittleEndian.Uint32(s.header[0:4])
	sum := binary.LittleEndian.Uint32(s.header[4:8])
	tag := binary.LittleEndian.Uint64(s.header[8:16])
	if int64(length) > int64(s.maxRecord) {
		return 0, nil, fmt.Errorf("record of %d bytes, over the %d-byte limit", length, s.maxRecord)
	}
	if s.limit >= 0 && s.off+headerLen+int64(length) > s.limit {
		return 0, nil, fmt.Errorf("record of %d bytes runs past the end", length)
	}
	if cap(s.data) < int(length) {
		s.data = make([]byte, length)
	}
	data := s.data[:length]
	if _, err := io.ReadFull(s.r, data); err != nil {
		return 0, nil, fmt.Errorf("short record: %w", err)
	}
	if crc32.Update(crc32.Update(0, castagnoli, s.header[8:16]), castagnoli, data) != sum {
		return 0, nil, errors.New("checksum mismatch")
	}
	return tag, data, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
