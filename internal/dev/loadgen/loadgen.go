// Package loadgen places orders on a running CloudCommerce pipeline at a
// fixed rate (open loop) or as fast as N producers can (closed loop),
// through the intake API or straight onto the EventBridge bus, waits until
// every order is final, and measures what that cost: orders per second,
// placed→final latency, outcomes, and AWS requests per order by operation
// from the workers' own /metrics counters.
//
// The load generator's own AWS calls (stock set-up, completion checks, bus
// puts) go through its own client, which the workers never count, so the
// checker cannot inflate the per-order figures. Completion is detected by
// BatchGetItem reads of the pending orders' status (100 per request, a few
// requests a second), and latency is taken from the stored order itself
// (UpdatedAt − PlacedAt at the final status), so how soon the checker
// notices does not change the figures.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Targets.
const (
	TargetAPI = "api" // POST /v1/orders on the intake API
	TargetBus = "bus" // PutEvents(OrderPlaced) straight onto the bus
)

// Config configures a run. Zero values mean the defaults named.
type Config struct {
	// Label names the run in output and JSON.
	Label string
	// Target is TargetAPI or TargetBus.
	Target string
	// APIURL is the intake API's base URL (TargetAPI).
	APIURL string
	// APIKey, when set, is sent as a bearer token (TargetAPI).
	APIKey string
	// IdempotencyKey sends an Idempotency-Key with each API order, as a
	// careful client does (the intake then writes key and order in one
	// transaction). Nil means true.
	IdempotencyKey *bool
	// AWS is the load generator's own (uncounted) AWS configuration: it
	// sets stock, checks completion and, with TargetBus, puts events.
	AWS aws.Config
	// Prefix of the topology's resource names.
	Prefix string
	// Rate is the offered load in orders/s (open loop). When 0, the run is
	// closed loop with Concurrency producers placing back to back.
	Rate float64
	// Concurrency is the closed-loop producer count, or with Rate the most
	// placements in flight at once. Default 8 (closed) or 64 (open).
	Concurrency int
	// Orders is how many orders to place. Required.
	Orders int
	// Timeout bounds the whole run (placing and waiting). Default 5m.
	Timeout time.Duration
	// ProducerLinger is how long the bus producer (TargetBus, open loop)
	// lets due orders gather into one PutEvents (≤ 10 entries), as a
	// batching producer would; the default 5ms matches the worker's own
	// CLOUDCOMMERCE_BATCH_LINGER, so arrivals are about as smooth as the
	// intake API's. Longer windows send bursts, which the stages downstream
	// batch better.
	ProducerLinger time.Duration
	// Seed makes the order mix repeatable.
	Seed uint64
	Mix  Mix
	// MetricsURLs are the workers' /metrics endpoints; when empty, no
	// request figures are reported.
	MetricsURLs []string
	// Settle is how long to wait after the last order is final before
	// reading the counters, so batched deletes of the last messages are
	// counted. Default 1s.
	Settle time.Duration
	// SlowThreshold: every order that takes longer from placed to final
	// is recorded in Result.Slow with its timeline. Default
	// DefaultSlowThreshold; negative records none.
	SlowThreshold time.Duration
	// CheckInterval is how often pending orders are read. Default 250ms.
	CheckInterval time.Duration
	// BeforePlacing and AfterCounters, when set, run just before the first
	// order is placed (after the counters are first read) and just after
	// the counters are read again, bracketing the measured window (the
	// benchmark reads /proc there).
	BeforePlacing, AfterCounters func()
	// Out receives progress; nil discards it. Terminal draws a bar
	// instead of periodic lines; ProgressEvery is the line interval
	// (default 2s).
	Out           io.Writer
	Terminal      bool
	ProgressEvery time.Duration
}

