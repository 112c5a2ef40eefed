package config

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/keyfile"
)

// TestCheckApplication: the application setting and ledger_issuers, each
// value with the problem or warning Check reports (none: accepted), and
// what Load decodes from an accepted one.
func TestCheckApplication(t *testing.T) {
	issuer := keyfile.EncodePublicKey(seededPublicKey(50))
	other := keyfile.EncodePublicKey(seededPublicKey(51))
	for _, tc := range []struct {
		application string
		issuers     []string
		problem     string // "" for none
		warning     string // "" for none
		want        ApplicationSpec
	}{
		{application: "", want: ApplicationSpec{Kind: ApplicationKV}},
		{application: "kv", want: ApplicationSpec{Kind: ApplicationKV}},
		{application: "ledger", issuers: []string{issuer, other}, want: ApplicationSpec{Kind: ApplicationLedger}},
		{application: "ledger", warning: "ledger_issuers is empty: nobody can mint", want: ApplicationSpec{Kind: ApplicationLedger}},
		{application: "kv", issuers: []string{issuer}, warning: "ledger_issuers is set but application is kv"},
		{application: "grpc://127.0.0.1:7000", want: ApplicationSpec{Kind: ApplicationGRPC, Address: "127.0.0.1:7000"}},
		{application: "grpc://app.example:7000", want: ApplicationSpec{Kind: ApplicationGRPC, Address: "app.example:7000"}},
		{application: "grpc://[::1]:7000", want: ApplicationSpec{Kind: ApplicationGRPC, Address: "[::1]:7000"}},
		{application: "unix:///run/app.sock", want: ApplicationSpec{Kind: ApplicationUnix, Address: "/run/app.sock"}},
		{application: "grpc://127.0.0.1", problem: `application "grpc://127.0.0.1"`},
		{application: "grpc://:7000", problem: "no host"},
		{application: "grpc://h:0", problem: "not a number in 1..65535"},
		{application: "grpc://h:70000", problem: "not a number in 1..65535"},
		{application: "unix://run/app.sock", problem: "not a clean absolute path"},
		{application: "unix:///run/../app.sock", problem: "not a clean absolute path"},
		{application: "unix://", problem: "not a clean absolute path"},
		{application: "http://127.0.0.1:7000", problem: `want "kv" (the default), "ledger", "grpc://HOST:PORT" or "unix:///ABSOLUTE/PATH"`},
		{application: "KV", problem: `want "kv"`},
		{application: "ledger", issuers: []string{"abcd"}, problem: `ledger_issuers[0] "abcd": want 64 hex digits`},
		{application: "ledger", issuers: []string{strings.Repeat("zz", 32)}, problem: "ledger_issuers[0]"},
		{application: "ledger", issuers: []string{issuer, other, issuer}, problem: "ledger_issuers[2] repeats ledger_issuers[0]"},
	} {
		home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) {
			fc.Application, fc.LedgerIssuers = tc.application, tc.issuers
		})
		warnings, problems := checkHome(t, home)
		name := tc.application + " " + strings.Join(tc.issuers, ",")
		if tc.problem == "" && len(problems) > 0 {
			t.Errorf("%s: problems %q", name, problems)
		}
		if tc.problem != "" {
			wantProblem(t, problems, tc.problem)
			if err := CheckApplication(tc.application, tc.issuers); err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%s: CheckApplication: %v, want %q", name, err, tc.problem)
			}
			continue
		}
		if got := slices.ContainsFunc(warnings, func(w string) bool { return tc.warning != "" && strings.Contains(w, tc.warning) }); got != (tc.warning != "") || len(warnings) > 1 {
			t.Errorf("%s: warnings %q, want %q", name, warnings, tc.warning)
		}
		h, err := Load(home, nil)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		if tc.want.Kind != "" && h.Application != tc.want {
			t.Errorf("%s: Load's application %+v, want %+v", name, h.Application, tc.want)
		}
		if len(h.LedgerIssuers) != len(tc.issuers) || len(tc.issuers) > 0 && !h.LedgerIssuers[0].Equal(mustDecode(t, tc.issuers[0])) {
			t.Errorf("%s: Load's issuers %x", name, h.LedgerIssuers)
		}
		if app := h.Summary()[len(h.Summary())-1]; !strings.Contains(app, "app:") || !strings.Contains(app, h.Application.String()) {
			t.Errorf("%s: the summary's last line %q does not name the application", name, app)
		}
	}
}

func mustDecode(t *testing.T, s string) ed25519.PublicKey {
	t.Helper()
	pub, err := keyfile.DecodePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestRunApplicationFlagOverridesTheFile: --application replaces the
// file's application and is checked like it; ledger_issuers, cluster-wide,
// has no flag.
func TestRunApplicationFlagOverridesTheFile(t *testing.T) {
	home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.Application = "kv" })
	fs := newFlagSet()
	flags := RegisterFlags(fs)
	if err := fs.Parse([]string{"--application", "grpc://127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	h, err := Load(home, flags)
	if err != nil || h.Application != (ApplicationSpec{Kind: ApplicationGRPC, Address: "127.0.0.1:7001"}) {
		t.Fatalf("Load with --application: %v, %+v", err, h.Application)
	}
	fs = newFlagSet()
	flags = RegisterFlags(fs)
	if err := fs.Parse([]string{"--application", "nonsense"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(home, flags); err == nil || !strings.Contains(err.Error(), `application "nonsense"`) {
		t.Fatalf("Load with --application nonsense: %v", err)
	}
	if slices.Contains(flags.Names(), "ledger_issuers") {
		t.Fatal("ledger_issuers, a cluster-wide setting, has a flag")
	}
}
