package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
)

// The headline: every figure the README quotes, measured in one
// invocation (`bench/run.sh -only headline`) on one machine at one commit,
// written to bench/headline.md next to the ratio each supports.
//
// The run fits in 20 minutes on 2 cores by construction: each step runs
// under its own deadline (headlineSteps), and the budgets add up to
// headlineTotal, the build by bench/run.sh (≤ 1 minute with a warm Go
// cache) aside. A step that runs out of time is reported as such, with
// whatever it measured, rather than stretching the run.

// headlineStep is one measurement of the headline and its time budget.
type headlineStep struct {
	name   string
	budget time.Duration
}

var headlineSteps = []headlineStep{
	{"steady, batched, 150/s", time.Minute + 50*time.Second},
	{"steady, batched-compact, 150/s", time.Minute + 50*time.Second},
	{"steady, naive, 150/s", time.Minute + 50*time.Second},
	{"SDK floor: bench/floor, seq and par8", time.Minute},
	{"peer: the same burst on CloudCommerce, then Temporal", 3*time.Minute + 30*time.Second},
	{"flash sale at saturation: shards=1, then shards=8", 3 * time.Minute},
	{"ladder, batched", 3 * time.Minute},
	{"ladder, naive", 3 * time.Minute},
}

// headlineTotal is the sum of the budgets: 19 minutes.
func headlineTotal() time.Duration {
	var t time.Duration
	for _, s := range headlineSteps {
		t += s.budget
	}
	return t
}

// headlineRun is what the headline measured.
type headlineRun struct {
	Machine      Machine
	Quick        bool
	LoadAvgAfter string
	Batched      *Measurement
	// Compact is the batched configuration with orders stored in the
	// compact format (CLOUDCOMMERCE_ORDER_FORMAT=compact), the end state
	// of the storage rollout: the cost per million orders is priced from
	// its requests and recorded writes.
	Compact    *Measurement
	Naive      *Measurement
	Floor      *floorRun
	Peer       *peerRun
	Flash      []*FlashRun
	Ladders    []ladder
	LadderStep float64
	Steps      []stepTime
}

type stepTime struct {
	Name     string
	Budget   time.Duration
	Took     time.Duration
	OverTime bool
}

