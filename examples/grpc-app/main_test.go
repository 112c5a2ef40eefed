package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/appgrpc"
	"github.com/pbftnode/pbftnode/appgrpc/appgrpctest"
	"github.com/pbftnode/pbftnode/execution"
)

// startApp serves a fresh grpc-app on a loopback port until the test ends
// and returns a client of it.
func startApp(t *testing.T) *appgrpc.Client {
	t.Helper()
	lis, err := listenOn("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := newServer(slog.New(slog.DiscardHandler), maxMessageBytes)
	go server.Serve(lis)
	t.Cleanup(server.Stop)
	c, err := appgrpc.Dial("grpc://"+lis.Addr().String(), appgrpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestResultsMatchBuiltinKV: every operation's result through the gRPC
// protocol is byte-identical to the built-in store's, and so is the digest
// after every batch.
func TestResultsMatchBuiltinKV(t *testing.T) { appgrpctest.CheckMatchesKV(t, startApp(t)) }

// TestOutOfOrderBatchRefused: a batch at any sequence but the next
// changes nothing and says which sequence is next.
func TestOutOfOrderBatchRefused(t *testing.T) { appgrpctest.CheckOutOfOrderRefused(t, startApp(t)) }

// TestSnapshotRestoresIntoFreshServer: a snapshot of one server restored
// into a fresh one gives the same state, digest and answers; a snapshot
// that does not match its announced digest, or is corrupt, is refused and
// changes nothing.
func TestSnapshotRestoresIntoFreshServer(t *testing.T) {
	appgrpctest.CheckSnapshotRestore(t, startApp(t), startApp(t))
}

// TestParseSnapshotRefusesHostileBytes: every prefix and a few mutations
// of a valid snapshot are refused or parsed, never a panic.
func TestParseSnapshotRefusesHostileBytes(t *testing.T) {
	s := newKVState()
	s.set([]byte("a"), []byte("1"))
	s.set([]byte("b"), []byte("2"))
	valid := s.snapshot()
	// Entry boundaries: after the magic, after entry a (4 bytes).
	boundary := map[int]bool{len(snapshotMagic): true, len(snapshotMagic) + 4: true}
	for n := range len(valid) {
		if _, err := parseSnapshot(1, valid[:n]); (err == nil) != boundary[n] {
			t.Errorf("prefix of %d bytes: error %v", n, err)
		}
	}
	swapped := append([]byte(snapshotMagic), 1, 'b', 1, '2', 1, 'a', 1, '1')
	if _, err := parseSnapshot(1, swapped); err == nil || !strings.Contains(err.Error(), "strictly increasing") {
		t.Errorf("out-of-order keys: %v", err)
	}
	huge := append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := parseSnapshot(1, huge); err == nil || !strings.Contains(err.Error(), "over limit") {
		t.Errorf("huge length: %v", err)
	}
}

// TestListenOnUnixSocket: --listen unix:///PATH serves there, replacing a
// stale socket file.
func TestListenOnUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "grpcapp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	lis, err := listenOn("unix://" + path)
	if err != nil {
		t.Fatalf("listenOn over a stale socket: %v", err)
	}
	server := newServer(slog.New(slog.DiscardHandler), maxMessageBytes)
	go server.Serve(lis)
	defer server.Stop()
	c, err := appgrpc.Dial("unix://"+path, appgrpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Execute(context.Background(), 1, []app.Operation{{Payload: execution.EncodePut([]byte("a"), []byte("1"))}}); err != nil {
		t.Fatalf("Execute over the unix socket: %v", err)
	}
	if _, err := listenOn("unix://relative"); err == nil {
		t.Error("a relative socket path was accepted")
	}
	if _, err := listenOn("127.0.0.1"); err == nil {
		t.Error("an address without a port was accepted")
	}
}
