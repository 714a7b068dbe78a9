package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// The suite runs against the in-process emulator, or against the endpoint
// in AWS_ENDPOINT_URL (LocalStack, AWS) when it is set.
func TestMain(m *testing.M) { emulator.RunTests(m) }

func newOrder(t *testing.T, id string, skus ...string) pipeline.Order {
	t.Helper()
	o, err := pipeline.NewOrder(id, testkit.Order("tok_visa", skus...), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func moved(t *testing.T, o pipeline.Order, to pipeline.Status) pipeline.Order {
	t.Helper()
	n := o
	n.Status, n.UpdatedAt = to, time.Now().UTC()
	n.History = map[pipeline.Status]time.Time{}
	for k, v := range o.History {
		n.History[k] = v
	}
	n.History[to] = n.UpdatedAt
	return n
}

func TestCreateGetAndConditionalApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	o := newOrder(t, "o-1", "A")
	if _, err := st.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, o, "", ""); err == nil {
		t.Fatal("creating the same order id twice succeeded")
	}
	got, err := st.Get(ctx, "o-1")
	if err != nil || got.Status != pipeline.StatusPlaced || got.Total != o.Total || len(got.History) != 1 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := st.Get(ctx, "nope"); !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	paid := moved(t, got, pipeline.StatusPaid)
	if err := st.Apply(ctx, pipeline.Change{Order: paid, From: pipeline.StatusReserved}); !errors.Is(err, pipeline.ErrConflict) {
		t.Fatalf("Apply from the wrong status = %v, want ErrConflict", err)
	}
	res := moved(t, got, pipeline.StatusReserved)
	if err := st.Apply(ctx, pipeline.Change{Order: res, From: pipeline.StatusPlaced}); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, pipeline.Change{Order: res, From: pipeline.StatusPlaced}); !errors.Is(err, pipeline.ErrConflict) {
		t.Fatalf("second identical Apply = %v, want ErrConflict", err)
	}
	got, _ = st.Get(ctx, "o-1")
	if got.Status != pipeline.StatusReserved || len(got.History) != 2 {
		t.Fatalf("after Apply: %+v", got)
	}
}

