package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// attackerReadyTimeout bounds the attacker's preparation (a big burst
// signs 300 MiB of requests).
const attackerReadyTimeout = 60 * time.Second

// attackerProc is a running `pbftnode attack --start-on-signal` process.
type attackerProc struct {
	cmd     *exec.Cmd
	logPath string
	ready   chan struct{} // closed when it printed the ready line
	exited  chan struct{} // closed once it exited and its output was read
	out     bytes.Buffer  // stdout after the ready line: the report
	waitErr error
}

// startAttacker starts the attacking client of kind against the cluster
// in dir and waits until it has prepared the attack. Its stderr goes to
// DIR/attack.log.
func startAttacker(ctx context.Context, binary, dir, kind string, rate float64) (*attackerProc, error) {
	args := []string{"attack", "--dir", dir, "--kind", kind, "--start-on-signal", "--log-level", "info"}
	if rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(rate, 'g', -1, 64))
	}
	p := &attackerProc{logPath: filepath.Join(dir, "attack.log"), ready: make(chan struct{}), exited: make(chan struct{})}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("attacker log: %w", err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("attacker stdout: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the attacker: %w", err)
	}
	go func() {
		p.readOutput(stdout)
		p.waitErr = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	select {
	case <-p.ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("the %s attacker exited before it was ready (%v): %s", kind, p.waitErr, tailFile(p.logPath, 4))
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	case <-time.After(attackerReadyTimeout):
		p.kill()
		return nil, fmt.Errorf("the %s attacker was not ready after %v: %s", kind, attackerReadyTimeout, tailFile(p.logPath, 4))
	}
}

// readOutput waits for the ready line and keeps the rest: the report.
func (p *attackerProc) readOutput(r io.Reader) {
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if strings.TrimSpace(line) == "ready" {
		close(p.ready)
	} else {
		p.out.WriteString(line)
	}
	if err == nil {
		_, _ = io.Copy(&p.out, io.LimitReader(br, 1<<20))
	}
}

// begin starts the attack (SIGUSR1).
func (p *attackerProc) begin() error {
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("start the attack: %w", err)
	}
	return nil
}

// cpuSeconds is the attacker's CPU time so far (0 once it exited).
func (p *attackerProc) cpuSeconds() float64 {
	s, _ := processCPUSeconds(p.cmd.Process.Pid)
	return s
}

// terminate asks the attacker to stop (SIGTERM).
func (p *attackerProc) terminate() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop the attack: %w", err)
	}
	return nil
}

// stop ends the attack (SIGTERM, SIGKILL after 10 s) and returns the
// report the attacker printed.
func (p *attackerProc) stop() (AttackReport, error) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
	}
	var rep AttackReport
	text := strings.TrimSpace(p.out.String())
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[i+1:]
	}
	if err := json.Unmarshal([]byte(text), &rep); err != nil {
		return rep, fmt.Errorf("the attacker's report %q (exit: %v): %w", text, p.waitErr, err)
	}
	return rep, nil
}

// kill ends the attacker at once and waits for it.
func (p *attackerProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// signal sends sig to replica i.
func (c *cluster) signal(i int, sig syscall.Signal) error {
	p := c.proc(i)
	if p == nil {
		return fmt.Errorf("replica %d is not running", i)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal replica %d: %w", i, err)
	}
	return nil
}

// errNoVmRSS reports a /proc/PID/status without a VmRSS line.
var errNoVmRSS = errors.New("no VmRSS line")

// residentBytes returns process pid's resident set size, from the VmRSS
// line of /proc/PID/status.
func residentBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("resident memory of pid %d: %w", pid, err)
	}
	return parseVmRSS(string(b))
}

// parseVmRSS extracts VmRSS (in kB) from the text of /proc/PID/status, in
// bytes.
func parseVmRSS(status string) (uint64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want \"N kB\"", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errNoVmRSS
}
