package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// TestSweepLoopMovesOnAnOrderWhoseEventWasLost: orders recorded as the
// intake records them (PLACED, one of them RESERVED as the inventory stage
// leaves it) whose next event was never published — the process died
// between the write and the publish. Nothing but the worker's own sweep
// loop, at the interval and threshold its environment sets
// (CLOUDCOMMERCE_SWEEP_INTERVAL, CLOUDCOMMERCE_STUCK_AFTER), can move them
// on: the test publishes nothing and calls nothing in the worker. Each
// must end SHIPPED, charged once, with the re-publish counted. In the
// compact order format the orders are written while young, so they are not
// on by_open: the sweep's walk of the timeline must put them there.
func TestSweepLoopMovesOnAnOrderWhoseEventWasLost(t *testing.T) {
	t.Parallel()
	for _, f := range []store.Format{store.FormatJSON, store.FormatCompact} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			sweepMovesOnLostEvents(t, f)
		})
	}
}

func sweepMovesOnLostEvents(t *testing.T, f store.Format) {
	r := newRT(t)
	c := newCluster(r, "CLOUDCOMMERCE_SWEEP_INTERVAL=1s", "CLOUDCOMMERCE_STUCK_AFTER=2s", "CLOUDCOMMERCE_ORDER_FORMAT="+f.String())
	stock := map[string]int64{"SKU-LOST": 10}
	c.setStock(stock)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := c.env.StoreFormat(f)
	tag := fmt.Sprintf("%x", r.IntN(1<<30))

	// Recorded by the intake; OrderPlaced never published.
	placed, err := pipeline.NewOrder("lost-placed-"+tag, testkit.Order(sandbox.TokenVisa, "SKU-LOST"), time.Now())
	if err != nil {
		r.Fatal(err)
	}
	if _, err := st.Create(ctx, placed, "", ""); err != nil {
		r.Fatal(err)
	}
	// Reserved by the inventory stage, which died before publishing
	// InventoryReserved (its message then deleted by a redrive or lost).
	reserved, err := pipeline.NewOrder("lost-reserved-"+tag, testkit.Order(sandbox.TokenVisa, "SKU-LOST"), time.Now())
	if err != nil {
		r.Fatal(err)
	}
	if _, err := st.Create(ctx, reserved, "", ""); err != nil {
		r.Fatal(err)
	}
	next := reserved
	next.Status = pipeline.StatusReserved
	next.UpdatedAt = time.Now().UTC()
	next.History = map[pipeline.Status]time.Time{pipeline.StatusReserved: next.UpdatedAt}
	for s, at := range reserved.History {
		next.History[s] = at
	}
	if err := st.Apply(ctx, pipeline.Change{Order: next, From: pipeline.StatusPlaced, Reserve: reserved.Lines()}); err != nil {
		r.Fatalf("reserve %s: %v", reserved.ID, err)
	}

	w := c.worker()
	w.start()
	accepted := map[string]*planned{placed.ID: {id: placed.ID}, reserved.ID: {id: reserved.ID}}
	final := settle(c, expect{stock: stock, accepted: accepted, finalWithin: 2 * time.Minute, queueWithin: time.Minute})
	for id := range accepted {
		if final[id].Status != pipeline.StatusShipped {
			r.Errorf("order %s whose event was lost is %s, want SHIPPED", id, final[id].Status)
		}
	}
	for _, s := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved} {
		if v := metric(w.ops, "cloudcommerce_sweep_republished_total", "status", string(s)); v < 1 {
			r.Errorf("cloudcommerce_sweep_republished_total{status=%q} = %v, want at least 1", s, v)
		}
	}
	if n := w.grep("stuck orders moved on"); n < 1 {
		r.Errorf("the worker never logged that its sweep moved stuck orders on")
	}
	if n := w.grep("orders overdue and not written since marked for the sweep"); (n > 0) != (f == store.FormatCompact) {
		r.Errorf("the worker logged %d walks that marked overdue orders; want some only in the compact format", n)
	}
}
