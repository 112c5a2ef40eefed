package appgrpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/appgrpc/apppb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Defaults and fixed limits of the protocol (app.proto states them too).
const (
	// DefaultCallTimeout bounds a unary call and, for Snapshot and
	// Restore, the wait for each chunk.
	DefaultCallTimeout = 30 * time.Second
	// DefaultMaxMessageBytes bounds one gRPC message either way.
	DefaultMaxMessageBytes = 64 << 20
	// DefaultMaxSnapshotBytes bounds a whole snapshot either way.
	DefaultMaxSnapshotBytes = 1 << 30
	// MaxChunkBytes bounds one snapshot chunk either way.
	MaxChunkBytes = 1 << 20
	// DigestSize is the size of a state digest.
	DigestSize = 32

	// reconnectMaxDelay caps the wait between two connection attempts to
	// an application that went away, so a restarted one is found quickly.
	reconnectMaxDelay = time.Second
	// connectTimeout bounds one connection attempt (gRPC's default).
	connectTimeout = 20 * time.Second
)

// Options tune a Client. The zero value means the defaults.
type Options struct {
	// CallTimeout bounds each call (DefaultCallTimeout if 0); the
	// caller's ctx can end it sooner. For Snapshot and Restore it bounds
	// the wait for each chunk, not the whole stream.
	CallTimeout time.Duration
	// MaxMessageBytes bounds every gRPC message sent or received
	// (DefaultMaxMessageBytes if 0): a batch, its results, a query, an
	// answer.
	MaxMessageBytes int
	// MaxSnapshotBytes bounds a whole snapshot received by Snapshot or
	// sent by Restore (DefaultMaxSnapshotBytes if 0).
	MaxSnapshotBytes int64
}

func (o Options) withDefaults() (Options, error) {
	if o.CallTimeout < 0 || o.MaxMessageBytes < 0 || o.MaxSnapshotBytes < 0 {
		return o, fmt.Errorf("appgrpc: negative option in %+v", o)
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxSnapshotBytes == 0 {
		o.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	return o, nil
}

var (
	// ErrClosed is wrapped by the error of every call made or in
	// progress when Close is called.
	ErrClosed = errors.New("appgrpc: client closed")
	// ErrInvalidResponse is wrapped by the error of a call whose answer
	// breaks the protocol (a wrong result count, a digest that is not 32
	// bytes, an oversized chunk or snapshot, a missing state).
	ErrInvalidResponse = errors.New("application broke the protocol")
)

// Client is the replica's side of the gRPC application protocol: it
// implements app.Application by calling an application server. It
// connects lazily (the first call dials; a lost connection is re-dialled
// with backoff capped at one second) without TLS: the application runs
// beside its replica in the same trust domain, so a grpc:// target should
// be a loopback or private-network address, or use a unix socket.
//
// Every call has a deadline (Options.CallTimeout and the caller's ctx),
// and every answer is validated before it is returned. The replica makes
// one call at a time (app.Application's contract); Client itself is safe
// for concurrent use.
type Client struct {
	target Target
	opts   Options
	conn   *grpc.ClientConn
	rpc    apppb.ApplicationClient

	// closing ends when Close is called; every call's context ends with it.
	closing   context.Context
	close     context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

var _ app.Application = (*Client)(nil)

// Dial returns a Client of the application at target (see ParseTarget).
// It does not connect: an unreachable application makes the calls fail,
// not Dial.
func Dial(target string, o Options) (*Client, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	o, err = o.withDefaults()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(t.dialTarget(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The connection stays up while the cluster is quiet: an
		// application may watch it to know its replica is there.
		grpc.WithIdleTimeout(0),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.MaxMessageBytes), grpc.MaxCallSendMsgSize(o.MaxMessageBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMaxDelay},
			MinConnectTimeout: connectTimeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("appgrpc: client of %s: %w", t, err)
	}
	closing, closeFn := context.WithCancel(context.Background())
	return &Client{target: t, opts: o, conn: conn, rpc: apppb.NewApplicationClient(conn), closing: closing, close: closeFn}, nil
}

// Target returns the application's address.
func (c *Client) Target() Target { return c.target }

// String returns the application's address, for messages such as
// "application at grpc://127.0.0.1:7000: ...".
func (c *Client) String() string { return c.target.String() }

// Close ends every call in progress (they return errors wrapping
// ErrClosed) and closes the connection. It is idempotent: later calls
// return the first call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.close()
		if err := c.conn.Close(); err != nil {
			c.closeErr = fmt.Errorf("appgrpc: close %s: %w", c.target, err)
		}
	})
	return c.closeErr
}

