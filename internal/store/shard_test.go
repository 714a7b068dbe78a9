package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

func sum(v []int64) int64 {
	var t int64
	for _, x := range v {
		t += x
	}
	return t
}

// reserve reserves one order for qty units of sku through st and returns
// the order as written, or the error.
func reserve(t *testing.T, st *store.Store, id, sku string, qty int64) (pipeline.Order, error) {
	t.Helper()
	o := newOrder(t, id, sku)
	o.Items[0].Quantity = qty
	return st.Reserve(context.Background(), pipeline.Change{Order: moved(t, o, pipeline.StatusReserved), From: pipeline.StatusPlaced, Upsert: true, Reserve: o.Lines()})
}

// idsWithFirstShard returns n order ids (prefixed) whose reservation tries
// shard want of k first.
func idsWithFirstShard(prefix string, want, k, n int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if store.FirstShard(id, k) == want {
			ids = append(ids, id)
		}
	}
	return ids
}

func TestShardedStockSpreadsAndSumsUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	if err := st.PutInventory(ctx, pipeline.InventoryItem{SKU: "HOT", Available: 10, Shards: 4, UnitPrice: usd(1250)}); err != nil {
		t.Fatal(err)
	}
	it, err := st.Inventory(ctx, "HOT")
	if err != nil || it.Available != 10 || it.Shards != 4 || it.UnitPrice == nil || *it.UnitPrice != *usd(1250) {
		t.Fatalf("Inventory(HOT) = %+v, %v; want 10 over 4 shards at 1250 USD", it, err)
	}
	if levels, err := st.ShardLevels(ctx, "HOT"); err != nil || !slices.Equal(levels, []int64{3, 3, 2, 2}) {
		t.Fatalf("shard levels = %v, %v; want [3 3 2 2]", levels, err)
	}
	// The console's listing shows one row per SKU, the total.
	rows, err := st.ListStock(ctx, 100)
	if err != nil || len(rows) != 1 || rows[0] != (store.StockLevel{SKU: "HOT", Available: 10}) {
		t.Fatalf("ListStock = %+v, %v; want one row HOT 10", rows, err)
	}
	// Adjustments spread over the shards and keep the level in range.
	if n, err := st.AdjustStock(ctx, "HOT", 6); err != nil || n != 16 {
		t.Fatalf("AdjustStock(+6) = %d, %v; want 16", n, err)
	}
	if n, err := st.AdjustStock(ctx, "HOT", -15); err != nil || n != 1 {
		t.Fatalf("AdjustStock(-15) = %d, %v; want 1", n, err)
	}
	var le *pipeline.LevelError
	if _, err := st.AdjustStock(ctx, "HOT", -2); !errors.As(err, &le) || le.Available != 1 {
		t.Fatalf("AdjustStock(-2) with 1 left = %v, want a LevelError saying 1", err)
	}
	if levels, _ := st.ShardLevels(ctx, "HOT"); sum(levels) != 1 {
		t.Fatalf("levels %v after the adjustments, want a total of 1", levels)
	}
	// Back to one item: the other shards go, and the SKU costs one item again.
	if err := st.PutInventory(ctx, pipeline.InventoryItem{SKU: "HOT", Available: 7}); err != nil {
		t.Fatal(err)
	}
	if it, err := st.Inventory(ctx, "HOT"); err != nil || it.Available != 7 || it.Shards != 1 {
		t.Fatalf("Inventory(HOT) unsharded = %+v, %v; want 7 in 1 shard", it, err)
	}
	if rows, _ := st.ListStock(ctx, 100); len(rows) != 1 || rows[0].Available != 7 {
		t.Fatalf("ListStock after unsharding = %+v, want HOT 7 only", rows)
	}
}

