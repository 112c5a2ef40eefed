package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/membership"
)

// adminUsage is `pbftnode admin --help`, before the flags.
const adminUsage = `usage: pbftnode admin --dir DIR [--admin-key FILE ...] [--json] [--timeout D] COMMAND
commands (flags go before the command; docs/reconfiguration.md):
  members                      print the current epoch, its members and administrators
  add-replica --home HOME      add the spare whose home is HOME (its index, address and key)
  remove-replica INDEX         remove replica INDEX (its index is never used again)
  rotate-key INDEX --key FILE  register FILE's public key as replica INDEX's; then restart
                               that replica with FILE as its key file
  set-admins --threshold K ADMIN...
                               replace the administrators: each ADMIN a hex public key or a
                               key file; K of them must sign later changes
A change is signed by as many administrator keys (DIR/admin*.pem, or each
--admin-key) as the current configuration's threshold needs, for the current
epoch (learned from the members, never from one replica alone), and ordered
like any request.

exit status: 0 the change took effect (or members answered); 2 usage or
configuration error (nothing sent); 3 outcome unknown; 4 refused (the cluster
said why); 1 any other failure.`

// adminKeys is the --admin-key flag: key files, repeated.
type adminKeys []string

func (a *adminKeys) String() string     { return strings.Join(*a, ",") }
func (a *adminKeys) Set(v string) error { *a = append(*a, v); return nil }

// adminCommand is one admin invocation's settings.
type adminCommand struct {
	dir     string
	keys    adminKeys
	asJSON  bool
	timeout time.Duration
}

func runAdmin(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	var a adminCommand
	fs.StringVar(&a.dir, "dir", "", "testnet directory holding client.json (required)")
	fs.Var(&a.keys, "admin-key", "an administrator's key file (repeat; default: DIR/admin*.pem)")
	fs.BoolVar(&a.asJSON, "json", false, "print the outcome as JSON")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "give up after this long (exit status 3: outcome unknown)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, adminUsage)
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if a.dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return fmt.Errorf("%w: missing command (members | add-replica --home HOME | remove-replica INDEX | rotate-key INDEX --key FILE)", errUsage)
	}
	if rest[0] == "members" {
		if len(rest) != 1 {
			return fmt.Errorf("%w: members takes no arguments", errUsage)
		}
		return a.members(stdout)
	}
	ch, err := parseAdminChange(rest)
	if err != nil {
		return err
	}
	return a.change(ch, stdout)
}

// parseAdminChange parses a change command into its change; its Epoch
// is set once the current configuration is learned.
func parseAdminChange(args []string) (membership.Change, error) {
	sub := flag.NewFlagSet(args[0], flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	home := sub.String("home", "", "add-replica: the spare's home directory")
	keyPath := sub.String("key", "", "rotate-key: the replica's new key file")
	threshold := sub.Int("threshold", 0, "set-admins: how many administrators must sign a change")
	positional, err := parseInterleaved(sub, args[1:])
	if err != nil {
		return membership.Change{}, fmt.Errorf("%w: %s: %w", errUsage, args[0], err)
	}
	switch args[0] {
	case "add-replica":
		if *home == "" || len(positional) > 0 {
			return membership.Change{}, fmt.Errorf("%w: add-replica takes --home HOME only", errUsage)
		}
		m, err := spareMember(*home)
		return membership.Change{Kind: membership.AddReplica, Member: m}, err
	case "remove-replica":
		i, err := replicaIndex(args[0], positional)
		return membership.Change{Kind: membership.RemoveReplica, Member: membership.Member{Index: i}}, err
	case "rotate-key":
		i, err := replicaIndex(args[0], positional)
		if err != nil {
			return membership.Change{}, err
		}
		if *keyPath == "" {
			return membership.Change{}, fmt.Errorf("%w: rotate-key takes --key FILE", errUsage)
		}
		key, err := readKey(*keyPath)
		if err != nil {
			return membership.Change{}, fmt.Errorf("%w: --key: %w", errConfig, err)
		}
		return membership.Change{Kind: membership.RotateKey, Member: membership.Member{Index: i, PublicKey: key.Public().(ed25519.PublicKey)}}, nil
	case "set-admins":
		admins, err := adminPublicKeys(positional)
		if err != nil {
			return membership.Change{}, err
		}
		if len(admins) == 0 || *threshold < 1 || *threshold > len(admins) {
			return membership.Change{}, fmt.Errorf("%w: set-admins takes --threshold K (1 to the number of administrators) and one or more administrators", errUsage)
		}
		return membership.Change{Kind: membership.SetAdmins, Admins: admins, AdminThreshold: *threshold}, nil
	}
	return membership.Change{}, fmt.Errorf("%w: unknown admin command %q", errUsage, args[0])
}

// parseInterleaved parses fs's flags anywhere among args and returns the
// other arguments in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) > 0 {
			positional, args = append(positional, args[0]), args[1:]
		}
	}
	return positional, nil
}

