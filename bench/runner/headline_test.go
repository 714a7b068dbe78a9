package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
)

func TestHeadlineBudgetsFitTwentyMinutes(t *testing.T) {
	// The build (≤ 1 minute with a warm cache) comes on top.
	if total := headlineTotal(); total > 19*time.Minute {
		t.Fatalf("the headline's steps are budgeted %s; with the build that exceeds 20 minutes", total)
	}
}

func TestFloorPerOrder(t *testing.T) {
	out := `BenchmarkPutItem/seq-2         	     100	    154003 ns/op	       120.0 cpu-µs/op	         0 endpoint-cpu-µs/op	   32365 B/op	     362 allocs/op
BenchmarkPutItem/par8-2        	     100	    127099 ns/op	        80.00 cpu-µs/op	         0 endpoint-cpu-µs/op	   32685 B/op	     366 allocs/op
BenchmarkLedgerPutItem/seq-2   	     100	    154003 ns/op	       100.0 cpu-µs/op	         0 endpoint-cpu-µs/op	   32365 B/op	     362 allocs/op
BenchmarkPublish/seq-2         	     100	    265007 ns/op	       200.0 cpu-µs/op	       100.0 endpoint-cpu-µs/op	   42033 B/op	     461 allocs/op`
	f := &floorRun{Seq: map[string]float64{}, Par8: map[string]float64{}}
	for _, line := range strings.Split(out, "\n") {
		m := floorLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not parsed: %s", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		map[string]map[string]float64{"seq": f.Seq, "par8": f.Par8}[m[2]][m[1]] = v
	}
	meas := &Measurement{Load: &loadgen.Result{Requests: &loadgen.Breakdown{Ledger: 1,
		ByOperation: map[string]float64{"DynamoDB PutItem": 2, "SNS Publish": 0.5, "producer EventBridge PutEvents": 0.4, "DynamoDB Query": 0.01}}}}
	seq, left := f.perOrder(meas, f.Seq)
	// 2 × 120 + 0.5 × 200 + 1 × 100 (the ledger); the producer's calls are
	// not the worker's; Query has no floor figure.
	if seq != 440 {
		t.Errorf("seq floor %v, want 440", seq)
	}
	if len(left) != 1 || !strings.HasPrefix(left[0], "DynamoDB Query") {
		t.Errorf("left out %v, want DynamoDB Query only", left)
	}
}

func TestNoiseBand(t *testing.T) {
	step := func(rate float64, pass bool) *Measurement {
		return &Measurement{Pass: pass, Load: &loadgen.Result{OfferedRate: rate}}
	}
	l := ladder{Sustained: 250, Steps: []*Measurement{step(150, true), step(200, false), step(200, true), step(250, true), step(300, false), step(300, false), step(275, false)}}
	got := noiseBand(l, 50)
	for _, want := range []string{"sustained 250/s", "failed at 275/s", "band 250–275/s", "second attempt only at 200/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("noise band %q lacks %q", got, want)
		}
	}
}

