// Package emulator hosts the kumo AWS emulator (github.com/sivchari/kumo)
// in-process, for devstack and the tests. It is never linked into the
// production worker.
//
// kumo reads its settings from the environment in package init, before main
// or TestMain run, and its EventBridge delivers events to SQS by HTTP to
// KUMO_HOST:KUMO_PORT rather than to the server's own address. So a process
// that hosts it first calls Prepare, which re-executes the process with
// those variables set when they differ, and Start then serves the emulator
// on exactly that address (a TCP relay in front of kumo's in-process
// server), so events arrive and separate processes can use it too.
package emulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sivchari/kumo"
)

const envPrepared = "CLOUDCOMMERCE_EMULATOR_PREPARED"

// Prepare ensures this process runs with kumo's environment for the given
// listen address (port 0 picks a free port) and data directory (empty: in
// memory). When the environment already matches it returns nil; otherwise
// it re-executes the current program with the same arguments and the
// environment set, and does not return unless that fails.
func Prepare(addr, dataDir string) error {
	if os.Getenv(envPrepared) == "1" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("emulator address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "0" {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
		port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		_ = ln.Close()
	}
	env := append(os.Environ(), envPrepared+"=1", "KUMO_HOST="+host, "KUMO_PORT="+port, "KUMO_LOG_LEVEL=error")
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		env = append(env, "KUMO_DATA_DIR="+dataDir, "KUMO_PERSIST_FLUSH_INTERVAL_MS=250")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	return fmt.Errorf("re-execute with the emulator environment: %w", syscall.Exec(exe, os.Args, env))
}

// FlushInterval is how often a persistent emulator writes its state; wait
// this long after the last change before exiting to keep it.
const FlushInterval = 250 * time.Millisecond

// Emulator is a running emulator.
type Emulator struct {
	// URL is the address to give AWS clients (the proxy on KUMO_HOST:KUMO_PORT).
	URL string
	// DirectURL is kumo's own in-process server, one hop shorter, for
	// clients in this process.
	DirectURL string
	srv       *kumo.Server
	ln        net.Listener

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// Start starts the emulator on the address Prepare set up.
func Start() (*Emulator, error) {
	if os.Getenv(envPrepared) != "1" {
		return nil, errors.New("emulator: Prepare was not called")
	}
	addr := net.JoinHostPort(os.Getenv("KUMO_HOST"), os.Getenv("KUMO_PORT"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen on %s: %w", addr, err)
	}
	// Some kumo services log through the default slog logger; keep it to
	// errors so devstack's own output stays readable.
	// (they captured the default handler at init, so its level is what
	// can be changed).
	slog.SetLogLoggerLevel(slog.LevelError)
	srv := kumo.NewServer()
	target := strings.TrimPrefix(srv.URL, "http://")
	// Listening on every interface (in a container, say), clients on this
	// host still reach it on loopback.
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	e := &Emulator{URL: "http://" + net.JoinHostPort(host, port), DirectURL: srv.URL, srv: srv, ln: ln, conns: map[net.Conn]struct{}{}}
	go e.forward(target)
	return e, nil
}

// forward relays every connection on e.ln to kumo's server, byte for byte.
// A TCP relay rather than an HTTP reverse proxy: each client connection
// maps to one connection to kumo, so keep-alive, long polls and response
// bodies behave exactly as if the client had dialled kumo itself (an HTTP
// proxy's own connection pool now and then cut a response body short under
// load).
func (e *Emulator) forward(target string) {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				return
			}
			if !e.track(c, b) {
				return
			}
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(b, c)
			go pipe(c, b)
			<-done
			<-done
			e.untrack(c, b)
		}()
	}
}

func (e *Emulator) track(cs ...net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		e.conns[c] = struct{}{}
	}
	return true
}

func (e *Emulator) untrack(cs ...net.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(e.conns, c)
	}
}

// Close stops the emulator. With a data directory, state changed in the
// last FlushInterval may not be written; callers that care wait first.
func (e *Emulator) Close() {
	_ = e.ln.Close()
	e.mu.Lock()
	e.closed = true
	for c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.srv.Close()
}

// TestingM is the part of *testing.M that RunTests needs.
type TestingM interface{ Run() int }

// RunTests is a TestMain body for packages that need the emulator: it
// prepares a free port, starts the emulator and exports AWS_ENDPOINT_URL
// (unless the environment already names an endpoint such as LocalStack, or
// CLOUDCOMMERCE_TEST_REAL_AWS=1 asks for real AWS with the usual
// credentials, in which case the suite runs against that), runs the tests
// and exits.
func RunTests(m TestingM) {
	if (os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("CLOUDCOMMERCE_TEST_REAL_AWS") == "1") && os.Getenv(envPrepared) != "1" {
		os.Exit(m.Run())
	}
	if err := Prepare("127.0.0.1:0", ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("AWS_ENDPOINT_URL", e.URL)
	os.Setenv("AWS_REGION", "us-east-1")
	os.Setenv("AWS_ACCESS_KEY_ID", "test")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	code := m.Run()
	e.Close()
	os.Exit(code)
}

// Embedded reports whether this process hosts the emulator (as opposed to
// running a suite against LocalStack or AWS), for the few assertions that
// depend on a documented emulator gap.
func Embedded() bool { return os.Getenv(envPrepared) == "1" }

// SeparateStdout keeps the emulator's own log lines (kumo's EventBridge
// logs every delivery to standard output, through a handle taken at
// package init) out of the program's output: file descriptor 1 is pointed
// at /dev/null and the returned file, a duplicate of the original standard
// output, is what the program should print to. It does nothing (and returns
// os.Stdout) unless this process was prepared to host the emulator, so a
// re-execution never inherits the redirect.
func SeparateStdout() *os.File {
	if !Embedded() {
		return os.Stdout
	}
	orig, err := syscall.Dup(1)
	if err != nil {
		return os.Stdout
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		_ = syscall.Close(orig)
		return os.Stdout
	}
	defer null.Close()
	if err := syscall.Dup2(int(null.Fd()), 1); err != nil {
		_ = syscall.Close(orig)
		return os.Stdout
	}
	out := os.NewFile(uintptr(orig), "/dev/stdout")
	os.Stdout = out
	return out
}
