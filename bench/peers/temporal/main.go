// Command temporal-peer measures CloudCommerce's order workflow on
// Temporal, as the peer of bench/runner's burst: it starts `temporal
// server start-dev` (in-memory SQLite) and a Temporal worker as separate
// processes, places a burst of orders at once, waits until every workflow
// is final, and reports orders/s, placed→final percentiles and the CPU per
// order of each process from /proc/<pid>/stat, as JSON.
//
//	temporal-peer run -temporal ~/.cache/cloudcommerce/tools/temporal-v1.5.1/temporal -orders 2000 -json out.json
//	temporal-peer worker -address 127.0.0.1:7233 -task-queue orders
//
// It is its own Go module so that CloudCommerce's module does not carry
// the Temporal SDK.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: temporal-peer run|worker [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runBench(ctx, os.Args[2:])
	case "worker":
		err = runWorker(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want run or worker", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal-peer:", err)
		os.Exit(1)
	}
}

// SKUs are the plentiful SKUs the burst orders from (as the load
// generator's).
var SKUs = []string{"LG-WIDGET", "LG-GADGET", "LG-GIZMO", "LG-SPROCKET"}

func runWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	addr := fs.String("address", "127.0.0.1:7233", "Temporal frontend address")
	queue := fs.String("task-queue", "cloudcommerce-orders", "task queue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := client.Dial(client.Options{HostPort: *addr, Logger: quiet()})
	if err != nil {
		return fmt.Errorf("dial %s: %w", *addr, err)
	}
	defer c.Close()
	stock := map[string]int64{}
	for _, s := range SKUs {
		stock[s] = 1 << 40
	}
	w := worker.New(c, *queue, worker.Options{})
	w.RegisterWorkflow(OrderWorkflow)
	w.RegisterActivity(NewActivities(stock))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	w.Stop()
	return nil
}

// quiet is the SDK's logger at warn level and above, on stderr.
func quiet() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// Process is one process's share of the measured window.
type Process struct {
	Name          string  `json:"name"`
	CPUSeconds    float64 `json:"cpu_s"`
	CPUMicrosPer  float64 `json:"cpu_us_per_order"`
	Cores         float64 `json:"cores"`
	RSSPeakMB     float64 `json:"rss_peak_mb"`
	CommandLine   string  `json:"command"`
	utimeAtStart  int64
	rssPeakKB     int64
	pid           int
	measuredTicks int64
}

