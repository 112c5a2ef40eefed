package storage

import (
	"fmt"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
)

// BenchmarkAppendLogSynced measures a synced AppendLog of one 4 KiB entry
// with, between appends, an unsynced 200-key batch such as the executor
// writes: "wal" is the write-ahead log, "leveldb" the entry written into
// goleveldb (as before the WAL), whose fsync then also carries the
// executor's journal. Run with -cpu and several processes at once to see
// the disk shared (four replicas on one disk):
//
//	go test ./storage -run XXX -bench AppendLogSynced -benchtime 2000x
func BenchmarkAppendLogSynced(b *testing.B) {
	for _, where := range []string{"wal", "leveldb"} {
		b.Run(where, func(b *testing.B) {
			db, err := Open(b.TempDir(), Options{Sync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if where == "leveldb" {
				db.wal = nil
			}
			value := make([]byte, 100)
			entry := []LogEntry{{View: 1, Kind: KindCommit, Signed: make([]byte, 4096)}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				entry[0].Sequence = uint64(i + 1)
				if err := db.AppendLog(entry); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				batch := new(leveldb.Batch)
				for j := 0; j < 200; j++ {
					batch.Put([]byte(fmt.Sprintf("a/k/%06d", (i*200+j)%100_000)), value)
				}
				if err := db.LevelDB().Write(batch, nil); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