// Every unit is sold, wherever the orders' first shards fall, and the
// stock is conserved at every step: the shards plus the units the orders
// hold make what was stocked. A release returns the units to the shard
// the order recorded.
func TestShardedReservationFindsTheLastUnits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testkit.Provision(t)
	admin := env.Store()
	const k, units = 4, 8
	if err := admin.PutInventory(ctx, pipeline.InventoryItem{SKU: "DROP", Available: units, Shards: k}); err != nil {
		t.Fatal(err)
	}
	// A store that has never seen DROP (another process) learns its
	// shard count from the first failed condition.
	st := env.Store()
	// Every order's first shard is 1: only 2 units are there.
	ids := idsWithFirstShard("drop", 1, k, units+1)
	held := map[string]pipeline.Order{}
	for i, id := range ids {
		o, err := reserve(t, st, id, "DROP", 1)
		levels, lerr := admin.ShardLevels(ctx, "DROP")
		if lerr != nil {
			t.Fatal(lerr)
		}
		if i == units {
			var se *pipeline.StockError
			if !errors.As(err, &se) || se.SKU != "DROP" {
				t.Fatalf("order %d of %d units: err = %v, want a StockError", i+1, units, err)
			}
			if sum(levels) != 0 {
				t.Fatalf("rejected while shards hold %v", levels)
			}
			break
		}
		if err != nil {
			t.Fatalf("order %d of %d units: %v (levels %v)", i+1, units, err, levels)
		}
		held[id] = o
		if got := sum(levels) + int64(len(held)); got != units {
			t.Fatalf("after order %d: shards %v + %d held = %d, want %d", i+1, levels, len(held), got, units)
		}
		stored, err := admin.Get(ctx, id)
		if err != nil || stored.StockShards["DROP"] != o.StockShards["DROP"] {
			t.Fatalf("stored order's shards %v, returned %v (%v)", stored.StockShards, o.StockShards, err)
		}
	}
	// Releases return each unit to the shard its order recorded.
	for id, o := range held {
		before, _ := admin.ShardLevels(ctx, "DROP")
		sh := o.Lines()[0].Shard
		if err := st.Apply(ctx, pipeline.Change{Order: moved(t, o, pipeline.StatusCancelled), From: pipeline.StatusReserved, Release: o.Lines()}); err != nil {
			t.Fatal(err)
		}
		after, _ := admin.ShardLevels(ctx, "DROP")
		before[sh]++
		if !slices.Equal(before, after) {
			t.Fatalf("release of %s (shard %d): levels %v, want %v", id, sh, after, before)
		}
	}
	if it, _ := admin.Inventory(ctx, "DROP"); it.Available != units {
		t.Fatalf("after every release the total is %d, want %d", it.Available, units)
	}
}

// Units held from a shard that a lower shard count removed go back to
// shard 0 when released, so none is lost.
func TestReleaseToARemovedShardGoesToShardZero(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	if err := st.PutInventory(ctx, pipeline.InventoryItem{SKU: "RESHARD", Available: 80, Shards: 8}); err != nil {
		t.Fatal(err)
	}
	id := idsWithFirstShard("reshard", 6, 8, 1)[0]
	o, err := reserve(t, st, id, "RESHARD", 3)
	if err != nil || o.StockShards["RESHARD"] != 6 {
		t.Fatalf("reserve = %v, %v; want shard 6", o.StockShards, err)
	}
	if err := st.PutInventory(ctx, pipeline.InventoryItem{SKU: "RESHARD", Available: 20, Shards: 2}); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, pipeline.Change{Order: moved(t, o, pipeline.StatusCancelled), From: pipeline.StatusReserved, Release: o.Lines()}); err != nil {
		t.Fatal(err)
	}
	levels, err := st.ShardLevels(ctx, "RESHARD")
	if err != nil || !slices.Equal(levels, []int64{13, 10}) {
		t.Fatalf("levels = %v, %v; want [13 10]", levels, err)
	}
}

// Two stores (two workers) race 60 one-unit orders for 25 units over 8
// shards: exactly 25 succeed, the rest are out of stock, nothing is left.
func TestShardedRaceSellsExactlyTheStock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testkit.Provision(t)
	const orders, units = 60, 25
	if err := env.Store().PutInventory(ctx, pipeline.InventoryItem{SKU: "RACE", Available: units, Shards: 8}); err != nil {
		t.Fatal(err)
	}
	stores := []*store.Store{env.Store(), env.Store()}
	var mu sync.Mutex
	sold, short := 0, 0
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := reserve(t, stores[i%2], fmt.Sprintf("race-%d", i), "RACE", 1)
			var se *pipeline.StockError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sold++
			case errors.As(err, &se):
				short++
			default:
				t.Errorf("order %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	levels, err := env.Store().ShardLevels(ctx, "RACE")
	if err != nil {
		t.Fatal(err)
	}
	if sold != units || short != orders-units || sum(levels) != 0 {
		t.Fatalf("sold %d, out of stock %d, shards %v; want %d sold, %d out of stock, all shards 0", sold, short, levels, units, orders-units)
	}
	for i, v := range levels {
		if v < 0 {
			t.Fatalf("shard %d is %d", i, v)
		}
	}
}

