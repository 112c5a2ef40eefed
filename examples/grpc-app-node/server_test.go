package nodeapp

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/appgrpc"
	"github.com/pbftnode/pbftnode/appgrpc/appgrpctest"
)

// startupPatience bounds the wait for node to print its address: far
// longer than it needs on a busy machine.
const startupPatience = 60 * time.Second

// startNode runs `node server.js --listen listen` until the test ends and
// returns a client of it. It skips the test when node or node_modules is
// missing.
func startNode(t *testing.T, listen string) *appgrpc.Client {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat("node_modules/@grpc/grpc-js"); err != nil {
		t.Skip("node_modules missing: run `npm ci` in examples/grpc-app-node")
	}
	cmd := exec.Command(nodeBin, "server.js", "--listen", listen)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	bound := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		bound <- strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	}()
	var address string
	select {
	case address = <-bound:
	case <-time.After(startupPatience):
		t.Fatal("node server.js printed no address")
	}
	target := address
	if !strings.HasPrefix(target, "unix://") {
		target = "grpc://" + address
	}
	c, err := appgrpc.Dial(target, appgrpc.Options{})
	if err != nil {
		t.Fatalf("Dial(%q): %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestResultsMatchBuiltinKV(t *testing.T) {
	appgrpctest.CheckMatchesKV(t, startNode(t, "127.0.0.1:0"))
}

func TestOutOfOrderBatchRefused(t *testing.T) {
	appgrpctest.CheckOutOfOrderRefused(t, startNode(t, "127.0.0.1:0"))
}

func TestSnapshotRestoresIntoFreshServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "nodeapp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	source := startNode(t, "127.0.0.1:0")
	target := startNode(t, "unix://"+filepath.Join(dir, "app.sock"))
	appgrpctest.CheckSnapshotRestore(t, source, target)
}
