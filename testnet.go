package pbftnode

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/pbftnode/pbftnode/config"
)

// The consensus protocols a Testnet (and a configuration file) can name.
const (
	// PBFT tolerates f Byzantine replicas out of n = 3f+1 (at least 4).
	PBFT = config.ConsensusPBFT
	// Raft tolerates f crashed replicas out of n = 2f+1 (no Byzantine
	// fault).
	Raft = config.ConsensusRaft
)

// Testnet describes a local cluster for WriteTestnet (config.Testnet): its
// directory, number of replicas, protocol, host and base port.
type Testnet = config.Testnet

// WriteTestnet writes a local cluster's configuration (config.WriteTestnet):
// fresh keys, a home per replica (TestnetHome) with fsync on unless
// t.UnsafeNoFsync, and DIR/client.json with a client key for Dial. Leave
// t.Application empty for replicas that StartReplica runs.
func WriteTestnet(t Testnet) error {
	_, err := config.WriteTestnet(t)
	return err
}

// TestnetHome is the home WriteTestnet writes for replica i under dir.
func TestnetHome(dir string, i int) string {
	return filepath.Join(dir, "node"+strconv.Itoa(i))
}

// FreeBasePort's search: bases are drawn below Linux's default ephemeral
// range (32768-60999), so that outgoing connections, which take their
// local ports from that range, cannot take a replica's port between the
// check and the replica's listen.
const (
	freePortAttempts = 64
	freePortLow      = 20000
	freePortHigh     = 32768
)

// FreeBasePort returns a base port for a Testnet of n replicas on host:
// one whose replica ports (P..P+n-1) and metrics ports (P+100..P+100+n-1)
// were all free when it checked, drawn at random from 20000 to 32767.
// Another program may still take one before the replicas listen;
// StartReplica then fails, saying so.
func FreeBasePort(host string, n int) (int, error) {
	if n < 1 || n > 100 {
		return 0, fmt.Errorf("pbftnode: free ports for %d replicas: want 1 to 100", n)
	}
	span := freePortHigh - freePortLow - 100 - n
	for range freePortAttempts {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("pbftnode: free ports: %w", err)
		}
		base := freePortLow + int(binary.BigEndian.Uint32(b[:])%uint32(span))
		if portsFree(host, base, n) && portsFree(host, base+100, n) {
			return base, nil
		}
	}
	return 0, errors.New("pbftnode: free ports: no free range found")
}

// portsFree reports whether host's ports from..from+n-1 can all be
// listened on now.
func portsFree(host string, from, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for p := from; p < from+n; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}