func (c *Config) defaults() error {
	var errs []error
	switch c.Target {
	case TargetAPI:
		if c.APIURL == "" {
			errs = append(errs, errors.New("target api needs the intake API URL"))
		}
	case TargetBus:
	default:
		errs = append(errs, fmt.Errorf("target %q: want api or bus", c.Target))
	}
	if c.Orders <= 0 {
		errs = append(errs, fmt.Errorf("orders %d: want at least 1", c.Orders))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: want a positive number of orders per second (or 0 for closed loop)", c.Rate))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d: must not be negative", c.Concurrency))
	}
	if c.Prefix == "" {
		errs = append(errs, errors.New("prefix is required"))
	}
	if err := c.Mix.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
		if c.Rate > 0 {
			c.Concurrency = 64
		}
	}
	if c.IdempotencyKey == nil {
		t := true
		c.IdempotencyKey = &t
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.ProducerLinger <= 0 {
		c.ProducerLinger = 5 * time.Millisecond
	}
	if c.Settle <= 0 {
		c.Settle = time.Second
	}
	if c.SlowThreshold == 0 {
		c.SlowThreshold = DefaultSlowThreshold
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 250 * time.Millisecond
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 2 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return errors.Join(errs...)
}

// Result is what a run measured. Durations are in milliseconds.
type Result struct {
	Label       string  `json:"label,omitempty"`
	Target      string  `json:"target"`
	OfferedRate float64 `json:"offered_rate"` // 0: closed loop
	Concurrency int     `json:"concurrency"`
	Seed        uint64  `json:"seed"`

	Orders      int            `json:"orders"`
	Placed      int            `json:"placed"`
	PlaceErrors int            `json:"place_errors"`
	Final       int            `json:"final"`
	NotFinal    int            `json:"not_final"`
	ByStatus    map[string]int `json:"by_status"`

	// PlaceRate is orders placed per second while placing.
	PlaceRate float64 `json:"place_rate"`
	// MaxPlaceLagMs is how far behind schedule an open-loop run fell.
	MaxPlaceLagMs float64 `json:"max_place_lag_ms"`
	// ElapsedSeconds runs from the first placement to the last final
	// status; OrdersPerSecond is Final over it.
	ElapsedSeconds  float64 `json:"elapsed_s"`
	OrdersPerSecond float64 `json:"orders_per_s"`
	// OrdersPerSecond99 counts up to the moment 99% of the orders were
	// final, so one straggler (a retried payment, a redelivery after a
	// visibility timeout) does not define the figure.
	OrdersPerSecond99 float64 `json:"orders_per_s_99"`
	// FirstPlaced and Done99 bound that busy period.
	FirstPlaced time.Time `json:"first_placed"`
	Done99      time.Time `json:"done_99"`

	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// P99HappyMs is the p99 over orders that were not paid with the
	// transient-failure token (their retries back off by design).
	P99HappyMs float64 `json:"p99_happy_ms"`

	// Requests are the workers' AWS requests per order (plus, with
	// TargetBus, the producer's PutEvents, as "producer EventBridge
	// PutEvents"); nil without MetricsURLs.
	Requests *Breakdown `json:"requests,omitempty"`
	// WorkerCPUMicros is the workers' process CPU per order from their
	// /metrics (process_cpu_seconds_total), µs.
	WorkerCPUMicros float64 `json:"worker_cpu_us_per_order,omitempty"`
	// AvgOrderItemBytes is the stored order items' mean size (what a write
	// costs in DynamoDB capacity units); AvgLines the mean SKUs per order
	// (stock items a reservation touches).
	AvgOrderItemBytes float64 `json:"avg_order_item_bytes"`
	AvgLines          float64 `json:"avg_lines"`
	// CheckerRequests counts the load generator's own reads (not counted
	// in Requests).
	CheckerRequests int64 `json:"checker_requests"`
	// SlowThresholdMs and Slow: every order slower than the threshold,
	// with its history per stage, the deliberate transient-payment orders
	// included (marked); Explain adds the worker's view.
	SlowThresholdMs float64     `json:"slow_threshold_ms"`
	Slow            []SlowOrder `json:"slow,omitempty"`

	Start time.Time `json:"start"`
	End   time.Time `json:"end"`

	latencies []time.Duration
}

// Latencies returns the sorted placed→final latencies.
func (r *Result) Latencies() []time.Duration { return r.latencies }

// ErrNotFinal is returned (with the result) when orders were still in
// progress at the timeout, or could not be placed.
var ErrNotFinal = errors.New("not every order became final")

type order struct {
	id        string
	transient bool
	final     bool
}

// run is the state of one run.
type run struct {
	cfg    Config
	names  topology.Names
	store  *store.Store
	eb     *eventbridge.Client
	http   *http.Client
	start  time.Time
	mu     sync.Mutex
	orders []*order // in placement order

	placeErrs    atomic.Int64
	putCalls     atomic.Int64
	checkerCalls atomic.Int64
	maxLag       atomic.Int64
	placingDone  chan struct{}
	placeEnd     time.Time
}

// Run places the orders, waits for them and reports. When some orders are
// not final by the timeout it returns the result and ErrNotFinal.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("load generator: %w", err)
	}
	topo, err := topology.Load()
	if err != nil {
		return nil, err
	}
	names := topo.Names(cfg.Prefix)
	r := &run{cfg: cfg, names: names, eb: eventbridge.NewFromConfig(cfg.AWS),
		store:       store.New(awsconf.DynamoDB(cfg.AWS), store.Tables{Orders: names.Tables["orders"], Inventory: names.Tables["inventory"], Idempotency: names.Tables["idempotency"]}),
		http:        &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency + 4, IdleConnTimeout: time.Minute}},
		placingDone: make(chan struct{})}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	if err := r.setStock(ctx); err != nil {
		return nil, err
	}
	var before Counters
	if len(cfg.MetricsURLs) > 0 {
		if before, err = Scrape(ctx, r.http, cfg.MetricsURLs); err != nil {
			return nil, err
		}
	}
	res := &Result{Label: cfg.Label, Target: cfg.Target, OfferedRate: cfg.Rate, Concurrency: cfg.Concurrency, Seed: cfg.Seed, Orders: cfg.Orders}
	if cfg.BeforePlacing != nil {
		cfg.BeforePlacing()
	}
	r.start = time.Now()
	res.Start = r.start
	placeCtx, stopPlacing := context.WithCancel(ctx)
	defer stopPlacing()
	go func() {
		defer close(r.placingDone)
		r.place(placeCtx)
		r.placeEnd = time.Now()
	}()
	waitErr := r.wait(ctx)
	stopPlacing()
	<-r.placingDone
	if waitErr == nil {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
		}
	}
	// The counters are read before the final pass of reads, which the
	// workers would not count anyway.
	var after Counters
	if len(cfg.MetricsURLs) > 0 {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		after, err = Scrape(sctx, r.http, cfg.MetricsURLs)
		scancel()
		if err != nil {
			return nil, err
		}
	}
	if cfg.AfterCounters != nil {
		cfg.AfterCounters()
	}
	res.End = time.Now()
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer fcancel()
	if err := r.summarise(fctx, res); err != nil {
		return nil, err
	}
	if len(cfg.MetricsURLs) > 0 {
		b := PerOrder(before, after, res.Placed)
		if cfg.Target == TargetBus && res.Placed > 0 {
			b.Add("producer EventBridge PutEvents", float64(r.putCalls.Load())/float64(res.Placed))
		}
		res.Requests = &b
		if res.Placed > 0 {
			res.WorkerCPUMicros = (after.CPUSeconds - before.CPUSeconds) / float64(res.Placed) * 1e6
		}
	}
	res.CheckerRequests = r.checkerCalls.Load()
	if res.NotFinal > 0 || res.PlaceErrors > 0 || res.Placed < cfg.Orders {
		return res, fmt.Errorf("%w: %d of %d placed, %d not final, %d placement errors", ErrNotFinal, res.Placed, cfg.Orders, res.NotFinal, res.PlaceErrors)
	}
	return res, nil
}

