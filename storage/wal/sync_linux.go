package wal

import (
	"fmt"
	"os"
	"syscall"
)

// datasync is fdatasync(2): the data and only the metadata needed to read
// it back (none, in a segment written in place).
func datasync(f *os.File) error {
	return syscall.Fdatasync(int(f.Fd()))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: sync %s: %w", dir, err)
	}
	return nil
}

// preallocate reserves size bytes for f (fallocate(2), which extends it and
// reads back as zeros); false when the file system cannot.
func preallocate(f *os.File, size int64) bool {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size) == nil
}
