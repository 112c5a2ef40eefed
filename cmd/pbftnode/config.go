package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
)

// errInvalidConfig marks a configuration with problems (exit status 1; the
// problems were already printed).
var errInvalidConfig = errors.New("configuration is invalid")

func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: pbftnode config validate --home DIR")
		if len(args) == 0 {
			return fmt.Errorf("%w: missing subcommand", errUsage)
		}
		return flag.ErrHelp
	}
	if args[0] != "validate" {
		return fmt.Errorf("%w: unknown subcommand %q (validate)", errUsage, args[0])
	}
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	home := fs.String("home", "", "the replica's home directory, holding config.json (required)")
	if err := parse(fs, args[1:], stderr); err != nil {
		return err
	}
	if *home == "" {
		return fmt.Errorf("%w: --home is required", errUsage)
	}
	summary, warnings, problems := validateHome(*home)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%s: %d problem(s):\n", filepath.Join(*home, node.ConfigFileName), len(problems))
		for _, p := range problems {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		return errInvalidConfig
	}
	fmt.Fprintln(stdout, "ok")
	for _, line := range summary {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	return nil
}

// validateHome checks a replica's home directory and returns a summary,
// warnings (legal but probably unintended) and every problem found.
func validateHome(home string) (summary, warnings, problems []string) {
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }

	var fc node.FileConfig
	if err := node.ReadJSON(filepath.Join(home, node.ConfigFileName), &fc); err != nil {
		return nil, nil, []string{err.Error()}
	}
	if fc.ClusterID == "" {
		problem("cluster_id is empty")
	}
	if fc.Protocol != "" && fc.Protocol != "pbft" {
		problem("protocol %q is not supported by this build (pbft)", fc.Protocol)
	}
	n := len(fc.Replicas)
	f := protocol.FaultTolerance(n)
	switch {
	case n < 4:
		problem("%d replicas: PBFT needs at least 4 (n = 3f+1)", n)
	case n != 3*f+1:
		warn("%d replicas tolerate f=%d faults, as %d would; the extra %d add cost, not tolerance", n, f, 3*f+1, n-(3*f+1))
	}
	keys := map[string]uint32{}
	addrs := map[string]uint32{}
	pubs := make([]ed25519.PublicKey, n)
	for i, r := range fc.Replicas {
		if r.Index != uint32(i) {
			problem("replicas[%d] has index %d; list replicas in index order 0..%d", i, r.Index, n-1)
		}
		pub, err := keyfile.DecodePublicKey(r.PublicKey)
		if err != nil {
			problem("replica %d public_key: %v", i, err)
		} else {
			pubs[i] = pub
			if j, dup := keys[string(pub)]; dup {
				problem("replica %d has the same public_key as replica %d", i, j)
			}
			keys[string(pub)] = uint32(i)
		}
		if r.Address == "" {
			problem("replica %d has no address", i)
		} else if ma, err := multiaddr.NewMultiaddr(r.Address); err != nil {
			problem("replica %d address %q: %v", i, r.Address, err)
		} else {
			if j, dup := addrs[ma.String()]; dup {
				problem("replica %d has the same address %s as replica %d", i, ma, j)
			}
			addrs[ma.String()] = uint32(i)
		}
	}
	clients := map[string]int{}
	for i, k := range fc.ClientAllowlist {
		pub, err := keyfile.DecodePublicKey(k)
		if err != nil {
			problem("client_allowlist[%d] %q: %v", i, k, err)
			continue
		}
		if j, dup := clients[string(pub)]; dup {
			warn("client_allowlist[%d] repeats client_allowlist[%d]", i, j)
		}
		clients[string(pub)] = i
		if r, member := keys[string(pub)]; member {
			warn("client_allowlist[%d] is replica %d's public_key; replicas need no allowlist entry", i, r)
		}
	}
	if int(fc.Index) >= n {
		problem("index %d is outside the %d replicas", fc.Index, n)
	}
	if fc.Listen != "" {
		if _, err := multiaddr.NewMultiaddr(fc.Listen); err != nil {
			problem("listen %q: %v", fc.Listen, err)
		}
	}
	if fc.MetricsListen != "" {
		if err := checkHostPort(fc.MetricsListen); err != nil {
			problem("metrics_listen %q: %v", fc.MetricsListen, err)
		}
	} else {
		warn("metrics_listen is empty: no /metrics, /healthz, /readyz or /status, and `pbftnode status` cannot reach this replica")
	}
	if fc.TickInterval != "" {
		if d, err := time.ParseDuration(fc.TickInterval); err != nil {
			problem("tick_interval: %v", err)
		} else if d <= 0 {
			problem("tick_interval %s is not positive", d)
		}
	}
	ci := fc.CheckpointInterval
	if ci == 0 {
		ci = protocol.DefaultCheckpointInterval
	}
	window := fc.WindowSize
	if window == 0 {
		window = 2 * ci
	}
	if window < ci {
		problem("window_size %d is smaller than checkpoint_interval %d", window, ci)
	}
	if fc.MaxBatchSize < 0 {
		problem("max_batch_size %d is negative", fc.MaxBatchSize)
	}
	if fc.MaxInFlight < 0 {
		problem("max_in_flight %d is negative", fc.MaxInFlight)
	}
	if fc.MaxPartialInFlight < 0 {
		problem("max_partial_in_flight %d is negative", fc.MaxPartialInFlight)
	}
	inFlight := fc.MaxInFlight
	if inFlight == 0 {
		inFlight = protocol.DefaultMaxInFlight
	}
	if fc.MaxPartialInFlight > inFlight {
		problem("max_partial_in_flight %d is above max_in_flight %d", fc.MaxPartialInFlight, inFlight)
	}
	if fc.BatchDelayTicks < 0 {
		problem("batch_delay_ticks %d is negative", fc.BatchDelayTicks)
	}
	dataDir := fc.DataDir
	if dataDir == "" {
		dataDir = "data"
	}
	if !filepath.IsAbs(dataDir) {
		dataDir = filepath.Join(home, dataDir)
	}
	if info, err := os.Stat(dataDir); err == nil && !info.IsDir() {
		problem("data_dir %s is not a directory", dataDir)
	}
	if fc.UnsafeNoFsync {
		warn("unsafe_no_fsync is set: a machine crash can break safety (benchmarks only)")
	}

	keyPath := fc.KeyPath(home)
	keyKind := "plain"
	if enc, err := keyfile.IsEncrypted(keyPath); err == nil && enc {
		keyKind = "encrypted"
	} else if err == nil && fc.KeyPassphraseFile != "" {
		warn("key_passphrase_file is set but the key file is not encrypted")
	}
	key, err := fc.ReadKey(home)
	var peerID string
	if err != nil {
		problem("%v", err)
	} else if int(fc.Index) < n && pubs[fc.Index] != nil {
		pub := key.Public().(ed25519.PublicKey)
		if !pub.Equal(pubs[fc.Index]) {
			problem("key file %s holds public key %s, but replica %d's public_key is %s", keyPath, keyfile.EncodePublicKey(pub), fc.Index, fc.Replicas[fc.Index].PublicKey)
		}
		if id, err := identity.PeerIDFromPublicKey(pub); err == nil {
			peerID = id.String()
		}
	}
	if len(problems) > 0 {
		return nil, warnings, problems
	}
	// Everything checked here also passes what `run` does.
	cfg, err := node.LoadHome(home)
	if err != nil {
		return nil, warnings, []string{err.Error()}
	}
	listen := cfg.ListenAddr
	metrics := fc.MetricsListen
	if metrics == "" {
		metrics = "(disabled)"
	}
	summary = []string{
		fmt.Sprintf("cluster:  %s (%d replicas, tolerates f=%d)", cfg.ClusterID, n, f),
		fmt.Sprintf("replica:  %d, peer ID %s", cfg.Index, peerID),
		fmt.Sprintf("listen:   %s", listen),
		fmt.Sprintf("metrics:  %s", metrics),
		fmt.Sprintf("clients:  %s", clientsSummary(len(cfg.ClientAllowlist))),
		fmt.Sprintf("key:      %s (%s)", keyPath, keyKind),
		fmt.Sprintf("data:     %s (fsync %s)", cfg.DataDir, map[bool]string{true: "on", false: "OFF"}[cfg.Sync]),
	}
	return summary, warnings, nil
}

// clientsSummary describes who may connect as a client.
func clientsSummary(allowlisted int) string {
	if allowlisted == 0 {
		return "any (no client_allowlist)"
	}
	return fmt.Sprintf("%d allowlisted", allowlisted)
}

// checkHostPort checks a host:port listen address.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("host %q: %v", host, err)
		}
	}
	return nil
}
