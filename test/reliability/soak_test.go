package reliability

import (
	"context"
	"math"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestSoak runs the crash and fault mix together for
// CLOUDCOMMERCE_SOAK_MINUTES minutes (skipped when unset): a steady load
// through the intake API and the bus, the worker's AWS traffic through the
// fault proxy with random fault phases, and a SIGKILL with restart every
// 15–45 s. Then every order must be final and the invariants hold.
//
//	CLOUDCOMMERCE_SOAK_MINUTES=10 go test -race -count=1 -timeout 30m -run '^TestSoak$' ./test/reliability/
//
// CLOUDCOMMERCE_SOAK_RATE sets the orders per second (default 20).
func TestSoak(t *testing.T) {
	minutes, _ := strconv.ParseFloat(os.Getenv("CLOUDCOMMERCE_SOAK_MINUTES"), 64)
	if minutes <= 0 {
		t.Skip("set CLOUDCOMMERCE_SOAK_MINUTES=N to soak for N minutes")
	}
	rate := 20.0
	if v, err := strconv.ParseFloat(os.Getenv("CLOUDCOMMERCE_SOAK_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	r := newRT(t)
	window := time.Duration(minutes * float64(time.Minute))
	m := defaultMix(int(math.Ceil(rate*window.Seconds())), rate)
	r.Logf("soak: %s, %d orders at %.0f/s, SIGKILLs and network faults throughout", window, m.Orders, rate)

	f := newFaultProxy(r)
	c := newCluster(r)
	c.endpoint = f.url
	c.setStock(m.Stock)
	orders := plan(r, m)
	w := c.worker()
	w.start()

	ctx, cancel := context.WithTimeout(context.Background(), window+10*time.Minute)
	defer cancel()
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var phases []string
	kills := 0
	wg.Add(2)
	go func() { defer wg.Done(); phases = f.chaos(chaosCtx, chaosCtx.Done()) }()
	go func() {
		defer wg.Done()
		for chaosCtx.Err() == nil {
			sleepCtx(chaosCtx, r.Duration(15*time.Second, 45*time.Second))
			if chaosCtx.Err() != nil {
				return
			}
			w.proc().Kill()
			kills++
			// The network may be cut right now: keep starting it, as
			// an orchestrator would.
			if err := w.tryStart(20); err != nil {
				r.Errorf("restart after SIGKILL: %v", err)
				return
			}
		}
	}()
	res := drive(ctx, c, m, orders, func() string { return w.api })
	stopChaos()
	wg.Wait()
	r.Logf("%d SIGKILLs, %d fault phases; accepted %d orders, %d cancellations answered", kills, len(phases), len(res.accepted), len(res.cancels))
	if res.lost > 0 {
		r.Fatalf("%d orders were never accepted", res.lost)
	}
	settle(c, expect{stock: m.Stock, accepted: res.accepted, cancels: res.cancels, finalWithin: 5 * time.Minute, queueWithin: 3 * time.Minute})
	logSummary(r, w)
}
