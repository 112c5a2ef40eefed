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
