package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode"
)

// TestAdminAgainstPBFTTestnet: on a PBFT testnet (which keeps its
// genesis membership for now), the replicas answer config_query with
// epoch 0 and their members, `admin members` and `status --json` show
// them, and `admin add-replica` prints the cluster's refusal and exits 4
// (refused), as does a change the rules refuse before it is sent.
func TestAdminAgainstPBFTTestnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-replica libp2p cluster")
	}
	dir := startClusterWith(t, "--spares", "1")
	if code, _, stderr := cli(t, "client", "--dir", dir, "put", "a", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}

	c, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := c.Membership(ctx)
	if err != nil {
		t.Fatalf("config_query: %v", err)
	}
	if cfg.Epoch != 0 || fmt.Sprint(cfg.Indices()) != "[0 1 2 3]" || len(cfg.Admins) != 1 || cfg.AdminThreshold != 1 {
		t.Fatalf("config_query: epoch %d, members %v, %d of %d admins", cfg.Epoch, cfg.Indices(), cfg.AdminThreshold, len(cfg.Admins))
	}

	code, stdout, stderr := cli(t, "admin", "--dir", dir, "--json", "members")
	if code != 0 {
		t.Fatalf("admin members: exit %d: %s", code, stderr)
	}
	var members membersJSON
	if err := json.Unmarshal([]byte(stdout), &members); err != nil {
		t.Fatalf("admin members --json: %q: %v", stdout, err)
	}
	if members.Epoch != 0 || len(members.Members) != 4 || members.Members[3].Index != 3 || members.AdminThreshold != 1 {
		t.Fatalf("admin members --json: %+v", members)
	}
	if code, stdout, _ := cli(t, "admin", "--dir", dir, "members"); code != 0 || !strings.Contains(stdout, "epoch:    0 (4 members, tolerates f=1)") {
		t.Fatalf("admin members: exit %d: %q", code, stdout)
	}

	code, _, stderr = cli(t, "admin", "--dir", dir, "remove-replica", "7")
	if code != 4 || !strings.Contains(stderr, "replica 7 is not a member") {
		t.Fatalf("remove-replica 7: exit %d (want 4), stderr %q", code, stderr)
	}

	code, stdout, stderr = cli(t, "status", "--home", filepath.Join(dir, "node2"), "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	var st struct {
		Epoch   *uint64  `json:"epoch"`
		Members []uint32 `json:"members"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.Epoch == nil || *st.Epoch != 0 || fmt.Sprint(st.Members) != "[0 1 2 3]" {
		t.Fatalf("status --json: epoch and members missing or wrong (%v): %s", err, stdout)
	}

	// PBFT applies configuration changes (node/pbft, configuration epochs).
	code, stdout, stderr = cli(t, "admin", "--dir", dir, "add-replica", "--home", filepath.Join(dir, "node4"))
	if code != 0 || !strings.Contains(stdout, "ok: ") {
		t.Fatalf("add-replica on PBFT: exit %d (want 0), stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestAdminUsageErrors: malformed admin commands exit 2 before anything
// is sent.
func TestAdminUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"admin"},
		{"admin", "--dir", dir},
		{"admin", "--dir", dir, "rotate-key", "1"},
		{"admin", "--dir", dir, "remove-replica"},
		{"admin", "--dir", dir, "remove-replica", "x"},
		{"admin", "--dir", dir, "add-replica"},
		{"admin", "--dir", dir, "frobnicate"},
		{"admin", "--dir", dir, "members", "extra"},
		{"admin", "--dir", dir, "members"}, // no client.json
	} {
		if code, _, stderr := cli(t, args...); code != 2 {
			t.Errorf("%s: exit %d (want 2), stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
}
