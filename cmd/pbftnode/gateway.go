package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/gateway"
)

// gatewayUsage is `pbftnode gateway --help`, before the flags.
const gatewayUsage = `usage: pbftnode gateway --dir DIR [--listen ADDR] [--key FILE] [--timeout D] [--max-in-flight N] [--receipts=false]
serves an HTTP/JSON API for the cluster DIR/client.json describes, as one
client (DIR's client key, or --key's: on the ledger, the account transfers
move funds from), until SIGINT or SIGTERM:
  PUT /v1/kv/{key}  GET /v1/kv/{key}[?receipt=true]  DELETE /v1/kv/{key}
  POST /v1/kv/{key}/cas  (the key-value store), or under /v1/ledger/ (the
  ledger); /openapi.json describes them; /healthz. See docs/gateway.md.`

func runGateway(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	dir := fs.String("dir", "", "testnet directory holding client.json (required)")
	listen := fs.String("listen", "127.0.0.1:8080", "the address to serve HTTP on")
	keyPath := fs.String("key", "", "sign as this key file's account (default: the directory's client key)")
	timeout := fs.Duration("timeout", gateway.DefaultCallTimeout, "how long one operation waits for the cluster (then 504, outcome unknown)")
	maxInFlight := fs.Int("max-in-flight", gateway.DefaultMaxInFlight, "operations in flight at once (beyond: 503 with Retry-After)")
	receipts := fs.Bool("receipts", true, "wait for the cluster's receipts on writes (false for a PBFT cluster running with receipts off; a Raft cluster never signs them)")
	logs := addLogFlags(fs, "info")
	fs.Usage = func() {
		fmt.Fprintln(stderr, gatewayUsage)
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: want --dir DIR and no arguments", errUsage)
	}
	if *timeout <= 0 || *maxInFlight <= 0 {
		return fmt.Errorf("%w: --timeout and --max-in-flight must be positive", errUsage)
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	application, consensus, err := gatewayCluster(*dir)
	if err != nil {
		return err
	}
	c, err := openClientWith(*dir, *keyPath, func(cfg *client.Config) { cfg.Logger = logger })
	if err != nil {
		return err
	}
	defer c.Close()
	gw, err := gateway.New(gateway.Config{
		Cluster: c, Application: application, Account: accountOf(c),
		// Raft: crash faults only, one reply, no receipts.
		NoReceipts:  consensus == config.ConsensusRaft || !*receipts,
		CallTimeout: *timeout, MaxInFlight: *maxInFlight, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("%w: --listen: %w", errConfig, err)
	}
	srv := gw.NewServer(ln.Addr().String())
	fmt.Fprintf(stdout, "pbftnode gateway: serving http://%s (%s)\n", ln.Addr(), application)
	return serveUntilSignal(srv, ln, *timeout)
}

// serveUntilSignal serves srv on ln until SIGINT or SIGTERM, then shuts
// down gracefully: it stops accepting and waits (up to the call timeout
// and some) for the operations in flight to be answered.
func serveUntilSignal(srv *http.Server, ln net.Listener, callTimeout time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), callTimeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// gatewayCluster reads the application DIR/client.json names (kv when
// it names none; the gateway serves the built-in ones only) and the
// cluster's consensus protocol.
func gatewayCluster(dir string) (application, consensus string, err error) {
	path := filepath.Join(dir, "client.json")
	var cf config.ClientFile
	if err := config.ReadJSON(path, &cf); err != nil {
		return "", "", fmt.Errorf("%w: %w", errConfig, err)
	}
	if cf.Application == "" {
		return config.ApplicationKV, cf.Consensus, nil
	}
	spec, err := config.ParseApplication(cf.Application)
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	if spec.Remote() {
		return "", "", fmt.Errorf("%w: %s says the cluster replicates %s: the gateway serves the built-in %s and %s only", errConfig, path, spec, config.ApplicationKV, config.ApplicationLedger)
	}
	return spec.Kind, cf.Consensus, nil
}

// accountOf is the client's ledger account: its public key, the first
// bytes of its id.
func accountOf(c *client.Client) []byte { return c.ID()[:ed25519.PublicKeySize] }
