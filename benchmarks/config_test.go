package benchmarks

import (
	"errors"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Binary: "/bin/true"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocol != "pbft" || c.Replicas != 4 || c.Scenario != ScenarioNone || c.Duration != 10*time.Second {
		t.Errorf("defaults: %s n=%d %s %v", c.Protocol, c.Replicas, c.Scenario, c.Duration)
	}
	r, err := Config{Binary: "/bin/true", Protocol: "raft"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if r.Replicas != 3 || r.faultTolerance() != 1 {
		t.Errorf("raft default n=%d f=%d, want 3 and 1", r.Replicas, r.faultTolerance())
	}
	b, err := Config{Binary: "/bin/true", Scenario: ScenarioByzantine}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if b.Warmup != 0 || b.ByzantineStrategy != DefaultByzantineStrategy {
		t.Errorf("byzantine: warmup %v strategy %q, want 0 (the fault is measured) and %q", b.Warmup, b.ByzantineStrategy, DefaultByzantineStrategy)
	}
	for n, f := range map[int]int{4: 1, 7: 2, 10: 3} {
		if got := (Config{Protocol: "pbft", Replicas: n}).faultTolerance(); got != f {
			t.Errorf("pbft n=%d: f=%d, want %d", n, got, f)
		}
	}
	for n, f := range map[int]int{3: 1, 5: 2, 7: 3} {
		if got := (Config{Protocol: "raft", Replicas: n}).faultTolerance(); got != f {
			t.Errorf("raft n=%d: f=%d, want %d", n, got, f)
		}
	}
}

func TestConfigRejects(t *testing.T) {
	for name, c := range map[string]Config{
		"unknown protocol":  {Protocol: "paxos"},
		"pbft n=3":          {Protocol: "pbft", Replicas: 3},
		"floor n=3":         {Protocol: ProtocolFloor, Replicas: 3},
		"floor crash":       {Protocol: ProtocolFloor, Scenario: ScenarioCrashLeader},
		"raft byzantine":    {Protocol: "raft", Scenario: ScenarioByzantine},
		"unknown scenario":  {Scenario: "meteor"},
		"payload 100":       {Payload: 100},
		"window 65":         {Window: 65},
		"get ratio 2":       {GetRatio: 2},
		"unknown strategy":  {Scenario: ScenarioByzantine, ByzantineStrategy: "lie"},
		"negative duration": {Duration: -time.Second},
		"unknown app":       {App: "bank"},
		"ledger floor":      {App: AppLedger, Protocol: ProtocolFloor},
		"ledger byzantine":  {App: AppLedger, Scenario: ScenarioByzantine},
		"ledger attack":     {App: AppLedger, Scenario: AttackScenarios[0]},
	} {
		c.Binary = "/bin/true"
		if _, err := c.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		}
	}
}

func TestComparePlan(t *testing.T) {
	runs := CompareOptions{}.plan()
	count := make(map[string]int)
	for _, r := range runs {
		count[r.cfg.Protocol+" "+r.group]++
		if r.group != GroupScaling && r.cfg.Replicas != map[string]int{"pbft": 4, "raft": 3, ProtocolFloor: 4}[r.cfg.Protocol] {
			t.Errorf("%s %s runs n=%d, want the smallest cluster", r.cfg.Protocol, r.group, r.cfg.Replicas)
		}
	}
	want := map[string]int{
		"pbft scaling": 3, "pbft fsync-off": 1, "pbft crash-backup": 1, "pbft crash-leader": 1, "pbft byzantine": 1,
		"pbft one-client": 1, "pbft rate-sweep": 5, "floor floor": 1,
		"raft scaling": 3, "raft fsync-off": 1, "raft crash-backup": 1, "raft crash-leader": 1,
		"raft one-client": 1, "raft rate-sweep": 5,
		"pbft moderate": 1, "raft moderate": 1,
		"etcd scaling": 1, "etcd moderate": 1, "etcd one-client": 1,
		"cometbft scaling": 1, "cometbft moderate": 1, "cometbft one-client": 1,
	}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%s: %d runs, want %d", k, count[k], v)
		}
	}
	if len(runs) != 34 {
		t.Errorf("%d runs, want 34", len(runs))
	}
	for _, r := range runs {
		if r.group == GroupModerate && (r.cfg.Clients != ModerateClients || r.cfg.Window != ModerateWindow) {
			t.Errorf("%s moderate load %dx%d, want %dx%d", r.cfg.Protocol, r.cfg.Clients, r.cfg.Window, ModerateClients, ModerateWindow)
		}
	}
	// The peers come last, each named as itself, fsync on.
	for _, r := range runs[28:] {
		if r.cfg.Peer == "" || r.cfg.Protocol != r.cfg.Peer || r.cfg.NoFsync {
			t.Errorf("run %s %s: peer %q, fsync off %v; want a peer run with fsync on", r.cfg.Protocol, r.group, r.cfg.Peer, r.cfg.NoFsync)
		}
	}
	if n := len(CompareOptions{NoPeers: true}.plan()); n != 28 {
		t.Errorf("NoPeers: %d runs, want 28", n)
	}
	for _, r := range runs {
		if r.cfg.QuietWait != DefaultCompareQuietWait {
			t.Fatalf("%s %s waits %v for a quiet machine, want %v", r.cfg.Protocol, r.group, r.cfg.QuietWait, DefaultCompareQuietWait)
		}
	}
	// Scaling runs come first for each protocol: the sweep needs the
	// saturated throughput of the smallest one.
	if runs[0].group != GroupScaling || runs[0].cfg.Replicas != 4 {
		t.Errorf("first run is %s n=%d, want scaling n=4", runs[0].group, runs[0].cfg.Replicas)
	}
}

// TestConnections: the logical clients share DefaultConnections
// connections unless told otherwise, never more connections than clients,
// a pbftnode connection carries at most 64 outstanding operations, and the
// ledger and the attack scenarios keep one key per client.
func TestConnections(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want int
	}{
		{"64 x 1", Config{Clients: 64, Window: 1}, 4},
		{"16 x 64", Config{Clients: 16, Window: 64}, 16},
		{"1 client", Config{Clients: 1, Window: 1}, 1},
		{"64 x 1 over 64", Config{Clients: 64, Window: 1, Connections: 64}, 64},
		{"16 x 64 over 2", Config{Clients: 16, Window: 64, Connections: 2}, 16},
		{"8 x 16 over 1", Config{Clients: 8, Window: 16, Connections: 1}, 2},
		{"ledger", Config{Clients: 8, Window: 1, App: AppLedger}, 8},
		{"attack", Config{Clients: 8, Window: 1, Scenario: ScenarioSlowPrimary}, 8},
		{"etcd 16 x 64", Config{Clients: 16, Window: 64, Peer: PeerEtcd}, 4},
	}
	for _, c := range cases {
		if got := c.cfg.connections(); got != c.want {
			t.Errorf("%s: %d connections, want %d", c.name, got, c.want)
		}
	}
	shared := spread([]*client.Client{new(client.Client), new(client.Client)}, 5)
	if len(shared) != 5 || shared[0] != shared[2] || shared[0] == shared[1] {
		t.Errorf("spread over 2 clients: %p", shared)
	}
}
