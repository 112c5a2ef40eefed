package benchmarks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pbftnode/pbftnode/config"
)

// etcdMember is one etcd member's name, loopback ports and data
// directory.
type etcdMember struct {
	name       string
	clientPort int
	peerPort   int
	dataDir    string
}

func (m etcdMember) clientURL() string { return fmt.Sprintf("http://127.0.0.1:%d", m.clientPort) }
func (m etcdMember) peerURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", m.peerPort) }

// etcdArgs is member i's etcd command line: a static --initial-cluster of
// every member, loopback URLs, its own data directory, fsync on unless
// noFsync (etcd's own --unsafe-no-fsync; the caller checked this etcd has
// it). Everything else is etcd's default (heartbeat 100 ms, election
// 1 s, snapshot count).
func etcdArgs(members []etcdMember, i int, token string, noFsync bool) []string {
	var initial []string
	for _, m := range members {
		initial = append(initial, m.name+"="+m.peerURL())
	}
	m := members[i]
	args := []string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL(),
		"--advertise-client-urls", m.clientURL(),
		"--listen-peer-urls", m.peerURL(),
		"--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-token", token,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "warn",
	}
	if noFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	return args
}

// etcdCluster is a started etcd cluster.
type etcdCluster struct {
	version string
	members []etcdMember
	procs   []*replicaProc
	logs    []string
}

// startEtcd starts cfg.Replicas etcd members in dir and waits until a
// Put through every member's endpoint succeeds.
func startEtcd(ctx context.Context, cfg Config, binary, dir string) (peerCluster, error) {
	version, help := etcdVersion(binary)
	if cfg.NoFsync && !strings.Contains(help, "--unsafe-no-fsync") {
		return nil, fmt.Errorf("%w: this etcd (%s) has no --unsafe-no-fsync flag (etcd 3.5 added it): run it with fsync on", ErrConfig, version)
	}
	ports, err := freeLoopbackPorts(2 * cfg.Replicas)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{version: version}
	for i := range cfg.Replicas {
		c.members = append(c.members, etcdMember{
			name: fmt.Sprintf("m%d", i), clientPort: ports[2*i], peerPort: ports[2*i+1],
			dataDir: filepath.Join(dir, fmt.Sprintf("m%d.etcd", i)),
		})
		c.logs = append(c.logs, filepath.Join(dir, fmt.Sprintf("m%d.log", i)))
	}
	token := fmt.Sprintf("pbftnode-bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	for i := range c.members {
		p, err := startProcess(binary, etcdArgs(c.members, i, token, cfg.NoFsync), c.logs[i], config.CPUShare(len(c.members)))
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("etcd member %d: %w", i, err)
		}
		c.procs = append(c.procs, p)
	}
	probeCli, err := c.client()
	if err != nil {
		c.stop()
		return nil, err
	}
	defer probeCli.Close()
	err = waitMembers(ctx, c.procs, c.logs, peerStartTimeout, func(ctx context.Context) error {
		_, err := probeCli.Put(ctx, "bench-probe", "1")
		return err
	})
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return c, nil
}

// etcdVersion returns the first line of `etcd --version` and the text of
// `etcd --help` ("" where they fail).
func etcdVersion(binary string) (version, help string) {
	out, _ := exec.Command(binary, "--version").Output()
	version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	version = strings.TrimPrefix(version, "etcd Version: ")
	helpOut, _ := exec.Command(binary, "--help").CombinedOutput()
	return version, string(helpOut)
}

// client connects one clientv3 client (one gRPC connection, balanced
// over every member's endpoint).
func (c *etcdCluster) client() (*clientv3.Client, error) {
	var endpoints []string
	for _, m := range c.members {
		endpoints = append(endpoints, m.clientURL())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// runners connects conns clientv3 clients (Config.Connections, each one
// gRPC connection) and spreads the n logical clients over them round
// robin.
func (c *etcdCluster) runners(n, conns int) ([]opRunner, func(), error) {
	var clis []*clientv3.Client
	closeAll := func() {
		for _, cli := range clis {
			_ = cli.Close()
		}
	}
	for range conns {
		cli, err := c.client()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clis = append(clis, cli)
	}
	out := make([]opRunner, n)
	for i := range out {
		out[i] = etcdRunner{cli: clis[i%len(clis)]}
	}
	return out, closeAll, nil
}

func (c *etcdCluster) processes() []*replicaProc { return c.procs }

func (c *etcdCluster) describe(res *Result) {
	res.PeerVersion = c.version
	res.PeerConnections = res.Connections
	res.ClientRetransmitMs = 0
}

func (c *etcdCluster) stop() { stopProcesses(c.procs, peerStopGrace) }

// etcdRunner runs the workload's operations on etcd: a put is Put(key,
// value), a get a linearizable Get (etcd's default, which is what
// pbftnode's reads give).
type etcdRunner struct{ cli *clientv3.Client }

func (r etcdRunner) Invoke(ctx context.Context, op []byte) ([]byte, error) {
	o, err := decodeKVOp(op)
	if err != nil {
		return nil, err
	}
	if o.get {
		_, err = r.cli.Get(ctx, string(o.key))
	} else {
		_, err = r.cli.Put(ctx, string(o.key), string(o.value))
	}
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return executedResult, nil
}

func (r etcdRunner) Read(ctx context.Context, op []byte) ([]byte, error) { return r.Invoke(ctx, op) }
