// Command runner runs CloudCommerce's standard benchmark scenarios end to
// end: for every measurement it starts the kumo emulator (`devstack
// --emulator-only`) and the built worker binary as separate processes,
// places orders with the load generator (internal/dev/loadgen, in this
// process), and reads the worker's and the emulator's CPU and memory from
// /proc. It writes raw JSON lines to bench/results/, the tables to
// bench/figures.md and the chart to bench/plot.svg, prints the cost model,
// and exits non-zero when a target is missed, saying which.
//
// Run it through bench/run.sh, which builds the binaries first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is a worker configuration under test: environment on top of the
// worker's defaults.
type config struct {
	Name string   `json:"name"`
	Env  []string `json:"env"`
	// Bin, when set, is another worker binary (a proposed change built
	// elsewhere) to measure in the same harness.
	Bin string `json:"bin,omitempty"`
}

var (
	batched = config{Name: "batched", Env: nil}
	// eager batches without lingering: receives, deletes and events go out
	// as soon as anything is there (the receive and delete lingers off, two
	// pollers per stage), to show what the lingers buy.
	eager = config{Name: "eager", Env: []string{"CLOUDCOMMERCE_RECEIVE_LINGER=0", "CLOUDCOMMERCE_DELETE_LINGER=5ms", "CLOUDCOMMERCE_POLLERS=2"}}
	naive = config{Name: "naive", Env: []string{"CLOUDCOMMERCE_BATCHING=false"}}
	// compact is batched with orders stored in the compact format (step
	// two of the storage rollout): the write units after the change, the
	// batched run's JSON format before it.
	compact = config{Name: "batched-compact", Env: []string{"CLOUDCOMMERCE_ORDER_FORMAT=compact"}}
)

// The benchmark's targets: AWS requests and worker CPU per order at steady
// load, and the latency goal of the throughput ladder.
const (
	targetRequestsPerOrder = 6.5
	targetCPUMicros        = 300
	latencyGoalMs          = 1000
)

type options struct {
	bin, out, plot, figures string
	headline, readme        string
	quick                   bool
	only                    map[string]bool
	steadyRate              float64
	producerLinger          time.Duration
	steadyOrders            int
	naiveRate               float64
	apiRate                 float64
	apiOrders               int
	stepSeconds             float64
	rates                   []float64
	scaleRate               float64
	scaleSeconds            float64
	configs                 []config
	fromSummary             string
	replot                  bool
	flashHot, flashOther    int
	flashFraction           float64
	flashRate, flashWCU     float64
	flashShards             []int
	flashTimeout            time.Duration
	peerOrders              int
	temporalCLI             string
	pprofSeconds            int
	smooth                  bool
}

