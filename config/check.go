package config

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/raftmode"
)

// findings collects what the checks find: problems make a configuration
// unusable, warnings point at settings that are legal but probably
// unintended.
type findings struct {
	warnings []string
	problems []error
}

func (f *findings) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Errorf(format, args...))
}

func (f *findings) warn(format string, args ...any) {
	f.warnings = append(f.warnings, fmt.Sprintf(format, args...))
}

// checked is what the checks decoded on the way, so that loading a home
// decodes (and reads an encrypted key) once. Fields are valid only when
// no problem was found.
type checked struct {
	replicas     []Replica
	allowlist    []ed25519.PublicKey
	key          ed25519.PrivateKey
	keyEncrypted bool
	tick         time.Duration
	application  ApplicationSpec
	issuers      []ed25519.PublicKey
	// spare: index is not among the replicas (a home that joins when an
	// administrator adds it; address names where it listens).
	spare bool
}

// Check applies every configuration rule to fc, a replica's configuration
// whose relative paths are relative to home, for the consensus protocol it
// names: the rules `pbftnode run` and `pbftnode config validate` both
// apply. It reads the key file (and its passphrase) and looks at the data
// directory, but changes nothing. It returns every problem found (none:
// the replica can start with this configuration) and the warnings.
func Check(home string, fc FileConfig) (warnings, problems []string) {
	var f findings
	check(home, fc, &f)
	for _, p := range f.problems {
		problems = append(problems, p.Error())
	}
	return f.warnings, problems
}

// check is Check, keeping what it decoded.
func check(home string, fc FileConfig, f *findings) checked {
	var c checked
	if fc.ClusterID == "" {
		f.problem("cluster_id is empty")
	}
	checkClusterSize(fc.Consensus, len(fc.Replicas), f)
	c.replicas = checkReplicas(fc.Replicas, f)
	c.allowlist = checkAllowlist(fc.ClientAllowlist, c.replicas, f)
	c.spare = checkSelf(fc, c.replicas, f)
	checkAddresses(fc, f)
	if len(fc.Admins) > 0 || fc.AdminThreshold != 0 {
		if _, err := fc.ClusterFile.Genesis(); err != nil {
			f.problem("admins: %w", err)
		}
	}
	c.application, c.issuers = checkApplication(fc, f)
	c.tick = checkTuning(fc, f)
	if info, err := os.Stat(fc.DataPath(home)); err == nil && !info.IsDir() {
		f.problem("data_dir %s is not a directory", fc.DataPath(home))
	}
	if fc.UnsafeNoFsync {
		f.warn("unsafe_no_fsync is set: a machine crash can break safety (benchmarks only)")
	}
	c.key, c.keyEncrypted = checkKey(home, fc, c.replicas, f)
	return c
}

// FaultTolerance returns f, the number of faults n replicas of the named
// consensus protocol tolerate: Byzantine faults for PBFT (n = 3f+1), crash
// faults for Raft (n = 2f+1).
func FaultTolerance(consensus string, n int) int {
	if consensus == ConsensusRaft {
		return (n - 1) / 2
	}
	return protocol.FaultTolerance(n)
}

// CheckClusterSize returns Check's problem with a cluster of n replicas of
// the named consensus protocol (an unknown protocol, too few replicas for
// it), or nil: for tools that write configurations, such as testnet.
func CheckClusterSize(consensus string, n int) error {
	var f findings
	checkClusterSize(consensus, n, &f)
	return errors.Join(f.problems...)
}

// checkClusterSize applies the consensus protocol's rule on the number of
// replicas n: PBFT needs n >= 4, Raft n >= 1; a size above the smallest
// one tolerating the same f is a warning.
func checkClusterSize(consensus string, n int, f *findings) {
	faults := FaultTolerance(consensus, n)
	switch consensus {
	case "", ConsensusPBFT:
		switch {
		case n < 4:
			f.problem("%d replicas: PBFT needs at least 4 replicas (n = 3f+1)", n)
		case n != 3*faults+1:
			f.warn("%d replicas tolerate f=%d faults, as %d would; the extra %d add cost, not tolerance", n, faults, 3*faults+1, n-(3*faults+1))
		}
	case ConsensusRaft:
		switch {
		case n < 1:
			f.problem("%d replicas: Raft needs at least 1 replica (n = 2f+1)", n)
		case n != 2*faults+1:
			f.warn("%d replicas tolerate f=%d crash faults, as %d would; the extra %d add cost, not tolerance", n, faults, 2*faults+1, n-(2*faults+1))
		}
	default:
		f.problem("protocol %q: want %q or %q", consensus, ConsensusPBFT, ConsensusRaft)
	}
}

