package config

import (
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Flags registers one command-line flag per replica setting of
// FileConfig (every json field but the cluster-wide ones: cluster_id,
// protocol, replicas, ledger_issuers), named after its json key with dashes
// (metrics_listen -> --metrics-listen). A flag that is set overrides the
// configuration file; Apply writes the set ones into a FileConfig.
type Flags struct {
	set map[string]*fieldFlag
}

// fieldFlag is the flag.Value of one FileConfig field.
type fieldFlag struct {
	index []int // the field's index path in FileConfig
	kind  reflect.Type
	value string
	isSet bool
}

func (f *fieldFlag) String() string { return f.value }

func (f *fieldFlag) Set(s string) error {
	if _, err := parseField(f.kind, s); err != nil {
		return err
	}
	f.value, f.isSet = s, true
	return nil
}

// IsBoolFlag lets a bool setting be given as --name without a value.
func (f *fieldFlag) IsBoolFlag() bool { return f.kind.Kind() == reflect.Bool }

// clusterWide are settings every replica must share; they stay in the file.
var clusterWide = map[string]bool{"cluster_id": true, "protocol": true, "replicas": true, "ledger_issuers": true}

// RegisterFlags adds the setting flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	cf := &Flags{set: make(map[string]*fieldFlag)}
	t := reflect.TypeFor[FileConfig]()
	for _, field := range reflect.VisibleFields(t) {
		name, ok := jsonName(field)
		if !ok || clusterWide[name] || field.Anonymous {
			continue
		}
		f := &fieldFlag{index: field.Index, kind: field.Type}
		cf.set[name] = f
		fs.Var(f, strings.ReplaceAll(name, "_", "-"), "overrides "+name+" in config.json (see docs/operations.md)")
	}
	return cf
}

// Names returns the json names of the settings that have a flag.
func (cf *Flags) Names() []string {
	names := make([]string, 0, len(cf.set))
	for n := range cf.set {
		names = append(names, n)
	}
	return names
}

// Apply writes the flags that were set into fc.
func (cf *Flags) Apply(fc *FileConfig) error {
	v := reflect.ValueOf(fc).Elem()
	for name, f := range cf.set {
		if !f.isSet {
			continue
		}
		parsed, err := parseField(f.kind, f.value)
		if err != nil {
			return fmt.Errorf("config: --%s: %w", strings.ReplaceAll(name, "_", "-"), err)
		}
		v.FieldByIndex(f.index).Set(parsed)
	}
	return nil
}

func jsonName(field reflect.StructField) (string, bool) {
	tag := field.Tag.Get("json")
	if tag == "" || tag == "-" {
		return "", false
	}
	name, _, _ := strings.Cut(tag, ",")
	return name, name != ""
}

// parseField parses s as a value of type t: strings, bools, integers,
// floats and comma-separated string lists.
func parseField(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return v, fmt.Errorf("want true or false: %w", err)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return v, fmt.Errorf("want an integer: %w", err)
		}
		v.SetInt(n)
	case reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return v, fmt.Errorf("want a non-negative integer: %w", err)
		}
		v.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return v, fmt.Errorf("want a number: %w", err)
		}
		v.SetFloat(n)
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return v, fmt.Errorf("unsupported list type %s", t)
		}
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return v, fmt.Errorf("unsupported setting type %s", t)
	}
	return v, nil
}
