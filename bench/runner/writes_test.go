package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

// What one order's writes cost, recorded from the store's real requests
// against the emulator and charged by the benchmark's own replay
// (recordedWriteUnits, with the topology's indexes): in the compact format
// a one-line order that ships pays 4 WRU in the reservation transaction
// (order and stock item, each charged twice), 1 each for PAID and SHIPPED,
// and one index entry each on by_customer and by_placed, set by the
// creating write: 8. Each further line adds its stock update (2). An order
// still in progress past the stuck age also enters by_open (written by
// the store itself) and leaves it when it ships. In the JSON format the
// previous release's keys are fed as well.
func TestWriteUnitsOfAnOrderFromItsRecordedWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testkit.Provision(t)
	n := e.Prov.Names
	tables := store.Tables{Orders: n.Tables["orders"], Inventory: n.Tables["inventory"], Idempotency: n.Tables["idempotency"]}
	admin := e.StoreFormat(store.FormatCompact)
	for _, sku := range []string{"W-1", "W-2", "W-3"} {
		if err := admin.PutInventory(ctx, pipeline.InventoryItem{SKU: sku, Available: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		format store.Format
		skus   []string
		placed time.Duration // before now
		want   map[string]float64
	}{
		{"one line", store.FormatCompact, []string{"W-1"}, 0,
			map[string]float64{"orders": 4, "inventory": 2, "orders/by_customer": 1, "orders/by_placed": 1}},
		{"three lines", store.FormatCompact, []string{"W-1", "W-2", "W-3"}, 0,
			map[string]float64{"orders": 4, "inventory": 6, "orders/by_customer": 1, "orders/by_placed": 1}},
		{"overdue", store.FormatCompact, []string{"W-1"}, time.Hour,
			map[string]float64{"orders": 4, "inventory": 2, "orders/by_customer": 1, "orders/by_placed": 1, "orders/by_open": 2}},
		{"json", store.FormatJSON, []string{"W-1"}, 0,
			map[string]float64{"orders": 4, "inventory": 2, "orders/by_customer": 1, "orders/by_placed": 1, "orders/by_open": 2,
				"orders/by_outcome": 1, "orders/by_status": 1 + 2 + 2}},
	}
	for i, c := range cases {
		path := filepath.Join(t.TempDir(), "calls.jsonl")
		rec, err := awsconf.NewRecorderAs(path, "worker", "run", "")
		if err != nil {
			t.Fatal(err)
		}
		st := store.NewFormat(awsconf.DynamoDB(rec.WithWrites().Apply(e.AWS)), tables, c.format)
		o, err := pipeline.NewOrder("wru-"+string(rune('a'+i)), testkit.Order("tok_visa", c.skus...), time.Now().Add(-c.placed))
		if err != nil {
			t.Fatal(err)
		}
		from := pipeline.StatusPlaced
		for _, to := range []pipeline.Status{pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped} {
			next := o
			next.Status, next.UpdatedAt = to, time.Now().UTC()
			ch := pipeline.Change{Order: next, From: from}
			if to == pipeline.StatusReserved {
				ch.Upsert, ch.Reserve = true, o.Lines()
			}
			if err := st.Apply(ctx, ch); err != nil {
				t.Fatalf("%s: %s→%s: %v", c.name, from, to, err)
			}
			o, from = next, to
		}
		u, err := recordedWriteUnits(path, e.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		got := u.PerOrder()
		if u.Orders != 1 {
			t.Fatalf("%s: writes attributed to %d orders; want 1", c.name, u.Orders)
		}
		for k, v := range got {
			if v != c.want[k] {
				t.Errorf("%s: %s = %.2f WRU; want %.2f (all: %v)", c.name, k, v, c.want[k], got)
			}
		}
		for k, v := range c.want {
			if _, ok := got[k]; !ok && v != 0 {
				t.Errorf("%s: nothing charged to %s; want %.2f (all: %v)", c.name, k, v, got)
			}
		}
		t.Logf("%s: %.2f WRU %v", c.name, u.Total(), got)
	}
}
