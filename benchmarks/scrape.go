package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTicksPerSecond is the unit of utime and stime in /proc/PID/stat
// (USER_HZ). It is 100 on every Linux architecture Go supports; the
// harness assumes it rather than calling sysconf through cgo.
const ClockTicksPerSecond = 100

// processCPUSeconds returns the user plus system CPU time the process pid
// used so far, from /proc/PID/stat.
func processCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return parseProcStatCPU(string(b))
}

// selfCPUSeconds returns the user plus system CPU time this process (the
// harness and its clients) used so far.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// machineBusySeconds returns the CPU time all processors spent busy so
// far (every state but idle and iowait), from the first line of
// /proc/stat.
func machineBusySeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine cpu time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineBusy(line)
}

// parseMachineBusy parses the "cpu" line of /proc/stat: user nice system
// idle iowait irq softirq steal ..., in clock ticks.
func parseMachineBusy(line string) (float64, error) {
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	var busy uint64
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
		}
		// Fields 4 and 5 are idle and iowait; guest time (9, 10) is
		// already counted in user and nice.
		if i != 3 && i != 4 && i < 8 {
			busy += v
		}
	}
	return float64(busy) / ClockTicksPerSecond, nil
}

// parseProcStatCPU extracts utime+stime (fields 14 and 15) from the text
// of /proc/PID/stat and converts clock ticks to seconds. The command name
// (field 2) is in parentheses and may hold spaces, so fields are counted
// after its closing parenthesis.
func parseProcStatCPU(stat string) (float64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("proc stat %q: no command name", stat)
	}
	// After ")": field 3 (state) is rest[0], so field k is rest[k-3].
	rest := strings.Fields(stat[end+1:])
	if len(rest) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(rest))
	}
	utime, err := strconv.ParseUint(rest[14-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(rest[15-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat stime: %w", err)
	}
	return float64(utime+stime) / ClockTicksPerSecond, nil
}

// metricSums adds up, per metric name, every series of the Prometheus
// text exposition in r whose name is in names (all label sets summed).
// Each labelled series is also returned on its own, keyed by its name and
// label set as exposed (e.g. `m{reason="stale"}`).
func metricSums(r io.Reader, names ...string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	sums := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if !want[name] {
			continue
		}
		series := ""
		if strings.HasPrefix(rest, "{") {
			// Label values may hold spaces; the value follows the '}'.
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				return nil, fmt.Errorf("metrics line %q: unterminated labels", line)
			}
			series, rest = name+rest[:j+1], rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sums[name] += v
		if series != "" {
			sums[series] += v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return sums, nil
}

// statusDoc is the part of a replica's /status JSON the harness reads.
// Leader is the replica index of the current primary or leader, in
// builds that report it (absent: the harness computes the PBFT primary
// as view mod n).
type statusDoc struct {
	Index            uint32 `json:"index"`
	Replicas         int    `json:"replicas"`
	View             uint64 `json:"view"`
	ViewActive       bool   `json:"view_active"`
	ExecutedSequence uint64 `json:"executed_sequence"`
	Leader           *int   `json:"leader"`
	Ready            bool   `json:"ready"`
}

// getJSON fetches url and decodes its JSON body into v.
func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	body, err := get(ctx, hc, url)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

// get fetches url; the caller closes the body. A status other than 200 is
// an error.
func get(ctx context.Context, hc *http.Client, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return resp.Body, nil
}