// replicaIndex reads the one replica index command takes.
func replicaIndex(command string, positional []string) (uint32, error) {
	if len(positional) != 1 {
		return 0, fmt.Errorf("%w: %s takes one replica index", errUsage, command)
	}
	i, err := strconv.ParseUint(positional[0], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: replica index %q: %w", errUsage, command, positional[0], err)
	}
	return uint32(i), nil
}

// adminPublicKeys reads set-admins' arguments: hex public keys or key
// files.
func adminPublicKeys(args []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, a := range args {
		if pub, err := keyfile.DecodePublicKey(a); err == nil {
			out = append(out, pub)
			continue
		}
		key, err := readKey(a)
		if err != nil {
			return nil, fmt.Errorf("%w: set-admins: %q is neither a hex public key nor a readable key file: %w", errUsage, a, err)
		}
		out = append(out, key.Public().(ed25519.PublicKey))
	}
	return out, nil
}

// spareMember reads the member record a spare's home registers: its
// index, its address and its key's public key.
func spareMember(home string) (membership.Member, error) {
	var fc config.FileConfig
	if err := config.ReadJSON(filepath.Join(home, config.FileName), &fc); err != nil {
		return membership.Member{}, fmt.Errorf("%w: --home: %w", errConfig, err)
	}
	key, err := fc.ReadKey(home)
	if err != nil {
		return membership.Member{}, fmt.Errorf("%w: --home: %w", errConfig, err)
	}
	addr := fc.Address
	if addr == "" && int(fc.Index) < len(fc.Replicas) {
		addr = fc.Replicas[fc.Index].Address
	}
	if addr == "" {
		return membership.Member{}, fmt.Errorf("%w: %s gives no address for replica %d", errConfig, filepath.Join(home, config.FileName), fc.Index)
	}
	return membership.Member{Index: fc.Index, PublicKey: key.Public().(ed25519.PublicKey), Address: addr}, nil
}

// session opens a client of the directory (on the members it last
// learned) and learns the current configuration.
func (a adminCommand) session(ctx context.Context) (*client.Client, membership.Config, error) {
	var clusterID string
	c, err := openClientWith(a.dir, "", func(cfg *client.Config) {
		cfg.BroadcastWhenUnknown = true
		useCachedMembership(a.dir, cfg)
		clusterID = cfg.ClusterID
	})
	if err != nil {
		return nil, membership.Config{}, err
	}
	cur, err := learnMembership(ctx, a.dir, clusterID, c)
	if err != nil {
		c.Close()
		return nil, membership.Config{}, err
	}
	if known, _ := c.Epochs(); cur.Epoch != known {
		// Send to the members of the configuration just learned.
		c.Close()
		if c, err = openClientWith(a.dir, "", func(cfg *client.Config) {
			cfg.BroadcastWhenUnknown = true
			useCachedMembership(a.dir, cfg)
		}); err != nil {
			return nil, membership.Config{}, err
		}
	}
	return c, cur, nil
}

// memberJSON is one member in `admin members --json`.
type memberJSON struct {
	Index     uint32 `json:"index"`
	PublicKey string `json:"public_key"`
	Address   string `json:"address"`
}

// membersJSON is `admin members --json`.
type membersJSON struct {
	Epoch          uint64       `json:"epoch"`
	Members        []memberJSON `json:"members"`
	Admins         []string     `json:"admins"`
	AdminThreshold int          `json:"admin_threshold"`
	Retired        []uint32     `json:"retired"`
}

func describeMembers(cfg membership.Config) membersJSON {
	out := membersJSON{Epoch: cfg.Epoch, AdminThreshold: cfg.AdminThreshold, Retired: slices.Clone(cfg.Retired), Members: []memberJSON{}, Admins: []string{}}
	for _, m := range cfg.Members {
		out.Members = append(out.Members, memberJSON{Index: m.Index, PublicKey: keyfile.EncodePublicKey(m.PublicKey), Address: m.Address})
	}
	for _, k := range cfg.Admins {
		out.Admins = append(out.Admins, keyfile.EncodePublicKey(k))
	}
	if out.Retired == nil {
		out.Retired = []uint32{}
	}
	return out
}