// headline runs every step under its budget and writes o.headline.
func (b *bench) headline(ctx context.Context, quick bool, m Machine) error {
	h := &headlineRun{Machine: m, Quick: quick, LadderStep: 50}
	steadyOrders, peerOrders, floorCalls := 6000, 2000, 2000
	ladderSeconds := 8.0
	rates := []float64{150, 200, 250, 300, 350, 400, 450}
	b.o.flashHot, b.o.flashOther, b.o.flashRate = 1000, 500, 300
	if quick {
		steadyOrders, peerOrders, floorCalls, ladderSeconds = 600, 200, 100, 3
		rates = []float64{100, 150}
		b.o.flashHot, b.o.flashOther = 200, 100
	}
	b.o.peerOrders, b.o.stepSeconds = peerOrders, ladderSeconds
	b.o.configs = []config{batched}
	steps := []func(context.Context){
		func(ctx context.Context) {
			h.Batched = b.measure(ctx, "steady", batched, 1, false, 150, steadyOrders, loadgen.DefaultMix())
		},
		func(ctx context.Context) {
			h.Compact = b.measure(ctx, "steady", compact, 1, false, 150, steadyOrders, loadgen.DefaultMix())
		},
		func(ctx context.Context) {
			h.Naive = b.measure(ctx, "steady", naive, 1, false, 150, steadyOrders, loadgen.DefaultMix())
		},
		func(ctx context.Context) { h.Floor = b.floor(ctx, floorCalls) },
		func(ctx context.Context) { h.Peer = b.peer(ctx, time.Now().UTC().Format("20060102T150405Z")) },
		func(ctx context.Context) {
			for _, k := range []int{1, 8} {
				fr := &FlashRun{Label: fmt.Sprintf("shards=%d", k), Shards: k, HotOrders: b.o.flashHot, HotUnits: int64(float64(b.o.flashHot) * b.o.flashFraction),
					OtherOrders: b.o.flashOther, Rate: b.o.flashRate, KeyWriteUnits: b.o.flashWCU}
				h.Flash = append(h.Flash, b.flashRun(ctx, fr))
			}
		},
		func(ctx context.Context) {
			b.o.rates = rates
			s, best := b.ladder(ctx, batched)
			h.Ladders = append(h.Ladders, ladder{Config: batched, Steps: s, Sustained: best})
		},
		func(ctx context.Context) {
			b.o.rates = rates
			s, best := b.ladder(ctx, naive)
			h.Ladders = append(h.Ladders, ladder{Config: naive, Steps: s, Sustained: best})
		},
	}
	fmt.Fprintf(b.log, "headline: %d steps, budget %s in all\n", len(steps), headlineTotal())
	for i, run := range steps {
		st := headlineSteps[i]
		fmt.Fprintf(b.log, "\n=== headline step %d/%d: %s (budget %s)\n", i+1, len(steps), st.name, st.budget)
		sctx, cancel := context.WithTimeout(ctx, st.budget)
		start := time.Now()
		run(sctx)
		over := sctx.Err() == context.DeadlineExceeded
		cancel()
		h.Steps = append(h.Steps, stepTime{Name: st.name, Budget: st.budget, Took: time.Since(start).Round(time.Second), OverTime: over})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	h.LoadAvgAfter = loadAvg()
	var md bytes.Buffer
	h.markdown(&md)
	if err := os.WriteFile(b.o.headline, md.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "\n%s\nwrote %s\n", md.String(), b.o.headline)
	if b.o.readme == "" {
		return nil
	}
	if err := quoteHeadline(b.o.readme, md.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "quoted its summary in %s\n", b.o.readme)
	return nil
}

// Markers around the summary: in bench/headline.md and in the README,
// which quotes it word for word (a test compares the two).
const (
	headlineBegin = "<!-- headline:begin -->"
	headlineEnd   = "<!-- headline:end -->"
)

// quoteHeadline replaces the README's text between the markers with the
// headline's summary.
func quoteHeadline(readme string, headline []byte) error {
	summary, ok := between(string(headline), headlineBegin, headlineEnd)
	if !ok {
		return fmt.Errorf("the headline has no %s … %s block", headlineBegin, headlineEnd)
	}
	raw, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	text := string(raw)
	i, j := strings.Index(text, headlineBegin), strings.Index(text, headlineEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s block to quote the headline in", readme, headlineBegin, headlineEnd)
	}
	text = text[:i+len(headlineBegin)] + summary + text[j:]
	return os.WriteFile(readme, []byte(text), 0o644)
}

func between(s, begin, end string) (string, bool) {
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return "", false
	}
	return s[i+len(begin) : j], true
}

// floorRun is bench/floor's CPU per call, seq and par8, by benchmark.
type floorRun struct {
	Calls int
	Seq   map[string]float64
	Par8  map[string]float64
	Error string
}

var floorLine = regexp.MustCompile(`^Benchmark(\w+)/(seq|par8)(?:-\d+)?\s+\d+\s.*?\s([\d.]+) cpu-µs/op`)

// floor runs bench/floor's benchmarks as `go test` does.
func (b *bench) floor(ctx context.Context, calls int) *floorRun {
	f := &floorRun{Calls: calls, Seq: map[string]float64{}, Par8: map[string]float64{}}
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchtime", fmt.Sprintf("%dx", calls), "./bench/floor")
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(b.logDir, "floor.log"), out, 0o644)
	if err != nil {
		f.Error = fmt.Sprintf("go test ./bench/floor: %v (output in %s)", err, filepath.Join(b.logDir, "floor.log"))
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := floorLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			map[string]map[string]float64{"seq": f.Seq, "par8": f.Par8}[m[2]][m[1]] = v
		}
	}
	return f
}

// floorOps maps the worker's counted operations to bench/floor's
// benchmarks; the sandbox ledger's PutItem (in the worker's process,
// counted apart) is LedgerPutItem.
var floorOps = map[string]string{
	"DynamoDB PutItem":            "PutItem",
	"DynamoDB TransactWriteItems": "TransactWriteItems",
	"DynamoDB GetItem":            "GetItem",
	"SQS ReceiveMessage":          "ReceiveMessage10",
	"SQS DeleteMessageBatch":      "DeleteMessageBatch10",
	"SQS ChangeMessageVisibility": "ChangeMessageVisibility",
	"EventBridge PutEvents":       "PutEvents10",
	"SNS Publish":                 "Publish",
	"SNS PublishBatch":            "PublishBatch10",
}

