package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/wire"
)

// runCLIClient runs `pbftnode client --dir DIR args...` as a process and
// returns its exit status and output.
func (c *procCluster) runCLIClient(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	cmd := exec.Command(c.Bin, append([]string{"client", "--dir", c.dir}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		c.t.Fatalf("pbftnode client %q: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// TestProcessClientExitStatuses runs `pbftnode client` processes against
// a multi-process testnet: a missing key is executed (0), a command
// after the primary died leaves the new view in the session slot, and
// with 3 of 4 replicas down a put's outcome is unknown (3, --json
// "unknown"); a usage mistake is 2.
func TestProcessClientExitStatuses(t *testing.T) {
	c := startProcCluster(t)
	if code, out, stderr := c.runCLIClient("put", "a", "1"); code != 0 || out != "ok\n" {
		t.Fatalf("put: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if code, out, stderr := c.runCLIClient("get", "no-such-key"); code != 0 || out != "(not found)\n" {
		t.Fatalf("get of a missing key: exit %d, stdout %q, stderr %q; want 0 and (not found)", code, out, stderr)
	}
	code, out, stderr := c.runCLIClient("--json", "get", "no-such-key")
	var got clientReport
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Outcome != outcomeExecuted || !got.OK || got.Found == nil || *got.Found {
		t.Fatalf("--json get of a missing key: exit %d, stdout %q (%v), stderr %q; want executed, ok, found false", code, out, err, stderr)
	}
	if code, _, stderr := c.runCLIClient("put", "a"); code != 2 {
		t.Fatalf("put with one argument: exit %d, want 2 (stderr %q)", code, stderr)
	}

	// Replica 0, the primary of view 0, dies: a command gets through by
	// a view change, and the slot remembers the new view for the next.
	c.kill(0)
	if code, _, stderr := c.runCLIClient("--timeout", "60s", "put", "b", "2"); code != 0 {
		t.Fatalf("put with replica 0 down: exit %d, stderr %q", code, stderr)
	}
	if h := newestHint(filepath.Join(c.dir, "sessions")); h == nil || h.View == 0 {
		t.Fatalf("session slots after a command in a later view: hint %+v, want a view above 0", h)
	}

	c.kill(1)
	c.kill(2)
	start := time.Now()
	code, _, stderr = c.runCLIClient("--timeout", "1s", "put", "lost", "1")
	if code != 3 || !strings.Contains(stderr, "may or may not take effect") {
		t.Fatalf("put with 3 of 4 replicas down: exit %d after %v, stderr %q; want 3 (outcome unknown)", code, time.Since(start), stderr)
	}
	code, out, stderr = c.runCLIClient("--json", "--timeout", "1s", "delete", "a")
	got = clientReport{}
	if err := json.Unmarshal([]byte(out), &got); code != 3 || err != nil || got.Outcome != outcomeUnknown || got.OK {
		t.Fatalf("--json delete with 3 of 4 replicas down: exit %d, stdout %q (%v), stderr %q; want 3 and outcome unknown", code, out, err, stderr)
	}
}

// TestDescribeOutcomeExitStatuses: each way an Invoke can end maps to its
// --json outcome and exit status.
func TestDescribeOutcomeExitStatuses(t *testing.T) {
	encode := func(r *wire.KVResult) []byte {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknown := fmt.Errorf("client: request 1: %w: %w", client.ErrUnknownOutcome, context.DeadlineExceeded)
	refused := fmt.Errorf("client: request %w by 2 replicas: too large", client.ErrRefused)
	for _, tc := range []struct {
		name    string
		raw     []byte
		err     error
		outcome string
		status  int
	}{
		{"executed get, missing key", encode(&wire.KVResult{}), nil, outcomeExecuted, 0},
		{"executed cas, not swapped", encode(&wire.KVResult{Value: []byte("v")}), nil, outcomeExecuted, 0},
		{"application refused a malformed operation", encode(&wire.KVResult{Error: "malformed"}), nil, outcomeRefused, 4},
		{"f+1 matching refusals", nil, refused, outcomeRefused, 4},
		{"no f+1 matching replies in time", nil, unknown, outcomeUnknown, 3},
		{"undecodable agreed result", []byte{0xff}, nil, outcomeUnknown, 3},
		{"failed before sending", nil, errors.New("client: no signing key"), outcomeNotSent, 1},
	} {
		report, err := describeOutcome("get", tc.raw, tc.err)
		if report.Outcome != tc.outcome || exitStatus(err) != tc.status || report.OK != (tc.status == 0) {
			t.Errorf("%s: outcome %q ok %v exit %d (err %v); want %q, exit %d", tc.name, report.Outcome, report.OK, exitStatus(err), err, tc.outcome, tc.status)
		}
	}
}