func TestQuoteHeadlineRewritesOnlyTheBlock(t *testing.T) {
	readme := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(readme, []byte("intro\n"+headlineBegin+"\nold figures\n"+headlineEnd+"\nrest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := quoteHeadline(readme, []byte("# h\n\n| table |\n\n"+headlineBegin+"\nnew figures\n"+headlineEnd+"\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(readme)
	if want := "intro\n" + headlineBegin + "\nnew figures\n" + headlineEnd + "\nrest\n"; string(b) != want {
		t.Fatalf("README now:\n%s\nwant:\n%s", b, want)
	}
	if err := quoteHeadline(readme, []byte("no block")); err == nil {
		t.Fatal("a headline without the block was quoted")
	}
}

func TestWriteSlowListsEachOrderWithStageAndCause(t *testing.T) {
	m := &Measurement{Scenario: "steady", Config: batched, Load: &loadgen.Result{OfferedRate: 150, Placed: 6000, Slow: []loadgen.SlowOrder{
		{ID: "o-retried", Transient: true, TotalMs: 41000, Slowest: loadgen.Span{From: "RESERVED", To: "PAID", Stage: "payment", Ms: 40500}, Cause: "the emulator's long poll | gap 3"},
		{ID: "o-queued", TotalMs: 6200, Slowest: loadgen.Span{From: "PAID", To: "SHIPPED", Stage: "shipping", Ms: 6100}, Cause: "queued 6.1 s in shipping"},
	}}}
	var b strings.Builder
	writeSlow(&b, "### Slow orders", []*Measurement{m, nil})
	out := b.String()
	for _, want := range []string{"1 of 6000 orders over 5s that are not a deliberate back-off; 1 transient-payment",
		"| o-queued | no | 6.20s | shipping (PAID→SHIPPED) | 6.10s | queued 6.1 s in shipping |",
		"| o-retried | yes | 41s | payment (RESERVED→PAID) | 40s | the emulator's long poll / gap 3 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("slow-order list lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "o-queued") > strings.Index(out, "o-retried") {
		t.Error("the deliberate back-off is listed before the order that is not one")
	}
}

// steadyRun is a steady measurement at 150/s with its recorded writes.
func steadyRun(c config, wru map[string]float64, orders int, itemBytes float64) *Measurement {
	m := &Measurement{Scenario: "steady", Config: c, WorkerCPUMicros: 1500, Load: &loadgen.Result{OfferedRate: 150, Placed: orders, Target: loadgen.TargetBus,
		AvgOrderItemBytes: 999, // the load generator's own sample, which the cost must not use
		Requests:          &loadgen.Breakdown{PerOrder: 6.2, Deliveries: 4, ByOperation: map[string]float64{"SQS ReceiveMessage": 1, "DynamoDB GetItem": 0.5}}}}
	if wru != nil {
		m.Writes = &cost.WriteUnits{Orders: orders, ItemBytes: itemBytes, ByTarget: map[string]float64{}}
		for k, v := range wru {
			m.Writes.ByTarget[k] = v * float64(orders)
		}
	}
	return m
}

func TestHeadlineCostFromTheCompactRunsRecordedWrites(t *testing.T) {
	h := &headlineRun{
		Compact: steadyRun(compact, map[string]float64{"orders": 6, "orders/by_open": 2, "inventory": 1.5}, 600, 612),
		Batched: steadyRun(batched, map[string]float64{"orders": 10, "orders/by_open": 2, "inventory": 1.5}, 600, 1100),
		Naive:   steadyRun(naive, nil, 600, 0),
	}
	var b strings.Builder
	h.markdown(&b)
	out := b.String()
	// The cost is the model of the compact run with its recorded write units.
	want := cost.Model(cost.ListPrices, costInput(h.Compact))
	if want.Total == cost.Model(cost.ListPrices, costInput(h.Batched)).Total {
		t.Fatal("the fixture prices both formats alike; the test would not tell them apart")
	}
	json := cost.Model(cost.ListPrices, costInput(h.Batched))
	for _, s := range []string{
		fmt.Sprintf("| cost per million orders at AWS list prices, orders stored in the compact format | $%.1f |", want.Total),
		"9.50 WRU per order from its recorded DynamoDB writes (600 orders, mean order item 612 bytes",
		fmt.Sprintf("in the default json format (the batched run) $%.1f, 13.50 WRU per order, mean order item 1100 bytes", json.Total),
		fmt.Sprintf("**$%.1f per million orders** at AWS list prices with orders stored in the compact format (CLOUDCOMMERCE_ORDER_FORMAT=compact), 9.50 DynamoDB write units per order as recorded", want.Total),
		"| WRU per order (recorded writes) | batched, compact format | batched, json format (default) |",
		"| inventory | 1.50 | 1.50 |",
		"| orders | 6.00 | 10.00 |",
		"| orders/by_open | 2.00 | 2.00 |",
		"| **total** | **9.50** | **13.50** |",
		"| orders / mean order item bytes | 600 / 612 | 600 / 1100 |",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("the headline lacks %q:\n%s", s, out)
		}
	}
	summary, _ := between(out, headlineBegin, headlineEnd)
	if !strings.Contains(summary, fmt.Sprintf("$%.1f", want.Total)) || strings.Contains(summary, "999") {
		t.Errorf("the summary does not quote the compact run's cost alone: %s", summary)
	}
	if strings.Contains(out, "999") {
		t.Error("the headline uses the load generator's sampled item size instead of the recorded writes")
	}

	// Without recorded writes there is no cost to quote: nothing is
	// priced from an assumed item size.
	h.Compact.Writes = nil
	b.Reset()
	h.markdown(&b)
	out = b.String()
	if !strings.Contains(out, "| cost per million orders at AWS list prices | – | the compact run recorded no DynamoDB writes") {
		t.Errorf("a compact run without recorded writes is priced anyway:\n%s", out)
	}
	if summary, _ := between(out, headlineBegin, headlineEnd); strings.Contains(summary, "per million orders") {
		t.Errorf("the summary quotes a cost without recorded writes: %s", summary)
	}
}