// perOrder is the floor per order: the run's requests per order times the
// SDK's CPU per call; left lists the operations bench/floor has no figure
// for (left out of the floor).
func (f *floorRun) perOrder(m *Measurement, cpu map[string]float64) (float64, []string) {
	if f == nil || m == nil || m.Load == nil || m.Load.Requests == nil {
		return 0, nil
	}
	var total float64
	var left []string
	for op, n := range m.Load.Requests.ByOperation {
		if strings.HasPrefix(op, "producer ") {
			continue // the load generator's, not the worker's
		}
		bench, ok := floorOps[op]
		if !ok || cpu[bench] == 0 {
			left = append(left, fmt.Sprintf("%s %.3f", op, n))
			continue
		}
		total += n * cpu[bench]
	}
	total += m.Load.Requests.Ledger * cpu["LedgerPutItem"]
	sort.Strings(left)
	return total, left
}

func (h *headlineRun) markdown(w io.Writer) {
	m := h.Machine
	fmt.Fprintf(w, "<!-- generated by `bench/run.sh -only headline` (bench/runner) — do not edit by hand -->\n\n")
	fmt.Fprintf(w, "# Headline figures\n\n")
	if h.Quick {
		fmt.Fprintf(w, "**SMOKE RUN (`-quick`): small counts to check the machinery; the figures below are not meaningful and must not be quoted as measurements.**\n\n")
	}
	fmt.Fprintf(w, "- date: %s\n- commit: %s\n- CPU: %s, %d cores\n- load average before: %s; after: %s\n- Go: %s, Linux %s\n",
		m.Date, commitText(m), m.CPUModel, m.CPUs, m.LoadAvg, h.LoadAvgAfter, m.GoVersion, m.Kernel)
	fmt.Fprintf(w, "- steps (budget → took):")
	var took time.Duration
	for _, s := range h.Steps {
		flag := ""
		if s.OverTime {
			flag = " **(out of time)**"
		}
		fmt.Fprintf(w, " %s %s → %s%s;", s.Name, s.Budget, s.Took, flag)
		took += s.Took
	}
	fmt.Fprintf(w, " in all %s of %s\n\n", took.Round(time.Second), headlineTotal())

	fmt.Fprintln(w, "| ratio | value | the figures it rests on |")
	fmt.Fprintln(w, "|---|---:|---|")
	var summary []string
	row := func(name, value, figures string) { fmt.Fprintf(w, "| %s | %s | %s |\n", name, value, figures) }
	bt, nv := h.Batched, h.Naive
	ok := func(x *Measurement) bool { return x != nil && x.Load != nil && x.Load.Requests != nil }
	if ok(bt) && ok(nv) {
		rb, rn := bt.Load.Requests.PerOrder, nv.Load.Requests.PerOrder
		row("AWS requests per order, naive / batched", "×"+ratio3(rn, rb),
			fmt.Sprintf("batched %.2f, naive %.2f requests per order (%d and %d orders at 150/s offered, worker CPU %.0f and %.0f µs per order)", rb, rn, bt.Load.Placed, nv.Load.Placed, bt.WorkerCPUMicros, nv.WorkerCPUMicros))
		row("worker CPU per order, naive / batched", "×"+ratio3(nv.WorkerCPUMicros, bt.WorkerCPUMicros),
			fmt.Sprintf("batched %.0f µs, naive %.0f µs per order (/proc utime + stime of the worker over the measured window)", bt.WorkerCPUMicros, nv.WorkerCPUMicros))
		summary = append(summary, fmt.Sprintf("an order costs **%.2f** AWS requests with batching, **×%s** fewer than the %.2f without", rb, ratio3(rn, rb), rn))
	} else {
		row("AWS requests per order, naive / batched", "–", "a steady run failed: "+errText(bt, nv))
	}
	if ok(bt) && h.Floor != nil {
		seq, left := h.Floor.perOrder(bt, h.Floor.Seq)
		par, _ := h.Floor.perOrder(bt, h.Floor.Par8)
		note := ""
		if len(left) > 0 {
			note = "; left out (no floor figure): " + strings.Join(left, ", ")
		}
		if h.Floor.Error != "" {
			note += "; " + h.Floor.Error
		}
		if seq > 0 && par > 0 {
			row("worker CPU per order / SDK floor, calls one at a time (seq)", "×"+ratio3(bt.WorkerCPUMicros, seq),
				fmt.Sprintf("worker %.0f µs per order (batched, 150/s); floor %.0f µs: bench/floor's CPU per call (%d calls each) times the run's requests per order%s", bt.WorkerCPUMicros, seq, h.Floor.Calls, note))
			row("worker CPU per order / SDK floor, eight calls at once (par8)", "×"+ratio3(bt.WorkerCPUMicros, par),
				fmt.Sprintf("worker %.0f µs per order; floor %.0f µs", bt.WorkerCPUMicros, par))
			summary = append(summary, fmt.Sprintf("the worker spends **%.0f µs** of CPU per order, **×%s** the AWS SDK's own cost for the same calls made one at a time and **×%s** for calls made eight at once",
				bt.WorkerCPUMicros, ratio3(bt.WorkerCPUMicros, seq), ratio3(bt.WorkerCPUMicros, par)))
		} else {
			row("worker CPU per order / SDK floor", "–", "the floor produced no figures"+note)
		}
	}
	if p := h.Peer; p != nil && p.CloudCommerce != nil && p.CloudCommerce.Load != nil && p.Temporal != nil {
		l, t := p.CloudCommerce.Load, p.Temporal
		cc := p.CloudCommerce.WorkerCPUMicros + p.CloudCommerce.EmulatorCPUSeconds/float64(max(l.Placed, 1))*1e6
		row("orders/s, CloudCommerce / Temporal (the same burst)", "×"+ratio3(l.OrdersPerSecond, t.OrdersPerSecond),
			fmt.Sprintf("%d orders placed at once: CloudCommerce %.1f orders/s, p50 %s, p99 %s; Temporal %.1f orders/s, p50 %s, p99 %s", p.Orders, l.OrdersPerSecond, d(l.P50Ms), d(l.P99Ms), t.OrdersPerSecond, d(t.P50Ms), d(t.P99Ms)))
		row("CPU per order, Temporal / CloudCommerce", "×"+ratio3(t.CPUMicrosPer, cc),
			fmt.Sprintf("all processes of each: CloudCommerce %.2f ms (worker + emulator), Temporal %.2f ms (server + worker)", cc/1000, t.CPUMicrosPer/1000))
		summary = append(summary, fmt.Sprintf("the same %d-order burst finishes **×%s** faster than on a Temporal dev server doing the same workflow, at **×%s** less CPU per order",
			p.Orders, ratio3(l.OrdersPerSecond, t.OrdersPerSecond), ratio3(t.CPUMicrosPer, cc)))
	} else {
		e := "no peer run"
		if h.Peer != nil {
			e = h.Peer.TemporalError
			if h.Peer.CloudCommerce != nil && h.Peer.CloudCommerce.Error != "" {
				e = h.Peer.CloudCommerce.Error + "; " + e
			}
		}
		row("orders/s and CPU per order, CloudCommerce against Temporal", "–", "failed: "+e)
	}
	if len(h.Flash) == 2 && h.Flash[0].Error == "" && h.Flash[1].Error == "" {
		one, eight := h.Flash[0], h.Flash[1]
		row("units sold per second, shards=8 / shards=1 (flash sale)", "×"+ratio3(eight.SoldPerSecond, one.SoldPerSecond),
			fmt.Sprintf("%d orders for %d units at %.0f orders/s offered with %d others, per-key write limit modelled at %g units/s: %.0f vs %.0f units/s; exact sell-out %s / %s (sold %d and %d)",
				one.HotOrders, one.HotUnits, one.Rate, one.OtherOrders, one.KeyWriteUnits, eight.SoldPerSecond, one.SoldPerSecond, yes(eight.Exact), yes(one.Exact), eight.Sold, one.Sold))
		exact := "selling exactly the stock"
		if !one.Exact || !eight.Exact {
			exact = "**but the stock did not balance** (see the table)"
		}
		summary = append(summary, fmt.Sprintf("a flash sale of one SKU sells **×%s** more units per second with its stock in 8 shards than in one, %s",
			ratio3(eight.SoldPerSecond, one.SoldPerSecond), exact))
	} else {
		var e []string
		for _, f := range h.Flash {
			e = append(e, f.Label+": "+f.Error)
		}
		row("units sold per second, shards=8 / shards=1", "–", "failed: "+strings.Join(e, "; "))
	}
	var sus = map[string]float64{}
	var band []string
	for _, l := range h.Ladders {
		sus[l.Config.Name] = l.Sustained
		band = append(band, fmt.Sprintf("%s %s", l.Config.Name, noiseBand(l, h.LadderStep)))
	}
	if sus[batched.Name] > 0 && sus[naive.Name] > 0 {
		row("sustained orders/s with p99 placed→final < 1 s, batched / naive", "×"+ratio3(sus[batched.Name], sus[naive.Name]),
			fmt.Sprintf("batched %.0f, naive %.0f orders/s (one worker, a mix without transient payment errors); %s", sus[batched.Name], sus[naive.Name], strings.Join(band, "; ")))
		summary = append(summary, fmt.Sprintf("one worker sustains **%.0f orders/s** with p99 placed→final under 1 s (×%s the naive configuration's %.0f)",
			sus[batched.Name], ratio3(sus[batched.Name], sus[naive.Name]), sus[naive.Name]))
	} else {
		row("sustained orders/s, batched / naive", "–", "a ladder sustained no rate: "+strings.Join(band, "; "))
	}
	if c, err := h.cost(); err != "" {
		row("cost per million orders at AWS list prices", "–", err)
	} else {
		row("cost per million orders at AWS list prices, orders stored in the compact format", fmt.Sprintf("$%.1f", c.total), c.figures)
		summary = append(summary, fmt.Sprintf("the bill comes to about **$%.1f per million orders** at AWS list prices with orders stored in the compact format (CLOUDCOMMERCE_ORDER_FORMAT=compact), %.2f DynamoDB write units per order as recorded", c.total, c.wru))
	}
	fmt.Fprintln(w)
	smoke := ""
	if h.Quick {
		smoke = "**Smoke run (`-quick`, small counts): these figures only check the machinery; they are not measurements.** "
	}
	fmt.Fprintf(w, "## Summary (quoted by the README)\n\n%s\n%sMeasured by `bench/run.sh -only headline` on %s (%s, %d cores, load average %s before, %s after), commit %s: %s.\n%s\n\n",
		headlineBegin, smoke, m.Date, m.CPUModel, m.CPUs, m.LoadAvg, h.LoadAvgAfter, m.Commit, strings.Join(summary, "; "), headlineEnd)
	h.writeUnits(w)
	h.slowOrders(w)
}