// Rebalancing evens the shards out without creating or losing a unit.
func TestRebalanceMovesUnitsToEmptyShards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	if err := st.PutInventory(ctx, pipeline.InventoryItem{SKU: "EVEN", Available: 12, Shards: 4}); err != nil {
		t.Fatal(err)
	}
	// Empty shard 2 by orders that try it first (3 units there).
	for _, id := range idsWithFirstShard("even", 2, 4, 3) {
		if _, err := reserve(t, st, id, "EVEN", 1); err != nil {
			t.Fatal(err)
		}
	}
	levels, _ := st.ShardLevels(ctx, "EVEN")
	if !slices.Equal(levels, []int64{3, 3, 0, 3}) {
		t.Fatalf("levels = %v, want [3 3 0 3]", levels)
	}
	moved, err := st.Rebalance(ctx, "EVEN")
	if err != nil || moved == 0 {
		t.Fatalf("Rebalance = %d, %v; want units moved", moved, err)
	}
	levels, _ = st.ShardLevels(ctx, "EVEN")
	if sum(levels) != 9 || slices.Min(levels) < 2 {
		t.Fatalf("levels after rebalancing = %v, want 9 units, none below 2", levels)
	}
}

// An order larger than any one shard takes its units from several shards
// in its one transaction; one larger than all of them together is out of
// stock and takes nothing; a release returns the whole line, none lost.
func TestOrderLargerThanAnyShardTakesFromSeveral(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testkit.Provision(t)
	admin := env.Store()
	const k, units = 8, 40 // 5 a shard
	if err := admin.PutInventory(ctx, pipeline.InventoryItem{SKU: "BULK", Available: units, Shards: k}); err != nil {
		t.Fatal(err)
	}
	st := env.Store()
	big, err := reserve(t, st, "bulk-1", "BULK", 23)
	if err != nil {
		t.Fatalf("23 of 40 units over 8 shards of 5: %v", err)
	}
	levels, _ := admin.ShardLevels(ctx, "BULK")
	if sum(levels) != units-23 {
		t.Fatalf("after taking 23: shards %v (total %d), want %d", levels, sum(levels), units-23)
	}
	for _, v := range levels {
		if v < 0 {
			t.Fatalf("a shard went negative: %v", levels)
		}
	}
	if stored, err := admin.Get(ctx, "bulk-1"); err != nil || stored.Status != pipeline.StatusReserved {
		t.Fatalf("stored order %+v, %v", stored, err)
	}
	// 17 left: 18 is out of stock and takes nothing.
	_, err = reserve(t, st, "bulk-2", "BULK", units-23+1)
	var se *pipeline.StockError
	if !errors.As(err, &se) || se.Available != units-23 {
		t.Fatalf("18 of 17 left: err = %v, want a StockError with 17 available", err)
	}
	if after, _ := admin.ShardLevels(ctx, "BULK"); !slices.Equal(after, levels) {
		t.Fatalf("a rejected order moved stock: %v → %v", levels, after)
	}
	// Exactly what is left, spread over several shards, is sold.
	if _, err := reserve(t, st, "bulk-3", "BULK", units-23); err != nil {
		t.Fatalf("the last %d units: %v", units-23, err)
	}
	if after, _ := admin.ShardLevels(ctx, "BULK"); sum(after) != 0 {
		t.Fatalf("after selling out: %v", after)
	}
	// The release of the big order returns all 23 units.
	if err := st.Apply(ctx, pipeline.Change{Order: moved(t, big, pipeline.StatusCancelled), From: pipeline.StatusReserved, Release: big.Lines()}); err != nil {
		t.Fatal(err)
	}
	if it, _ := admin.Inventory(ctx, "BULK"); it.Available != 23 {
		t.Fatalf("after releasing the big order %d available, want 23", it.Available)
	}
}
