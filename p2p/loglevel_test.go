package p2p

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingHandler keeps the level and message of every record it is
// given, at every level.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

// find returns the records whose message contains msg.
func (h *recordingHandler) find(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if strings.Contains(r.Message, msg) {
			out = append(out, r)
		}
	}
	return out
}

// A client that goes away while the replica writes to it is ordinary
// churn (every one-shot CLI client does it): the replica resets the
// stream and logs it at DEBUG, so that a log at INFO has no line per
// client disconnect. The client here stops reading, so the replica's
// write times out.
func TestClientWriteFailureLoggedAtDebug(t *testing.T) {
	rec := &recordingHandler{}
	replicas, _ := startCluster(t, 1, func(_ int, cfg *Config) {
		cfg.ClientsAllowed = true
		cfg.WriteTimeout = 200 * time.Millisecond
		cfg.Logger = slog.New(rec)
	})
	r := replicas[0]
	c := rawClient(t, r)
	s := openClientStream(t, c, r)
	defer func() { _ = s.Reset() }()
	writePartialFrame(t, s, 5, 5) // a whole frame: the stream negotiates and reaches the replica
	waitFor(t, "the client's stream to be registered", func() bool { return r.SendToClient(c.ID(), []byte("hello")) })
	const msg = "write to client failed"
	reply := make([]byte, 64<<10)
	waitFor(t, "the write to a client that does not read to fail", func() bool {
		r.SendToClient(c.ID(), reply) // refused while the reply queue is full
		return len(rec.find(msg)) > 0
	})
	for _, got := range rec.find(msg) {
		if got.Level >= slog.LevelInfo {
			t.Fatalf("%q logged at %v, want DEBUG (client churn)", got.Message, got.Level)
		}
	}
}
