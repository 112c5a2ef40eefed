package main

import (
	"encoding/json"
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node/launch"
)

// keygenAccount writes a key file under dir and returns its path and the
// account (public key hex) keygen prints.
func keygenAccount(t *testing.T, dir, name string) (path, account string) {
	t.Helper()
	path = filepath.Join(dir, name+".pem")
	return path, keygenOK(t, "--out", path)
}

// readConfig reads a replica home's config.json.
func readConfig(t *testing.T, home string) config.FileConfig {
	t.Helper()
	var fc config.FileConfig
	if err := config.ReadJSON(filepath.Join(home, config.FileName), &fc); err != nil {
		t.Fatal(err)
	}
	return fc
}

// TestTestnetLedger: testnet --app ledger lists the --issuer-key's public
// key in ledger_issuers, or (no --issuer-key) the testnet's client key,
// and says so; config validate names the application; bad flags are
// usage errors.
func TestTestnetLedger(t *testing.T) {
	keys := t.TempDir()
	issuerFile, issuer := keygenAccount(t, keys, "issuer")
	dir := t.TempDir()
	writeTestnet(t, dir, 31000, "--app", "ledger", "--issuer-key", issuerFile)
	for i := range 4 {
		fc := readConfig(t, filepath.Join(dir, "node"+string(rune('0'+i))))
		if fc.Application != "ledger" || !slices.Equal(fc.LedgerIssuers, []string{issuer}) {
			t.Fatalf("node%d: application %q, ledger_issuers %q; want ledger, [%s]", i, fc.Application, fc.LedgerIssuers, issuer)
		}
	}
	code, stdout, stderr := cli(t, "config", "validate", "--home", filepath.Join(dir, "node0"))
	if code != 0 || !strings.Contains(stdout, "app:      ledger (1 issuer(s) may mint)") {
		t.Fatalf("config validate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	dir = t.TempDir()
	code, stdout, stderr = cli(t, "testnet", "--dir", dir, "--base-port", "31000", "--app", "ledger")
	if code != 0 || !strings.Contains(stdout, "the testnet's own client key") {
		t.Fatalf("testnet --app ledger: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	clientAccount, err := readPublicKey(filepath.Join(dir, config.DefaultClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fc := readConfig(t, filepath.Join(dir, "node3")); !slices.Equal(fc.LedgerIssuers, []string{clientAccount}) || !strings.Contains(stdout, clientAccount) {
		t.Fatalf("without --issuer-key: ledger_issuers %q, output %q; want the client key %s", fc.LedgerIssuers, stdout, clientAccount)
	}
	if fc := readConfig(t, filepath.Join(writeKVTestnet(t), "node0")); fc.Application != "kv" || len(fc.LedgerIssuers) != 0 {
		t.Fatalf("--app kv: application %q, ledger_issuers %q", fc.Application, fc.LedgerIssuers)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--app", "bank"}, `--app "bank": want kv or ledger`},
		{[]string{"--app", "grpc://127.0.0.1:1"}, "want kv or ledger"},
		{[]string{"--issuer-key", issuerFile}, "--issuer-key needs --app ledger"},
		{[]string{"--app", "ledger", "--issuer-key", filepath.Join(keys, "missing.pem")}, "--issuer-key"},
	} {
		args := append([]string{"testnet", "--dir", t.TempDir(), "--base-port", "31000"}, tc.args...)
		if code, _, stderr := cli(t, args...); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func writeKVTestnet(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeTestnet(t, dir, 31000, "--app", "kv")
	return dir
}

// TestLedgerClientUsageErrors: malformed ledger commands are usage errors
// (exit 2) reported before anything is sent (the testnet never runs), and
// so is an operation of the other application than client.json names.
func TestLedgerClientUsageErrors(t *testing.T) {
	dir := t.TempDir()
	writeTestnet(t, dir, 31000, "--app", "ledger")
	account := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ledger"}, "missing ledger operation"},
		{[]string{"ledger", "burn", account}, `unknown ledger operation "burn"`},
		{[]string{"ledger", "mint", account}, "ledger mint takes 2 argument(s), got 1"},
		{[]string{"ledger", "balance"}, "ledger balance takes 1 argument(s), got 0"},
		{[]string{"ledger", "transfer", "abcd", "5"}, "want the 64 hex digits pbftnode keygen prints"},
		{[]string{"ledger", "transfer", account, "-5"}, "flags go before the operation"},
		{[]string{"ledger", "transfer", account, "five"}, `amount "five": want a whole number`},
		{[]string{"ledger", "balance", account, "--json"}, "flags go before the operation"},
		{[]string{"ledger", "history", account, "--limit", "x"}, "ledger history"},
		{[]string{"ledger", "history", "--limit", "99999999999", account}, "too large"},
		{[]string{"--old-absent", "ledger", "balance", account}, "--old-absent applies only to cas"},
		{[]string{"--key", filepath.Join(dir, "missing.pem"), "ledger", "balance", account}, "missing.pem"},
		{[]string{"delete", "a"}, "says the cluster replicates ledger, not kv: not sending delete"},
	} {
		args := append([]string{"client", "--dir", dir, "--timeout", "1s"}, tc.args...)
		code, stdout, stderr := cli(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	// A ledger balance read is a key-value delete to the key-value store
	// (the encodings share field numbers): refused before it is sent.
	kvDir := writeKVTestnet(t)
	code, stdout, stderr := cli(t, "client", "--dir", kvDir, "--timeout", "1s", "ledger", "balance", account)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "says the cluster replicates kv, not ledger: not sending ledger balance") {
		t.Errorf("ledger balance on a key-value testnet: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// ledgerJSON runs `pbftnode client --json` and decodes its report.
func ledgerJSON(t *testing.T, dir string, args ...string) (int, map[string]any) {
	t.Helper()
	code, stdout, stderr := cli(t, append([]string{"client", "--dir", dir, "--json"}, args...)...)
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("--json %q: stdout %q is not JSON (%v); stderr %q", args, stdout, err, stderr)
	}
	return code, got
}

// TestLedgerClientAgainstTestnet runs every ledger command against an
// in-process ledger testnet, as the testnet's client (the issuer) and, with
// --key, as other accounts: text and JSON output, and the refusals (an
// overdraft, a mint by a key that is no issuer) with exit status 4.
func TestLedgerClientAgainstTestnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-replica libp2p cluster")
	}
	keys := t.TempDir()
	aliceKey, alice := keygenAccount(t, keys, "alice")
	bobKey, bob := keygenAccount(t, keys, "bob")
	malloryKey, mallory := keygenAccount(t, keys, "mallory")
	dir := startClusterWith(t, "--app", "ledger")

	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"ledger", "mint", alice, "1000"}, "minted 1000 to " + alice + ": its balance is 1000 (total minted 1000)\n"},
		{[]string{"--key", aliceKey, "ledger", "transfer", bob, "300"}, "transferred 300 to " + bob + ": the sender's balance is 700\n"},
		{[]string{"--key", bobKey, "ledger", "transfer", alice, "50"}, "transferred 50 to " + alice + ": the sender's balance is 250\n"},
		{[]string{"ledger", "balance", alice}, "750\n"},
		{[]string{"--key", malloryKey, "ledger", "balance", bob}, "250\n"},
		{[]string{"ledger", "balance", mallory}, "0\n"},
		{[]string{"ledger", "history", mallory}, "(no history)\n"},
		{[]string{"ledger", "history", bob, "--limit", "1"}, "2 transfer 50 from " + bob + " to " + alice + ", balance after 250\n"},
		{[]string{"ledger", "history", alice}, "1 mint 1000 from (mint) to " + alice + ", balance after 1000\n" +
			"2 transfer 300 from " + alice + " to " + bob + ", balance after 700\n" +
			"3 transfer 50 from " + bob + " to " + alice + ", balance after 750\n"},
	} {
		code, stdout, stderr := cli(t, append([]string{"client", "--dir", dir}, step.args...)...)
		if code != 0 || stdout != step.want {
			t.Fatalf("%q: exit %d, stdout %q (want %q), stderr %q", step.args, code, stdout, step.want, stderr)
		}
	}

	for _, step := range []struct {
		args   []string
		status int
		want   map[string]any
	}{
		{[]string{"ledger", "balance", bob}, 0, map[string]any{"operation": "ledger balance", "outcome": "executed", "ok": true, "account": bob, "balance": 250.0, "total_minted": 1000.0}},
		{[]string{"ledger", "balance", mallory}, 0, map[string]any{"operation": "ledger balance", "outcome": "executed", "ok": true, "account": mallory, "balance": 0.0, "total_minted": 1000.0}},
		{[]string{"ledger", "history", mallory}, 0, map[string]any{"operation": "ledger history", "outcome": "executed", "ok": true, "account": mallory, "balance": 0.0, "total_minted": 1000.0, "history": []any{}}},
		{[]string{"ledger", "history", "--limit", "1", alice}, 0, map[string]any{"operation": "ledger history", "outcome": "executed", "ok": true, "account": alice, "balance": 750.0, "total_minted": 1000.0,
			"history": []any{map[string]any{"sequence_in_account": 3.0, "kind": "transfer", "from": bob, "to": alice, "amount": 50.0, "balance_after": 750.0}}}},
		{[]string{"--key", aliceKey, "ledger", "transfer", bob, "5000"}, 4, map[string]any{"operation": "ledger transfer", "outcome": "refused", "ok": false, "error": "insufficient funds: balance 750, amount 5000"}},
		{[]string{"--key", malloryKey, "ledger", "transfer", mallory, "10"}, 4, map[string]any{"operation": "ledger transfer", "outcome": "refused", "ok": false, "error": "insufficient funds: balance 0, amount 10"}},
		{[]string{"--key", malloryKey, "ledger", "mint", mallory, "10"}, 4, map[string]any{"operation": "ledger mint", "outcome": "refused", "ok": false, "error": "mint: sender " + mallory + " is not an issuer"}},
		{[]string{"--key", aliceKey, "ledger", "mint", alice, "1"}, 4, map[string]any{"operation": "ledger mint", "outcome": "refused", "ok": false, "error": "mint: sender " + alice + " is not an issuer"}},
		{[]string{"ledger", "mint", bob, "1"}, 0, map[string]any{"operation": "ledger mint", "outcome": "executed", "ok": true, "account": bob, "amount": 1.0, "balance": 251.0, "total_minted": 1001.0}},
		{[]string{"--key", bobKey, "ledger", "transfer", mallory, "1"}, 0, map[string]any{"operation": "ledger transfer", "outcome": "executed", "ok": true, "to": mallory, "amount": 1.0, "balance": 250.0, "total_minted": 1001.0}},
	} {
		code, got := ledgerJSON(t, dir, step.args...)
		if code != step.status {
			t.Errorf("--json %q: exit %d, want %d (%v)", step.args, code, step.status, got)
		}
		if gotJSON, wantJSON := mustJSON(t, got), mustJSON(t, step.want); gotJSON != wantJSON {
			t.Errorf("--json %q:\n got %s\nwant %s", step.args, gotJSON, wantJSON)
		}
	}
	// The refused operations changed nothing.
	for account, want := range map[string]string{alice: "750\n", bob: "250\n", mallory: "1\n"} {
		if code, stdout, stderr := cli(t, "client", "--dir", dir, "ledger", "balance", account); code != 0 || stdout != want {
			t.Errorf("balance %s: exit %d, %q (want %q), stderr %q", account, code, stdout, want, stderr)
		}
	}
}

// mustJSON is v as canonical JSON (map keys sorted).
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunApplicationOverride: run --application replaces the file's
// application (and is checked like it): what `pbftnode run` loads
// (launch.LoadReplica) opens the ledger on a key-value home given
// --application ledger, the key-value store on a ledger home given
// --application kv, and refuses a malformed value.
func TestRunApplicationOverride(t *testing.T) {
	kvHome := filepath.Join(writeKVTestnet(t), "node0")
	ledgerDir := t.TempDir()
	writeTestnet(t, ledgerDir, 31000, "--app", "ledger")
	ledgerHome := filepath.Join(ledgerDir, "node0")
	for _, tc := range []struct {
		home       string
		args       []string
		wantLedger bool
	}{
		{kvHome, nil, false},
		{kvHome, []string{"--application", "ledger"}, true},
		{ledgerHome, nil, true},
		{ledgerHome, []string{"--application", "kv"}, false},
	} {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		settings := config.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, cfg, err := launch.LoadReplica(tc.home, settings, nil)
		if err != nil {
			t.Fatalf("%s %q: %v", tc.home, tc.args, err)
		}
		if (cfg.Application != nil) != tc.wantLedger {
			t.Errorf("%s %q: an application opener %v, want the ledger's: %v", tc.home, tc.args, cfg.Application != nil, tc.wantLedger)
		}
	}
	code, _, stderr := cli(t, "run", "--home", kvHome, "--application", "ledgr")
	if code == 0 || !strings.Contains(stderr, `application "ledgr": want "kv" (the default), "ledger"`) {
		t.Fatalf("run --application ledgr: exit %d, stderr %q", code, stderr)
	}
}
