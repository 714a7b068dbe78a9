package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
)

// burstRate is the offered rate of the peer burst: every order is due at
// once, so the bus producer puts them as fast as its PutEvents go.
const burstRate = 1e6

// peerProcess is one process of the Temporal peer (bench/peers/temporal
// writes these).
type peerProcess struct {
	Name         string  `json:"name"`
	CPUSeconds   float64 `json:"cpu_s"`
	CPUMicrosPer float64 `json:"cpu_us_per_order"`
	Cores        float64 `json:"cores"`
	RSSPeakMB    float64 `json:"rss_peak_mb"`
	Command      string  `json:"command"`
}

// temporalReport is the Temporal peer's result (its -json output).
type temporalReport struct {
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
	Processes       []peerProcess  `json:"processes"`
	CPUMicrosPer    float64        `json:"cpu_us_per_order"`
	LoadAvgStart    string         `json:"loadavg_start"`
	LoadAvgEnd      string         `json:"loadavg_end"`
	Started         time.Time      `json:"started"`
}

// peerRun is the same burst against CloudCommerce and against Temporal,
// one after the other in one invocation.
type peerRun struct {
	Orders        int             `json:"orders"`
	CloudCommerce *Measurement    `json:"cloudcommerce"`
	Temporal      *temporalReport `json:"temporal"`
	TemporalError string          `json:"temporal_error,omitempty"`
}

// peer places the burst (no declines, plentiful stock) on CloudCommerce's
// worker and emulator, then runs the Temporal peer binary, which does the
// same against `temporal server start-dev` and a Temporal worker.
func (b *bench) peer(ctx context.Context, stamp string) *peerRun {
	p := &peerRun{Orders: b.o.peerOrders}
	p.CloudCommerce = b.measure(ctx, "peer", b.o.configs[0], 1, false, burstRate, b.o.peerOrders, loadgen.Mix{})
	if ctx.Err() != nil {
		return p
	}
	out := filepath.Join(b.o.out, "temporal-"+stamp+".json")
	logs := filepath.Join(b.logDir, "temporal")
	fmt.Fprintf(b.log, "\n== peer-temporal: %d orders at once, temporal server start-dev (%s) + Temporal worker, loadavg %s\n", b.o.peerOrders, b.o.temporalCLI, loadAvg())
	cmd := exec.CommandContext(ctx, filepath.Join(b.o.bin, "temporal-peer"), "run", "-temporal", b.o.temporalCLI,
		"-orders", strconv.Itoa(b.o.peerOrders), "-json", out, "-logs", logs)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	// Out of time (the headline's budget) or interrupted: SIGTERM, on
	// which the peer stops the Temporal server and worker it started
	// (SIGKILL would leave them running), then SIGKILL after a grace.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Run(); err != nil {
		p.TemporalError = fmt.Sprintf("temporal-peer: %v (logs in %s)", err, logs)
		fmt.Fprintln(b.log, p.TemporalError)
		return p
	}
	raw, err := os.ReadFile(out)
	if err == nil {
		var t temporalReport
		if err = json.Unmarshal(raw, &t); err == nil {
			p.Temporal = &t
		}
	}
	if err != nil {
		p.TemporalError = err.Error()
	}
	return p
}

// markdown writes the side-by-side table and the ratios.
func (p *peerRun) markdown(w io.Writer) {
	fmt.Fprintf(w, "### The peer: %d orders placed at once, CloudCommerce and Temporal in one run\n\n", p.Orders)
	cc, t := p.CloudCommerce, p.Temporal
	if cc == nil || cc.Load == nil || t == nil {
		errs := p.TemporalError
		if cc != nil && cc.Error != "" {
			errs = cc.Error + "; " + errs
		}
		fmt.Fprintf(w, "failed: %s\n\n", errs)
		return
	}
	l := cc.Load
	ccEmu := cc.EmulatorCPUSeconds / float64(l.Placed) * 1e6
	ccTotal := cc.WorkerCPUMicros + ccEmu
	fmt.Fprintln(w, "| system | orders final | orders/s | p50 / p99 placed→final | CPU per order, all its processes | per process | peak RSS | loadavg start → end |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---|---|")
	fmt.Fprintf(w, "| CloudCommerce (worker + kumo emulator) | %d | %.1f | %s / %s | %.1f ms | worker %.2f ms, emulator %.2f ms | worker %s MB, emulator %.0f MB | %s → %s |\n",
		l.Final, l.OrdersPerSecond, d(l.P50Ms), d(l.P99Ms), ccTotal/1000, cc.WorkerCPUMicros/1000, ccEmu/1000, mb(cc.WorkerRSSPeakMB), cc.EmulatorRSSPeakMB, cc.LoadAvgStart, cc.LoadAvgEnd)
	var per, rss string
	for i, pr := range t.Processes {
		if i > 0 {
			per += ", "
			rss += ", "
		}
		per += fmt.Sprintf("%s %.2f ms", pr.Name, pr.CPUMicrosPer/1000)
		rss += fmt.Sprintf("%s %.0f MB", pr.Name, pr.RSSPeakMB)
	}
	fmt.Fprintf(w, "| Temporal (`temporal server start-dev`, in-memory SQLite, + a Temporal worker) | %d | %.1f | %s / %s | %.1f ms | %s | %s | %s → %s |\n",
		t.Final, t.OrdersPerSecond, d(t.P50Ms), d(t.P99Ms), t.CPUMicrosPer/1000, per, rss, t.LoadAvgStart, t.LoadAvgEnd)
	fmt.Fprintf(w, "| **ratio** | | **×%s** CloudCommerce / Temporal | **×%s / ×%s** Temporal / CloudCommerce | **×%s** Temporal / CloudCommerce | | | |\n\n",
		ratio3(l.OrdersPerSecond, t.OrdersPerSecond), ratio3(t.P50Ms, l.P50Ms), ratio3(t.P99Ms, l.P99Ms), ratio3(t.CPUMicrosPer, ccTotal))
	fmt.Fprintf(w, "Orders/s: final orders over first placement → last final status. CPU: utime+stime from /proc/<pid>/stat over first placement → every order seen final, divided by orders. Temporal CLI: %s. CloudCommerce outcomes: %s; Temporal: %s.\n\n",
		t.TemporalCLI, outcomes(l.ByStatus), outcomes(t.ByStatus))
}

// ratio3 is a/b to three significant digits.
func ratio3(a, b float64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.3g", a/b)
}
