package reliability

import (
	"context"
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

// TestNoOversellAcrossTwoWorkers: 500 orders for one unit each of a SKU
// with 50 units, placed at once through both workers' intake APIs and
// straight onto the bus, handled by two worker processes racing each
// other: exactly 50 are reserved (and ship), 450 are rejected, and the
// stock ends at 0, never below.
func TestNoOversellAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	const orders, units, viaBus = 500, 50, 100
	c := newCluster(r, "CLOUDCOMMERCE_INVENTORY_CONCURRENCY=16")
	stock := map[string]int64{"LAST-UNITS": units}
	c.setStock(stock)
	w1, w2 := c.worker(), c.worker()
	w1.start()
	w2.start()
	apis := []string{w1.api, w2.api}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	accepted := map[string]*planned{}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				api := apis[i%2]
				id := placeOrder(ctx, r, func() string { return api }, testkit.Order(sandbox.TokenVisa, "LAST-UNITS"), fmt.Sprintf("crowd-%d", i))
				if id != "" {
					mu.Lock()
					accepted[id] = &planned{id: id}
					mu.Unlock()
				}
			}
		}()
	}
	// The bus share goes in batches of 10 from its own goroutine, at the
	// same time as the API crowd.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tag := fmt.Sprintf("%x", r.IntN(1<<30))
		for b := 0; b < viaBus/10; b++ {
			var entries []ebtypes.PutEventsRequestEntry
			var ids []string
			for i := range 10 {
				id := fmt.Sprintf("crowd-bus-%s-%d-%d", tag, b, i)
				o, err := pipeline.NewOrder(id, testkit.Order(sandbox.TokenVisa, "LAST-UNITS"), time.Now())
				if err != nil {
					r.Error(err)
					return
				}
				e, err := bus.Entry(c.env.Prov.Names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
				if err != nil {
					r.Error(err)
					return
				}
				entries, ids = append(entries, e), append(ids, id)
			}
			out, err := c.env.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
			if err != nil || out.FailedEntryCount != 0 {
				r.Errorf("PutEvents: %v %+v", err, out)
				return
			}
			mu.Lock()
			for _, id := range ids {
				accepted[id] = &planned{id: id}
			}
			mu.Unlock()
		}
	}()
	for i := range orders - viaBus {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(accepted) != orders {
		r.Fatalf("%d of %d orders accepted", len(accepted), orders)
	}
	final := settle(c, expect{stock: stock, accepted: accepted})
	n := map[pipeline.Status]int{}
	for _, o := range final {
		n[o.Status]++
	}
	if n[pipeline.StatusShipped] != units || n[pipeline.StatusRejected] != orders-units || len(final) != orders {
		r.Fatalf("final statuses %s, want SHIPPED=%d REJECTED=%d", statusCounts(final), units, orders-units)
	}
	if avail, err := c.env.Store().Stock(ctx, "LAST-UNITS"); err != nil || avail != 0 {
		r.Fatalf("stock = %d (%v), want 0", avail, err)
	}
	// Both workers took part in the race.
	for _, w := range []*worker{w1, w2} {
		if v := metric(w.ops, "cloudcommerce_order_transitions_total", "from", "PLACED"); v <= 0 {
			r.Errorf("%s made no PLACED transitions: the race ran on one worker only", w.name)
		}
	}
}
