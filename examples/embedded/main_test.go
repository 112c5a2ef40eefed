package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode"
)

// runDeadline is generous: the run takes a few seconds on an idle machine,
// but the test machine may be busy.
const runDeadline = 2 * time.Minute

// TestRun runs the program's whole check, as `go run ./examples/embedded`
// does (with the last replica restarted halfway with an empty
// application), for both protocols.
func TestRun(t *testing.T) {
	for _, protocol := range []string{pbftnode.PBFT, pbftnode.Raft} {
		t.Run(protocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
			defer cancel()
			var out bytes.Buffer
			err := run(ctx, workload{protocol: protocol, clients: 3, rounds: 10, restart: true}, &out, slog.New(slog.DiscardHandler))
			t.Log(out.String())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "OK: the replicas agree") {
				t.Fatal("the run did not report agreement")
			}
		})
	}
}
