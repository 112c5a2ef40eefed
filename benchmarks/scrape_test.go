package benchmarks

import (
	"os"
	"strings"
	"testing"
)

func TestParseProcStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift the
	// fields: utime (14) = 250 ticks, stime (15) = 50 ticks.
	stat := "4242 (pbft node) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615"
	got, err := parseProcStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.0 {
		t.Errorf("CPU seconds = %v, want 3 (300 ticks at %d Hz)", got, ClockTicksPerSecond)
	}
	if _, err := parseProcStatCPU("4242 (short) S 1 2"); err == nil {
		t.Error("a truncated stat line parsed without error")
	}
	if _, err := parseProcStatCPU("garbage"); err == nil {
		t.Error("a line without a command name parsed without error")
	}
}

func TestProcessCPUSecondsOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	if _, err := processCPUSeconds(os.Getpid()); err != nil {
		t.Fatalf("CPU time of this process: %v", err)
	}
	if _, err := processCPUSeconds(1 << 30); err == nil {
		t.Error("CPU time of a process that does not exist: no error")
	}
}

func TestMetricSums(t *testing.T) {
	text := `# HELP pbftnode_message_bytes_sent_total Encoded bytes.
# TYPE pbftnode_message_bytes_sent_total counter
pbftnode_message_bytes_sent_total{type="prepare"} 1000
pbftnode_message_bytes_sent_total{type="pre prepare",x="}"} 2.5e3
pbftnode_message_bytes_sent_total_other 7
pbftnode_p2p_bytes_sent_total 12345
pbftnode_p2p_bytes_received_total 999
`
	sums, err := metricSums(strings.NewReader(text), metricMsgBytesSent, metricP2PBytesSent)
	if err != nil {
		t.Fatal(err)
	}
	if got := sums[metricMsgBytesSent]; got != 3500 {
		t.Errorf("%s = %v, want 3500 (both label sets, nothing else)", metricMsgBytesSent, got)
	}
	if got := sums[metricP2PBytesSent]; got != 12345 {
		t.Errorf("%s = %v, want 12345", metricP2PBytesSent, got)
	}
	if _, ok := sums["pbftnode_p2p_bytes_received_total"]; ok {
		t.Error("a metric that was not asked for was summed")
	}
	if got := sums[metricMsgBytesSent+`{type="prepare"}`]; got != 1000 {
		t.Errorf("the prepare series = %v, want 1000 on its own", got)
	}
	if _, err := metricSums(strings.NewReader("pbftnode_p2p_bytes_sent_total abc\n"), metricP2PBytesSent); err == nil {
		t.Error("a non-numeric value parsed without error")
	}
}

func TestParseMachineBusy(t *testing.T) {
	// user 100, nice 10, system 40, idle 1000, iowait 50, irq 5, softirq 5,
	// steal 0, guest 30 (inside user), guest_nice 0: busy 160 ticks.
	got, err := parseMachineBusy("cpu  100 10 40 1000 50 5 5 0 30 0")
	if err != nil {
		t.Fatal(err)
	}
	if got != 1.6 {
		t.Errorf("busy = %v s, want 1.6 (160 ticks, idle, iowait and guest excluded)", got)
	}
	if _, err := parseMachineBusy("cpu0 1 2 3 4 5"); err == nil {
		t.Error("a per-CPU line was taken for the total")
	}
	if _, err := machineBusySeconds(); err != nil {
		if _, statErr := os.Stat("/proc/stat"); statErr == nil {
			t.Errorf("machine busy time: %v", err)
		}
	}
}
