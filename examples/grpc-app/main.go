package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pbftnode/pbftnode/appgrpc/apppb"
	"google.golang.org/grpc"
)

// maxMessageBytes is the default gRPC message limit, the replica's
// default (a batch, its results, a snapshot chunk).
const maxMessageBytes = 64 << 20

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-app:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := flag.NewFlagSet("grpc-app", flag.ContinueOnError)
	listen := flags.String("listen", "", "address to serve on: HOST:PORT, grpc://HOST:PORT or unix:///PATH (required)")
	maxMessage := flags.Int("max-message-bytes", maxMessageBytes, "largest gRPC message received or sent")
	verbose := flags.Bool("v", false, "log every batch")
	idleExit := flags.Duration("idle-exit", 10*time.Second, "exit once no replica has been connected for this long, after the first one connected (its state lives in memory, for its replica only); 0 serves until killed")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *listen == "" {
		return errors.New("--listen is required")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	lis, err := listenOn(*listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var opts []grpc.ServerOption
	if *idleExit > 0 {
		watch := newConnWatch(*idleExit)
		opts = append(opts, grpc.StatsHandler(watch))
		go func() {
			select {
			case <-watch.idle:
				logger.Info("no replica connected; exiting", "idle_exit", *idleExit)
				stop()
			case <-ctx.Done():
			}
		}()
	}
	server := newServer(logger, *maxMessage, opts...)
	go func() {
		<-ctx.Done()
		server.Stop()
	}()
	logger.Info("serving the pbftnode application protocol (in-memory key-value store)", "listen", lis.Addr().String())
	if err := server.Serve(lis); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// newServer returns a gRPC server of a fresh, empty key-value store.
func newServer(logger *slog.Logger, maxMessage int, opts ...grpc.ServerOption) *grpc.Server {
	server := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage)}, opts...)...)
	apppb.RegisterApplicationServer(server, newService(logger))
	return server
}

// listenOn listens on HOST:PORT, grpc://HOST:PORT or unix:///PATH. A unix
// socket file left by an earlier run is removed first.
func listenOn(address string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(address, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("--listen %q: the socket path must be absolute (unix:///PATH)", address)
		}
		if info, err := os.Lstat(path); err == nil && info.Mode().Type() == fs.ModeSocket {
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("remove stale socket: %w", err)
			}
		}
		lis, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return lis, nil
	}
	hostPort := strings.TrimPrefix(address, "grpc://")
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		return nil, fmt.Errorf("--listen %q: want HOST:PORT, grpc://HOST:PORT or unix:///PATH: %w", address, err)
	}
	lis, err := net.Listen("tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return lis, nil
}
