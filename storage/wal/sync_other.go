//go:build !linux

package wal

import "os"

// datasync falls back to fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

// syncDir is a no-op where directories cannot be synced portably.
func syncDir(string) error { return nil }

// preallocate is not available here: the caller writes zeros.
func preallocate(*os.File, int64) bool { return false }
