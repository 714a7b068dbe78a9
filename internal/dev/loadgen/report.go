package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Print writes the human summary of a run.
func (r *Result) Print(w io.Writer) {
	mode := fmt.Sprintf("open loop at %.0f orders/s", r.OfferedRate)
	if r.OfferedRate == 0 {
		mode = fmt.Sprintf("closed loop, %d producers", r.Concurrency)
	}
	if r.Label != "" {
		fmt.Fprintf(w, "== %s\n", r.Label)
	}
	fmt.Fprintf(w, "%d orders via %s, %s (placed at %.1f/s)\n", r.Placed, r.Target, mode, r.PlaceRate)
	fmt.Fprintf(w, "throughput: %.1f orders/s (%d final in %.2fs, first placed → last final); %.1f orders/s until 99%% were final\n",
		r.OrdersPerSecond, r.Final, r.ElapsedSeconds, r.OrdersPerSecond99)
	fmt.Fprintf(w, "placed→final latency: p50 %s  p95 %s  p99 %s  max %s  (p99 without transient-payment orders %s)\n",
		fmtMs(r.P50Ms), fmtMs(r.P95Ms), fmtMs(r.P99Ms), fmtMs(r.MaxMs), fmtMs(r.P99HappyMs))
	fmt.Fprint(w, Histogram(r.latencies))
	if len(r.Slow) > 0 {
		var transient int
		for _, s := range r.Slow {
			if s.Transient {
				transient++
			}
		}
		fmt.Fprintf(w, "over %s: %d orders (%d of them paid with the transient-failure token, which backs off on purpose)\n", fmtMs(r.SlowThresholdMs), len(r.Slow), transient)
	}
	fmt.Fprint(w, "final status:")
	for _, st := range pipeline.AllStatuses {
		if n := r.ByStatus[string(st)]; n > 0 {
			fmt.Fprintf(w, "  %s %d", st, n)
		}
	}
	if n := r.ByStatus["NOT_FOUND"]; n > 0 {
		fmt.Fprintf(w, "  NOT_FOUND %d", n)
	}
	fmt.Fprintln(w)
	if b := r.Requests; b != nil {
		fmt.Fprintf(w, "AWS requests per order: %.2f (plus %.2f by the sandbox payment ledger, standing for the provider)\n", b.PerOrder, b.Ledger)
		for _, k := range b.Keys() {
			fmt.Fprintf(w, "  %-42s %.3f\n", k, b.ByOperation[k])
		}
		for k, v := range b.Errors {
			fmt.Fprintf(w, "  error outcome %-28s %.3f\n", k, v)
		}
		fmt.Fprintf(w, "worker CPU per order (process_cpu_seconds_total): %.0f µs\n", r.WorkerCPUMicros)
	}
	if r.MaxPlaceLagMs > 100 {
		fmt.Fprintf(w, "the producer fell up to %s behind schedule\n", fmtMs(r.MaxPlaceLagMs))
	}
	if r.PlaceErrors > 0 || r.NotFinal > 0 {
		fmt.Fprintf(w, "NOT COMPLETE: %d placement errors, %d orders not final\n", r.PlaceErrors, r.NotFinal)
	}
}

func fmtMs(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// Histogram renders sorted latencies as a small text histogram on a log
// scale.
func Histogram(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return ""
	}
	bounds := []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
		500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second}
	counts := make([]int, len(bounds)+1)
	for _, d := range sorted {
		i := 0
		for i < len(bounds) && d > bounds[i] {
			i++
		}
		counts[i]++
	}
	peak := 0
	for _, c := range counts {
		peak = max(peak, c)
	}
	var b strings.Builder
	for i, c := range counts {
		if c == 0 {
			continue
		}
		label := ""
		if i < len(bounds) {
			label = "≤" + bounds[i].String()
		} else {
			label = ">" + bounds[len(bounds)-1].String()
		}
		fmt.Fprintf(&b, "  %7s │%s %d\n", label, strings.Repeat("▇", max(1, c*30/peak)), c)
	}
	return b.String()
}

// AppendJSON appends v as one JSON line to the file at path.
func AppendJSON(path string, v any) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line, err := json.Marshal(v)
	if err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
