package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func usd(a int64) *pipeline.Money { return &pipeline.Money{Amount: a, Currency: "USD"} }

func TestReservationChecksTheCataloguePriceInItsWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	for _, it := range []pipeline.InventoryItem{
		{SKU: "PRICED", Available: 5, UnitPrice: usd(1250)},
		{SKU: "CHEAPER", Available: 5, UnitPrice: usd(999)},
		{SKU: "FREE", Available: 5},
	} {
		if err := st.PutInventory(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.Inventory(ctx, "PRICED"); err != nil || got.Available != 5 || got.UnitPrice == nil || *got.UnitPrice != *usd(1250) {
		t.Fatalf("Inventory(PRICED) = %+v, %v", got, err)
	}
	prices, err := st.Prices(ctx, []string{"PRICED", "CHEAPER", "FREE", "NOPE", "PRICED"})
	if err != nil || len(prices) != 2 || prices["PRICED"] != *usd(1250) || prices["CHEAPER"] != *usd(999) {
		t.Fatalf("Prices = %v, %v; want PRICED and CHEAPER only", prices, err)
	}

	// testkit orders carry 1250 USD a unit: CHEAPER mismatches.
	o := newOrder(t, "price-1", "PRICED", "CHEAPER", "FREE")
	err = st.Apply(ctx, pipeline.Change{Order: moved(t, o, pipeline.StatusReserved), From: pipeline.StatusPlaced, Upsert: true, Reserve: o.Lines()})
	var pe *pipeline.PriceError
	if !errors.As(err, &pe) || pe.SKU != "CHEAPER" || pe.Catalogue != *usd(999) || pe.Ordered != *usd(1250) {
		t.Fatalf("mismatched price: err = %v, want a PriceError for CHEAPER", err)
	}
	for _, sku := range []string{"PRICED", "CHEAPER", "FREE"} {
		if n, _ := st.Stock(ctx, sku); n != 5 {
			t.Fatalf("%s = %d after a refused reservation, want 5", sku, n)
		}
	}
	if _, err := st.Get(ctx, "price-1"); !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("a refused reservation stored the order: %v", err)
	}

	// Short stock on a SKU whose price matches is a StockError, not a
	// price mismatch.
	short := newOrder(t, "price-2", "PRICED")
	short.Items[0].Quantity = 6
	err = st.Apply(ctx, pipeline.Change{Order: moved(t, short, pipeline.StatusReserved), From: pipeline.StatusPlaced, Upsert: true, Reserve: short.Lines()})
	var se *pipeline.StockError
	if !errors.As(err, &se) || se.SKU != "PRICED" || se.Available != 5 || se.Requested != 6 {
		t.Fatalf("short stock at the right price: err = %v, want a StockError", err)
	}

	// Matching prices and unpriced SKUs reserve.
	ok := newOrder(t, "price-3", "PRICED", "FREE")
	if err := st.Apply(ctx, pipeline.Change{Order: moved(t, ok, pipeline.StatusReserved), From: pipeline.StatusPlaced, Upsert: true, Reserve: ok.Lines()}); err != nil {
		t.Fatal(err)
	}
	for sku, want := range map[string]int64{"PRICED": 4, "FREE": 4} {
		if n, _ := st.Stock(ctx, sku); n != want {
			t.Fatalf("%s = %d, want %d", sku, n, want)
		}
	}
}

func TestAdjustStockStaysWithinRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	if err := st.PutInventory(ctx, pipeline.InventoryItem{SKU: "ADJ", Available: 10, UnitPrice: usd(100)}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.AdjustStock(ctx, "ADJ", 15); err != nil || n != 25 {
		t.Fatalf("+15 = %d, %v; want 25", n, err)
	}
	if n, err := st.AdjustStock(ctx, "ADJ", -25); err != nil || n != 0 {
		t.Fatalf("-25 = %d, %v; want 0", n, err)
	}
	_, err := st.AdjustStock(ctx, "ADJ", -1)
	var le *pipeline.LevelError
	if !errors.As(err, &le) || le.Available != 0 || le.Delta != -1 {
		t.Fatalf("-1 below zero: err = %v, want a LevelError naming level 0", err)
	}
	if _, err := st.AdjustStock(ctx, "ADJ", pipeline.MaxAvailable+0); err != nil {
		t.Fatalf("up to the maximum: %v", err)
	}
	if _, err := st.AdjustStock(ctx, "ADJ", 1); !errors.As(err, &le) || le.Available != pipeline.MaxAvailable {
		t.Fatalf("beyond the maximum: err = %v, want a LevelError", err)
	}
	if _, err := st.AdjustStock(ctx, "GONE", 1); !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("unknown SKU: err = %v, want ErrNotFound", err)
	}
	// The adjustment kept the catalogue price.
	if it, err := st.Inventory(ctx, "ADJ"); err != nil || it.UnitPrice == nil || *it.UnitPrice != *usd(100) || it.Available != pipeline.MaxAvailable {
		t.Fatalf("after adjustments: %+v, %v", it, err)
	}
}

func TestReleaseAtTheMaximumLevelStaysReadable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	if err := st.SetStock(ctx, "TOP", pipeline.MaxAvailable); err != nil {
		t.Fatal(err)
	}
	o := newOrder(t, "top-1", "TOP")
	o.Items[0].Quantity = pipeline.MaxQuantity
	o.Total = pipeline.Money{Amount: 1250 * pipeline.MaxQuantity, Currency: "USD"}
	res := moved(t, o, pipeline.StatusReserved)
	if err := st.Apply(ctx, pipeline.Change{Order: res, From: pipeline.StatusPlaced, Upsert: true, Reserve: o.Lines()}); err != nil {
		t.Fatal(err)
	}
	// Restocked to the maximum while the order held units, then cancelled.
	if err := st.SetStock(ctx, "TOP", pipeline.MaxAvailable); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, pipeline.Change{Order: moved(t, res, pipeline.StatusCancelled), From: pipeline.StatusReserved, Release: o.Lines()}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Stock(ctx, "TOP"); err != nil || n != pipeline.MaxAvailable+pipeline.MaxQuantity {
		t.Fatalf("after the release: %d, %v", n, err)
	}
}