// checkReplicas checks the replica list: index order, a valid public key
// (one a libp2p peer ID derives from), no key twice, a valid address, no
// address twice. It returns the decoded replicas.
func checkReplicas(records []ReplicaRecord, f *findings) []Replica {
	n := len(records)
	out := make([]Replica, n)
	keys := map[string]int{}
	addrs := map[string]int{}
	for i, r := range records {
		out[i] = Replica{Index: r.Index, Addr: r.Address}
		if r.Index != uint32(i) {
			f.problem("replicas[%d] has index %d; list replicas in index order 0..%d", i, r.Index, n-1)
		}
		if pub, err := keyfile.DecodePublicKey(r.PublicKey); err != nil {
			f.problem("replica %d public_key: %w", i, err)
		} else if _, err := identity.PeerIDFromPublicKey(pub); err != nil {
			f.problem("replica %d public_key: %w", i, err)
		} else {
			out[i].PublicKey = pub
			if j, dup := keys[string(pub)]; dup {
				f.problem("replica %d has the same public_key as replica %d", i, j)
			}
			keys[string(pub)] = i
		}
		if r.Address == "" {
			f.problem("replica %d has no address", i)
		} else if ma, err := multiaddr.NewMultiaddr(r.Address); err != nil {
			f.problem("replica %d address %q: %w", i, r.Address, err)
		} else {
			if j, dup := addrs[ma.String()]; dup {
				f.problem("replica %d has the same address %s as replica %d", i, ma, j)
			}
			addrs[ma.String()] = i
		}
	}
	return out
}

// checkAllowlist decodes client_allowlist (nil if it is empty); a key
// listed twice or a replica's key is a warning.
func checkAllowlist(hexKeys []string, replicas []Replica, f *findings) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	clients := map[string]int{}
	for i, k := range hexKeys {
		pub, err := keyfile.DecodePublicKey(k)
		if err == nil {
			_, err = identity.PeerIDFromPublicKey(pub)
		}
		if err != nil {
			f.problem("client_allowlist[%d] %q: %w", i, k, err)
			continue
		}
		out = append(out, pub)
		if j, dup := clients[string(pub)]; dup {
			f.warn("client_allowlist[%d] repeats client_allowlist[%d]", i, j)
		}
		clients[string(pub)] = i
		for _, r := range replicas {
			if r.PublicKey.Equal(pub) {
				f.warn("client_allowlist[%d] is replica %d's public_key; replicas need no allowlist entry", i, r.Index)
				break
			}
		}
	}
	return out
}

// checkSelf checks this replica's index and address: a member's home
// (index among the replicas) may repeat its record's address in address;
// a spare's (index not among them) must give an address of its own that
// no member has. It reports whether the home is a spare's.
func checkSelf(fc FileConfig, replicas []Replica, f *findings) bool {
	if int(fc.Index) < len(fc.Replicas) {
		if fc.Address != "" && fc.Address != fc.Replicas[fc.Index].Address {
			f.problem("address %q differs from replica %d's address %q in replicas", fc.Address, fc.Index, fc.Replicas[fc.Index].Address)
		}
		return false
	}
	if fc.Address == "" {
		f.problem("index %d is outside the %d replicas and address is empty: a spare (a replica not yet a member) must give its own address", fc.Index, len(fc.Replicas))
		return true
	}
	ma, err := multiaddr.NewMultiaddr(fc.Address)
	if err != nil {
		f.problem("address %q: %w", fc.Address, err)
		return true
	}
	for _, r := range replicas {
		if other, err := multiaddr.NewMultiaddr(r.Addr); err == nil && other.Equal(ma) {
			f.problem("address %s is replica %d's: a spare needs an address of its own", ma, r.Index)
		}
	}
	return true
}

// checkAddresses checks listen and metrics_listen.
func checkAddresses(fc FileConfig, f *findings) {
	if fc.Listen != "" {
		if _, err := multiaddr.NewMultiaddr(fc.Listen); err != nil {
			f.problem("listen %q: %w", fc.Listen, err)
		}
	}
	if fc.MetricsListen == "" {
		f.warn("metrics_listen is empty: no /metrics, /healthz, /readyz or /status, and `pbftnode status` cannot reach this replica")
	} else if err := checkHostPort(fc.MetricsListen); err != nil {
		f.problem("metrics_listen %q: %w", fc.MetricsListen, err)
	}
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
			return fmt.Errorf("host %q: %w", host, err)
		}
	}
	return nil
}

