package simkit

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/internal/ledgermodel"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/storage"
)

func TestApplicationOpensKVOrLedger(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, l, err := (Application{}).Open(db); err != nil || l != nil {
		t.Fatalf("key-value Open = ledger %v, %v; want no ledger", l, err)
	}
	if _, ok := (Application{}).Source(nil).(*kvmodel.Source); !ok {
		t.Fatal("the key-value run's clients do not draw key-value operations")
	}
	accounts := [][]byte{make([]byte, 32)}
	if _, ok := (Application{Ledger: true}).Source(accounts).(*ledgermodel.Source); !ok {
		t.Fatal("the ledger run's clients do not draw ledger operations")
	}
}

// TestCheckLedger: a broken ledger is reported, except while a state
// transfer is in progress (its entries are partial until it finishes).
func TestCheckLedger(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	issuer := sha256.Sum256([]byte("issuer"))
	app, l, err := (Application{Ledger: true, Issuer: issuer[:]}).Open(db)
	if err != nil || l == nil || app != l {
		t.Fatalf("ledger Open = %v, %v, %v", app, l, err)
	}
	if d := CheckLedger(nil, db, "replica 0", "now"); d != "" {
		t.Fatalf("the key-value store was checked as a ledger: %s", d)
	}
	if res, _ := ledger.DecodeResult(l.ExecuteRequest(issuer[:], ledger.EncodeMint(issuer[:], 5))); res.GetError() != "" {
		t.Fatalf("mint refused: %s", res.GetError())
	}
	if d := CheckLedger(l, db, "replica 0", "now"); d != "" {
		t.Fatalf("a valid ledger reported: %s", d)
	}
	// A partial state, as a state transfer writes it: a balance key
	// without its history.
	if err := db.LevelDB().Put(append([]byte(storage.PrefixApp+"k/l/b/"), make([]byte, 32)...), make([]byte, 8), nil); err != nil {
		t.Fatal(err)
	}
	if d := CheckLedger(l, db, "replica 0", "now"); !strings.Contains(d, "replica 0 now: ledger invariants") {
		t.Fatalf("a broken ledger reported as %q", d)
	}
	if err := db.SetTransferInProgress(true); err != nil {
		t.Fatal(err)
	}
	if d := CheckLedger(l, db, "replica 0", "now"); d != "" {
		t.Fatalf("a ledger in the middle of a state transfer was checked: %s", d)
	}
}
