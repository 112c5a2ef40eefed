package appgrpc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/appgrpc/apppb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// patience bounds every wait in these tests: far longer than any call
// needs on a busy machine, so reaching it means a hang.
const patience = 30 * time.Second

func TestRoundTrip(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			big := bytes.Repeat([]byte("0123456789abcdef"), (5*MaxChunkBytes/2)/16+1) // 2.5 MiB
			f := &fakeApp{snapshotChunks: [][]byte{big[:MaxChunkBytes], big[MaxChunkBytes : 2*MaxChunkBytes], big[2*MaxChunkBytes:]}}
			c := dial(t, serve(t, f, network), Options{})
			ctx := context.Background()

			state, err := c.Info(ctx)
			if err != nil || state.Sequence != 0 || !bytes.Equal(state.Digest[:], fakeDigest(0)) {
				t.Fatalf("Info = %+v, %v; want sequence 0 and its digest", state, err)
			}
			ops := []app.Operation{
				{Client: []byte("alice"), RequestNumber: 1, Payload: []byte("put")},
				{Client: []byte("bob"), RequestNumber: 2, Payload: nil},
			}
			results, digest, err := c.Execute(ctx, 1, ops)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			want := reverseEach([]*apppb.Operation{
				{Client: []byte("alice"), RequestNumber: 1, Payload: []byte("put")},
				{Client: []byte("bob"), RequestNumber: 2},
			})
			if len(results) != 2 || !bytes.Equal(results[0], want[0]) || !bytes.Equal(results[1], want[1]) || !bytes.Equal(digest[:], fakeDigest(1)) {
				t.Fatalf("Execute = %q, %x; want %q, %x", results, digest, want, fakeDigest(1))
			}
			if results, _, err := c.Execute(ctx, 2, nil); err != nil || len(results) != 0 {
				t.Fatalf("Execute of an empty batch = %q, %v", results, err)
			}
			answer, err := c.Query(ctx, []byte("q"))
			if err != nil || string(answer) != "answer:q" {
				t.Fatalf("Query = %q, %v", answer, err)
			}
			var snap bytes.Buffer
			if err := c.Snapshot(ctx, &snap); err != nil || !bytes.Equal(snap.Bytes(), big) {
				t.Fatalf("Snapshot: %d bytes, %v; want the %d bytes served", snap.Len(), err, len(big))
			}
			restoreTo := app.State{Sequence: 7, Digest: [32]byte(fakeDigest(7))}
			if err := c.Restore(ctx, restoreTo, bytes.NewReader(big)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			f.mu.Lock()
			gotState, gotData := f.restoredState, f.restored
			f.mu.Unlock()
			if gotState.GetSequence() != 7 || !bytes.Equal(gotState.GetDigest(), fakeDigest(7)) || !bytes.Equal(gotData, big) {
				t.Fatalf("the server restored sequence %d digest %x and %d bytes; want 7, %x and %d bytes", gotState.GetSequence(), gotState.GetDigest(), len(gotData), fakeDigest(7), len(big))
			}
			if err := c.Restore(ctx, app.State{}, nil); err != nil {
				t.Fatalf("Restore of the initial state: %v", err)
			}
		})
	}
}

// TestInvalidResponsesRefused: an application breaking the protocol gets
// an error wrapping ErrInvalidResponse that names what was wrong.
func TestInvalidResponsesRefused(t *testing.T) {
	ops := []app.Operation{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}}
	cases := []struct {
		name string
		app  *fakeApp
		opts Options
		call func(*Client) error
		want string
	}{
		{
			name: "wrong result count",
			app: &fakeApp{onExecute: func(context.Context, *apppb.ExecuteRequest) (*apppb.ExecuteResponse, error) {
				return &apppb.ExecuteResponse{Results: [][]byte{{1}, {2}}, Digest: fakeDigest(1)}, nil
			}},
			call: func(c *Client) error { _, _, err := c.Execute(context.Background(), 1, ops); return err },
			want: "2 results for 3 operations",
		},
		{
			name: "31-byte execute digest",
			app: &fakeApp{onExecute: func(_ context.Context, req *apppb.ExecuteRequest) (*apppb.ExecuteResponse, error) {
				return &apppb.ExecuteResponse{Results: reverseEach(req.GetOperations()), Digest: make([]byte, 31)}, nil
			}},
			call: func(c *Client) error { _, _, err := c.Execute(context.Background(), 1, ops); return err },
			want: "digest of 31 bytes, want 32",
		},
		{
			name: "31-byte info digest",
			app: &fakeApp{onInfo: func(context.Context) (*apppb.InfoResponse, error) {
				return &apppb.InfoResponse{State: &apppb.State{Sequence: 3, Digest: make([]byte, 31)}}, nil
			}},
			call: func(c *Client) error { _, err := c.Info(context.Background()); return err },
			want: "digest of 31 bytes, want 32",
		},
		{
			name: "info without state",
			app: &fakeApp{onInfo: func(context.Context) (*apppb.InfoResponse, error) {
				return &apppb.InfoResponse{}, nil
			}},
			call: func(c *Client) error { _, err := c.Info(context.Background()); return err },
			want: "no state",
		},
		{
			name: "oversized chunk",
			app:  &fakeApp{snapshotChunks: [][]byte{make([]byte, 10), make([]byte, MaxChunkBytes+1)}},
			call: func(c *Client) error { return c.Snapshot(context.Background(), new(bytes.Buffer)) },
			want: "snapshot chunk of 1048577 bytes, limit 1048576",
		},
		{
			name: "snapshot over the limit",
			app:  &fakeApp{snapshotChunks: [][]byte{make([]byte, 600), make([]byte, 600)}},
			opts: Options{MaxSnapshotBytes: 1000},
			call: func(c *Client) error { return c.Snapshot(context.Background(), new(bytes.Buffer)) },
			want: "snapshot over 1000 bytes",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(dial(t, serve(t, tc.app, "tcp"), tc.opts))
			if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one wrapping ErrInvalidResponse saying %q", err, tc.want)
			}
		})
	}
}