func parse(args []string) (options, error) {
	var o options
	var only, rates, configs, protoBin, protoEnv, flashShards string
	quick := false
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bench/results/bin", "directory with the built worker and devstack binaries")
	fs.StringVar(&o.out, "out", "bench/results", "directory for raw JSON lines and logs (git-ignored)")
	fs.StringVar(&o.plot, "plot", "bench/plot.svg", "where to write the chart")
	fs.StringVar(&o.figures, "figures", "bench/figures.md", "where to write the tables")
	fs.StringVar(&only, "only", "steady,api,throughput,scaling,peer", "scenarios to run: steady (requests and CPU per order), api, throughput, scaling, peer (the same burst against CloudCommerce and against Temporal), flash (a flash sale against the per-key write limit; not in the default set), headline (every figure the README quotes, in one run of at most 20 minutes on 2 cores, written to -headline; alone)")
	fs.IntVar(&o.flashHot, "flash-hot", 1000, "flash: orders for one unit each of the SKU on sale")
	fs.Float64Var(&o.flashFraction, "flash-fraction", 0.5, "flash: the SKU's stock as a fraction of the units its orders ask for")
	fs.IntVar(&o.flashOther, "flash-other", 500, "flash: other orders placed at the same time, spread through the sale")
	fs.Float64Var(&o.flashRate, "flash-rate", 150, "flash: offered orders/s, hot and other together")
	fs.Float64Var(&o.flashWCU, "flash-wcu", 40, "flash: write units a second per DynamoDB key in the throttling model (AWS: 1000 per partition)")
	fs.StringVar(&flashShards, "flash-shards", "1,8", "flash: the shard counts of the SKU on sale, each a run")
	fs.DurationVar(&o.flashTimeout, "flash-timeout", 4*time.Minute, "flash: how long to wait for every order to be final")
	fs.Float64Var(&o.steadyRate, "steady-rate", 150, "offered orders/s of the steady-load runs")
	fs.DurationVar(&o.producerLinger, "producer-linger", 50*time.Millisecond, "how long the bus producer gathers due orders into one PutEvents (a batching producer); the steady scenario also runs once with 5ms (a smooth producer)")
	fs.IntVar(&o.steadyOrders, "steady-orders", 6000, "orders in each steady-load run (at least 5000 for the CPU figure)")
	fs.Float64Var(&o.naiveRate, "naive-rate", 75, "offered orders/s of the naive configuration's steady run")
	fs.Float64Var(&o.apiRate, "api-rate", 100, "offered orders/s through the intake API")
	fs.IntVar(&o.apiOrders, "api-orders", 3000, "orders through the intake API")
	fs.Float64Var(&o.stepSeconds, "step-seconds", 12, "length of each throughput step")
	fs.StringVar(&rates, "rates", "50,100,150,200,250,300,350,400,500", "offered rates of the throughput ladder")
	fs.Float64Var(&o.scaleRate, "scale-rate", 450, "offered orders/s of the scaling runs (above capacity: they measure the drain rate)")
	fs.Float64Var(&o.scaleSeconds, "scale-seconds", 12, "length of each scaling run")
	fs.StringVar(&configs, "configs", "batched,naive,eager", "worker configurations to compare: batched (defaults), naive (CLOUDCOMMERCE_BATCHING=false), eager (batching without the receive and delete lingers), proto")
	fs.StringVar(&protoBin, "proto-bin", "", "with -configs proto: a worker binary with a proposed change, measured in the same harness")
	fs.StringVar(&protoEnv, "proto-env", "", "with -configs proto: space-separated environment for it")
	fs.BoolVar(&o.smooth, "smooth", true, "the steady scenario also runs the configuration under test with a smooth producer")
	fs.IntVar(&o.pprofSeconds, "pprof-seconds", 0, "when > 0, run the workers with CLOUDCOMMERCE_PPROF=true and save a CPU profile of the first worker over this many seconds from the first placement of each measured run (logs directory, <run>-cpu.pprof); profiling costs a little CPU, so take the CPU figures from runs without it")
	fs.IntVar(&o.peerOrders, "peer-orders", 2000, "orders of the peer burst, placed at once on each system")
	fs.StringVar(&o.temporalCLI, "temporal", defaultTemporalCLI(), "the Temporal CLI the peer runs `temporal server start-dev` with (bench/run.sh installs it)")
	fs.StringVar(&o.fromSummary, "from-summary", "", "rewrite the figures and plot from a saved bench/results/summary-*.json instead of measuring")
	fs.StringVar(&o.headline, "headline", "bench/headline.md", "where -only headline writes its figures")
	fs.StringVar(&o.readme, "readme", "README.md", "the README whose headline block -only headline rewrites with the summary it wrote (empty: leave it)")
	fs.BoolVar(&quick, "quick", false, "small runs, for checking the script itself (figures are not meaningful)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range strings.Split(flashShards, ",") {
		var k int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &k); err != nil || k < 1 || k > 32 {
			return o, fmt.Errorf("-flash-shards: %q is not a shard count 1..32", f)
		}
		o.flashShards = append(o.flashShards, k)
	}
	if o.flashFraction <= 0 || o.flashFraction > 1 || o.flashRate <= 0 || o.flashWCU <= 0 || o.flashHot < 0 || o.flashOther < 1 {
		return o, errors.New("-flash-fraction must be in (0, 1], -flash-rate and -flash-wcu positive, -flash-other at least 1")
	}
	o.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		o.only[strings.TrimSpace(s)] = true
	}
	for _, r := range strings.Split(rates, ",") {
		var v float64
		if _, err := fmt.Sscanf(strings.TrimSpace(r), "%g", &v); err != nil || v <= 0 {
			return o, fmt.Errorf("-rates: %q is not a rate", r)
		}
		o.rates = append(o.rates, v)
	}
	for _, c := range strings.Split(configs, ",") {
		switch strings.TrimSpace(c) {
		case "batched":
			o.configs = append(o.configs, batched)
		case "naive":
			o.configs = append(o.configs, naive)
		case "eager":
			o.configs = append(o.configs, eager)
		case "proto":
			if protoBin == "" {
				return o, errors.New("-configs proto needs -proto-bin")
			}
			abs, err := filepath.Abs(protoBin)
			if err != nil {
				return o, err
			}
			o.configs = append(o.configs, config{Name: "proto", Env: strings.Fields(protoEnv), Bin: abs})
		default:
			return o, fmt.Errorf("-configs: unknown configuration %q", c)
		}
	}
	o.quick = quick
	if quick {
		o.flashHot, o.flashOther = 200, 100
		o.steadyOrders, o.apiOrders, o.stepSeconds, o.scaleSeconds, o.peerOrders = 600, 300, 4, 4, 200
		o.rates = []float64{50, 150}
	}
	return o, nil
}

