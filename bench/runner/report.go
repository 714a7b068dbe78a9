package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
	"github.com/cloudcommerce/cloudcommerce/bench/plot"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGB  float64 `json:"memory_gb"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go_version"`
	Date      string  `json:"date"`
	LoadAvg   string  `json:"loadavg"`
	// Commit is the checked-out commit; Modified lists tracked files
	// changed in the work tree outside the benchmark's own paths (other
	// work in progress that the built binaries include).
	Commit   string   `json:"commit"`
	Modified []string `json:"modified,omitempty"`
}

func (m Machine) String() string {
	s := fmt.Sprintf("%d CPUs (%s), %.1f GB, Linux %s, %s, %s, loadavg %s, commit %s", m.CPUs, m.CPUModel, m.MemoryGB, m.Kernel, m.GoVersion, m.Date, m.LoadAvg, m.Commit)
	if len(m.Modified) > 0 {
		s += " plus uncommitted changes to " + strings.Join(m.Modified, ", ")
	}
	return s
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), LoadAvg: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%g", &kb)
			}
		}
		m.MemoryGB = kb / 1024 / 1024
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if len(line) < 4 {
				continue
			}
			f := strings.TrimSpace(line[3:])
			if strings.HasPrefix(f, "bench/") || strings.HasPrefix(f, "internal/dev/loadgen/") || strings.HasPrefix(f, "cmd/loadgen/") || f == "BENCHMARKS.md" || strings.HasSuffix(f, "_bench_test.go") {
				continue
			}
			m.Modified = append(m.Modified, f)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

type ladder struct {
	Config    config         `json:"config"`
	Steps     []*Measurement `json:"steps"`
	Sustained float64        `json:"sustained"`
}

type report struct {
	Machine    Machine        `json:"machine"`
	Steady     []*Measurement `json:"steady"`
	Throughput []ladder       `json:"throughput"`
	Scaling    []*Measurement `json:"scaling"`
	Peer       *peerRun       `json:"peer,omitempty"`
	Targets    []string       `json:"targets"`
}

func (r *report) steady(scenario, cfg string) *Measurement {
	for _, m := range r.Steady {
		if m.Scenario == scenario && m.Config.Name == cfg && m.Load != nil {
			return m
		}
	}
	return nil
}

// check compares the figures with the targets; it returns the misses and
// records every verdict.
func (r *report) check(underTest string) []string {
	var missed []string
	verdict := func(ok bool, format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		if ok {
			r.Targets = append(r.Targets, "met: "+s)
		} else {
			r.Targets = append(r.Targets, "MISSED: "+s)
			missed = append(missed, s)
		}
	}
	if m := r.steady("steady", underTest); m != nil && m.Load.Requests != nil {
		rq := m.Load.Requests.PerOrder
		verdict(rq <= targetRequestsPerOrder, "AWS requests per order at steady load (%s, %.0f orders/s via the bus) = %.2f, target ≤ %.1f", m.Config.Name, m.Load.OfferedRate, rq, targetRequestsPerOrder)
		verdict(m.WorkerCPUMicros <= targetCPUMicros, "worker CPU per order (%s, %d orders, /proc) = %.0f µs, target ≤ %d µs", m.Config.Name, m.Load.Placed, m.WorkerCPUMicros, targetCPUMicros)
		if m.Load.Placed < 5000 {
			verdict(false, "the CPU figure needs a run of at least 5,000 orders; this one had %d", m.Load.Placed)
		}
	} else if r.Steady != nil {
		verdict(false, "the steady-load run of %s produced no figures", underTest)
	}
	if m := r.steady("steady-smooth", underTest); m != nil && m.Load.Requests != nil {
		r.Targets = append(r.Targets, fmt.Sprintf("info: %s with a smooth producer (one event per PutEvents): %.2f requests/order, of which %.2f the producer's; %.0f µs/order",
			underTest, m.Load.Requests.PerOrder, m.Load.Requests.ByOperation["producer EventBridge PutEvents"], m.WorkerCPUMicros))
	}
	if m := r.steady("steady", eager.Name); m != nil && m.Load.Requests != nil {
		r.Targets = append(r.Targets, fmt.Sprintf("info: with %s (%s): %.2f requests/order, %.0f µs/order",
			eager.Name, strings.Join(eager.Env, " "), m.Load.Requests.PerOrder, m.WorkerCPUMicros))
	}
	if r.Peer != nil && (r.Peer.Temporal == nil || r.Peer.CloudCommerce == nil || r.Peer.CloudCommerce.Load == nil || r.Peer.CloudCommerce.Error != "") {
		verdict(false, "the peer run (CloudCommerce and Temporal, the same burst) produced no figures")
	}
	var b, n float64
	for _, l := range r.Throughput {
		switch l.Config.Name {
		case batched.Name:
			b = l.Sustained
		case naive.Name:
			n = l.Sustained
		}
	}
	if b > 0 && n > 0 {
		r.Targets = append(r.Targets, fmt.Sprintf("info: sustained with p99 < 1 s: batched %.0f orders/s vs naive %.0f orders/s (×%.2f)", b, n, b/n))
	}
	return missed
}

