package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node"
)

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	home := fs.String("home", "", "the replica's home directory, holding config.json (required)")
	asJSON := fs.Bool("json", false, "print the replica's /status document as JSON")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the replica to answer")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *home == "" {
		return fmt.Errorf("%w: --home is required", errUsage)
	}
	var fc config.FileConfig
	if err := config.ReadJSON(filepath.Join(*home, config.FileName), &fc); err != nil {
		return err
	}
	if fc.MetricsListen == "" {
		return fmt.Errorf("metrics_listen is not set in %s: the replica serves no status endpoint", filepath.Join(*home, config.FileName))
	}
	addr, err := dialableAddr(fc.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics_listen %q: %w", fc.MetricsListen, err)
	}
	url := "http://" + addr + "/status"
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("replica %d does not answer at %s (is it running?): %w", fc.Index, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	var r node.StatusReport
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: not a status document: %w", url, err)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	if r.Consensus == "" { // a replica older than the consensus field
		r.Consensus = fc.Consensus
	}
	app := fc.Application
	if spec, err := config.ParseApplication(app); err == nil {
		app = spec.String()
	}
	printStatus(stdout, r, fc.ClusterID, app)
	return nil
}

// printStatus prints r for a person, in the words of the replica's
// consensus protocol: a Raft replica has terms, a leader, an applied index
// and snapshots where a PBFT replica has views, a primary, an executed
// sequence and stable checkpoints. application is the application
// config.json names (`run --application` may have overridden it).
func printStatus(w io.Writer, r node.StatusReport, clusterID, application string) {
	peers := "unknown"
	if r.ConnectedPeers != nil {
		peers = fmt.Sprintf("%d of %d", *r.ConnectedPeers, r.Replicas-1)
	}
	ready := "yes"
	if !r.Ready {
		ready = "no"
	}
	fmt.Fprintf(w, "replica:            %d of %d (cluster %s)\n", r.Index, r.Replicas, clusterID)
	fmt.Fprintf(w, "application:        %s (config.json)\n", application)
	if r.Consensus == config.ConsensusRaft {
		leader := "no known leader"
		if r.ViewActive {
			leader = fmt.Sprintf("leader %d", r.Leader)
		}
		fmt.Fprintf(w, "term:               %d (%s)\n", r.View, leader)
		fmt.Fprintf(w, "applied index:      %d\n", r.ExecutedSequence)
		fmt.Fprintf(w, "snapshot index:     %d\n", r.StableCheckpoint)
	} else {
		viewState := "active"
		if !r.ViewActive {
			viewState = "changing"
		}
		fmt.Fprintf(w, "view:               %d (%s, primary %d)\n", r.View, viewState, r.Leader)
		fmt.Fprintf(w, "executed sequence:  %d\n", r.ExecutedSequence)
		fmt.Fprintf(w, "stable checkpoint:  %d\n", r.StableCheckpoint)
	}
	fmt.Fprintf(w, "epoch:              %d (members %s)\n", r.Epoch, formatIndices(r.Members))
	fmt.Fprintf(w, "connected peers:    %s\n", peers)
	fmt.Fprintf(w, "state digest:       %s\n", r.StateDigest)
	fmt.Fprintf(w, "ready:              %s (%s)\n", ready, r.ReadyReason)
}

// formatIndices lists member indices as "0, 1, 2".
func formatIndices(members []uint32) string {
	parts := make([]string, len(members))
	for i, m := range members {
		parts[i] = strconv.FormatUint(uint64(m), 10)
	}
	return strings.Join(parts, ", ")
}

// dialableAddr turns a listen address into one to connect to: a wildcard
// or empty host becomes the loopback address.
func dialableAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