// Measurement is one run of the load generator against one stack.
type Measurement struct {
	Scenario string          `json:"scenario"`
	Config   config          `json:"config"`
	Workers  int             `json:"workers"`
	Attempt  int             `json:"attempt"`
	Load     *loadgen.Result `json:"load"`
	Error    string          `json:"error,omitempty"`
	// Over the measured window (first placement → counters read):
	WallSeconds        float64   `json:"wall_s"`
	WorkerCPUSeconds   float64   `json:"worker_cpu_s"`
	WorkerCPUMicros    float64   `json:"worker_cpu_us_per_order"`
	BusySeconds        float64   `json:"busy_s"`
	WorkerCores        float64   `json:"worker_cores"`
	EmulatorCPUSeconds float64   `json:"emulator_cpu_s"`
	EmulatorCores      float64   `json:"emulator_cores"`
	LoadgenCores       float64   `json:"loadgen_cores"`
	WorkerRSSIdleMB    []float64 `json:"worker_rss_idle_mb"`
	WorkerRSSPeakMB    []float64 `json:"worker_rss_peak_mb"`
	EmulatorRSSPeakMB  float64   `json:"emulator_rss_peak_mb"`
	LoadAvgStart       string    `json:"loadavg_start"`
	LoadAvgEnd         string    `json:"loadavg_end"`
	// Writes are the DynamoDB write units of the run's orders, from the
	// workers' recorded writes (steady scenarios).
	Writes  *cost.WriteUnits `json:"writes,omitempty"`
	Pass    bool             `json:"pass"`
	Started time.Time        `json:"started"`
}

