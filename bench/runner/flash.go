package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// The flash-sale scenario: many orders for one hot SKU at once, against a
// model of DynamoDB's per-key write limit (awsfault.Throttle in a fault
// endpoint between the worker and the emulator), with the SKU's stock in 1 item and in K items,
// and once without the sale, for the other orders' latency alone.

// awsKeyWriteUnits is DynamoDB's write limit of one partition, and so of
// one item: 1,000 write units a second.
const awsKeyWriteUnits = 1000

// hotSKU is the SKU on sale.
const hotSKU = "FLASH-SALE"

// otherSKUs are what the other orders buy: enough SKUs that none of them
// comes near the per-key limit (as the catalogue's long tail does not).
var otherSKUs = func() []string {
	out := make([]string, 64)
	for i := range out {
		out[i] = fmt.Sprintf("CATALOGUE-%02d", i)
	}
	return out
}()

// FlashRun is one flash-sale measurement.
type FlashRun struct {
	Label string `json:"label"`
	// Shards of the hot SKU; 0 is the run without the sale.
	Shards      int     `json:"shards"`
	HotOrders   int     `json:"hot_orders"`
	HotUnits    int64   `json:"hot_units"`
	OtherOrders int     `json:"other_orders"`
	Rate        float64 `json:"offered_rate"`
	// KeyWriteUnits is the model's write units a second per key; the scale
	// factor is KeyWriteUnits / 1000.
	KeyWriteUnits float64 `json:"key_write_units"`

	Placed   int            `json:"placed"`
	NotFinal int            `json:"not_final"`
	ByStatus map[string]int `json:"by_status"`
	// OrdersPerSecond: all orders final over first placement → last final.
	OrdersPerSecond float64 `json:"orders_per_s"`
	// HotPerSecond: the hot SKU's orders final over first hot placement →
	// last hot order final; SoldPerSecond: units sold over first placement
	// → last reservation.
	HotPerSecond  float64 `json:"hot_orders_per_s"`
	SoldPerSecond float64 `json:"sold_per_s"`
	HotP50Ms      float64 `json:"hot_p50_ms"`
	HotP99Ms      float64 `json:"hot_p99_ms"`
	OtherP50Ms    float64 `json:"other_p50_ms"`
	OtherP99Ms    float64 `json:"other_p99_ms"`
	// Throttled write requests (SDK attempts included) and per order.
	Throttled         int     `json:"throttled"`
	ThrottledPerOrder float64 `json:"throttled_per_order"`
	// Sold is the hot orders that shipped; StockLeft what the shards hold
	// after; Exact says Sold + StockLeft + the units hot orders still in
	// progress hold == HotUnits.
	Sold      int    `json:"sold"`
	StockLeft int64  `json:"stock_left"`
	Exact     bool   `json:"exact"`
	Error     string `json:"error,omitempty"`
}

// flashWorkerEnv is the worker's configuration in every flash run: the
// defaults with 1 s long polls, since the emulator's long poll now and
// then misses a message that arrives while it waits (a tail of tens of
// seconds that would otherwise decide every p99 here, sale or not).
var flashWorkerEnv = []string{"CLOUDCOMMERCE_WAIT_TIME=1s"}

// flash runs the scenario: without the sale, then once per shard count.
func (b *bench) flash(ctx context.Context) []*FlashRun {
	var runs []*FlashRun
	base := &FlashRun{HotOrders: b.o.flashHot, HotUnits: int64(float64(b.o.flashHot) * b.o.flashFraction), OtherOrders: b.o.flashOther,
		Rate: b.o.flashRate, KeyWriteUnits: b.o.flashWCU}
	// Without the sale the other orders come at the rate they have in
	// the sale.
	alone := *base
	alone.Label, alone.HotOrders, alone.HotUnits = "no sale", 0, 0
	alone.Rate = base.Rate * float64(base.OtherOrders) / float64(base.OtherOrders+base.HotOrders)
	runs = append(runs, b.flashRun(ctx, &alone))
	for _, k := range b.o.flashShards {
		r := *base
		r.Label, r.Shards = fmt.Sprintf("shards=%d", k), k
		runs = append(runs, b.flashRun(ctx, &r))
	}
	return runs
}

