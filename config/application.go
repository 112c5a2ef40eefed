package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/pbftnode/pbftnode/keyfile"
)

// The kinds of replicated application (FileConfig.Application).
const (
	// ApplicationKV is the built-in key-value store (also the empty
	// setting).
	ApplicationKV = "kv"
	// ApplicationLedger is the built-in ledger; ledger_issuers names who
	// may mint.
	ApplicationLedger = "ledger"
	// ApplicationGRPC is an application in another process serving the
	// gRPC application protocol on TCP: grpc://HOST:PORT.
	ApplicationGRPC = "grpc"
	// ApplicationUnix is the same on a Unix socket: unix:///PATH.
	ApplicationUnix = "unix"
)

// ApplicationForms lists the values the application setting accepts, for
// messages.
const ApplicationForms = `"kv" (the default), "ledger", "grpc://HOST:PORT" or "unix:///ABSOLUTE/PATH"`

// ApplicationSpec is a parsed application setting.
type ApplicationSpec struct {
	// Kind is one of ApplicationKV, ApplicationLedger, ApplicationGRPC and
	// ApplicationUnix.
	Kind string
	// Address is where a remote application serves: HOST:PORT for
	// ApplicationGRPC, the socket's absolute path for ApplicationUnix;
	// empty for the built-in ones.
	Address string
}

// String is the setting's value in its canonical form ("kv" for the
// empty setting).
func (s ApplicationSpec) String() string {
	switch s.Kind {
	case ApplicationGRPC:
		return "grpc://" + s.Address
	case ApplicationUnix:
		return "unix://" + s.Address
	}
	return s.Kind
}

// Remote reports whether the application runs in another process.
func (s ApplicationSpec) Remote() bool {
	return s.Kind == ApplicationGRPC || s.Kind == ApplicationUnix
}

// ParseApplication parses an application setting: "" or "kv", "ledger",
// grpc://HOST:PORT (a non-empty host and a port in 1..65535; the host is
// not resolved) or unix:///PATH (an absolute, clean path). Anything else
// is an error naming the allowed forms.
func ParseApplication(value string) (ApplicationSpec, error) {
	switch value {
	case "", ApplicationKV:
		return ApplicationSpec{Kind: ApplicationKV}, nil
	case ApplicationLedger:
		return ApplicationSpec{Kind: ApplicationLedger}, nil
	}
	if addr, ok := strings.CutPrefix(value, "grpc://"); ok {
		if err := checkDialAddress(addr); err != nil {
			return ApplicationSpec{}, fmt.Errorf("application %q: %w; want grpc://HOST:PORT", value, err)
		}
		return ApplicationSpec{Kind: ApplicationGRPC, Address: addr}, nil
	}
	if p, ok := strings.CutPrefix(value, "unix://"); ok {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return ApplicationSpec{}, fmt.Errorf("application %q: the socket path %q is not a clean absolute path; want unix:///ABSOLUTE/PATH", value, p)
		}
		return ApplicationSpec{Kind: ApplicationUnix, Address: p}, nil
	}
	return ApplicationSpec{}, fmt.Errorf("application %q: want %s", value, ApplicationForms)
}

// checkDialAddress checks the syntax of a HOST:PORT to dial: a non-empty
// host and a port in 1..65535 (the host is not looked up).
func checkDialAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("no host in %q", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	return nil
}

// checkApplication checks the application setting and ledger_issuers: a
// malformed issuer or one listed twice is a problem; a ledger without
// issuers (nobody can mint) and issuers without the ledger are warnings.
// It returns the parsed setting and the decoded issuers.
func checkApplication(fc FileConfig, f *findings) (ApplicationSpec, []ed25519.PublicKey) {
	spec, err := ParseApplication(fc.Application)
	if err != nil {
		f.problems = append(f.problems, err)
	}
	issuers := checkLedgerIssuers(fc.LedgerIssuers, f)
	switch {
	case err != nil:
	case spec.Kind == ApplicationLedger && len(fc.LedgerIssuers) == 0:
		f.warn("application is ledger but ledger_issuers is empty: nobody can mint")
	case spec.Kind != ApplicationLedger && len(fc.LedgerIssuers) > 0:
		f.warn("ledger_issuers is set but application is %s: only the ledger uses it", spec)
	}
	return spec, issuers
}

// checkLedgerIssuers decodes ledger_issuers: each 64 hex digits (an
// Ed25519 public key), none twice.
func checkLedgerIssuers(hexKeys []string, f *findings) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	seen := map[string]int{}
	for i, k := range hexKeys {
		pub, err := keyfile.DecodePublicKey(k)
		if err != nil {
			f.problem("ledger_issuers[%d] %q: want 64 hex digits (a public key as pbftnode keygen prints it): %w", i, k, err)
			continue
		}
		if j, dup := seen[string(pub)]; dup {
			f.problem("ledger_issuers[%d] repeats ledger_issuers[%d]", i, j)
			continue
		}
		seen[string(pub)] = i
		out = append(out, pub)
	}
	return out
}

// CheckApplication returns Check's problems with an application setting
// and a list of ledger issuers (nil: none), for tools that write
// configurations, such as testnet; warnings are not problems.
func CheckApplication(application string, ledgerIssuers []string) error {
	var f findings
	checkApplication(FileConfig{Application: application, ClusterFile: ClusterFile{LedgerIssuers: ledgerIssuers}}, &f)
	if len(f.problems) == 0 {
		return nil
	}
	return errors.Join(f.problems...)
}
