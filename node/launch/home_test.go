package launch

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/config"
)

// LoadHome builds the Config `pbftnode run` starts: fsync on unless the
// file turns it off, the logger set, and Check's warnings logged on it.
func TestLoadHomeKeepsFsyncAndLogsWarnings(t *testing.T) {
	for _, noFsync := range []bool{false, true} {
		dir := t.TempDir()
		if _, err := config.WriteTestnet(config.Testnet{Dir: dir, UnsafeNoFsync: noFsync}); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		h, cfg, err := LoadHome(filepath.Join(dir, "node1"), nil, logger)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Sync == noFsync || cfg.Logger != logger || cfg.Index != 1 || h.File.Index != 1 {
			t.Fatalf("unsafe_no_fsync=%v: Sync %v, index %d, logger set %v", noFsync, cfg.Sync, cfg.Index, cfg.Logger == logger)
		}
		if warned := strings.Contains(logs.String(), "unsafe_no_fsync is set"); warned != noFsync {
			t.Fatalf("unsafe_no_fsync=%v: warning logged %v:\n%s", noFsync, warned, logs.String())
		}
	}
}