// Info returns the application's current state.
func (c *Client) Info(ctx context.Context) (app.State, error) {
	cl, err := c.begin(ctx, "Info")
	if err != nil {
		return app.State{}, err
	}
	defer cl.end()
	resp, err := c.rpc.Info(cl.ctx, &apppb.InfoRequest{})
	if err != nil {
		return app.State{}, cl.fail(err)
	}
	return cl.state(resp.GetState())
}

// Execute executes the committed batch at sequence and returns exactly
// one result per operation and the new 32-byte digest.
func (c *Client) Execute(ctx context.Context, sequence uint64, ops []app.Operation) ([][]byte, [DigestSize]byte, error) {
	var digest [DigestSize]byte
	cl, err := c.begin(ctx, fmt.Sprintf("Execute(sequence %d)", sequence))
	if err != nil {
		return nil, digest, err
	}
	defer cl.end()
	req := &apppb.ExecuteRequest{Sequence: sequence, Operations: make([]*apppb.Operation, len(ops))}
	for i, op := range ops {
		req.Operations[i] = &apppb.Operation{Client: op.Client, RequestNumber: op.RequestNumber, Payload: op.Payload}
	}
	resp, err := c.rpc.Execute(cl.ctx, req)
	if err != nil {
		return nil, digest, cl.fail(err)
	}
	if len(resp.GetResults()) != len(ops) {
		return nil, digest, cl.invalid("%d results for %d operations", len(resp.GetResults()), len(ops))
	}
	if digest, err = cl.digest(resp.GetDigest()); err != nil {
		return nil, digest, err
	}
	return resp.GetResults(), digest, nil
}

// Query passes a read-only query to the application and returns its
// answer.
func (c *Client) Query(ctx context.Context, query []byte) ([]byte, error) {
	cl, err := c.begin(ctx, "Query")
	if err != nil {
		return nil, err
	}
	defer cl.end()
	resp, err := c.rpc.Query(cl.ctx, &apppb.QueryRequest{Query: query})
	if err != nil {
		return nil, cl.fail(err)
	}
	return resp.GetAnswer(), nil
}

// call is one call in progress: its context ends with the caller's ctx,
// Close, or the call's timer (which streams restart for every chunk).
type call struct {
	client    *Client
	method    string
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stopClose func() bool
	timer     *time.Timer
}

func (c *Client) begin(ctx context.Context, method string) (*call, error) {
	cl := &call{client: c, method: method}
	if c.closing.Err() != nil {
		return nil, cl.wrap(ErrClosed)
	}
	cl.ctx, cl.cancel = context.WithCancelCause(ctx)
	cl.stopClose = context.AfterFunc(c.closing, func() { cl.cancel(ErrClosed) })
	timeout := c.opts.CallTimeout
	cl.timer = time.AfterFunc(timeout, func() {
		cl.cancel(fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded))
	})
	return cl, nil
}

// progress restarts the call's timer (a stream moved).
func (cl *call) progress() { cl.timer.Reset(cl.client.opts.CallTimeout) }

func (cl *call) end() {
	cl.timer.Stop()
	cl.stopClose()
	cl.cancel(context.Canceled)
}

func (cl *call) wrap(err error) error {
	return fmt.Errorf("appgrpc: %s on %s: %w", cl.method, cl.client.target, err)
}

// fail wraps err, an error of the gRPC call; when the call's context ended
// first, the error names why (Close, timeout, the caller) and wraps it.
func (cl *call) fail(err error) error {
	if cause := context.Cause(cl.ctx); cause != nil {
		return fmt.Errorf("appgrpc: %s on %s: %w (%v)", cl.method, cl.client.target, cause, err)
	}
	// gRPC's own timer for the caller's deadline can fire before the
	// context's: name the deadline all the same.
	if deadline, ok := cl.ctx.Deadline(); ok && status.Code(err) == codes.DeadlineExceeded && !time.Now().Before(deadline) {
		return fmt.Errorf("appgrpc: %s on %s: %w (%v)", cl.method, cl.client.target, context.DeadlineExceeded, err)
	}
	return cl.wrap(err)
}

func (cl *call) invalid(format string, args ...any) error {
	return cl.wrap(fmt.Errorf("%w: %s", ErrInvalidResponse, fmt.Sprintf(format, args...)))
}

func (cl *call) digest(b []byte) ([DigestSize]byte, error) {
	if len(b) != DigestSize {
		return [DigestSize]byte{}, cl.invalid("digest of %d bytes, want %d", len(b), DigestSize)
	}
	return [DigestSize]byte(b), nil
}

func (cl *call) state(s *apppb.State) (app.State, error) {
	if s == nil {
		return app.State{}, cl.invalid("no state")
	}
	digest, err := cl.digest(s.GetDigest())
	if err != nil {
		return app.State{}, err
	}
	return app.State{Sequence: s.GetSequence(), Digest: digest}, nil
}
