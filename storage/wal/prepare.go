package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// preparation makes the next segment file in the background: the magic,
// then zeros up to the segment size, written and synced before it is
// needed, so the appends into it write data only (no extent or size
// change for fdatasync to commit) and a roll does not wait for a segment of
// writes. (A segment made on the append path is allocated instead: see
// prepareNow.)
type preparation struct {
	path string
	done chan struct{}
	file *os.File
	err  error
}

func (w *WAL) prepare() *preparation {
	p := &preparation{path: filepath.Join(w.dir, nextName), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.file, p.err = makeSegmentFile(p.path, w.opts.SegmentBytes, w.opts.Sync, false)
	}()
	return p
}

// prepareNow makes the next segment file on the caller's goroutine (the
// first append after Open, or a roll that came before the background
// preparation was started): allocated, where the platform can, rather
// than written, so that the append waits for no segment's worth of zeros.
func (w *WAL) prepareNow() *preparation {
	p := &preparation{path: filepath.Join(w.dir, nextName), done: make(chan struct{})}
	p.file, p.err = makeSegmentFile(p.path, w.opts.SegmentBytes, w.opts.Sync, true)
	close(p.done)
	return p
}

// makeSegmentFile creates a segment file of size bytes holding the magic:
// zeros written, or (allocate) space reserved where the platform can.
func makeSegmentFile(path string, size int64, sync, allocate bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wal: make segment: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("wal: make segment: %w", err)
	}
	if _, err := f.WriteAt([]byte(magic), 0); err != nil {
		return fail(err)
	}
	if !allocate || !preallocate(f, size) {
		zeros := make([]byte, zeroChunk)
		for off := int64(len(magic)); off < size; off += zeroChunk {
			if _, err := f.WriteAt(zeros[:min(zeroChunk, size-off)], off); err != nil {
				return fail(err)
			}
		}
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	return f, nil
}

// take waits for the file and gives it its segment name.
func (p *preparation) take(path string, sync bool) (*os.File, error) {
	<-p.done
	if p.err != nil {
		return nil, p.err
	}
	if err := os.Rename(p.path, path); err != nil {
		_ = p.file.Close()
		return nil, fmt.Errorf("wal: start segment: %w", err)
	}
	if sync {
		if err := syncDir(filepath.Dir(path)); err != nil {
			_ = p.file.Close()
			return nil, err
		}
	}
	return p.file, nil
}

// discard waits for the file and removes it.
func (p *preparation) discard() error {
	<-p.done
	if p.err != nil {
		return nil
	}
	_ = p.file.Close()
	if err := os.Remove(p.path); err != nil {
		return fmt.Errorf("wal: remove unused segment: %w", err)
	}
	return nil
}
