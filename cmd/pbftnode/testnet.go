package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
)

func runTestnet(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testnet", flag.ContinueOnError)
	replicas := fs.Int("replicas", 0, "number of replicas (default 4 for PBFT, n = 3f+1; 3 for Raft, n = 2f+1)")
	dir := fs.String("dir", "", "directory to write the testnet into (required)")
	basePort := fs.Int("base-port", config.DefaultBasePort, "replica i listens on 127.0.0.1:P+i and serves metrics on P+100+i")
	proto := fs.String("protocol", "pbft", "consensus protocol: pbft (n = 3f+1, Byzantine faults) or raft (n = 2f+1, crash faults)")
	host := fs.String("host", "127.0.0.1", "address the replicas listen on and are reached at")
	noFsync := fs.Bool("unsafe-no-fsync", false, "write configurations with fsync off (benchmarks only)")
	cachedReceipts := fs.Bool("receipts-cached-only", false, "PBFT: write configurations with \"receipts_cached_only\": true (receipts only on replies to retransmitted requests)")
	noReceipts := fs.Bool("no-receipts", false, "PBFT: write configurations with receipts off (\"receipts\": false; no signature per executed batch)")
	gomaxprocs := fs.Int("gomaxprocs", 0, "every replica's gomaxprocs: 0 writes its share of this machine's CPUs (the replicas run on one machine), at least 1; -1 writes none (Go's default: every CPU)")
	checkDirectCommits := fs.Bool("check-direct-commits", false, "PBFT: write configurations with \"check_direct_commits\": true (every COMMIT's signature checked; benchmarks)")
	snapshotInterval := fs.Uint64("raft-snapshot-interval", 0, "Raft mode: snapshot the application every N log entries (0: the default, 8192)")
	app := fs.String("app", config.ApplicationKV, "the replicated application: kv (the key-value store) or ledger")
	spares := fs.Int("spares", 0, "also write K spare homes (nodeN.. after the N replicas): replicas that are not members until `pbftnode admin add-replica --home` adds them")
	admins := fs.Int("admins", 1, "write M administrator keys (DIR/admin0.pem ...) whose signatures change the membership (pbftnode admin)")
	adminThreshold := fs.Int("admin-threshold", 1, "how many of the administrators must sign a membership change")
	issuerKey := fs.String("issuer-key", "", "--app ledger: the key file (from pbftnode keygen) of the account allowed to mint (default: the testnet's client key)")
	preloadKeys := fs.Int("preload-keys", 0, "kv: every replica starts with the same state of N keys, k0000000 ... (the bench workload's key names), as if executed before sequence 1; a replica wiped later catches up by state transfer")
	preloadValueBytes := fs.Int("preload-value-bytes", execution.DefaultPreloadValueBytes, "--preload-keys: bytes of each preloaded value (10 million keys of 100 bytes: about 1 GiB)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return fmt.Errorf("%w: --dir is required", errUsage)
	case *proto != config.ConsensusPBFT && *proto != config.ConsensusRaft:
		return fmt.Errorf("%w: --protocol %q: want pbft or raft", errUsage, *proto)
	case *basePort <= 0:
		return fmt.Errorf("%w: --base-port %d: want a port number", errUsage, *basePort)
	case *app != config.ApplicationKV && *app != config.ApplicationLedger:
		return fmt.Errorf("%w: --app %q: want kv or ledger", errUsage, *app)
	case *issuerKey != "" && *app != config.ApplicationLedger:
		return fmt.Errorf("%w: --issuer-key needs --app ledger", errUsage)
	case *preloadKeys < 0 || *preloadValueBytes < 0:
		return fmt.Errorf("%w: --preload-keys %d --preload-value-bytes %d: want 0 or more", errUsage, *preloadKeys, *preloadValueBytes)
	case *preloadKeys > 0 && *app != config.ApplicationKV:
		return fmt.Errorf("%w: --preload-keys needs --app kv", errUsage)
	case *spares < 0:
		return fmt.Errorf("%w: --spares %d: want 0 or more", errUsage, *spares)
	case *admins < 1 || *adminThreshold < 1 || *adminThreshold > *admins:
		return fmt.Errorf("%w: --admins %d --admin-threshold %d: want 1 <= threshold <= admins", errUsage, *admins, *adminThreshold)
	}
	if *replicas != 0 {
		if err := config.CheckClusterSize(*proto, *replicas); err != nil {
			return fmt.Errorf("%w: --replicas: %w", errUsage, err)
		}
	}
	t := config.Testnet{
		Dir: *dir, Replicas: *replicas, Consensus: *proto, Host: *host, BasePort: *basePort,
		UnsafeNoFsync: *noFsync, NoReceipts: *noReceipts, ReceiptsCachedOnly: *cachedReceipts, CheckDirectCommits: *checkDirectCommits, GOMAXPROCS: *gomaxprocs, RaftSnapshotInterval: *snapshotInterval,
		Application: *app, Spares: *spares, Admins: *admins, AdminThreshold: *adminThreshold,
		PreloadKeys: *preloadKeys, PreloadValueBytes: *preloadValueBytes,
	}
	issuer, err := testnetIssuer(&t, *issuerKey)
	if err != nil {
		return err
	}
	cluster, err := config.WriteTestnet(t)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	fmt.Fprintf(stdout, "wrote a %d-replica %s testnet (cluster %s) to %s\n", len(cluster.Replicas), *proto, cluster.ClusterID, *dir)
	for i := range cluster.Replicas {
		fmt.Fprintf(stdout, "  pbftnode run --home %s\n", filepath.Join(*dir, fmt.Sprintf("node%d", i)))
	}
	if *spares > 0 {
		fmt.Fprintf(stdout, "%d spare(s), not yet members: start one with pbftnode run --home, then add it with\n", *spares)
		for i := len(cluster.Replicas); i < len(cluster.Replicas)+*spares; i++ {
			fmt.Fprintf(stdout, "  pbftnode admin --dir %s add-replica --home %s\n", *dir, filepath.Join(*dir, fmt.Sprintf("node%d", i)))
		}
	}
	fmt.Fprintf(stdout, "administrators: %d of %d must sign a membership change (keys %s)\n", cluster.AdminThreshold, len(cluster.Admins), filepath.Join(*dir, "admin*.pem"))
	if *app == config.ApplicationLedger {
		fmt.Fprintf(stdout, "application: ledger; ledger_issuers %s: %s may mint\n", strings.Join(cluster.LedgerIssuers, ", "), issuer)
		fmt.Fprintf(stdout, "then: pbftnode client --dir %s [--key FILE] ledger mint ACCOUNT AMOUNT\n", *dir)
		return nil
	}
	fmt.Fprintf(stdout, "then: pbftnode client --dir %s put a 1\n", *dir)
	return nil
}

// testnetIssuer names the ledger's issuer in t: the public key of the key
// file issuerKey, or (none given) the testnet's own client key. It
// returns how to say who the issuer is; nothing for a key-value testnet.
func testnetIssuer(t *config.Testnet, issuerKey string) (string, error) {
	if t.Application != config.ApplicationLedger {
		return "", nil
	}
	if issuerKey == "" {
		t.ClientIsIssuer = true
		return fmt.Sprintf("the testnet's own client key (%s, the default of pbftnode client --dir)", filepath.Join(t.Dir, config.DefaultClientKeyFile)), nil
	}
	pub, err := readPublicKey(issuerKey)
	if err != nil {
		return "", fmt.Errorf("%w: --issuer-key: %w", errUsage, err)
	}
	t.LedgerIssuers = append(t.LedgerIssuers, pub)
	return fmt.Sprintf("the key in %s", issuerKey), nil
}
