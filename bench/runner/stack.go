package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the benchmark started (and is the only one to stop).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func start(name, logDir string, env []string, bin string, args ...string) (*proc, io.Reader, error) {
	log, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = log
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(log, pw)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	return p, pr, nil
}

// stop sends SIGTERM, waits up to grace, then kills; only this process.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

// stack is an emulator with the topology and N workers on it, each a
// separate process.
type stack struct {
	prefix   string
	endpoint string
	emu      *proc
	workers  []*proc
	metrics  []string
	intake   string
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomPrefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "bench" + hex.EncodeToString(b)
}

func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		// The stack's own endpoint and prefix replace any in the caller's
		// environment.
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "CLOUDCOMMERCE_") || strings.HasPrefix(kv, "KUMO_") || strings.HasPrefix(kv, "GO") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startStack starts `devstack --emulator-only` and the workers, and waits
// until every worker is ready. wrap, when set, returns the endpoint the
// workers use (a fault endpoint in front of the emulator's), given the
// emulator's endpoint and the stack's prefix.
func startStack(ctx context.Context, bin, workerBin, logDir, label string, workers int, workerEnv []string, intake bool, wrap func(endpoint, prefix string) (string, error)) (*stack, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &stack{prefix: randomPrefix()}
	// The emulator host's own clients sign with the emulator's dummy keys.
	emuEnv := append(baseEnv(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	emu, out, err := start(label+"-emulator", logDir, emuEnv, filepath.Join(bin, "devstack"),
		"--emulator-only", "--emulator-addr", fmt.Sprintf("127.0.0.1:%d", port), "--memory", "--prefix", s.prefix, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	s.emu = emu
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "export AWS_ENDPOINT_URL=") {
				f := strings.Fields(strings.TrimPrefix(line, "export "))
				ready <- strings.TrimPrefix(f[0], "AWS_ENDPOINT_URL=")
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case s.endpoint = <-ready:
	case <-emu.done:
		return nil, fmt.Errorf("the emulator exited; see %s", emu.log.Name())
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("the emulator did not become ready in 60s")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	workerEndpoint := s.endpoint
	if wrap != nil {
		if workerEndpoint, err = wrap(s.endpoint, s.prefix); err != nil {
			s.stop()
			return nil, err
		}
	}
	for i := 0; i < workers; i++ {
		ops, err := freePort()
		if err != nil {
			s.stop()
			return nil, err
		}
		env := append(baseEnv(), "AWS_ENDPOINT_URL="+workerEndpoint, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
			"CLOUDCOMMERCE_PREFIX="+s.prefix, fmt.Sprintf("CLOUDCOMMERCE_OPS_ADDR=127.0.0.1:%d", ops), "CLOUDCOMMERCE_LOG_LEVEL=warn")
		if intake && i == 0 {
			ip, err := freePort()
			if err != nil {
				s.stop()
				return nil, err
			}
			env = append(env, fmt.Sprintf("CLOUDCOMMERCE_INTAKE_ADDR=127.0.0.1:%d", ip))
			s.intake = fmt.Sprintf("http://127.0.0.1:%d", ip)
		}
		env = append(env, workerEnv...)
		w, out, err := start(fmt.Sprintf("%s-worker-%d", label, i+1), logDir, env, workerBin, "run")
		if err != nil {
			s.stop()
			return nil, err
		}
		go func() { _, _ = io.Copy(io.Discard, out) }()
		s.workers = append(s.workers, w)
		s.metrics = append(s.metrics, fmt.Sprintf("http://127.0.0.1:%d/metrics", ops))
		if err := waitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ops), w); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

func waitReady(ctx context.Context, url string, w *proc) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return fmt.Errorf("worker exited during start; see %s", w.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("worker not ready at %s within 60s; see %s", url, w.log.Name())
}

func (s *stack) stop() {
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop(35 * time.Second) }()
	}
	wg.Wait()
	s.emu.stop(10 * time.Second)
}

// cpuTicks returns utime+stime of a process, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may contain spaces: count
	// fields after the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + s, errors.Join(err1, err2)
}

// rssKB returns VmRSS of a process.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), 100 when unknown.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