// headlineCost is the cost per million orders and what it rests on.
type headlineCost struct {
	total, wru float64
	figures    string
}

// cost prices the compact run: its requests, its worker CPU and the write
// units of the DynamoDB writes it recorded, so no item size is assumed.
// The batched run in the default json format is priced beside it when it
// recorded its writes too. A non-empty string says why there is no cost.
func (h *headlineRun) cost() (headlineCost, string) {
	c := h.Compact
	switch {
	case c == nil || c.Load == nil || c.Load.Requests == nil:
		return headlineCost{}, "the compact run measured nothing: " + errText(c)
	case c.Writes == nil || c.Writes.Orders == 0:
		return headlineCost{}, "the compact run recorded no DynamoDB writes, so the writes cannot be priced (see the run's log)"
	}
	e := cost.Model(cost.ListPrices, costInput(c))
	out := headlineCost{total: e.Total, wru: c.Writes.Total()}
	out.figures = fmt.Sprintf("bench/cost from the %s run (CLOUDCOMMERCE_ORDER_FORMAT=compact, 150/s): its %.2f requests per order, %.0f µs of worker CPU per order and %.2f WRU per order from its recorded DynamoDB writes (%d orders, mean order item %.0f bytes; by table and index below)",
		c.Config.Name, c.Load.Requests.PerOrder, c.WorkerCPUMicros, c.Writes.Total(), c.Writes.Orders, c.Writes.ItemBytes)
	if b := h.Batched; b != nil && b.Load != nil && b.Load.Requests != nil && b.Writes != nil && b.Writes.Orders > 0 {
		j := cost.Model(cost.ListPrices, costInput(b))
		out.figures += fmt.Sprintf("; in the default json format (the %s run) $%.1f, %.2f WRU per order, mean order item %.0f bytes", b.Config.Name, j.Total, b.Writes.Total(), b.Writes.ItemBytes)
	}
	return out, ""
}

