package appgrpc

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Target schemes: a TCP address (grpc://HOST:PORT) or a unix socket
// (unix:///ABSOLUTE/PATH).
const (
	SchemeGRPC = "grpc"
	SchemeUnix = "unix"
)

// Target is a parsed application address.
type Target struct {
	// Scheme is SchemeGRPC or SchemeUnix.
	Scheme string
	// Address is HOST:PORT for SchemeGRPC and the socket's absolute,
	// cleaned path for SchemeUnix.
	Address string
}

// ErrBadTarget is wrapped by every error of ParseTarget.
var ErrBadTarget = errors.New("appgrpc: bad application target")

// ParseTarget parses an application address: grpc://HOST:PORT (HOST a name,
// an IPv4 address or a bracketed IPv6 address; PORT 1..65535) or
// unix:///PATH (an absolute path, taken literally: no %-unescaping). Anything else, including a user, a
// query, a fragment or a path after HOST:PORT, is an error wrapping
// ErrBadTarget that says what is expected. The configuration's
// `application` values other than kv and ledger go through it.
func ParseTarget(s string) (Target, error) {
	bad := func(format string, args ...any) (Target, error) {
		return Target{}, fmt.Errorf("%w %q: %s (want grpc://HOST:PORT or unix:///ABSOLUTE/PATH)", ErrBadTarget, s, fmt.Sprintf(format, args...))
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("no scheme")
	}
	if strings.ContainsAny(rest, "?#") {
		return bad("a query or fragment is not allowed")
	}
	switch scheme {
	case SchemeGRPC:
		return parseTCPTarget(rest, bad)
	case SchemeUnix:
		if !strings.HasPrefix(rest, "/") {
			return bad("the socket path must be absolute (three slashes: unix:///PATH)")
		}
		if cleaned := path.Clean(rest); cleaned != "/" {
			return Target{Scheme: SchemeUnix, Address: cleaned}, nil
		}
		return bad("no socket path")
	default:
		return bad("unknown scheme %q", scheme)
	}
}

func parseTCPTarget(hostPort string, bad func(string, ...any) (Target, error)) (Target, error) {
	if strings.ContainsAny(hostPort, "/@") {
		return bad("want HOST:PORT only, no user or path")
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return bad("%v", err)
	}
	if host == "" {
		return bad("no host")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return bad("port %q is not in 1..65535", port)
	}
	return Target{Scheme: SchemeGRPC, Address: net.JoinHostPort(host, port)}, nil
}

// String returns the target in the form ParseTarget accepts.
func (t Target) String() string {
	if t.Scheme == SchemeUnix {
		return "unix://" + t.Address
	}
	return t.Scheme + "://" + t.Address
}

// dialTarget is the target string grpc.NewClient resolves: DNS for a TCP
// address, grpc's own unix resolver for a socket.
func (t Target) dialTarget() string {
	if t.Scheme == SchemeUnix {
		// The path is taken literally; URL-escape it for grpc's parser.
		return (&url.URL{Scheme: SchemeUnix, Path: t.Address}).String()
	}
	return "dns:///" + t.Address
}
