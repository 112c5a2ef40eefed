package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
)

func runClient(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	dir := fs.String("dir", "", "testnet directory holding client.json (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	oldAbsent := fs.Bool("old-absent", false, "cas: swap only if the key is absent (then give K NEW)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pbftnode client --dir DIR [--json] [--old-absent] put K V | get K | delete K | cas K OLD NEW\n       (with --old-absent: cas K NEW, swapping only if K is absent; flags go before the operation)")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	op, err := encodeOperation(fs.Args(), *oldAbsent)
	if err != nil {
		return err
	}
	// One request: take a session slot shared with the directory's other
	// commands (see claimSession), or a random session if none is free.
	var edit func(*client.Config)
	if sess := claimSession(*dir); sess != nil {
		defer sess.release()
		edit = func(cfg *client.Config) { cfg.Session, cfg.FirstRequestNumber = sess.id, sess.first }
	}
	c, err := openClientWith(*dir, edit)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	raw, err := c.Invoke(ctx, op)
	if err != nil {
		return fmt.Errorf("%s: no result from the cluster: %w", fs.Arg(0), err)
	}
	res, err := execution.DecodeResult(raw)
	if err != nil {
		return fmt.Errorf("undecodable result: %w", err)
	}
	if res.Error != "" {
		return fmt.Errorf("the cluster refused the operation: %s", res.Error)
	}
	if *asJSON {
		out := map[string]any{"operation": fs.Arg(0), "ok": res.Ok}
		if res.Value != nil {
			out["value"] = string(res.Value)
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	switch fs.Arg(0) {
	case "get":
		if !res.Ok {
			fmt.Fprintln(stdout, "(not found)")
			return nil
		}
		fmt.Fprintln(stdout, string(res.Value))
	case "cas":
		if !res.Ok {
			if res.Value == nil {
				fmt.Fprintln(stdout, "not swapped (key absent)")
			} else {
				fmt.Fprintf(stdout, "not swapped (current value %s)\n", res.Value)
			}
			return nil
		}
		fmt.Fprintln(stdout, "swapped")
	default:
		fmt.Fprintln(stdout, "ok")
	}
	return nil
}

func encodeOperation(args []string, oldAbsent bool) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: missing operation (put K V | get K | delete K | cas K OLD NEW)", errUsage)
	}
	for _, a := range args[1:] {
		if strings.TrimLeft(a, "-") == "old-absent" {
			return nil, fmt.Errorf("%w: flags go before the operation: %q", errUsage, a)
		}
	}
	if oldAbsent && args[0] != "cas" {
		return nil, fmt.Errorf("%w: --old-absent applies only to cas", errUsage)
	}
	want := map[string]int{"put": 3, "get": 2, "delete": 2, "cas": 4}
	n, ok := want[args[0]]
	if !ok {
		return nil, fmt.Errorf("%w: unknown operation %q", errUsage, args[0])
	}
	if args[0] == "cas" && oldAbsent {
		n = 3
	}
	if len(args) != n {
		return nil, fmt.Errorf("%w: %s takes %d arguments, got %d", errUsage, args[0], n-1, len(args)-1)
	}
	key := []byte(args[1])
	switch args[0] {
	case "put":
		return execution.EncodePut(key, []byte(args[2])), nil
	case "get":
		return execution.EncodeGet(key), nil
	case "delete":
		return execution.EncodeDelete(key), nil
	}
	if oldAbsent {
		return execution.EncodeCAS(key, nil, true, []byte(args[2])), nil
	}
	return execution.EncodeCAS(key, []byte(args[2]), false, []byte(args[3])), nil
}

// openClient builds a client from DIR/client.json, with a random session.
func openClient(dir string) (*client.Client, error) { return openClientWith(dir, nil) }

// openClientWith is openClient with edit (if not nil) applied to the
// client's configuration before it starts.
func openClientWith(dir string, edit func(*client.Config)) (*client.Client, error) {
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(dir, "client.json"), &cf); err != nil {
		return nil, err
	}
	replicas, err := cf.Decode()
	if err != nil {
		return nil, err
	}
	key, err := keyfile.Read(cf.KeyPath(dir))
	if err != nil {
		return nil, err
	}
	members := make([]p2p.Member, len(replicas))
	for i, r := range replicas {
		if members[i], err = node.Member(r); err != nil {
			return nil, err
		}
	}
	quorum := 0 // f+1 matching replies
	if cf.Consensus == config.ConsensusRaft {
		quorum = 1 // crash faults only: any replica's reply is correct
	}
	cfg := client.Config{ClusterID: cf.ClusterID, Key: key, Replicas: members, ReplyQuorum: quorum, RetransmitTimeout: 500 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	return client.New(cfg)
}