func (r *report) write(o options, stdout io.Writer) error {
	var md bytes.Buffer
	r.markdown(&md)
	if err := os.WriteFile(o.figures, md.Bytes(), 0o644); err != nil {
		return err
	}
	if len(r.Throughput) > 0 {
		var series []plot.Series
		colors := map[string]string{batched.Name: "#1f77b4", naive.Name: "#ff7f0e", eager.Name: "#2ca02c", "proto": "#9467bd"}
		for _, l := range r.Throughput {
			s := plot.Series{Name: l.Config.Name, Color: colors[l.Config.Name]}
			for _, p := range bestAttempts(l.Steps) {
				pt := plot.Point{Offered: p.Load.OfferedRate, Achieved: p.Load.OrdersPerSecond99, P50Ms: p.Load.P50Ms, P99Ms: p.Load.P99Ms, Pass: p.Pass}
				if p.Load.Requests != nil {
					pt.Requests = p.Load.Requests.PerOrder
				}
				s.Points = append(s.Points, pt)
			}
			series = append(series, s)
		}
		sub := fmt.Sprintf("one worker + kumo emulator as separate processes, %d CPUs (%s), %s", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Date)
		if err := os.WriteFile(o.plot, plot.SVG("CloudCommerce: completed orders/s, latency and AWS requests per order vs offered load", sub, latencyGoalMs, series), 0o644); err != nil {
			return err
		}
	}
	if !o.replot {
		js, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(filepath.Join(o.out, "summary-"+time.Now().UTC().Format("20060102T150405Z")+".json"), js, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "\n%s\nwrote %s and %s\n", md.String(), o.figures, o.plot)
	return nil
}

// bestAttempts keeps, per offered rate, the passing attempt or else the
// last one.
func bestAttempts(steps []*Measurement) []*Measurement {
	by := map[float64]*Measurement{}
	var rates []float64
	for _, s := range steps {
		if s.Load == nil {
			continue
		}
		r := s.Load.OfferedRate
		cur, ok := by[r]
		if !ok {
			rates = append(rates, r)
		}
		if !ok || !cur.Pass {
			by[r] = s
		}
	}
	sort.Float64s(rates)
	out := make([]*Measurement, len(rates))
	for i, r := range rates {
		out[i] = by[r]
	}
	return out
}

func costInput(m *Measurement) cost.Input {
	l := m.Load
	in := cost.Input{Name: m.Config.Name, Requests: l.Requests.ByOperation, Deliveries: l.Requests.Deliveries,
		CPUMicrosPerOrder: m.WorkerCPUMicros}
	if m.Writes != nil {
		in.WriteUnits = m.Writes.PerOrder()
	}
	switch m.Scenario {
	case "api":
		in.Name += " (intake API)"
	case "steady-smooth":
		in.Name += " (smooth producer)"
	}
	in.Events = l.Requests.Entries["events"]
	if l.Target == loadgen.TargetBus {
		in.Events++ // the producer's OrderPlaced
	}
	in.Notifications = l.Requests.ByOperation["SNS Publish"] + l.Requests.Entries["notifications"]
	if l.Requests.ByOperation["SNS PublishBatch"] == 0 {
		in.Notifications = l.Requests.ByOperation["SNS Publish"]
	}
	return in
}

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "<!-- generated by bench/run.sh (bench/runner) — do not edit by hand -->\n\n")
	fmt.Fprintf(w, "Machine: %s.\n\n", r.Machine.String())
	if len(r.Steady) > 0 {
		fmt.Fprintln(w, "### Steady load: requests and CPU per order")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| run | config | target | orders | offered/s | done/s (99%) | p50 | p95 | p99 | max | AWS req/order | ledger/order | worker CPU µs/order (/proc) | worker cores | emulator cores | outcomes | loadavg start → end |")
		fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
		for _, m := range r.Steady {
			if m.Load == nil || m.Load.Requests == nil {
				fmt.Fprintf(w, "| %s | %s | – | failed: %s |\n", m.Scenario, m.Config.Name, m.Error)
				continue
			}
			l := m.Load
			fmt.Fprintf(w, "| %s | %s | %s | %d | %.0f | %.1f | %s | %s | %s | %s | **%.2f** | %.2f | **%.0f** | %.2f | %.2f | %s | %s → %s |\n",
				m.Scenario, m.Config.Name, l.Target, l.Placed, l.OfferedRate, l.OrdersPerSecond99, d(l.P50Ms), d(l.P95Ms), d(l.P99Ms), d(l.MaxMs),
				l.Requests.PerOrder, l.Requests.Ledger, m.WorkerCPUMicros, m.WorkerCores, m.EmulatorCores, outcomes(l.ByStatus), m.LoadAvgStart, m.LoadAvgEnd)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "AWS requests per order by operation (the workers' `cloudcommerce_aws_requests_total` deltas; the bus producer's own PutEvents listed as `producer`):")
		fmt.Fprintln(w)
		ops := map[string]bool{}
		var cols []*Measurement
		for _, m := range r.Steady {
			if m.Load != nil && m.Load.Requests != nil {
				cols = append(cols, m)
				for k := range m.Load.Requests.ByOperation {
					ops[k] = true
				}
			}
		}
		keys := make([]string, 0, len(ops))
		for k := range ops {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, b := cols[0].Load.Requests.ByOperation[keys[i]], cols[0].Load.Requests.ByOperation[keys[j]]
			if a != b {
				return a > b
			}
			return keys[i] < keys[j]
		})
		fmt.Fprint(w, "| operation |")
		for _, m := range cols {
			fmt.Fprintf(w, " %s/%s |", m.Scenario, m.Config.Name)
		}
		fmt.Fprint(w, "\n|---|")
		for range cols {
			fmt.Fprint(w, "---:|")
		}
		fmt.Fprintln(w)
		for _, k := range keys {
			fmt.Fprintf(w, "| %s |", k)
			for _, m := range cols {
				fmt.Fprintf(w, " %.3f |", m.Load.Requests.ByOperation[k])
			}
			fmt.Fprintln(w)
		}
		fmt.Fprint(w, "| **total** |")
		for _, m := range cols {
			fmt.Fprintf(w, " **%.2f** |", m.Load.Requests.PerOrder)
		}
		fmt.Fprint(w, "\n| sandbox ledger (provider, not in total) |")
		for _, m := range cols {
			fmt.Fprintf(w, " %.3f |", m.Load.Requests.Ledger)
		}
		fmt.Fprint(w, "\n| entries per batched call: events / deletes / receives |")
		for _, m := range cols {
			e := m.Load.Requests.Entries
			op := m.Load.Requests.ByOperation
			fmt.Fprintf(w, " %s / %s / %s |", ratio(e["events"], op["EventBridge PutEvents"]), ratio(e["delete"], op["SQS DeleteMessageBatch"]+op["SQS DeleteMessage"]), ratio(e["receive"], op["SQS ReceiveMessage"]))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
		writeSlow(w, "### Slow orders", r.Steady)
		var es []cost.Estimate
		for _, m := range cols {
			es = append(es, cost.Model(cost.ListPrices, costInput(m)))
		}
		var wnames []string
		var wrus []cost.WriteUnits
		for _, m := range cols {
			if m.Writes != nil {
				wnames = append(wnames, m.Scenario+"/"+m.Config.Name)
				wrus = append(wrus, *m.Writes)
			}
		}
		if len(wrus) > 0 {
			fmt.Fprintln(w, "### DynamoDB write units per order (recorded writes, by table and index)")
			fmt.Fprintln(w)
			cost.PrintWriteUnits(w, wnames, wrus)
			fmt.Fprintln(w)
		}
		if len(es) > 0 {
			fmt.Fprintln(w, "### Cost per million orders (bench/cost, from the runs above)")
			fmt.Fprintln(w)
			cost.Print(w, cost.ListPrices, es...)
			fmt.Fprintln(w)
		}
	}
	if len(r.Throughput) > 0 {
		fmt.Fprintln(w, "### Throughput: offered-rate ladder (p99 placed→final < 1 s), one worker")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| config | offered/s | attempt | orders | done/s (99%) | p50 | p99 | max | req/order | worker CPU µs/order | worker cores | emulator cores | load-gen cores | p99 < 1 s | loadavg start → end |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
		for _, l := range r.Throughput {
			for _, m := range l.Steps {
				if m.Load == nil {
					fmt.Fprintf(w, "| %s | – | %d | failed: %s |\n", l.Config.Name, m.Attempt, m.Error)
					continue
				}
				x := m.Load
				rq := 0.0
				if x.Requests != nil {
					rq = x.Requests.PerOrder
				}
				fmt.Fprintf(w, "| %s | %.0f | %d | %d | %.1f | %s | %s | %s | %.2f | %.0f | %.2f | %.2f | %.2f | %s | %s → %s |\n", l.Config.Name, x.OfferedRate, m.Attempt, x.Placed,
					x.OrdersPerSecond99, d(x.P50Ms), d(x.P99Ms), d(x.MaxMs), rq, m.WorkerCPUMicros, m.WorkerCores, m.EmulatorCores, m.LoadgenCores, yes(m.Pass), m.LoadAvgStart, m.LoadAvgEnd)
			}
		}
		fmt.Fprintln(w)
		fmt.Fprint(w, "Sustained (highest offered rate with p99 < 1 s):")
		for _, l := range r.Throughput {
			fmt.Fprintf(w, " %s **%.0f orders/s**;", l.Config.Name, l.Sustained)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
	}
	if len(r.Scaling) > 0 {
		fmt.Fprintln(w, "### Scaling: worker processes against the same queues (offered above capacity; drain rate)")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| workers | offered/s | orders | done/s (99%) | p50 | p99 | req/order | worker CPU µs/order | worker cores (sum) | emulator cores | worker RSS idle MB | worker RSS peak MB | emulator RSS peak MB | loadavg start → end |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|")
		for _, m := range r.Scaling {
			if m.Load == nil {
				fmt.Fprintf(w, "| %d | failed: %s |\n", m.Workers, m.Error)
				continue
			}
			x := m.Load
			rq := 0.0
			if x.Requests != nil {
				rq = x.Requests.PerOrder
			}
			fmt.Fprintf(w, "| %d | %.0f | %d | %.1f | %s | %s | %.2f | %.0f | %.2f | %.2f | %s | %s | %.0f | %s → %s |\n", m.Workers, x.OfferedRate, x.Placed, x.OrdersPerSecond99,
				d(x.P50Ms), d(x.P99Ms), rq, m.WorkerCPUMicros, m.WorkerCores, m.EmulatorCores, mb(m.WorkerRSSIdleMB), mb(m.WorkerRSSPeakMB), m.EmulatorRSSPeakMB, m.LoadAvgStart, m.LoadAvgEnd)
		}
		fmt.Fprintln(w)
	}
	if r.Peer != nil {
		r.Peer.markdown(w)
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "### Targets")
		fmt.Fprintln(w)
		for _, t := range r.Targets {
			fmt.Fprintf(w, "- %s\n", t)
		}
	}
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", a/b)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func d(ms float64) string {
	switch {
	case ms >= 10000:
		return fmt.Sprintf("%.0fs", ms/1000)
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}

func outcomes(by map[string]int) string {
	var parts []string
	for _, k := range []string{"SHIPPED", "REJECTED", "PAYMENT_FAILED", "CANCELLED", "PLACED", "RESERVED", "PAID", "NOT_FOUND"} {
		if n := by[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(k), n))
		}
	}
	return strings.Join(parts, ", ")
}
