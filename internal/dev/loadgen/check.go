package loadgen

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// maxCheckPerTick bounds the completion reads per check: ten BatchGetItem
// requests of 100 keys, oldest orders first (they finish first).
const maxCheckPerTick = 1000

// wait returns once placing is over and every placed order is final, or
// when ctx ends.
func (r *run) wait(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.CheckInterval)
	defer tick.Stop()
	placingDone := r.placingDone
	var pending []*order
	seen, final := 0, 0
	lastLine := time.Now()
	for {
		select {
		case <-tick.C:
		case <-placingDone:
			placingDone = nil
		case <-ctx.Done():
			if r.cfg.Terminal {
				fmt.Fprintln(r.cfg.Out)
			}
			return ctx.Err()
		}
		// Check what was pending at the last tick; orders placed since
		// join the next check.
		check := pending[:min(len(pending), maxCheckPerTick)]
		if len(check) > 0 {
			done := r.finalOnes(ctx, check)
			kept := pending[:0]
			for _, o := range pending {
				if done[o.id] {
					o.final = true
					final++
					continue
				}
				kept = append(kept, o)
			}
			pending = kept
		}
		r.mu.Lock()
		pending = append(pending, r.orders[seen:]...)
		seen = len(r.orders)
		r.mu.Unlock()
		over := placingDone == nil
		elapsed := time.Since(r.start)
		switch {
		case r.cfg.Terminal:
			fmt.Fprintf(r.cfg.Out, "\r%s", bar(final, seen, r.cfg.Orders, elapsed))
		case time.Since(lastLine) >= r.cfg.ProgressEvery || (over && len(pending) == 0):
			fmt.Fprintf(r.cfg.Out, "progress: %d placed, %d final of %d (%.1fs)\n", seen, final, r.cfg.Orders, elapsed.Seconds())
			lastLine = time.Now()
		}
		if over && len(pending) == 0 {
			if r.cfg.Terminal {
				fmt.Fprintln(r.cfg.Out)
			}
			return nil
		}
	}
}

func bar(done, placed, total int, elapsed time.Duration) string {
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return fmt.Sprintf("[%s%s] %d/%d final, %d placed  %.1fs ", strings.Repeat("█", filled), strings.Repeat("░", width-filled), done, total, placed, elapsed.Seconds())
}

// finalOnes reads the status of the given orders (status only, 100 keys a
// request) and returns the ids whose status is final. Orders that could not
// be read stay pending.
func (r *run) finalOnes(ctx context.Context, list []*order) map[string]bool {
	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.id
	}
	statuses, requests, err := r.store.Statuses(ctx, ids)
	r.checkerCalls.Add(int64(requests))
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(r.cfg.Out, "check orders: %v\n", err)
	}
	done := map[string]bool{}
	for id, st := range statuses {
		if st.Final() {
			done[id] = true
		}
	}
	return done
}

// readAll reads every order in full (the final pass, after the counters
// are read), 100 a request, four requests at a time.
func (r *run) readAll(ctx context.Context, ids []string) (map[string]store.StoredOrder, error) {
	stored, requests, err := r.store.GetMany(ctx, ids, 4)
	r.checkerCalls.Add(int64(requests))
	return stored, err
}

// summarise fills in outcomes and latencies from the stored orders.
func (r *run) summarise(ctx context.Context, res *Result) error {
	r.mu.Lock()
	orders := append([]*order(nil), r.orders...)
	r.mu.Unlock()
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.id
	}
	stored, err := r.readAll(ctx, ids)
	if err != nil {
		return err
	}
	res.Placed, res.PlaceErrors = len(orders), int(r.placeErrs.Load())
	res.ByStatus = map[string]int{}
	res.SlowThresholdMs = ms(r.cfg.SlowThreshold)
	res.MaxPlaceLagMs = ms(time.Duration(r.maxLag.Load()))
	if !r.placeEnd.IsZero() && res.Placed > 0 {
		res.PlaceRate = float64(res.Placed) / r.placeEnd.Sub(r.start).Seconds()
	}
	var first, last time.Time
	var happy []time.Duration
	var bytes, lines int
	var done []time.Time
	for _, o := range orders {
		so, ok := stored[o.id]
		if !ok {
			res.ByStatus["NOT_FOUND"]++
			res.NotFinal++
			continue
		}
		res.ByStatus[string(so.Status)]++
		bytes += so.Bytes
		lines += len(so.Lines())
		if !so.Status.Final() {
			res.NotFinal++
			continue
		}
		res.Final++
		d := so.UpdatedAt.Sub(so.PlacedAt)
		res.latencies = append(res.latencies, d)
		if !o.transient {
			happy = append(happy, d)
		}
		if r.cfg.SlowThreshold > 0 && d > r.cfg.SlowThreshold {
			res.Slow = append(res.Slow, slowOrder(so.Order, o.transient))
		}
		done = append(done, so.UpdatedAt)
		if first.IsZero() || so.PlacedAt.Before(first) {
			first = so.PlacedAt
		}
		if so.UpdatedAt.After(last) {
			last = so.UpdatedAt
		}
	}
	if n := len(stored); n > 0 {
		res.AvgOrderItemBytes = float64(bytes) / float64(n)
		res.AvgLines = float64(lines) / float64(n)
	}
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	sort.Slice(happy, func(i, j int) bool { return happy[i] < happy[j] })
	l := res.latencies
	res.P50Ms, res.P95Ms, res.P99Ms = ms(Percentile(l, 50)), ms(Percentile(l, 95)), ms(Percentile(l, 99))
	if len(l) > 0 {
		res.MaxMs = ms(l[len(l)-1])
	}
	res.P99HappyMs = ms(Percentile(happy, 99))
	if last.After(first) {
		res.ElapsedSeconds = last.Sub(first).Seconds()
		res.OrdersPerSecond = float64(res.Final) / res.ElapsedSeconds
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
	if n := len(done); n > 0 {
		k := max(1, int(0.99*float64(n)))
		if t := done[k-1]; t.After(first) {
			res.OrdersPerSecond99 = float64(k) / t.Sub(first).Seconds()
			res.FirstPlaced, res.Done99 = first, t
		}
	}
	return nil
}