func (r *run) setStock(ctx context.Context) error {
	st := r.store
	stock := r.cfg.Mix.Stock(r.cfg.Orders)
	skus := make([]string, 0, len(stock))
	for k := range stock {
		skus = append(skus, k)
	}
	sort.Strings(skus)
	for _, sku := range skus {
		if err := st.SetStock(ctx, sku, stock[sku]); err != nil {
			return fmt.Errorf("set up stock: %w", err)
		}
	}
	return nil
}

// placed records orders once they are accepted.
func (r *run) placed(list ...*order) {
	r.mu.Lock()
	r.orders = append(r.orders, list...)
	r.mu.Unlock()
}

func (r *run) placedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.orders)
}

// place runs the open or closed loop until every order is placed or ctx
// ends.
func (r *run) place(ctx context.Context) {
	batch := 1
	if r.cfg.Target == TargetBus {
		batch = 10 // PutEvents takes at most 10 entries
	}
	type job struct{ first, n int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for p := 0; p < r.cfg.Concurrency; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r.placeBatch(ctx, j.first, j.n)
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)
	send := func(j job) bool {
		select {
		case jobs <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if r.cfg.Rate == 0 {
		for i := 0; i < r.cfg.Orders; i += batch {
			if !send(job{i, min(batch, r.cfg.Orders-i)}) {
				return
			}
		}
		return
	}
	// Open loop: every tick, place what the schedule says is due. The bus
	// producer puts what became due within one tick (its linger) in one
	// PutEvents.
	tick := time.Duration(float64(time.Second) / r.cfg.Rate)
	if batch > 1 {
		tick = r.cfg.ProducerLinger
	}
	tick = max(tick, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	next := 0
	for next < r.cfg.Orders {
		due := min(r.cfg.Orders, int(time.Since(r.start).Seconds()*r.cfg.Rate)+1)
		for next < due {
			n := min(batch, due-next)
			lag := time.Since(r.start) - time.Duration(float64(next)/r.cfg.Rate*float64(time.Second))
			if int64(lag) > r.maxLag.Load() {
				r.maxLag.Store(int64(lag))
			}
			if !send(job{next, n}) {
				return
			}
			next += n
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// request returns order i's request; the generator is seeded per order so
// that any producer can build any order.
func (r *run) request(i int) pipeline.OrderRequest {
	return r.cfg.Mix.Request(i, rand.New(rand.NewPCG(r.cfg.Seed, uint64(i))))
}

func (r *run) placeBatch(ctx context.Context, first, n int) {
	if r.cfg.Target == TargetBus {
		r.putBatch(ctx, first, n)
		return
	}
	for i := first; i < first+n; i++ {
		req := r.request(i)
		id, err := r.post(ctx, req, fmt.Sprintf("lg-%d-%d-%d", r.cfg.Seed, r.start.UnixNano(), i))
		if err != nil {
			if ctx.Err() == nil {
				r.placeErrs.Add(1)
				fmt.Fprintf(r.cfg.Out, "place order %d: %v\n", i, err)
			}
			continue
		}
		r.placed(&order{id: id, transient: req.Payment.Token == sandbox.TokenProcessingError})
	}
}

// Percentile returns the p-th percentile of sorted durations (nearest rank).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
