package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pbftnode/pbftnode/client"
)

// cliSessionSlots is how many client sessions the `pbftnode client`
// processes of one directory take turns on. Each session the replicas see
// keeps a reply window in their state for good, so one-shot commands must
// not each bring a new one; 16 matches how many processes per client key
// a replica accepts at once.
const cliSessionSlots = 16

// A slot file holds the next request number of its session (8 bytes,
// big-endian) and, once a command learned from replies where the primary
// was, slotHintSize more bytes: the view or term, the Raft leader + 1 (0
// for none) and when it was learned (Unix nanoseconds).
const (
	slotNumberSize = 8
	slotHintSize   = 8 + 4 + 8
	slotFileSize   = slotNumberSize + slotHintSize
)

// cliSession is a session slot a `pbftnode client` process holds: an
// exclusive lock on DIR/sessions/N, released by release.
type cliSession struct {
	id    []byte // the client session: 0xC1, N
	first uint64 // the first request number to use
	// hint is the newest primary hint any slot of the directory holds (the
	// highest view), nil if none has one.
	hint *client.Hint
	file *os.File
}

// claimSession takes the first free slot in dir/sessions (creating it) and
// returns it, or nil when every slot is busy or the directory cannot be
// written: the caller then draws a random session. The slot file holds the
// next request number its session may use, so a later process on the
// slot never reuses a number even if the clock went back; the claim
// advances it past the one request a command sends.
func claimSession(dir string) *cliSession {
	slots := filepath.Join(dir, "sessions")
	if err := os.MkdirAll(slots, 0o700); err != nil {
		return nil
	}
	for i := range cliSessionSlots {
		f, err := os.OpenFile(filepath.Join(slots, fmt.Sprint(i)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			return nil
		}
		s, err := startSession(f, byte(i))
		if err != nil {
			s.release()
			return nil
		}
		s.hint = newestHint(slots)
		return s
	}
	return nil
}

// startSession reads the slot's next request number and stores the one
// after the number this process will use.
func startSession(f *os.File, slot byte) (*cliSession, error) {
	s := &cliSession{id: []byte{0xC1, slot}, file: f}
	var stored [slotNumberSize]byte
	// A new slot file is empty (EOF at 0); a used one holds 8 bytes, or
	// slotFileSize with a hint.
	if n, err := f.ReadAt(stored[:], 0); err != nil && !(errors.Is(err, io.EOF) && (n == 0 || n == len(stored))) {
		return s, fmt.Errorf("session slot %d: %d bytes: %w", slot, n, err)
	}
	s.first = max(uint64(time.Now().UnixNano()), binary.BigEndian.Uint64(stored[:]))
	binary.BigEndian.PutUint64(stored[:], s.first+1)
	if _, err := f.WriteAt(stored[:], 0); err != nil {
		return s, fmt.Errorf("session slot %d: %w", slot, err)
	}
	return s, f.Sync()
}

// newestHint reads the primary hints of every slot file under slots (held
// by other processes or not: a hint is only advice, so a torn or stale
// one costs time, never safety) and returns the one learned last (the
// higher view on a tie), or nil when no slot has one. Learned last, not
// highest: a directory rewritten for a new cluster keeps old slots.
func newestHint(slots string) *client.Hint {
	var best *client.Hint
	var bestAt uint64
	for i := range cliSessionSlots {
		h, at, ok := readHint(filepath.Join(slots, fmt.Sprint(i)))
		if ok && (best == nil || at > bestAt || at == bestAt && h.View > best.View) {
			best, bestAt = &h, at
		}
	}
	return best
}

// readHint decodes the hint of one slot file and when it was learned; ok
// is false when the file has none (or cannot be read).
func readHint(path string) (h client.Hint, learned uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != slotFileSize {
		return client.Hint{}, 0, false
	}
	b = b[slotNumberSize:]
	h.View = binary.BigEndian.Uint64(b)
	h.Leader = int(binary.BigEndian.Uint32(b[8:])) - 1
	return h, binary.BigEndian.Uint64(b[12:]), true
}

// remember stores h, learned from replies at learned, in the slot for the
// directory's later commands. It is best effort (no fsync): a lost hint
// costs a later command at most a broadcast.
func (s *cliSession) remember(h client.Hint, learned time.Time) error {
	var b [slotHintSize]byte
	binary.BigEndian.PutUint64(b[:], h.View)
	if h.Leader >= 0 {
		binary.BigEndian.PutUint32(b[8:], uint32(h.Leader)+1)
	}
	binary.BigEndian.PutUint64(b[12:], uint64(learned.UnixNano()))
	if _, err := s.file.WriteAt(b[:], slotNumberSize); err != nil {
		return fmt.Errorf("session slot %x: remember the primary: %w", s.id, err)
	}
	return nil
}

// release unlocks the slot (closing the file drops the lock).
func (s *cliSession) release() {
	if s != nil && s.file != nil {
		s.file.Close()
	}
}
