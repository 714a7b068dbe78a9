package reliability

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestCrashConsistency drives the built worker under load (orders through
// the intake API and straight onto the bus, scarce stock, declined and
// transiently failing payments, cancellations) and kills it with SIGKILL
// at 3–4 random moments, restarting it each time. Afterwards every order
// is final and the invariants hold (see check).
//
// The stuck-order sweep is off: recovery must come from the queues alone
// (a killed worker's messages come back after their visibility timeout,
// and a lost condition re-announces), so a message lost anywhere leaves
// its order unfinished and fails the run instead of being papered over by
// a re-publish. TestSweepLoopMovesOnAnOrderWhoseEventWasLost proves the
// sweep on its own.
func TestCrashConsistency(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	m := defaultMix(1000, 40)
	kills := 3 + r.IntN(2)
	runCrashes(r, m, kills, time.Duration(float64(m.Orders)/m.Rate*float64(time.Second)))
}

// runCrashes runs one crash round: the plan at the mix's rate while the
// worker is killed kills times at random moments in the first window of
// the run, then settles and checks the invariants.
func runCrashes(r *rt, m mix, kills int, window time.Duration) {
	c := newCluster(r, "CLOUDCOMMERCE_SWEEP_INTERVAL=off")
	c.setStock(m.Stock)
	orders := plan(r, m)
	at := make([]time.Duration, kills)
	for i := range at {
		at[i] = r.Duration(time.Second, window)
	}
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	r.Logf("%d orders at %.0f/s; SIGKILL at %v", m.Orders, m.Rate, at)

	w := c.worker()
	w.start()
	ctx, cancel := context.WithTimeout(context.Background(), window+3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		for i, d := range at {
			sleepCtx(ctx, time.Until(start.Add(d)))
			if ctx.Err() != nil {
				return
			}
			w.proc().Kill()
			r.Logf("SIGKILL %d/%d at %s", i+1, len(at), time.Since(start).Round(time.Millisecond))
			// Restart at once, as an orchestrator would; the next kill
			// waits until this incarnation is ready, so every kill hits
			// a running worker.
			if err := w.tryStart(3); err != nil {
				r.Errorf("restart after SIGKILL: %v", err)
				return
			}
		}
	}()
	res := drive(ctx, c, m, orders, func() string { return w.api })
	wg.Wait()
	if res.lost > 0 {
		r.Fatalf("%d orders were never accepted", res.lost)
	}
	r.Logf("accepted %d orders, %d cancellations answered", len(res.accepted), len(res.cancels))
	if m.Cancel > 0 && len(res.cancels) == 0 {
		r.Fatalf("no cancellation was made: the cancellation invariants would check nothing")
	}
	if len(w.history) < kills+1 {
		r.Fatalf("the worker ran %d times, want %d (every kill followed by a restart)", len(w.history), kills+1)
	}
	settle(c, expect{stock: m.Stock, accepted: res.accepted, cancels: res.cancels})
	if n := w.grep("stuck orders moved on"); n != 0 {
		r.Fatalf("the stuck-order sweep ran %d times although it was off", n)
	}
	logSummary(r, w)
}

// logSummary logs how often recovery paths ran, so a run shows that the
// crashes actually exercised them.
func logSummary(r *rt, w *worker) {
	r.Logf("%s: %d runs; log lines: duplicate=%d conflict=%d retry=%d dead-lettered=%d panics=%d stuck-orders-moved=%d",
		w.name, len(w.history), w.grep(`"outcome":"duplicate"`), w.grep(`"outcome":"conflict"`), w.grep("will retry"),
		w.grep("message dead-lettered"), w.grep("handler panicked"), w.grep("stuck orders moved on"))
}