// TestRestoreRefusedByApplication: an application that ends the stream
// early (refusing the snapshot) has its status returned, not a bare EOF.
func TestRestoreRefusedByApplication(t *testing.T) {
	f := &fakeApp{onRestore: func(apppb.Application_RestoreServer) error {
		return status.Error(codes.InvalidArgument, "not my snapshot format")
	}}
	c := dial(t, serve(t, f, "tcp"), Options{})
	big := bytes.NewReader(make([]byte, 8*MaxChunkBytes))
	err := c.Restore(context.Background(), app.State{Sequence: 4}, big)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not my snapshot format") {
		t.Fatalf("Restore error %v; want the application's InvalidArgument", err)
	}
}

// TestUnreachableFailsWithinDeadline: a refused connection fails at once,
// a server that accepts but never answers fails at the call deadline.
func TestUnreachableFailsWithinDeadline(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		c := dial(t, "grpc://"+addr, Options{CallTimeout: patience})
		start := time.Now()
		_, err = c.Info(context.Background())
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), addr) {
			t.Fatalf("Info error %v; want Unavailable naming %s", err, addr)
		}
		if elapsed := time.Since(start); elapsed >= patience {
			t.Fatalf("Info took %v: it waited for the deadline instead of failing", elapsed)
		}
	})
	t.Run("silent", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		go func() { // accept and hold connections, never speaking HTTP/2
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				conn, err := lis.Accept()
				if err != nil {
					return
				}
				held = append(held, conn)
			}
		}()
		c := dial(t, "grpc://"+lis.Addr().String(), Options{CallTimeout: 200 * time.Millisecond})
		done := make(chan error, 1)
		go func() { _, err := c.Info(context.Background()); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 200ms") {
				t.Fatalf("Info error %v; want one wrapping context.DeadlineExceeded", err)
			}
		case <-time.After(patience):
			t.Fatal("Info against a silent server did not return")
		}
	})
}

// TestCloseUnblocksCall: Close makes a call stuck in a slow application
// return, and later calls fail at once.
func TestCloseUnblocksCall(t *testing.T) {
	entered := make(chan struct{})
	f := &fakeApp{onExecute: func(ctx context.Context, _ *apppb.ExecuteRequest) (*apppb.ExecuteResponse, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	c := dial(t, serve(t, f, "tcp"), Options{CallTimeout: time.Hour})
	done := make(chan error, 1)
	go func() { _, _, err := c.Execute(context.Background(), 1, nil); done <- err }()
	select {
	case <-entered:
	case <-time.After(patience):
		t.Fatal("Execute never reached the application")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Execute error %v; want one wrapping ErrClosed", err)
		}
	case <-time.After(patience):
		t.Fatal("Close did not unblock the call in progress")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Info(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Info after Close: %v; want ErrClosed", err)
	}
}

// TestCallerContextEndsCall: the caller's ctx bounds a call too.
func TestCallerContextEndsCall(t *testing.T) {
	f := &fakeApp{onInfo: func(ctx context.Context) (*apppb.InfoResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	c := dial(t, serve(t, f, "tcp"), Options{CallTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Info(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Info error %v; want the caller's deadline", err)
	}
}

func TestParseTarget(t *testing.T) {
	good := []struct{ in, scheme, address string }{
		{"grpc://127.0.0.1:7000", SchemeGRPC, "127.0.0.1:7000"},
		{"grpc://localhost:1", SchemeGRPC, "localhost:1"},
		{"grpc://app.internal:65535", SchemeGRPC, "app.internal:65535"},
		{"grpc://[::1]:7000", SchemeGRPC, "[::1]:7000"},
		{"unix:///tmp/app.sock", SchemeUnix, "/tmp/app.sock"},
		{"unix:///var/run//app/../app.sock", SchemeUnix, "/var/run/app.sock"},
	}
	for _, tc := range good {
		got, err := ParseTarget(tc.in)
		if err != nil || got.Scheme != tc.scheme || got.Address != tc.address {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %s %s", tc.in, got, err, tc.scheme, tc.address)
			continue
		}
		if again, err := ParseTarget(got.String()); err != nil || again != got {
			t.Errorf("ParseTarget(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
		}
	}
	bad := []struct{ in, want string }{
		{"", "no scheme"},
		{"kv", "no scheme"},
		{"127.0.0.1:7000", "no scheme"},
		{"http://127.0.0.1:7000", `unknown scheme "http"`},
		{"grpc://127.0.0.1", "missing port"},
		{"grpc://:7000", "no host"},
		{"grpc://127.0.0.1:0", "not in 1..65535"},
		{"grpc://127.0.0.1:70000", "not in 1..65535"},
		{"grpc://127.0.0.1:x", "not in 1..65535"},
		{"grpc://127.0.0.1:7000/path", "no user or path"},
		{"grpc://user@127.0.0.1:7000", "no user or path"},
		{"grpc://127.0.0.1:7000?x=1", "query or fragment"},
		{"unix://relative.sock", "must be absolute"},
		{"unix:///", "no socket path"},
	}
	for _, tc := range bad {
		_, err := ParseTarget(tc.in)
		if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTarget(%q) error %v; want ErrBadTarget saying %q", tc.in, err, tc.want)
		}
	}
	if _, err := Dial("tcp://127.0.0.1:1", Options{}); !errors.Is(err, ErrBadTarget) {
		t.Errorf("Dial of a bad target: %v; want ErrBadTarget", err)
	}
}
