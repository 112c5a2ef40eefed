package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/launch"
)

// startRaftWithSpare writes a Raft testnet of 3 with one spare and starts
// all four in this process.
func startRaftWithSpare(t *testing.T) (string, []node.Runner) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	dir := filepath.Join(t.TempDir(), "raft")
	args := []string{"testnet", "--protocol", "raft", "--replicas", "3", "--spares", "1", "--dir", dir,
		"--base-port", strconv.Itoa(freeBasePort(t, rng, 4)), "--unsafe-no-fsync"}
	if code, _, stderr := cli(t, args...); code != 0 {
		t.Fatalf("testnet: exit %d: %s", code, stderr)
	}
	nodes := make([]node.Runner, 4)
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.Close()
			}
		}
	})
	for i := range nodes {
		_, cfg, err := launch.LoadReplica(filepath.Join(dir, fmt.Sprintf("node%d", i)), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if nodes[i], err = launch.Start(cfg, nil); err != nil {
			t.Fatalf("start node%d: %v", i, err)
		}
	}
	return dir, nodes
}

// waitMembers waits until every runner of nodes (nil ones skipped)
// reports epoch and members.
func waitMembers(t *testing.T, nodes []node.Runner, epoch uint64, members string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		agree := true
		for _, n := range nodes {
			if n == nil {
				continue
			}
			if st := n.Status(); st.Epoch != epoch || fmt.Sprint(st.Members) != members {
				agree = false
			}
		}
		if agree {
			return
		}
		if time.Now().After(deadline) {
			for i, n := range nodes {
				if n != nil {
					t.Logf("node%d: epoch %d members %v", i, n.Status().Epoch, n.Status().Members)
				}
			}
			t.Fatalf("members do not agree on epoch %d with %s", epoch, members)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminReconfiguresRaft: on a Raft testnet, `admin add-replica --home`
// adds a running spare and `admin remove-replica` removes a member; every
// member reports the new epoch and members after each, and a fresh
// `client` command of the directory, whose client.json still names the
// removed member, reads back a write through the current members.
func TestAdminReconfiguresRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Raft cluster and a spare")
	}
	dir, nodes := startRaftWithSpare(t)
	run := func(want int, args ...string) string {
		t.Helper()
		code, stdout, stderr := cli(t, args...)
		if code != want {
			t.Fatalf("%s: exit %d (want %d): %s%s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		return stdout
	}
	run(0, "client", "--dir", dir, "--timeout", "60s", "put", "a", "1")
	out := run(0, "admin", "--dir", dir, "add-replica", "--home", filepath.Join(dir, "node3"))
	if !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("add-replica printed %q", out)
	}
	waitMembers(t, nodes, 1, "[0 1 2 3]")
	run(0, "client", "--dir", dir, "--timeout", "60s", "put", "b", "2")

	run(0, "admin", "--dir", dir, "remove-replica", "0")
	waitMembers(t, nodes[1:], 2, "[1 2 3]")
	if err := nodes[0].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[0] = nil
	// A removed index is never used again.
	code, _, stderr := cli(t, "admin", "--dir", dir, "remove-replica", "0")
	if code != 4 || !strings.Contains(stderr, "replica 0 is not a member") {
		t.Fatalf("removing 0 again: exit %d, %s", code, stderr)
	}
	if out := run(0, "client", "--dir", dir, "--timeout", "60s", "get", "b"); out != "2\n" {
		t.Fatalf("get b after the changes: %q", out)
	}
	if out := run(0, "admin", "--dir", dir, "members"); !strings.Contains(out, "epoch:    2 (3 members") {
		t.Fatalf("admin members: %q", out)
	}

	// Two administrators, both needed from now on: one key is not enough.
	second := filepath.Join(t.TempDir(), "admin-b.pem")
	run(0, "keygen", "--out", second)
	run(0, "admin", "--dir", dir, "set-admins", "--threshold", "2", filepath.Join(dir, "admin0.pem"), second)
	if out := run(0, "admin", "--dir", dir, "members"); !strings.Contains(out, "admins:   2 of 2 must sign a change") {
		t.Fatalf("admin members after set-admins: %q", out)
	}
	code, _, stderr = cli(t, "admin", "--dir", dir, "remove-replica", "1")
	if code != 2 || !strings.Contains(stderr, "1 of the 2 administrator keys") {
		t.Fatalf("a change with one of two admin keys: exit %d, %s", code, stderr)
	}
	run(0, "admin", "--dir", dir, "--admin-key", filepath.Join(dir, "admin0.pem"), "--admin-key", second, "remove-replica", "1")
	waitMembers(t, nodes[2:], 4, "[2 3]")

	// The directory's commands keep what they learned: a fresh client
	// command starts from the current members, not client.json's.
	if out := run(0, "client", "--dir", dir, "--timeout", "60s", "get", "a"); out != "1\n" {
		t.Fatalf("get a after the changes: %q", out)
	}
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(dir, "client.json"), &cf); err != nil {
		t.Fatal(err)
	}
	cached, ok := cachedMembership(dir, cf.ClusterID)
	if !ok || cached.Epoch != 4 || fmt.Sprint(cached.Indices()) != "[2 3]" {
		t.Fatalf("the directory's cached configuration: %v epoch %d members %v; want epoch 4 of [2 3]", ok, cached.Epoch, cached.Indices())
	}
	ccfg, err := pbftnode.ClientConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	useCachedMembership(dir, &ccfg)
	if ccfg.Epoch != 4 || len(ccfg.Replicas) != 2 || ccfg.Replicas[0].Index != 2 {
		t.Fatalf("a fresh command's client: epoch %d, %d replicas", ccfg.Epoch, len(ccfg.Replicas))
	}
}
