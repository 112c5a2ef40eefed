// Package wal owns a write-ahead log of opaque records: durable appends at
// the cost of one fdatasync of a preallocated file, as etcd's WAL does,
// for data that is written once, read back only at recovery and dropped
// in bulk (the PBFT protocol log; package storage keeps the state in
// goleveldb and this log beside it).
//
// A WAL is a directory of segment files named <index as 16 hex digits>.wal,
// each starting with an 8-byte magic ("PBFTWAL1") and preallocated to
// Options.SegmentBytes, so an append rewrites no file-system metadata and
// fdatasync writes only the new data. A record is framed as
//
//	length uint32 LE | crc32c(tag, data) uint32 LE | tag uint64 LE | data
//
// where the tag is the caller's ordering key (a sequence number): a segment
// remembers the largest tag it holds, and RemoveBelow deletes whole closed
// segments whose tags are all below a bound.
//
// Contracts:
//   - Append writes all of its records in one write and returns once they
//     are durable (one fdatasync, when Options.Sync is set): it is the
//     group commit of everything the caller gathered, and of every record
//     written before it.
//   - Write writes its records in one write and returns without a sync: a
//     crash (a power loss) may lose them and every record written after
//     them, never an earlier record, until the next Append makes them
//     durable. A roll to the next segment and Close sync them first, so an
//     unsynced record is only ever in the active segment.
//   - After a crash, Scan returns every record whose Append returned, in
//     append order, and possibly records of an Append that had not
//     returned or of Writes after the last Append (whole records only,
//     never a torn one, and never one that followed a lost one). Open finds the end
//     of the last segment's valid records (a zero header or a checksum
//     mismatch), cuts the torn tail off with a sync (so every record it
//     found, written unsynced or not, survives a later crash: a restart
//     may rely on what it read) and starts a new segment, so a stale
//     record can never follow a new one. A checksum mismatch in any
//     earlier segment is corruption (ErrCorrupt), never silently skipped.
//   - Every record is bounded (Options.MaxRecordBytes) on write and on read.
//   - A WAL is safe for concurrent use; appends are serialized.
//
// The first segment is created at the first Append, so opening a WAL that
// is never written (a Raft-mode replica, a tool) allocates nothing; the
// next segment is prepared in the background once the active one is half
// full, so a roll does not wait for it.
package wal
