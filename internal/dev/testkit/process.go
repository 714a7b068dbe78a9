package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Binary builds the main package pkg (a path relative to the test's
// directory, e.g. "../../cmd/worker", or "." for the package under test)
// once per test process, as a static production build, and returns the
// executable's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "cc-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := build(t, pkg, dir, []string{"CGO_ENABLED=0"})
	built[pkg] = out
	return out
}

// Build compiles the main package pkg afresh into the test's temporary
// directory with extra environment (GOOS, GOARCH, CGO_ENABLED…) and go
// build flags (-tags, -trimpath, -ldflags…), and returns the binary's path.
// It skips the test when there is no go command.
func Build(t testing.TB, pkg string, env []string, flags ...string) string {
	t.Helper()
	return build(t, pkg, t.TempDir(), env, flags...)
}

// BuildInto is Build with the binary written to dir (named after pkg's
// directory), for tests that put several binaries in one place.
func BuildInto(t testing.TB, dir, pkg string, env []string, flags ...string) string {
	t.Helper()
	return build(t, pkg, dir, env, flags...)
}

func build(t testing.TB, pkg, dir string, env []string, flags ...string) string {
	t.Helper()
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(abs))
	args := append(append([]string{"build"}, flags...), "-o", out, ".")
	cmd := exec.Command(GoTool(t), args...)
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// GoTool returns the go command's path, skipping the test without one.
func GoTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	return p
}

// Process is a program a test started. Its combined output goes to a file
// (so a long run's logs cost no memory) that is shown, last lines, when the
// test fails.
type Process struct {
	Cmd  *exec.Cmd
	Name string
	log  string
	done chan struct{}
	err  error
}

// LogPath is the file the process's output goes to.
func (p *Process) LogPath() string { return p.log }

// Start runs bin with env and args. The process is killed when the test
// ends (and, on Linux, when the test process dies, so a timed-out run
// leaves nothing behind); the last 60 lines of its output are logged if
// the test failed.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	name := filepath.Base(bin)
	logf, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: exec.Command(bin, args...), Name: name, log: logf.Name(), done: make(chan struct{})}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatal(err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("--- %s %v output (last 60 lines) ---\n%s", p.Name, args, p.Tail(60))
		}
	})
	return p
}

// Done is closed when the process has exited; Err then returns its exit
// error (nil for exit 0).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns the exit error once Done is closed (nil before, and for exit 0).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate sends SIGTERM and returns the exit error (nil for exit 0) and
// how long the exit took, or ok=false if it did not exit within timeout
// (the process is then killed).
func (p *Process) Terminate(timeout time.Duration) (exitErr error, took time.Duration, ok bool) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Wait waits up to timeout for the process to exit, killing it if it has
// not; ok reports whether it exited by itself.
func (p *Process) Wait(timeout time.Duration) (exitErr error, took time.Duration, ok bool) {
	start := time.Now()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err, time.Since(start), true
	case <-t.C:
		p.Kill()
		return nil, time.Since(start), false
	}
}

// Output returns what the process printed so far.
func (p *Process) Output() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Tail returns the last n lines of the process's output.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Grep counts output lines containing s.
func (p *Process) Grep(s string) int {
	f, err := os.Open(p.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(s)) {
			n++
		}
	}
	return n
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// PublishPorts returns two ports p and q such that 127.0.0.1:p, p+1, q and
// q+1 are free now, and n more single free ports. They are drawn below the
// kernel's ephemeral range (32768 and up), where outgoing connections on a
// busy machine could take them before Docker binds them, and all are held
// until all are chosen: for ports a container publishes on the host.
func PublishPorts(t testing.TB, n int) (p, q int, single []int) {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	free := func(ports ...int) bool {
		var ls []net.Listener
		for _, port := range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				for _, l := range ls {
					l.Close()
				}
				return false
			}
			ls = append(ls, l)
		}
		held = append(held, ls...)
		return true
	}
	pick := func(n int) int {
		for i := 0; i < 200; i++ {
			base := 20000 + rand.IntN(12000)
			ports := make([]int, n)
			for j := range ports {
				ports[j] = base + j
			}
			if free(ports...) {
				return base
			}
		}
		t.Fatal("no free ports on 127.0.0.1 between 20000 and 32000")
		return 0
	}
	p, q = pick(2), pick(2)
	for range n {
		single = append(single, pick(1))
	}
	return p, q, single
}

// Eventually polls ok every 50ms until it is true, failing the test at the
// deadline.
func Eventually(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	if !Poll(timeout, 50*time.Millisecond, ok) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Poll calls ok every interval until it returns true or timeout passes,
// and reports whether it did.
func Poll(timeout, every time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
}
