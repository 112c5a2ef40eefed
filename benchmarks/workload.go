package benchmarks

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/ledger"
)

// The applications a benchmark can replicate (Config.App).
const (
	AppKV     = "kv"     // the key-value store: puts and gets
	AppLedger = "ledger" // the ledger: transfers (and balance reads)
)

// ledgerMintAmount is what the setup mints to each client account: far
// more than any run transfers (one unit per transfer), so no transfer is
// refused for lack of funds.
const ledgerMintAmount = 1 << 40

// workload is what the clients send and how a result counts.
type workload interface {
	// op draws the next operation of client ci; read reports a read (a
	// get, a balance), which the load sends through client.Read.
	op(ci int, rng *rand.Rand) (op []byte, read bool)
	// executed reports whether raw is the result of an executed
	// operation (not one the application refused).
	executed(raw []byte) bool
}

// kvWorkload puts (and gets, GetRatio of them) on a key drawn uniformly
// from the key space.
type kvWorkload struct {
	cfg   Config
	value []byte
}

func newKVWorkload(cfg Config) *kvWorkload {
	value := make([]byte, cfg.Payload)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x76616c7565))
	for i := range value {
		value[i] = byte('a' + rng.IntN(26))
	}
	return &kvWorkload{cfg: cfg, value: value}
}

func (w *kvWorkload) op(_ int, rng *rand.Rand) ([]byte, bool) {
	key := execution.PreloadKey(rng.IntN(w.cfg.Keys))
	if rng.Float64() < w.cfg.GetRatio {
		return execution.EncodeGet(key), true
	}
	return execution.EncodePut(key, w.value), false
}

func (w *kvWorkload) executed(raw []byte) bool {
	res, err := execution.DecodeResult(raw)
	return err == nil && res.Error == ""
}

// ledgerWorkload has client ci transfer one unit to the next client's
// account (to the issuer's with a single client), or, GetRatio of the
// time, read its own balance. Accounts are the clients' public keys.
type ledgerWorkload struct {
	cfg      Config
	accounts [][]byte
	issuer   []byte
}

func (w *ledgerWorkload) op(ci int, rng *rand.Rand) ([]byte, bool) {
	if rng.Float64() < w.cfg.GetRatio {
		return ledger.EncodeBalance(w.accounts[ci]), true
	}
	to := w.issuer
	if len(w.accounts) > 1 {
		to = w.accounts[(ci+1)%len(w.accounts)]
	}
	return ledger.EncodeTransfer(to, 1), false
}

func (w *ledgerWorkload) executed(raw []byte) bool {
	res, err := ledger.DecodeResult(raw)
	return err == nil && res.Error == ""
}

// ledgerIssuer is the benchmark's ledger issuer: its key, written to
// DIR/issuer.key for `pbftnode testnet --issuer-key`.
type ledgerIssuer struct {
	key  ed25519.PrivateKey
	path string
}

// newLedgerIssuer generates the issuer key and writes it into dir.
func newLedgerIssuer(dir string) (*ledgerIssuer, error) {
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "issuer.key")
	if err := keyfile.Write(path, key); err != nil {
		return nil, fmt.Errorf("ledger issuer key: %w", err)
	}
	return &ledgerIssuer{key: key, path: path}, nil
}

// mintToClients is the ledger benchmark's setup: the issuer mints
// ledgerMintAmount to every client's account, before the load starts (it
// also shows the cluster commits, as probe does for the key-value store).
// It returns the workload over those accounts.
func mintToClients(ctx context.Context, cfg Config, issuer *ledgerIssuer, cl *cluster, clients []*client.Client) (*ledgerWorkload, error) {
	clusterID, members, err := cl.clientConfig()
	if err != nil {
		return nil, err
	}
	ic, err := newClient(cfg, clusterID, members, issuer.key)
	if err != nil {
		return nil, fmt.Errorf("ledger issuer: %w", err)
	}
	defer ic.Close()
	w := &ledgerWorkload{cfg: cfg, issuer: issuer.key.Public().(ed25519.PublicKey)}
	for _, cl := range clients {
		w.accounts = append(w.accounts, cl.ID()[:ed25519.PublicKeySize])
	}
	mctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	errs := make([]error, len(w.accounts))
	var wg sync.WaitGroup
	for i, account := range w.accounts {
		wg.Go(func() {
			raw, err := ic.Invoke(mctx, ledger.EncodeMint(account, ledgerMintAmount))
			if err == nil && !w.executed(raw) {
				res, _ := ledger.DecodeResult(raw)
				err = fmt.Errorf("refused: %s", res.GetError())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("ledger setup: mint to client %d: %w", i, err)
		}
	}
	return w, nil
}