func (b *bench) flashRun(ctx context.Context, fr *FlashRun) *FlashRun {
	defer func() {
		if err := loadgen.AppendJSON(b.jsonl, fr); err != nil {
			fmt.Fprintf(b.log, "write %s: %v\n", b.jsonl, err)
		}
	}()
	label := fmt.Sprintf("flash-%d", fr.Shards)
	fmt.Fprintf(b.log, "\n== %s (%s): %d hot orders for %d units, %d other orders, %.0f orders/s, %g write units/s per key, loadavg %s\n",
		label, fr.Label, fr.HotOrders, fr.HotUnits, fr.OtherOrders, fr.Rate, fr.KeyWriteUnits, loadAvg())
	var th *awsfault.Throttle
	var proxy *awsfault.Proxy
	wrap := func(endpoint, prefix string) (string, error) {
		p, err := awsfault.New(endpoint)
		if err != nil {
			return "", err
		}
		topo, err := topology.Load()
		if err != nil {
			p.Close()
			return "", err
		}
		th = &awsfault.Throttle{Tables: map[string]string{topo.Names(prefix).Tables["inventory"]: "sku"}, UnitsPerSecond: fr.KeyWriteUnits}
		p.SetThrottle(th)
		proxy = p
		return p.URL, nil
	}
	st, err := startStack(ctx, b.o.bin, filepath.Join(b.o.bin, "worker"), b.logDir, label, 1, flashWorkerEnv, false, wrap)
	if proxy != nil {
		defer proxy.Close()
	}
	if err != nil {
		fr.Error = err.Error()
		return fr
	}
	defer st.stop()
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: st.endpoint, Region: "us-east-1", StaticCredentials: true})
	if err != nil {
		fr.Error = err.Error()
		return fr
	}
	topo, err := topology.Load()
	if err != nil {
		fr.Error = err.Error()
		return fr
	}
	names := topo.Names(st.prefix)
	sto := store.New(awsconf.DynamoDB(cfg), store.Tables{Orders: names.Tables["orders"], Inventory: names.Tables["inventory"], Idempotency: names.Tables["idempotency"]})
	total := fr.HotOrders + fr.OtherOrders
	for _, sku := range otherSKUs {
		if err := sto.PutInventory(ctx, pipeline.InventoryItem{SKU: sku, Available: int64(total)*3 + 1000}); err != nil {
			fr.Error = err.Error()
			return fr
		}
	}
	if fr.HotOrders > 0 {
		if err := sto.PutInventory(ctx, pipeline.InventoryItem{SKU: hotSKU, Available: fr.HotUnits, Shards: fr.Shards}); err != nil {
			fr.Error = err.Error()
			return fr
		}
	}

	// Warm up: the first receives after a worker starts can lose their
	// answer (the messages then wait out the visibility timeout), and
	// pools and connections grow; none of that belongs to the sale.
	time.Sleep(2 * time.Second)
	if err := b.flashWarmUp(ctx, cfg, names, sto); err != nil {
		fmt.Fprintf(b.log, "warm-up: %v\n", err)
	}
	th.Reset()

	// The orders, hot ones spread evenly through the other ones.
	rng := rand.New(rand.NewPCG(1, 2))
	mix := loadgen.Mix{} // good cards; the items are replaced below
	hot := map[string]bool{}
	orders := make([]pipeline.Order, 0, total)
	now := time.Now().UTC()
	for i := range total {
		req := mix.Request(i, rng)
		isHot := fr.HotOrders > 0 && i*fr.HotOrders/total != (i+1)*fr.HotOrders/total
		req.Items = req.Items[:0]
		if isHot {
			req.Items = append(req.Items, pipeline.Item{SKU: hotSKU, Quantity: 1, UnitPrice: pipeline.Money{Amount: 1999, Currency: "USD"}})
		} else {
			for _, k := range rng.Perm(len(otherSKUs))[:1+rng.IntN(2)] {
				req.Items = append(req.Items, pipeline.Item{SKU: otherSKUs[k], Quantity: int64(1 + rng.IntN(3)), UnitPrice: pipeline.Money{Amount: 500, Currency: "USD"}})
			}
		}
		o, err := pipeline.NewOrder(fmt.Sprintf("%s-%s-%06d", st.prefix, map[bool]string{true: "hot", false: "other"}[isHot], i), req, now)
		if err != nil {
			fr.Error = err.Error()
			return fr
		}
		hot[o.ID] = isHot
		orders = append(orders, o)
	}
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}

	// Place at the offered rate, ten a PutEvents, stamping each order with
	// the moment it goes on the bus.
	eb := eventbridge.NewFromConfig(cfg)
	start := time.Now()
	interval := time.Duration(float64(10*time.Second) / fr.Rate)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for first := 0; first < len(orders) && ctx.Err() == nil; first += 10 {
		time.Sleep(time.Until(start.Add(time.Duration(first/10) * interval)))
		part := orders[first:min(first+10, len(orders))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries := make([]ebtypes.PutEventsRequestEntry, 0, len(part))
			at := time.Now().UTC()
			for _, o := range part {
				o.PlacedAt, o.UpdatedAt = at, at
				o.History = map[pipeline.Status]time.Time{pipeline.StatusPlaced: at}
				e, err := bus.Entry(names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
				if err != nil {
					continue
				}
				entries = append(entries, e)
			}
			out, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
			mu.Lock()
			defer mu.Unlock()
			if err != nil || out.FailedEntryCount > 0 {
				fmt.Fprintf(b.log, "PutEvents: %v\n", err)
				return
			}
			fr.Placed += len(entries)
		}()
	}
	wg.Wait()
	fmt.Fprintf(b.log, "placed %d orders in %s\n", fr.Placed, time.Since(start).Round(time.Millisecond))

	// Wait until every order is final (or the timeout).
	deadline := time.Now().Add(b.o.flashTimeout)
	pending := slices.Clone(ids)
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		got, _, err := sto.Statuses(ctx, pending)
		if err == nil {
			pending = slices.DeleteFunc(pending, func(id string) bool { return got[id].Final() })
		}
		time.Sleep(500 * time.Millisecond)
	}
	fr.NotFinal = len(pending)
	fr.Throttled = th.Throttled()
	read, _, err := sto.GetMany(ctx, ids, 4)
	if err != nil {
		fr.Error = err.Error()
	}
	fr.ByStatus = map[string]int{}
	var hotLat, otherLat []time.Duration
	var first, last, firstHot, lastHot, lastSold time.Time
	var heldLive int64
	for _, so := range read {
		o := so.Order
		fr.ByStatus[string(o.Status)]++
		if hot[o.ID] && (o.Status == pipeline.StatusReserved || o.Status == pipeline.StatusPaid) {
			heldLive++
		}
		if !o.Status.Final() {
			continue
		}
		lat := o.UpdatedAt.Sub(o.PlacedAt)
		if first.IsZero() || o.PlacedAt.Before(first) {
			first = o.PlacedAt
		}
		last = latest(last, o.UpdatedAt)
		if hot[o.ID] {
			hotLat = append(hotLat, lat)
			if firstHot.IsZero() || o.PlacedAt.Before(firstHot) {
				firstHot = o.PlacedAt
			}
			lastHot = latest(lastHot, o.UpdatedAt)
			if at, ok := o.History[pipeline.StatusReserved]; ok {
				lastSold = latest(lastSold, at)
			}
			if o.Status == pipeline.StatusShipped {
				fr.Sold++
			}
		} else {
			otherLat = append(otherLat, lat)
		}
	}
	// The slowest order's timeline says which stage a tail comes from.
	var slowest pipeline.Order
	for _, so := range read {
		if so.Status.Final() && so.UpdatedAt.Sub(so.PlacedAt) > slowest.UpdatedAt.Sub(slowest.PlacedAt) {
			slowest = so.Order
		}
	}
	if slowest.ID != "" {
		fmt.Fprintf(b.log, "slowest order %s:", slowest.ID)
		for _, h := range slowest.Timeline() {
			fmt.Fprintf(b.log, " %s +%s", h.Status, h.At.Sub(slowest.PlacedAt).Round(time.Millisecond))
		}
		fmt.Fprintln(b.log)
	}
	slices.Sort(hotLat)
	slices.Sort(otherLat)
	fr.HotP50Ms, fr.HotP99Ms = msOf(loadgen.Percentile(hotLat, 50)), msOf(loadgen.Percentile(hotLat, 99))
	fr.OtherP50Ms, fr.OtherP99Ms = msOf(loadgen.Percentile(otherLat, 50)), msOf(loadgen.Percentile(otherLat, 99))
	if s := last.Sub(first).Seconds(); s > 0 {
		fr.OrdersPerSecond = float64(len(hotLat)+len(otherLat)) / s
	}
	if s := lastHot.Sub(firstHot).Seconds(); s > 0 {
		fr.HotPerSecond = float64(len(hotLat)) / s
	}
	if s := lastSold.Sub(firstHot).Seconds(); s > 0 {
		fr.SoldPerSecond = float64(fr.Sold) / s
	}
	if fr.Placed > 0 {
		fr.ThrottledPerOrder = float64(fr.Throttled) / float64(fr.Placed)
	}
	if fr.HotOrders > 0 {
		if it, err := sto.Inventory(ctx, hotSKU); err == nil {
			fr.StockLeft = it.Available
		}
		fr.Exact = int64(fr.Sold)+heldLive+fr.StockLeft == fr.HotUnits
	}
	fmt.Fprintf(b.log, "%s: %.0f orders/s; hot %.0f orders/s, sold %d of %d at %.0f/s, p50/p99 %s/%s; other p50/p99 %s/%s; %d throttled (%.2f/order); not final %d; exact %v\n",
		fr.Label, fr.OrdersPerSecond, fr.HotPerSecond, fr.Sold, fr.HotUnits, fr.SoldPerSecond, d(fr.HotP50Ms), d(fr.HotP99Ms), d(fr.OtherP50Ms), d(fr.OtherP99Ms),
		fr.Throttled, fr.ThrottledPerOrder, fr.NotFinal, fr.Exact)
	return fr
}