func (a adminCommand) members(stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	c, cur, err := a.session(ctx)
	if err != nil {
		return err
	}
	c.Close()
	d := describeMembers(cur)
	if a.asJSON {
		return json.NewEncoder(stdout).Encode(d)
	}
	fmt.Fprintf(stdout, "epoch:    %d (%d members, tolerates f=%d)\n", d.Epoch, len(d.Members), cur.FaultTolerance())
	for _, m := range d.Members {
		fmt.Fprintf(stdout, "member:   %d %s %s\n", m.Index, m.Address, m.PublicKey)
	}
	fmt.Fprintf(stdout, "admins:   %d of %d must sign a change\n", d.AdminThreshold, len(d.Admins))
	if len(d.Retired) > 0 {
		fmt.Fprintf(stdout, "retired:  %v (never used again)\n", d.Retired)
	}
	return nil
}

// changeReport is what `admin CHANGE --json` prints.
type changeReport struct {
	Change  string `json:"change"`
	Outcome string `json:"outcome"`
	OK      bool   `json:"ok"`
	Result  string `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
}

// change learns the current configuration, builds the change for its
// epoch, signs it with enough administrator keys, orders it and reports
// the cluster's answer.
func (a adminCommand) change(ch membership.Change, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	c, cur, err := a.session(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ch.Epoch = cur.Epoch
	// The rules are checked locally first, for a clear refusal before
	// anything is sent (the replicas check them again when they apply it).
	signed, err := a.sign(cur, c, ch)
	if err != nil {
		return err
	}
	raw, err := c.ChangeConfig(ctx, signed.Encode())
	report := changeReport{Change: ch.String()}
	err = describeChange(&report, raw, err)
	if report.OK {
		learnIfMoved(a.dir, c.ClusterID(), c)
	}
	if a.asJSON {
		if jerr := json.NewEncoder(stdout).Encode(report); jerr != nil && err == nil {
			err = fmt.Errorf("write result: %w", jerr)
		}
	} else if report.OK {
		fmt.Fprintln(stdout, report.Result)
	}
	return err
}

// describeChange classifies what ChangeConfig returned into r; the error
// is nil only when the change took effect.
func describeChange(r *changeReport, raw []byte, err error) error {
	switch {
	case errors.Is(err, client.ErrUnknownOutcome):
		r.Outcome, r.Error = outcomeUnknown, err.Error()
		return fmt.Errorf("%s: the change may or may not take effect: %w", r.Change, err)
	case errors.Is(err, client.ErrRefused):
		r.Outcome, r.Error = outcomeRefused, err.Error()
		return fmt.Errorf("%s: %w", r.Change, err)
	case err != nil:
		r.Outcome, r.Error = outcomeNotSent, err.Error()
		return fmt.Errorf("%s: not sent: %w", r.Change, err)
	}
	result := string(raw)
	if rest, ok := strings.CutPrefix(result, execution.ConfigChangeAccepted); ok {
		r.Outcome, r.OK, r.Result = outcomeExecuted, true, execution.ConfigChangeAccepted+rest
		return nil
	}
	reason := strings.TrimPrefix(result, execution.ConfigChangeRefused)
	r.Outcome, r.Error = outcomeRefused, reason
	return fmt.Errorf("%s: the cluster %w the change: %s", r.Change, client.ErrRefused, reason)
}

// sign checks ch against cur and signs it with the administrator keys
// available (--admin-key, else DIR/admin*.pem) that cur names, as many as
// its threshold needs.
func (a adminCommand) sign(cur membership.Config, c *client.Client, ch membership.Change) (membership.SignedChange, error) {
	if _, err := cur.Next(ch, c.MembershipRules()); err != nil {
		return membership.SignedChange{}, fmt.Errorf("%s: %w: %w", ch, client.ErrRefused, err)
	}
	paths := a.keys
	if len(paths) == 0 {
		found, err := filepath.Glob(filepath.Join(a.dir, "admin*.pem"))
		if err != nil {
			return membership.SignedChange{}, fmt.Errorf("%w: %w", errConfig, err)
		}
		paths = found
	}
	sc := membership.SignedChange{Change: ch.Encode()}
	for _, p := range paths {
		if len(sc.Signatures) >= cur.AdminThreshold {
			break
		}
		key, err := readKey(p)
		if err != nil {
			return membership.SignedChange{}, fmt.Errorf("%w: admin key: %w", errConfig, err)
		}
		pub := key.Public().(ed25519.PublicKey)
		if !slices.ContainsFunc(cur.Admins, func(k ed25519.PublicKey) bool { return bytes.Equal(k, pub) }) {
			continue // not an administrator of the current epoch
		}
		sc.Signatures = append(sc.Signatures, membership.Sign(c.ClusterID(), sc.Change, key))
	}
	if len(cur.Admins) == 0 || len(sc.Signatures) < cur.AdminThreshold {
		return membership.SignedChange{}, fmt.Errorf("%w: %d of the %d administrator keys epoch %d needs are at hand (%d key file(s) read): give them with --admin-key", errConfig, len(sc.Signatures), cur.AdminThreshold, cur.Epoch, len(paths))
	}
	return sc, nil
}