// Report is the peer's result.
type Report struct {
	System          string         `json:"system"`
	TemporalCLI     string         `json:"temporal_cli"`
	Orders          int            `json:"orders"`
	Final           int            `json:"final"`
	ByStatus        map[string]int `json:"by_status"`
	PlaceSeconds    float64        `json:"place_s"`
	ElapsedSeconds  float64        `json:"elapsed_s"`
	OrdersPerSecond float64        `json:"orders_per_s"`
	P50Ms           float64        `json:"p50_ms"`
	P99Ms           float64        `json:"p99_ms"`
	MaxMs           float64        `json:"max_ms"`
	Processes       []*Process     `json:"processes"`
	CPUMicrosPer    float64        `json:"cpu_us_per_order"`
	LoadAvgStart    string         `json:"loadavg_start"`
	LoadAvgEnd      string         `json:"loadavg_end"`
	Started         time.Time      `json:"started"`
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cli := fs.String("temporal", "", "path of the Temporal CLI (temporal server start-dev)")
	orders := fs.Int("orders", 2000, "orders in the burst")
	warm := fs.Int("warm", 80, "orders placed and finished before the measured burst")
	conc := fs.Int("concurrency", 64, "workflow starts in flight at once while placing")
	waiters := fs.Int("waiters", 16, "result waits in flight at once")
	declined := fs.Float64("declined", 0, "share of orders paid with a declined card")
	out := fs.String("json", "", "write the report here as JSON (stdout otherwise)")
	logs := fs.String("logs", os.TempDir(), "directory for the server's and worker's logs")
	timeout := fs.Duration("timeout", 15*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cli == "" {
		return errors.New("-temporal is required")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := os.MkdirAll(*logs, 0o755); err != nil {
		return err
	}
	ver, _ := exec.Command(*cli, "--version").Output()
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	srv, err := start(filepath.Join(*logs, "temporal-server.log"), *cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(ports[0]), "--http-port", strconv.Itoa(ports[1]), "--metrics-port", strconv.Itoa(ports[2]))
	if err != nil {
		return err
	}
	defer srv.stop()
	c, err := dialReady(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	queue := "cloudcommerce-orders"
	wk, err := start(filepath.Join(*logs, "temporal-worker.log"), self, "worker", "-address", addr, "-task-queue", queue)
	if err != nil {
		return err
	}
	defer wk.stop()
	if err := waitLine(ctx, filepath.Join(*logs, "temporal-worker.log"), "ready", wk); err != nil {
		return err
	}

	rng := rand.New(rand.NewPCG(1, 2))
	stamp := time.Now().UnixNano()
	mk := func(prefix string, i int) Order {
		o := Order{ID: fmt.Sprintf("%s-%d-%05d", prefix, stamp, i), Customer: fmt.Sprintf("cust-%04d", i%1000), Token: "tok_visa"}
		if rng.Float64() < *declined {
			o.Token = TokenDeclined
		}
		perm := rng.Perm(len(SKUs))
		for _, k := range perm[:1+rng.IntN(2)] {
			q := int64(1 + rng.IntN(3))
			o.Lines = append(o.Lines, Line{SKU: SKUs[k], Quantity: q})
			o.Amount += q * int64(500+250*k)
		}
		return o
	}
	// Warm-up: connections, caches and the worker's pollers, as the
	// CloudCommerce side warms up with 80 orders.
	if _, _, err := burst(ctx, c, queue, *warm, *conc, *waiters, func(i int) Order { return mk("warm", i) }); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	rep := &Report{System: "temporal", TemporalCLI: strings.TrimSpace(string(ver)), Orders: *orders, ByStatus: map[string]int{}, Started: time.Now().UTC()}
	rep.Processes = []*Process{
		{Name: "temporal server start-dev", pid: srv.pid(), CommandLine: strings.Join(srv.cmd.Args, " ")},
		{Name: "temporal worker", pid: wk.pid(), CommandLine: strings.Join(wk.cmd.Args, " ")},
	}
	batch := make([]Order, *orders)
	for i := range batch {
		batch[i] = mk("order", i)
	}
	debug.FreeOSMemory()
	stopSampling := sampleRSS(rep.Processes)
	rep.LoadAvgStart = loadAvg()
	for _, p := range rep.Processes {
		p.utimeAtStart, _ = cpuTicks(p.pid)
	}
	t0 := time.Now()
	br, placeDone, err := burst(ctx, c, queue, *orders, *conc, *waiters, func(i int) Order { return batch[i] })
	t1 := time.Now()
	for _, p := range rep.Processes {
		end, _ := cpuTicks(p.pid)
		p.measuredTicks = end - p.utimeAtStart
	}
	rep.LoadAvgEnd = loadAvg()
	stopSampling()
	if err != nil {
		return err
	}
	rep.PlaceSeconds = placeDone.Sub(t0).Seconds()
	var lat []float64
	var first, last time.Time
	for i, r := range br.results {
		if r.Status == "" {
			continue
		}
		rep.Final++
		rep.ByStatus[r.Status]++
		placed := br.orders[i].PlacedAt
		if first.IsZero() || placed.Before(first) {
			first = placed
		}
		if r.FinalAt.After(last) {
			last = r.FinalAt
		}
		lat = append(lat, float64(r.FinalAt.Sub(placed).Microseconds())/1000)
	}
	sort.Float64s(lat)
	if len(lat) > 0 {
		rep.P50Ms, rep.P99Ms, rep.MaxMs = pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
		rep.ElapsedSeconds = last.Sub(first).Seconds()
		rep.OrdersPerSecond = float64(rep.Final) / rep.ElapsedSeconds
	}
	ticks := clockTicks()
	window := t1.Sub(t0).Seconds()
	for _, p := range rep.Processes {
		p.CPUSeconds = float64(p.measuredTicks) / ticks
		p.CPUMicrosPer = p.CPUSeconds / float64(*orders) * 1e6
		p.Cores = p.CPUSeconds / window
		p.RSSPeakMB = float64(p.rssPeakKB) / 1024
		rep.CPUMicrosPer += p.CPUMicrosPer
	}
	if rep.Final != *orders {
		return fmt.Errorf("%d of %d orders final", rep.Final, *orders)
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = os.Stdout.Write(append(raw, '\n'))
		return err
	}
	return os.WriteFile(*out, raw, 0o644)
}

// burst starts n workflows with conc starts in flight, then waits for
// their results with waiters in flight (in placement order, as a client
// checking completion would), and returns the results and when the last
// start was accepted. Each order's PlacedAt is set just before its start.
func burst(ctx context.Context, c client.Client, queue string, n, conc, waiters int, order func(int) Order) (burstResult, time.Time, error) {
	runs := make([]client.WorkflowRun, n)
	orders := make([]Order, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range conc {
		wg.Go(func() {
			for i := range next {
				o := order(i)
				o.PlacedAt = time.Now().UTC()
				orders[i] = o
				runs[i], errs[i] = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: o.ID, TaskQueue: queue}, OrderWorkflow, o)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	placed := time.Now()
	if err := errors.Join(errs...); err != nil {
		return burstResult{}, placed, fmt.Errorf("start workflows: %w", err)
	}
	results := make([]Result, n)
	next = make(chan int)
	for range waiters {
		wg.Go(func() {
			for i := range next {
				errs[i] = runs[i].Get(ctx, &results[i])
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return burstResult{}, placed, fmt.Errorf("wait for workflows: %w", err)
	}
	return burstResult{orders, results}, placed, nil
}

// burstResult is every order as started (with its PlacedAt) and its
// workflow's result, by index.
type burstResult struct {
	orders  []Order
	results []Result
}

func pct(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func dialReady(ctx context.Context, addr string) (client.Client, error) {
	var last error
	for ctx.Err() == nil {
		c, err := client.Dial(client.Options{HostPort: addr, Logger: quiet()})
		if err == nil {
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = c.CheckHealth(hctx, &client.CheckHealthRequest{})
			if err == nil {
				_, err = c.WorkflowService().GetSystemInfo(hctx, nil)
			}
			cancel()
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	return nil, fmt.Errorf("temporal server at %s not ready: %w", addr, errors.Join(ctx.Err(), last))
}

// proc is a started child process; exited closes when it has exited.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func start(logPath, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// stop asks the process to end (SIGTERM) and kills it after 10 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitLine waits until the log holds a line equal to want.
func waitLine(ctx context.Context, path, want string, p *proc) error {
	for ctx.Err() == nil {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == want {
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (see %s)", p.cmd.Path, path)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ctx.Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuTicks is utime + stime of a process from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return ut + st, errors.Join(err1, err2)
}

func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

func rssKB(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// sampleRSS records each process's peak RSS every 250 ms until stopped.
func sampleRSS(ps []*Process) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			for _, p := range ps {
				p.rssPeakKB = max(p.rssPeakKB, rssKB(p.pid))
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(stop); <-done }
}

func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