// writeUnits writes the steady runs' recorded DynamoDB write units per
// order by table and index, and their mean order item size.
func (h *headlineRun) writeUnits(w io.Writer) {
	var names []string
	var runs []cost.WriteUnits
	for _, r := range []struct {
		name string
		m    *Measurement
	}{{"batched, compact format", h.Compact}, {"batched, json format (default)", h.Batched}} {
		if r.m != nil && r.m.Writes != nil && r.m.Writes.Orders > 0 {
			names = append(names, r.name)
			runs = append(runs, *r.m.Writes)
		}
	}
	fmt.Fprintf(w, "## DynamoDB write units per order (recorded writes, 150/s)\n\n")
	if len(runs) == 0 {
		fmt.Fprintf(w, "No steady run recorded its writes.\n\n")
		return
	}
	fmt.Fprintf(w, "Every DynamoDB write request the worker made during the measured window, charged as DynamoDB charges on demand (bench/cost, RecordedWriteUnits); the cost above is priced from the compact column.\n\n")
	cost.PrintWriteUnits(w, names, runs)
	fmt.Fprintln(w)
}

func commitText(m Machine) string {
	if len(m.Modified) > 0 {
		return m.Commit + " plus uncommitted changes to " + strings.Join(m.Modified, ", ")
	}
	return m.Commit
}