type bench struct {
	o      options
	ticks  float64
	logDir string
	jsonl  string
	log    io.Writer
	all    []*Measurement
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.fromSummary != "" {
		raw, err := os.ReadFile(o.fromSummary)
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("%s: %w", o.fromSummary, err)
		}
		o.replot = true
		return rep.write(o, stdout)
	}
	bins := []string{"worker", "devstack"}
	if o.only["peer"] || o.only["headline"] {
		bins = append(bins, "temporal-peer")
		if _, err := os.Stat(o.temporalCLI); err != nil {
			return fmt.Errorf("the Temporal CLI (run bench/run.sh, which installs it): %w", err)
		}
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s not built in %s (run bench/run.sh): %w", b, o.bin, err)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stamp := time.Now().UTC().Format("20060102T150405Z")
	b := &bench{o: o, ticks: clockTicks(), logDir: filepath.Join(o.out, "logs", stamp), jsonl: filepath.Join(o.out, "runs-"+stamp+".jsonl"), log: stdout}
	if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return err
	}
	m := machine()
	fmt.Fprintf(stdout, "machine: %s\nraw results: %s, logs: %s\n", m.String(), b.jsonl, b.logDir)

	if o.only["headline"] {
		if len(o.only) > 1 {
			return errors.New("-only headline runs alone")
		}
		return b.headline(ctx, o.quick, m)
	}
	if o.only["flash"] {
		runs := b.flash(ctx)
		if err := writeFlash(runs, o.out, stdout); err != nil {
			return err
		}
		delete(o.only, "flash")
		if len(o.only) == 0 {
			return ctx.Err()
		}
	}
	var rep report
	rep.Machine = m
	if o.only["steady"] {
		for _, c := range o.configs {
			rate, orders := o.steadyRate, o.steadyOrders
			if c.Name == naive.Name {
				// One request per message however the load: a lower rate
				// gives the same figures with headroom.
				rate, orders = o.naiveRate, min(o.steadyOrders, int(o.naiveRate*40))
			}
			rep.Steady = append(rep.Steady, b.measure(ctx, "steady", c, 1, false, rate, orders, loadgen.DefaultMix()))
		}
		if o.configs[0].Name == batched.Name {
			rep.Steady = append(rep.Steady, b.measure(ctx, "steady", compact, 1, false, o.steadyRate, o.steadyOrders, loadgen.DefaultMix()))
		}
		// The configuration under test once more with a smooth producer
		// (one event per PutEvents at these rates, as single clients
		// placing orders would send them).
		if o.smooth {
			rep.Steady = append(rep.Steady, b.measure(ctx, "steady-smooth", o.configs[0], 1, false, o.steadyRate, o.steadyOrders, loadgen.DefaultMix()))
		}
	}
	if o.only["api"] {
		rep.Steady = append(rep.Steady, b.measure(ctx, "api", o.configs[0], 1, true, o.apiRate, o.apiOrders, loadgen.DefaultMix()))
	}
	if o.only["throughput"] {
		for _, c := range o.configs {
			steps, best := b.ladder(ctx, c)
			rep.Throughput = append(rep.Throughput, ladder{Config: c, Steps: steps, Sustained: best})
		}
	}
	if o.only["scaling"] {
		for _, n := range []int{1, 2, 4} {
			orders := int(o.scaleRate * o.scaleSeconds)
			rep.Scaling = append(rep.Scaling, b.measure(ctx, "scaling", o.configs[0], n, false, o.scaleRate, orders, throughputMix()))
		}
	}
	if o.only["peer"] {
		rep.Peer = b.peer(ctx, stamp)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The first configuration is the one under test (the defaults unless
	// -configs says otherwise).
	missed := rep.check(o.configs[0].Name)
	if err := rep.write(o, stdout); err != nil {
		return err
	}
	if len(missed) > 0 {
		return fmt.Errorf("targets missed:\n  %s", strings.Join(missed, "\n  "))
	}
	fmt.Fprintln(stdout, "every target met")
	return nil
}

// defaultTemporalCLI is where bench/run.sh installs the Temporal CLI:
// $CLOUDCOMMERCE_TOOLS_DIR, else ~/.cache/cloudcommerce/tools.
func defaultTemporalCLI() string {
	dir := os.Getenv("CLOUDCOMMERCE_TOOLS_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "cloudcommerce", "tools")
	}
	return filepath.Join(dir, "temporal-v1.5.1", "temporal")
}

// throughputMix is the mix of the throughput and scaling runs: the
// realistic one without transient payment failures, whose retries back off
// for ≥ 1 s + 2 s by design (CLOUDCOMMERCE_RETRY_BASE) and would put p99
// over 1 s at any load.
func throughputMix() loadgen.Mix {
	m := loadgen.DefaultMix()
	m.Transient = 0
	return m
}

// measure starts a fresh stack, warms it up, runs the load generator and
// reads /proc around the measured window.
func (b *bench) measure(ctx context.Context, scenario string, c config, workers int, api bool, rate float64, orders int, mix loadgen.Mix) *Measurement {
	m := &Measurement{Scenario: scenario, Config: c, Workers: workers, Started: time.Now().UTC()}
	defer func() {
		b.all = append(b.all, m)
		if err := loadgen.AppendJSON(b.jsonl, m); err != nil {
			fmt.Fprintf(b.log, "write %s: %v\n", b.jsonl, err)
		}
	}()
	if ctx.Err() != nil {
		m.Error = ctx.Err().Error()
		return m
	}
	label := fmt.Sprintf("%s-%s-w%d-r%.0f", scenario, strings.ReplaceAll(c.Name, "+", "-"), workers, rate)
	fmt.Fprintf(b.log, "\n== %s: %d orders at %.0f/s, %d worker(s), %s, loadavg %s\n", label, orders, rate, workers, c.Name, loadAvg())
	workerBin := filepath.Join(b.o.bin, "worker")
	if c.Bin != "" {
		workerBin = c.Bin
	}
	env := append([]string(nil), c.Env...)
	if b.o.pprofSeconds > 0 {
		env = append(env, "CLOUDCOMMERCE_PPROF=true")
	}
	var recording string
	if strings.HasPrefix(scenario, "steady") || scenario == "api" {
		recording = filepath.Join(b.logDir, label+"-writes.jsonl")
		env = append(env, recordEnv(recording)...)
	}
	st, err := startStack(ctx, b.o.bin, workerBin, b.logDir, label, workers, env, api, nil)
	if err != nil {
		m.Error = err.Error()
		fmt.Fprintf(b.log, "start: %v\n", err)
		return m
	}
	defer st.stop()
	time.Sleep(2 * time.Second)
	for _, w := range st.workers {
		m.WorkerRSSIdleMB = append(m.WorkerRSSIdleMB, float64(rssKB(w.pid()))/1024)
	}
	aws, err := awsconf.Load(ctx, awsconf.Options{Endpoint: st.endpoint, Region: "us-east-1", StaticCredentials: true})
	if err != nil {
		m.Error = err.Error()
		return m
	}
	base := loadgen.Config{Target: loadgen.TargetBus, AWS: aws, Prefix: st.prefix, Out: io.Discard, ProducerLinger: b.o.producerLinger}
	if scenario == "steady-smooth" {
		base.ProducerLinger = 5 * time.Millisecond
	}
	if api {
		base.Target, base.APIURL = loadgen.TargetAPI, st.intake
	}
	// Warm up connections and pools: the first orders after start pay
	// for dialing and growing the worker's pools.
	warm := base
	warm.Rate, warm.Orders, warm.Timeout, warm.Seed, warm.Mix = 40, 80, time.Minute, 99, throughputMix()
	if _, err := loadgen.Run(ctx, warm); err != nil {
		fmt.Fprintf(b.log, "warm-up: %v\n", err)
	}

	var wStart, wEnd []int64
	var eStart, eEnd int64
	var tStart, tEnd time.Time
	snap := func(ws *[]int64, e *int64, t *time.Time) {
		*ws = (*ws)[:0]
		for _, w := range st.workers {
			v, _ := cpuTicks(w.pid())
			*ws = append(*ws, v)
		}
		*e, _ = cpuTicks(st.emu.pid())
		*t = time.Now()
	}
	peak := make([]int64, len(st.workers))
	var emuPeak int64
	var samples []cpuSample
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			cs := cpuSample{at: time.Now()}
			for i, w := range st.workers {
				peak[i] = max(peak[i], rssKB(w.pid()))
				v, _ := cpuTicks(w.pid())
				cs.worker += v
			}
			emuPeak = max(emuPeak, rssKB(st.emu.pid()))
			cs.emu, _ = cpuTicks(st.emu.pid())
			cs.self, _ = cpuTicks(os.Getpid())
			samples = append(samples, cs)
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()
	cfg := base
	cfg.Label, cfg.Rate, cfg.Orders, cfg.Seed, cfg.Mix = label, rate, orders, 1, mix
	cfg.Timeout = time.Duration(float64(orders)/rate*float64(time.Second)) + 2*time.Minute
	cfg.MetricsURLs = st.metrics
	cfg.Out, cfg.ProgressEvery = b.log, 5*time.Second
	profiled := make(chan struct{})
	cfg.BeforePlacing = func() {
		snap(&wStart, &eStart, &tStart)
		if recording != "" {
			// The warm-up's orders are final: what is recorded from now
			// on is the measured run's (the workers append; O_APPEND
			// writes go to the new end).
			if err := os.Truncate(recording, 0); err != nil {
				fmt.Fprintf(b.log, "recorded writes: %v\n", err)
			}
		}
		if b.o.pprofSeconds <= 0 {
			close(profiled)
			return
		}
		go func() {
			defer close(profiled)
			path := filepath.Join(b.logDir, label+"-cpu.pprof")
			if err := saveProfile(ctx, strings.TrimSuffix(st.metrics[0], "/metrics"), b.o.pprofSeconds, path); err != nil {
				fmt.Fprintf(b.log, "CPU profile: %v\n", err)
				return
			}
			fmt.Fprintf(b.log, "CPU profile of worker 1 (%d s from the first placement): %s\n", b.o.pprofSeconds, path)
		}()
	}
	cfg.AfterCounters = func() { snap(&wEnd, &eEnd, &tEnd) }
	m.LoadAvgStart = loadAvg()
	res, err := loadgen.Run(ctx, cfg)
	m.LoadAvgEnd = loadAvg()
	close(stopSampling)
	<-sampleDone
	if !tStart.IsZero() {
		<-profiled
	}
	m.Load = res
	if err != nil {
		m.Error = err.Error()
		fmt.Fprintf(b.log, "load: %v\n", err)
	}
	if res == nil || tEnd.IsZero() {
		return m
	}
	m.WallSeconds = tEnd.Sub(tStart).Seconds()
	for i := range wStart {
		m.WorkerCPUSeconds += float64(wEnd[i]-wStart[i]) / b.ticks
	}
	m.EmulatorCPUSeconds = float64(eEnd-eStart) / b.ticks
	if res.Placed > 0 {
		m.WorkerCPUMicros = m.WorkerCPUSeconds / float64(res.Placed) * 1e6
	}
	// Cores are averaged over the busy period, first placement until 99%
	// of the orders were final, from the 250 ms samples; a straggler's
	// idle wait would otherwise dilute them.
	if from, to, ok := span(samples, res.FirstPlaced, res.Done99); ok {
		dt := to.at.Sub(from.at).Seconds()
		m.WorkerCores = float64(to.worker-from.worker) / b.ticks / dt
		m.EmulatorCores = float64(to.emu-from.emu) / b.ticks / dt
		m.LoadgenCores = float64(to.self-from.self) / b.ticks / dt
		m.BusySeconds = dt
	}
	for _, p := range peak {
		m.WorkerRSSPeakMB = append(m.WorkerRSSPeakMB, float64(p)/1024)
	}
	m.EmulatorRSSPeakMB = float64(emuPeak) / 1024
	if recording != "" {
		if m.Writes, err = recordedWriteUnits(recording, st.prefix); err != nil {
			fmt.Fprintf(b.log, "recorded writes: %v\n", err)
		} else {
			fmt.Fprintf(b.log, "recorded writes: %.2f WRU per order over %d orders (%s)\n", m.Writes.Total(), m.Writes.Orders, recording)
		}
		err = nil
		if m.Error != "" {
			err = fmt.Errorf("%s", m.Error)
		}
	}
	m.Pass = err == nil && res.P99Ms < latencyGoalMs && res.MaxPlaceLagMs < 1000 && res.OrdersPerSecond99 >= 0.9*rate
	b.explain(res, label, workers, env)
	res.Print(b.log)
	fmt.Fprintf(b.log, "worker CPU (/proc): %.0f µs/order, %.2f cores; emulator %.2f cores; load generator %.2f cores; RSS idle %v MB, peak %v MB; loadavg %s → %s\n",
		m.WorkerCPUMicros, m.WorkerCores, m.EmulatorCores, m.LoadgenCores, mb(m.WorkerRSSIdleMB), mb(m.WorkerRSSPeakMB), m.LoadAvgStart, m.LoadAvgEnd)
	return m
}

// explain adds to the run's slow orders what the workers logged about
// them (bench/headline.md and the JSON lines show the cause).
func (b *bench) explain(res *loadgen.Result, label string, workers int, env []string) {
	if len(res.Slow) == 0 {
		return
	}
	base := time.Second // the worker's default CLOUDCOMMERCE_RETRY_BASE
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CLOUDCOMMERCE_RETRY_BASE="); ok {
			if d, err := time.ParseDuration(v); err == nil {
				base = d
			}
		}
	}
	var logs []io.Reader
	for i := range workers {
		f, err := os.Open(filepath.Join(b.logDir, fmt.Sprintf("%s-worker-%d.log", label, i+1)))
		if err != nil {
			fmt.Fprintf(b.log, "slow orders: %v\n", err)
			continue
		}
		defer f.Close()
		logs = append(logs, f)
	}
	if err := loadgen.Explain(res.Slow, base, logs...); err != nil {
		fmt.Fprintf(b.log, "slow orders: %v\n", err)
	}
	for _, s := range res.Slow {
		fmt.Fprintf(b.log, "slow order %s (transient on purpose: %v): %s, slowest %s %s→%s %s; %s\n", s.ID, s.Transient, d(s.TotalMs), s.Slowest.Stage, s.Slowest.From, s.Slowest.To, d(s.Slowest.Ms), s.Cause)
	}
}

