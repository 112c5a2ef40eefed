package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/config"
)

func TestGatewayUsageErrors(t *testing.T) {
	if code, _, _ := cli(t, "gateway"); code != 2 {
		t.Fatalf("gateway without --dir: exit %d, want 2", code)
	}
	dir := t.TempDir()
	cf := config.ClientFile{Application: "grpc://127.0.0.1:1"}
	if err := config.WriteJSON(filepath.Join(dir, "client.json"), cf, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "gateway", "--dir", dir)
	if code != 2 || !strings.Contains(stderr, "built-in") {
		t.Fatalf("gateway of a remote application: exit %d: %s", code, stderr)
	}
}

// The gateway process serves /healthz and /openapi.json (no replica
// needs to run for them) and exits 0 on SIGTERM.
func TestGatewayProcessShutsDownOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the pbftnode binary")
	}
	dir := t.TempDir()
	if _, err := config.WriteTestnet(config.Testnet{Dir: dir, BasePort: 29700}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pbftnodeBinary(t), "gateway", "--dir", dir, "--listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
		for sc.Scan() { // keep the pipe drained
		}
		exited <- cmd.Wait()
	}()
	var url string
	select {
	case l := <-line:
		_, rest, ok := strings.Cut(l, "serving ")
		if !ok {
			t.Fatalf("gateway printed %q", l)
		}
		url, _, _ = strings.Cut(rest, " ")
	case <-time.After(2 * time.Minute):
		t.Fatal("the gateway did not start")
	}
	for _, path := range []string{"/healthz", "/openapi.json"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the gateway did not exit after SIGTERM")
	}
}
