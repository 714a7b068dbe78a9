package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestListingReadsForTheConsoleAndTheLoadGenerator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	var ids []string
	for i := range 3 {
		o := newOrder(t, fmt.Sprintf("r-%d", i), "A")
		o.UpdatedAt = time.Now().UTC().Add(time.Duration(i) * time.Second)
		if _, err := st.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	got, err := st.Get(ctx, "r-0")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, pipeline.Change{Order: moved(t, got, pipeline.StatusReserved), From: pipeline.StatusPlaced}); err != nil {
		t.Fatal(err)
	}
	for sku, n := range map[string]int64{"SKU-X": 7, "SKU-Y": 0} {
		if err := st.SetStock(ctx, sku, n); err != nil {
			t.Fatal(err)
		}
	}

	for status, want := range map[pipeline.Status]int{pipeline.StatusPlaced: 2, pipeline.StatusReserved: 1, pipeline.StatusPaid: 0} {
		if n, capped, err := st.CountByStatus(ctx, status, 0); err != nil || n != want || capped {
			t.Errorf("CountByStatus(%s) = %d, %v, %v; want %d", status, n, capped, err, want)
		}
	}

	recent, err := st.RecentByStatus(ctx, pipeline.StatusPlaced, 10)
	if err != nil || len(recent) != 2 || recent[0].ID != "r-2" || recent[1].ID != "r-1" {
		t.Fatalf("RecentByStatus(PLACED) = %+v, %v; want r-2 then r-1", recent, err)
	}
	if r := recent[0]; r.Status != pipeline.StatusPlaced || r.CustomerID == "" || r.UpdatedAt.IsZero() {
		t.Errorf("summary %+v lacks fields", r)
	}

	stock, err := st.ListStock(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	levels := map[string]int64{}
	for _, l := range stock {
		levels[l.SKU] = l.Available
	}
	if levels["SKU-X"] != 7 || len(levels) < 2 {
		t.Errorf("ListStock = %v", stock)
	}
	if _, ok := levels["SKU-Y"]; !ok {
		t.Errorf("ListStock lacks SKU-Y: %v", stock)
	}

	statuses, requests, err := st.Statuses(ctx, append(ids, "r-missing"))
	if err != nil || requests != 1 || len(statuses) != 3 || statuses["r-0"] != pipeline.StatusReserved || statuses["r-2"] != pipeline.StatusPlaced {
		t.Fatalf("Statuses = %v (%d requests), %v", statuses, requests, err)
	}

	full, requests, err := st.GetMany(ctx, append(ids, "r-missing"), 2)
	if err != nil || requests < 1 || len(full) != 3 {
		t.Fatalf("GetMany = %d orders (%d requests), %v", len(full), requests, err)
	}
	if o := full["r-0"]; o.Status != pipeline.StatusReserved || o.Bytes < len(`{"order_id":"r-0"}`) || len(o.Items) == 0 {
		t.Errorf("GetMany r-0 = %+v", o)
	}
}