// checkTuning checks the tick interval, the client rate limit and the
// tuning of the consensus protocol fc names; it returns the tick interval
// (0: the runtime's default).
func checkTuning(fc FileConfig, f *findings) time.Duration {
	var tick time.Duration
	if fc.TickInterval != "" {
		d, err := time.ParseDuration(fc.TickInterval)
		switch {
		case err != nil:
			f.problem("tick_interval: %w", err)
		case d <= 0:
			f.problem("tick_interval %s is not positive", d)
		default:
			tick = d
		}
	}
	if fc.ClientRateLimit < 0 {
		f.problem("client_rate_limit %v is negative", fc.ClientRateLimit)
	}
	switch {
	case fc.GCPercent < -1:
		f.problem("gc_percent %d: want -1 (collect only at the memory limit), 0 (the default) or a percentage", fc.GCPercent)
	case fc.GCPercent == -1 && fc.MemoryLimitMiB == 0:
		f.problem("gc_percent -1 needs memory_limit_mib: without a limit the heap would grow without bound")
	case fc.MemoryLimitMiB < 0:
		f.problem("memory_limit_mib %d is negative", fc.MemoryLimitMiB)
	}
	if fc.GOMAXPROCS < 0 {
		f.problem("gomaxprocs %d is negative", fc.GOMAXPROCS)
	}
	for _, s := range []struct {
		name  string
		value int
	}{
		{"client_rate_burst", fc.ClientRateBurst},
		{"max_batch_size", fc.MaxBatchSize},
		{"max_in_flight", fc.MaxInFlight},
		{"max_partial_in_flight", fc.MaxPartialInFlight},
		{"pipelined_batch_below", fc.PipelinedBatchBelow},
		{"batch_delay_ticks", fc.BatchDelayTicks},
	} {
		if s.value < 0 {
			f.problem("%s %d is negative", s.name, s.value)
		}
	}
	if fc.Consensus == ConsensusRaft {
		checkRaftTuning(fc, f)
	} else {
		checkPBFTTuning(fc, f)
	}
	return tick
}

// checkPBFTTuning applies PBFT's rules on its tuning, zero settings taking
// the protocol package's defaults.
func checkPBFTTuning(fc FileConfig, f *findings) {
	interval := cmp.Or(fc.CheckpointInterval, protocol.DefaultCheckpointInterval)
	window := cmp.Or(fc.WindowSize, 2*interval)
	if window < interval {
		f.problem("window_size %d is smaller than checkpoint_interval %d", window, interval)
	}
	inFlight := cmp.Or(fc.MaxInFlight, protocol.DefaultMaxInFlight)
	if fc.MaxPartialInFlight > inFlight {
		f.problem("max_partial_in_flight %d is above max_in_flight %d", fc.MaxPartialInFlight, inFlight)
	}
}

// checkRaftTuning applies the Raft mode's rule on its ticks: a heartbeat
// shorter than the election timeout (a setting of zero or less takes the
// raftmode default).
func checkRaftTuning(fc FileConfig, f *findings) {
	election, heartbeat := fc.RaftElectionTicks, fc.RaftHeartbeatTicks
	if election <= 0 {
		election = raftmode.DefaultElectionTicks
	}
	if heartbeat <= 0 {
		heartbeat = raftmode.DefaultHeartbeatTicks
	}
	if heartbeat >= election {
		f.problem("raft_heartbeat_ticks %d is not below raft_election_ticks %d", heartbeat, election)
	}
}

// checkKey reads the replica's key and checks that it is the public key
// the replica list gives this replica; it reports whether the key file is
// encrypted.
func checkKey(home string, fc FileConfig, replicas []Replica, f *findings) (ed25519.PrivateKey, bool) {
	keyPath := fc.KeyPath(home)
	encrypted, err := keyfile.IsEncrypted(keyPath)
	if err == nil && !encrypted && fc.KeyPassphraseFile != "" {
		f.warn("key_passphrase_file is set but the key file is not encrypted")
	}
	key, err := fc.ReadKey(home)
	if err != nil {
		f.problems = append(f.problems, err)
		return nil, encrypted
	}
	pub := key.Public().(ed25519.PublicKey)
	if int(fc.Index) < len(replicas) {
		if replicas[fc.Index].PublicKey != nil && !pub.Equal(replicas[fc.Index].PublicKey) && len(fc.Admins) > 0 {
			f.warn("key file %s holds public key %s, not replica %d's public_key %s: the replica starts as a joiner and takes part once a configuration (admin rotate-key) names this key",
				keyPath, keyfile.EncodePublicKey(pub), fc.Index, fc.Replicas[fc.Index].PublicKey)
		} else if replicas[fc.Index].PublicKey != nil && !pub.Equal(replicas[fc.Index].PublicKey) {
			f.problem("key file %s holds public key %s, but replica %d's public_key is %s", keyPath, keyfile.EncodePublicKey(pub), fc.Index, fc.Replicas[fc.Index].PublicKey)
		}
		return key, encrypted
	}
	for _, r := range replicas {
		if pub.Equal(r.PublicKey) {
			f.problem("key file %s holds replica %d's key: a spare needs a key of its own", keyPath, r.Index)
		}
	}
	return key, encrypted
}