func TestUpsertCreatesOrdersPutStraightOnTheBus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	o := moved(t, newOrder(t, "bus-1", "A"), pipeline.StatusRejected)
	if err := st.Apply(ctx, pipeline.Change{Order: o, From: pipeline.StatusPlaced}); !errors.Is(err, pipeline.ErrConflict) {
		t.Fatalf("Apply without Upsert on a missing order = %v, want ErrConflict", err)
	}
	if err := st.Apply(ctx, pipeline.Change{Order: o, From: pipeline.StatusPlaced, Upsert: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get(ctx, "bus-1"); got.Status != pipeline.StatusRejected {
		t.Fatalf("status = %s", got.Status)
	}
}

func TestReserveAndReleaseStockAtomically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	for sku, n := range map[string]int64{"A": 5, "B": 1} {
		if err := st.SetStock(ctx, sku, n); err != nil {
			t.Fatal(err)
		}
	}
	o := newOrder(t, "o-2", "A", "B")
	o.Items[0].Quantity = 3
	o.Items[1].Quantity = 2 // only 1 B available
	o.Total = pipeline.Money{Amount: 5 * 1250, Currency: "USD"}
	if _, err := st.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	res := moved(t, o, pipeline.StatusReserved)
	err := st.Apply(ctx, pipeline.Change{Order: res, From: pipeline.StatusPlaced, Reserve: o.Lines()})
	var se *pipeline.StockError
	if !errors.As(err, &se) || se.SKU != "B" || se.Unknown || se.Requested != 2 || se.Available != 1 {
		t.Fatalf("short stock: err = %v (%+v)", err, se)
	}
	// Nothing was written: A untouched, order still PLACED.
	if a, _ := st.Stock(ctx, "A"); a != 5 {
		t.Fatalf("A = %d after a failed reservation, want 5", a)
	}
	if got, _ := st.Get(ctx, "o-2"); got.Status != pipeline.StatusPlaced {
		t.Fatalf("order = %s after a failed reservation", got.Status)
	}
	unknown := newOrder(t, "o-3", "A", "NOPE")
	err = st.Apply(ctx, pipeline.Change{Order: moved(t, unknown, pipeline.StatusReserved), From: pipeline.StatusPlaced, Upsert: true, Reserve: unknown.Lines()})
	if !errors.As(err, &se) || !se.Unknown || se.SKU != "NOPE" {
		t.Fatalf("unknown SKU: err = %v", err)
	}
	o.Items[1].Quantity = 1
	if err := st.Apply(ctx, pipeline.Change{Order: res, From: pipeline.StatusPlaced, Reserve: o.Lines()}); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Stock(ctx, "A"); a != 2 {
		t.Fatalf("A = %d, want 2", a)
	}
	failed := moved(t, res, pipeline.StatusPaymentFailed)
	if err := st.Apply(ctx, pipeline.Change{Order: failed, From: pipeline.StatusReserved, Release: o.Lines()}); err != nil {
		t.Fatal(err)
	}
	a, _ := st.Stock(ctx, "A")
	b, _ := st.Stock(ctx, "B")
	if a != 5 || b != 1 {
		t.Fatalf("after release A=%d B=%d, want 5 and 1", a, b)
	}
	// A release whose status condition fails releases nothing.
	if err := st.Apply(ctx, pipeline.Change{Order: failed, From: pipeline.StatusReserved, Release: o.Lines()}); !errors.Is(err, pipeline.ErrConflict) {
		t.Fatalf("repeated release = %v, want ErrConflict", err)
	}
	if a, _ := st.Stock(ctx, "A"); a != 5 {
		t.Fatalf("A = %d after a refused release, want 5", a)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	o := newOrder(t, "o-4", "A")
	if id, err := st.Create(ctx, o, "key-1", "fp-1"); err != nil || id != "" {
		t.Fatalf("first Create = %q, %v", id, err)
	}
	again := newOrder(t, "o-5", "A")
	if id, err := st.Create(ctx, again, "key-1", "fp-1"); err != nil || id != "o-4" {
		t.Fatalf("repeat Create = %q, %v; want the first order o-4", id, err)
	}
	if _, err := st.Get(ctx, "o-5"); !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("a repeat with the same key stored a second order: %v", err)
	}
	if id, err := st.Create(ctx, again, "key-1", "fp-2"); !errors.Is(err, pipeline.ErrIdempotencyMismatch) || id != "o-4" {
		t.Fatalf("Create with a different body = %q, %v; want ErrIdempotencyMismatch", id, err)
	}
}

func TestLastUnitsAreNeverOversold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	if err := st.SetStock(ctx, "LAST", 10); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	reserved, short := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			o := newOrder(t, fmt.Sprintf("race-%d", i), "LAST")
			err := st.Apply(ctx, pipeline.Change{Order: moved(t, o, pipeline.StatusReserved), From: pipeline.StatusPlaced, Upsert: true, Reserve: o.Lines()})
			var se *pipeline.StockError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				reserved++
			case errors.As(err, &se):
				short++
			default:
				t.Errorf("order %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	left, err := st.Stock(ctx, "LAST")
	if err != nil {
		t.Fatal(err)
	}
	if reserved != 10 || short != 40 || left != 0 {
		t.Fatalf("reserved %d, short %d, left %d; want 10, 40, 0", reserved, short, left)
	}
}

func TestListByStatusFindsOldOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	old := newOrder(t, "old", "A")
	old.UpdatedAt = time.Now().Add(-time.Hour)
	fresh := newOrder(t, "fresh", "A")
	for _, o := range []pipeline.Order{old, fresh} {
		if _, err := st.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.ListByStatus(ctx, pipeline.StatusPlaced, time.Time{}, time.Now().Add(-time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "old" {
		t.Fatalf("ListByStatus = %v, want only the old order", got)
	}
}
