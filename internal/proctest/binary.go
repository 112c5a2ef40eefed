package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// binaryPackage is the command the tests run.
const binaryPackage = "github.com/pbftnode/pbftnode/cmd/pbftnode"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds the pbftnode command once per test binary (the first
// call builds it, later calls reuse it) and returns its path. The
// caller's TestMain should call RemoveBinary after m.Run.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "pbftnode-bin-")
		if err != nil {
			built.err = fmt.Errorf("proctest: %w", err)
			return
		}
		built.dir = dir
		path := filepath.Join(dir, "pbftnode")
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", path, binaryPackage).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build %s: %w\n%s", binaryPackage, err, out)
			return
		}
		built.path = path
		t.Logf("built %s in %v", path, time.Since(start).Round(time.Millisecond))
	})
	if built.err != nil {
		t.Fatalf("building the pbftnode binary: %v", built.err)
	}
	return built.path
}

// RemoveBinary deletes the directory Binary built into, if any.
func RemoveBinary() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}
