package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/receipt"
)

// verifyReceiptUsage is `pbftnode verify-receipt --help`, before the flags.
const verifyReceiptUsage = `usage: pbftnode verify-receipt --cluster FILE RECEIPT
Checks RECEIPT (a file pbftnode client --receipt wrote, or a gateway's
"receipt") offline against the cluster file FILE (a testnet's DIR/cluster.json:
the cluster id and the replicas' public keys; a receipt of a later configuration
epoch carries the chain of configuration certificates that proves its members
from that genesis). Exit status 0: f+1 members of the cluster signed that they executed the request with this result at this
sequence, and it prints what the receipt proves; 1: the receipt is invalid (the
error names what is wrong: tampered result, bad proof, too few signers, unknown
key, bad signature, wrong cluster, wrong epoch, malformed); 2: usage or unreadable files.`

func runVerifyReceipt(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify-receipt", flag.ContinueOnError)
	clusterPath := fs.String("cluster", "", "the cluster file (a testnet's DIR/cluster.json, or any client.json or config.json of the cluster)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, verifyReceiptUsage)
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *clusterPath == "" || fs.NArg() != 1 {
		return fmt.Errorf("%w: want --cluster FILE and one RECEIPT", errUsage)
	}
	cluster, err := readClusterFile(*clusterPath)
	if err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	var r receipt.Receipt
	if err := readReceipt(fs.Arg(0), &r); err != nil {
		return err
	}
	members, err := receipt.Check(&r, cluster)
	if err != nil {
		return fmt.Errorf("%s: INVALID: %w", fs.Arg(0), err)
	}
	signers := make([]string, 0, len(r.Signatures))
	for _, s := range r.Signers() {
		signers = append(signers, fmt.Sprint(s))
	}
	fmt.Fprintf(stdout, "valid receipt: cluster %s executed the request at sequence %d\n", r.ClusterID, r.Sequence)
	if r.Epoch > 0 {
		fmt.Fprintf(stdout, "  epoch:    %d (its members proven by the receipt's history from the cluster file)\n", r.Epoch)
	}
	fmt.Fprintf(stdout, "  client:   %s\n  request:  %d\n", r.ClientID, r.RequestNumber)
	if r.Operation != "" {
		fmt.Fprintf(stdout, "  operation (not signed): %s\n", r.Operation)
	}
	fmt.Fprintf(stdout, "  result:   %s\n  state:    %s (digest after the batch)\n", r.Result, r.StateDigest)
	fmt.Fprintf(stdout, "  signers:  replicas %s (%d of %d; f+1 = %d needed)\n", strings.Join(signers, ", "), len(signers), members,
		config.FaultTolerance(config.ConsensusPBFT, members)+1)
	return nil
}

// readClusterFile reads a cluster file; the cluster fields of a
// client.json or config.json read the same (other fields are ignored).
func readClusterFile(path string) (config.ClusterFile, error) {
	var cf config.ClusterFile
	b, err := os.ReadFile(path)
	if err != nil {
		return cf, fmt.Errorf("cluster file: %w", err)
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return cf, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return cf, nil
}

// maxReceiptFile bounds a receipt file read: a receipt is a few KiB, and
// one of a reconfigured cluster carries its configuration history in hex
// (at most membership.MaxEncodedHistory bytes encoded).
const maxReceiptFile = 2*membership.MaxEncodedHistory + 1<<20

func readReceipt(path string, r *receipt.Receipt) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: receipt: %w", errConfig, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReceiptFile+1))
	if err != nil {
		return fmt.Errorf("%w: receipt: %w", errConfig, err)
	}
	if len(b) > maxReceiptFile {
		return fmt.Errorf("%s: INVALID: %w: larger than %d bytes", path, receipt.ErrMalformed, maxReceiptFile)
	}
	if err := json.Unmarshal(b, r); err != nil {
		return fmt.Errorf("%s: INVALID: %w: %w", path, receipt.ErrMalformed, err)
	}
	return nil
}

// writeReceipt writes the receipt of a client command to path (mode
// 0644) when one was asked for ("" asks none). invokeErr is what
// InvokeWithReceipt returned: no receipt is written unless the operation
// was executed, and an incomplete receipt is an error, not a file.
func writeReceipt(path string, r *receipt.Receipt, invokeErr error) error {
	switch {
	case path == "":
		return nil
	case errors.Is(invokeErr, client.ErrIncompleteReceipt):
		return fmt.Errorf("executed, but no receipt written: %w", invokeErr)
	case invokeErr != nil:
		return nil // the operation's own error says what happened
	case r == nil:
		return errors.New("executed, but no receipt gathered")
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode receipt: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write receipt: %w", err)
	}
	return nil
}
