package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// TestFlashSaleWithSIGKILLsSellsExactlyTheStock: a flash sale of one SKU
// whose 150 units are held in 8 shards. 400 orders for one unit each go on
// the bus in a steady stream, handled by two worker processes, while the
// workers are killed with SIGKILL three times in the middle of the sale
// (when a sixth, a third and a half of the units are sold; each restarted
// at once). At every moment the test looks, no unit has been created or
// lost: the shards' total (one snapshot) plus the units held by the orders
// read before it is at most the stock, plus those read after it at least
// the stock. At the end exactly 150 orders shipped, 250 were rejected,
// every shard is empty and every shard sold.
func TestFlashSaleWithSIGKILLsSellsExactlyTheStock(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	const (
		sku            = "FLASH"
		orders, units  = 400, 150
		shards         = 8
		batch, batches = 10, orders / 10
	)
	c := newCluster(r, "CLOUDCOMMERCE_INVENTORY_CONCURRENCY=16")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	admin := c.env.Store()
	if err := admin.PutInventory(ctx, pipeline.InventoryItem{SKU: sku, Available: units, Shards: shards}); err != nil {
		r.Fatal(err)
	}
	stock := map[string]int64{sku: units}
	w1, w2 := c.worker(), c.worker()
	w1.start()
	w2.start()

	// Every order id is chosen here, so the test can read any of them at
	// any moment, stored yet or not.
	tag := fmt.Sprintf("%x", r.IntN(1<<30))
	ids := make([]string, orders)
	accepted := make(map[string]*planned, orders)
	for i := range ids {
		ids[i] = fmt.Sprintf("flash-%s-%d", tag, i)
		accepted[ids[i]] = &planned{id: ids[i]}
	}
	// held counts the units the orders hold (RESERVED, PAID, SHIPPED). In
	// this sale units only ever move from the shards to orders (payments
	// succeed, nothing is cancelled), so what is held only grows.
	held := func() int64 {
		got, _, err := admin.Statuses(ctx, ids)
		if err != nil {
			r.Fatalf("read order statuses: %v", err)
		}
		var n int64
		for _, s := range got {
			switch s {
			case pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped:
				n++
			}
		}
		return n
	}
	var looks int
	var soldAtKill []int64
	look := func() {
		before := held()
		it, err := admin.Inventory(ctx, sku)
		if err != nil {
			r.Fatalf("read stock: %v", err)
		}
		after := held()
		looks++
		switch {
		case it.Available < 0:
			r.Fatalf("look %d: %d units available: oversold", looks, it.Available)
		case it.Shards != shards:
			r.Fatalf("look %d: %d shards, want %d", looks, it.Shards, shards)
		case it.Available+before > units:
			r.Fatalf("look %d: %d available + %d held by orders read before = %d > %d stocked: units were created", looks, it.Available, before, it.Available+before, units)
		case it.Available+after < units:
			r.Fatalf("look %d: %d available + %d held by orders read after = %d < %d stocked: units were lost", looks, it.Available, after, it.Available+after, units)
		}
	}

	var restarts sync.WaitGroup
	kill := func(w *worker) {
		soldAtKill = append(soldAtKill, held())
		w.proc().Kill()
		r.Logf("SIGKILL %s with %d of %d units sold", w.name, soldAtKill[len(soldAtKill)-1], units)
		restarts.Add(1)
		go func() {
			defer restarts.Done()
			if err := w.tryStart(3); err != nil {
				r.Errorf("restart %s after SIGKILL: %v", w.name, err)
			}
		}()
	}
	kills := []struct {
		sold int64
		w    *worker
	}{{units / 6, w1}, {units / 3, w2}, {units / 2, w1}}
	for b := 0; b < batches || held() < units; b++ {
		if ctx.Err() != nil {
			r.Fatalf("the sale did not finish: %v", ctx.Err())
		}
		if b < batches {
			entries := make([]ebtypes.PutEventsRequestEntry, 0, batch)
			for i := range batch {
				o, err := pipeline.NewOrder(ids[b*batch+i], testkit.Order(sandbox.TokenVisa, sku), time.Now())
				if err != nil {
					r.Fatal(err)
				}
				e, err := bus.Entry(c.env.Prov.Names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
				if err != nil {
					r.Fatal(err)
				}
				entries = append(entries, e)
			}
			out, err := c.env.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
			if err != nil || out.FailedEntryCount != 0 {
				r.Fatalf("PutEvents: %v %+v", err, out)
			}
		}
		if len(kills) > 0 && held() >= kills[0].sold {
			kill(kills[0].w)
			kills = kills[1:]
		}
		look()
		sleepCtx(ctx, 100*time.Millisecond)
	}
	restarts.Wait()
	look()

	final := settle(c, expect{stock: stock, accepted: accepted})
	n := map[pipeline.Status]int{}
	used := map[int]int{}
	for _, o := range final {
		n[o.Status]++
		if o.Status == pipeline.StatusShipped {
			used[o.StockShards[sku]]++
		}
	}
	if n[pipeline.StatusShipped] != units || n[pipeline.StatusRejected] != orders-units || len(final) != orders {
		r.Fatalf("final statuses %s, want SHIPPED=%d REJECTED=%d", statusCounts(final), units, orders-units)
	}
	if len(used) != shards {
		r.Fatalf("shipped orders took their units from shards %v, want all %d", used, shards)
	}
	code, body := httpGet("http://" + w2.api + "/v1/inventory/" + sku)
	var view struct {
		Available *int64 `json:"available"`
		Shards    int    `json:"shards"`
	}
	if err := json.Unmarshal(body, &view); code != 200 || err != nil || view.Available == nil || *view.Available != 0 || view.Shards != shards {
		r.Fatalf("GET /v1/inventory/%s = %d %s, want 0 available over %d shards", sku, code, body, shards)
	}
	for _, s := range soldAtKill {
		if len(soldAtKill) != 3 || s <= 0 || s >= units {
			r.Fatalf("a SIGKILL missed the sale in progress (units sold at each kill: %v)", soldAtKill)
		}
	}
	r.Logf("%d looks at the stock; units sold at each SIGKILL: %v; units per shard sold: %v", looks, soldAtKill, used)
	logSummary(r, w1)
	logSummary(r, w2)
}

// TestFlashSaleOrderLargerThanAnyShard: a flash sale of one SKU whose 48
// units are held in 8 shards of 6, for two worker processes. First three
// orders of 12 units each (twice any shard) go on the bus with seven
// orders of one unit: 43 units, which the stock covers, so every one of
// them must ship, the big ones reserved across several shards in their one
// transaction. Then 53 orders of one unit and two more of 12 race for the
// 5 units left. At the end the units are conserved (settle: available +
// held = stocked) and no order was rejected while the shards together
// could still cover it: stock only goes down in this sale, so a rejected
// order must ask for more than is left at the end.
func TestFlashSaleOrderLargerThanAnyShard(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	const (
		sku           = "FLASHBULK"
		units, shards = 48, 8
		bigQty        = 12
	)
	c := newCluster(r, "CLOUDCOMMERCE_INVENTORY_CONCURRENCY=16")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	store := c.env.Store()
	if err := store.PutInventory(ctx, pipeline.InventoryItem{SKU: sku, Available: units, Shards: shards}); err != nil {
		r.Fatal(err)
	}
	w1, w2 := c.worker(), c.worker()
	w1.start()
	w2.start()
	tag := fmt.Sprintf("%x", r.IntN(1<<30))
	accepted := map[string]*planned{}
	qty := map[string]int64{}
	n := 0
	// place puts orders of the given quantities on the bus, ten an event
	// batch, and returns their ids.
	place := func(quantities ...int64) []string {
		var ids []string
		var entries []ebtypes.PutEventsRequestEntry
		for i, q := range quantities {
			id := fmt.Sprintf("bulk-%s-%d", tag, n)
			n++
			req := testkit.Order(sandbox.TokenVisa, sku)
			req.Items[0].Quantity = q
			o, err := pipeline.NewOrder(id, req, time.Now())
			if err != nil {
				r.Fatal(err)
			}
			e, err := bus.Entry(c.env.Prov.Names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
			if err != nil {
				r.Fatal(err)
			}
			accepted[id], qty[id], ids = &planned{id: id}, q, append(ids, id)
			if entries = append(entries, e); len(entries) == 10 || i == len(quantities)-1 {
				out, err := c.env.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
				if err != nil || out.FailedEntryCount != 0 {
					r.Fatalf("PutEvents: %v %+v", err, out)
				}
				entries = entries[:0]
			}
		}
		return ids
	}
	first := place(bigQty, 1, bigQty, 1, 1, bigQty, 1, 1, 1, 1)
	testkit.Eventually(r, "the first ten orders final", time.Minute, func() bool {
		got, _, err := store.Statuses(ctx, first)
		if err != nil {
			r.Fatal(err)
		}
		for _, id := range first {
			if !got[id].Final() {
				return false
			}
		}
		return true
	})
	for _, id := range first {
		if o, err := store.Get(ctx, id); err != nil || o.Status != pipeline.StatusShipped {
			r.Fatalf("order %s for %d units (any shard holds %d) is %s (%v); the stock covered it: want SHIPPED", id, qty[id], units/shards, o.Status, err)
		}
	}
	rest := make([]int64, 55)
	for i := range rest {
		rest[i] = 1
	}
	rest[3], rest[30] = bigQty, bigQty
	place(rest...)

	final := settle(c, expect{stock: map[string]int64{sku: units}, accepted: accepted})
	it, err := store.Inventory(ctx, sku)
	if err != nil {
		r.Fatal(err)
	}
	var sold int64
	for id, o := range final {
		switch o.Status {
		case pipeline.StatusShipped:
			sold += qty[id]
		case pipeline.StatusRejected:
			if qty[id] <= it.Available {
				r.Errorf("order %s for %d units was rejected, yet %d are left over the shards", id, qty[id], it.Available)
			}
		default:
			r.Errorf("order %s ended %s", id, o.Status)
		}
	}
	if sold+it.Available != units || it.Available < 0 {
		r.Fatalf("%d units sold + %d left != %d stocked", sold, it.Available, units)
	}
	r.Logf("final statuses %s; %d units sold, %d left", statusCounts(final), sold, it.Available)
}