// saveProfile fetches a CPU profile of seconds from a worker's ops
// address (CLOUDCOMMERCE_PPROF=true) into path.
func saveProfile(ctx context.Context, base string, seconds int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type cpuSample struct {
	at                time.Time
	worker, emu, self int64
}

// span returns the samples bracketing from..to (the last at or before
// from, the first at or after to), when at least a second apart.
func span(s []cpuSample, from, to time.Time) (cpuSample, cpuSample, bool) {
	if len(s) < 2 || from.IsZero() || to.IsZero() {
		return cpuSample{}, cpuSample{}, false
	}
	a, b := s[0], s[len(s)-1]
	for _, x := range s {
		if !x.at.After(from) {
			a = x
		}
	}
	for i := len(s) - 1; i >= 0; i-- {
		if !s[i].at.Before(to) {
			b = s[i]
		}
	}
	return a, b, b.at.Sub(a.at) >= time.Second
}

func mb(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, "/")
}

// ladder steps the offered rate up until p99 misses the goal (each miss
// is retried once, as other processes share the machine), then tries the
// midpoint once, and returns the steps and the highest sustained rate.
func (b *bench) ladder(ctx context.Context, c config) ([]*Measurement, float64) {
	var steps []*Measurement
	best := 0.0
	try := func(rate float64) bool {
		orders := max(300, int(rate*b.o.stepSeconds))
		for attempt := 1; attempt <= 2; attempt++ {
			m := b.measure(ctx, "throughput", c, 1, false, rate, orders, throughputMix())
			m.Attempt = attempt
			steps = append(steps, m)
			if m.Pass {
				best = max(best, rate)
				return true
			}
			if ctx.Err() != nil {
				return false
			}
		}
		return false
	}
	prev := 0.0
	for _, r := range b.o.rates {
		if try(r) {
			prev = r
			continue
		}
		if mid := (prev + r) / 2; prev > 0 && mid-prev >= 20 {
			try(mid)
		}
		break
	}
	return steps, best
}