func errText(ms ...*Measurement) string {
	var e []string
	for _, m := range ms {
		if m != nil && m.Error != "" {
			e = append(e, m.Config.Name+": "+m.Error)
		}
	}
	return strings.Join(e, "; ")
}

// noiseBand states what the ladder can tell apart: the highest rate that
// passed, the lowest that failed every attempt, and the rates whose two
// attempts disagreed (the machine's noise at that rate).
func noiseBand(l ladder, step float64) string {
	failed := 0.0
	var split []string
	by := map[float64][]bool{}
	for _, s := range l.Steps {
		if s.Load != nil {
			by[s.Load.OfferedRate] = append(by[s.Load.OfferedRate], s.Pass)
		}
	}
	for r, passes := range by {
		any, all := false, true
		for _, p := range passes {
			any = any || p
			all = all && p
		}
		if !any && (failed == 0 || r < failed) {
			failed = r
		}
		if any && !all || (len(passes) > 1 && any) {
			split = append(split, fmt.Sprintf("%.0f", r))
		}
	}
	sort.Strings(split)
	s := fmt.Sprintf("sustained %.0f/s", l.Sustained)
	if failed > 0 {
		s += fmt.Sprintf(", failed at %.0f/s (band %.0f–%.0f/s)", failed, l.Sustained, failed)
	} else {
		s += fmt.Sprintf(" (the highest rate tried; step %.0f/s)", step)
	}
	if len(split) > 0 {
		s += ", passed on the second attempt only at " + strings.Join(split, ", ") + "/s"
	}
	return s
}

// slowOrders lists the steady runs' orders over the threshold with the
// stage and the cause.
func (h *headlineRun) slowOrders(w io.Writer) {
	writeSlow(w, "## Slow orders", []*Measurement{h.Batched, h.Compact, h.Naive})
}

// writeSlow lists, per run, the orders over the slow threshold with the
// stage and the cause, the deliberate transient-payment ones after the
// others.
func writeSlow(w io.Writer, heading string, runs []*Measurement) {
	fmt.Fprintf(w, "%s (over %s placed→final)\n\n", heading, time.Duration(loadgen.DefaultSlowThreshold))
	for _, m := range runs {
		if m == nil || m.Load == nil {
			continue
		}
		var deliberate, other []loadgen.SlowOrder
		for _, s := range m.Load.Slow {
			if s.Transient {
				deliberate = append(deliberate, s)
			} else {
				other = append(other, s)
			}
		}
		fmt.Fprintf(w, "**%s, %s at %.0f/s**: %d of %d orders over %s that are not a deliberate back-off; %d transient-payment orders (retried on purpose) over it.\n\n",
			m.Scenario, m.Config.Name, m.Load.OfferedRate, len(other), m.Load.Placed, time.Duration(loadgen.DefaultSlowThreshold), len(deliberate))
		list := append(other, deliberate...)
		if len(list) == 0 {
			continue
		}
		fmt.Fprintln(w, "| order | transient on purpose | placed→final | slowest stage | its span | cause |")
		fmt.Fprintln(w, "|---|---|---:|---|---:|---|")
		for i, s := range list {
			if i == 20 {
				fmt.Fprintf(w, "\n(%d more in the run's JSON lines)\n", len(list)-20)
				break
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s (%s→%s) | %s | %s |\n", s.ID, map[bool]string{true: "yes", false: "no"}[s.Transient], d(s.TotalMs),
				s.Slowest.Stage, s.Slowest.From, s.Slowest.To, d(s.Slowest.Ms), strings.ReplaceAll(s.Cause, "|", "/"))
		}
		fmt.Fprintln(w)
	}
}