// flashWarmUp places 40 orders of the catalogue's SKUs and waits (up to a
// minute) until they are final.
func (b *bench) flashWarmUp(ctx context.Context, cfg aws.Config, names topology.Names, sto *store.Store) error {
	rng := rand.New(rand.NewPCG(3, 4))
	eb := eventbridge.NewFromConfig(cfg)
	var ids []string
	for batch := range 4 {
		var entries []ebtypes.PutEventsRequestEntry
		for i := range 10 {
			req := loadgen.Mix{}.Request(i, rng)
			req.Items = []pipeline.Item{{SKU: otherSKUs[rng.IntN(len(otherSKUs))], Quantity: 1, UnitPrice: pipeline.Money{Amount: 500, Currency: "USD"}}}
			o, err := pipeline.NewOrder(fmt.Sprintf("warm-%d-%d", batch, i), req, time.Now().UTC())
			if err != nil {
				return err
			}
			e, err := bus.Entry(names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
			if err != nil {
				return err
			}
			entries, ids = append(entries, e), append(ids, o.ID)
		}
		if _, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries}); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		got, _, err := sto.Statuses(ctx, ids)
		if err == nil {
			ids = slices.DeleteFunc(ids, func(id string) bool { return got[id].Final() })
		}
		if len(ids) == 0 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%d warm-up orders not final after a minute", len(ids))
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func msOf(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }

// writeFlash prints the flash-sale table and saves the runs as JSON.
func writeFlash(runs []*FlashRun, out string, w io.Writer) error {
	if len(runs) == 0 {
		return nil
	}
	k := runs[0].KeyWriteUnits
	fmt.Fprintf(w, "\n### Flash sale (per-key write limit modelled at %g write units/s, scale factor 1/%g of AWS's %d)\n\n", k, awsKeyWriteUnits/k, awsKeyWriteUnits)
	fmt.Fprintln(w, "| run | orders (hot/other) | offered/s | orders/s | hot orders/s | units sold/s | hot p50 / p99 | other p50 / p99 | throttled / order | sold / units (left) | exact | not final |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---|---:|---|---|---:|")
	for _, r := range runs {
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | error: %s |\n", r.Label, r.Error)
			continue
		}
		fmt.Fprintf(w, "| %s | %d/%d | %.0f | %.0f | %.0f | %.0f | %s / %s | %s / %s | %.2f | %d / %d (%d) | %s | %d |\n",
			r.Label, r.HotOrders, r.OtherOrders, r.Rate, r.OrdersPerSecond, r.HotPerSecond, r.SoldPerSecond, d(r.HotP50Ms), d(r.HotP99Ms),
			d(r.OtherP50Ms), d(r.OtherP99Ms), r.ThrottledPerOrder, r.Sold, r.HotUnits, r.StockLeft, yes(r.Exact || r.HotOrders == 0), r.NotFinal)
	}
	b, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(out, "flash-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nruns saved to %s\n", path)
	return nil
}
