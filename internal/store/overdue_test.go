package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// In the compact format an order that finishes in time never enters
// by_open; one that stops moving is put there by the sweep's walk, once,
// however many workers walk; one written after it is overdue (a late
// creation, a slow stage) puts itself there; and each leaves by_open when
// it is done (a cancelled order only once its refund is recorded).
func TestTheSweepFindsEveryOrderNotDoneAndOnlyThose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testkit.Provision(t)
	// The orders below are written when they were placed, an hour ago,
	// by a store whose clock says so; then nothing writes them.
	placed := time.Now().Add(-time.Hour).UTC()
	then := e.StoreFormat(store.FormatCompact)
	then.SetClock(func() time.Time { return placed.Add(time.Second) })
	write := func(st *store.Store, id string, status pipeline.Status, at time.Time, edit func(*pipeline.Order)) pipeline.Order {
		t.Helper()
		o := newOrder(t, id, "SKU-A")
		o.PlacedAt, o.UpdatedAt, o.Status = at, at, status
		if edit != nil {
			edit(&o)
		}
		if err := st.Apply(ctx, pipeline.Change{Order: o, From: pipeline.StatusPlaced, Upsert: true}); err != nil {
			t.Fatal(err)
		}
		return o
	}
	stuck := write(then, "walk-stuck", pipeline.StatusReserved, placed, nil)
	shipped := write(then, "walk-shipped", pipeline.StatusShipped, placed.Add(time.Millisecond), nil)
	refundDue := write(then, "walk-refund-due", pipeline.StatusCancelled, placed.Add(2*time.Millisecond), func(o *pipeline.Order) { o.ChargeID = "ch_1" })
	refunded := write(then, "walk-refunded", pipeline.StatusCancelled, placed.Add(3*time.Millisecond), func(o *pipeline.Order) { o.ChargeID, o.RefundID = "ch_2", "re_2" })
	now := e.StoreFormat(store.FormatCompact)
	young := write(now, "walk-young", pipeline.StatusPaid, time.Now().UTC(), nil)
	if ids, err := now.OpenIDs(ctx, ""); err != nil || len(ids) != 0 {
		t.Fatalf("before the walk by_open holds %v, %v; want nothing (no order was overdue when written)", ids, err)
	}

	// Two workers walk at once: each order is marked once.
	type walked struct {
		n   int
		err error
	}
	res := make(chan walked, 2)
	for range 2 {
		go func() {
			n, err := e.StoreFormat(store.FormatCompact).MarkOverdue(ctx)
			res <- walked{n, err}
		}()
	}
	total := 0
	for range 2 {
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		total += r.n
	}
	ids, err := now.OpenIDs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if want := []string{refundDue.ID, stuck.ID}; total != 2 || !slices.Equal(ids, want) {
		t.Fatalf("the walks marked %d and by_open holds %v; want 2 and %v (not %s, %s or %s)", total, ids, want, shipped.ID, refunded.ID, young.ID)
	}
	if pos, err := now.WalkPosition(ctx); err != nil || pos == "" {
		t.Fatalf("walk position %q, %v; want the last order passed", pos, err)
	}
	before := time.Now().Add(-store.DefaultStuckAfter)
	if got := listedBefore(t, now, pipeline.StatusReserved, before); !slices.Equal(got, []string{stuck.ID}) {
		t.Fatalf("the sweep's read of RESERVED finds %v; want %s", got, stuck.ID)
	}
	if got := listedBefore(t, now, pipeline.StatusCancelled, before); !slices.Equal(got, []string{refundDue.ID}) {
		t.Fatalf("the sweep's read of CANCELLED finds %v; want the one whose refund is due, %s", got, refundDue.ID)
	}
	if n, err := now.MarkOverdue(ctx); err != nil || n != 0 {
		t.Fatalf("a second walk marked %d, %v; want 0", n, err)
	}
	// A worker whose clock runs behind finds the walk ahead of it.
	behind := e.StoreFormat(store.FormatCompact)
	behind.SetClock(func() time.Time { return placed.Add(-time.Hour) })
	if n, err := behind.MarkOverdue(ctx); err != nil || n != 0 {
		t.Fatalf("a walk by a worker whose clock is behind marked %d, %v; want 0 and no error", n, err)
	}

	// Written after it was overdue: the write itself puts it on by_open,
	// even placed before where the walk stands.
	late := write(now, "walk-late", pipeline.StatusReserved, placed.Add(-time.Minute), nil)
	if ids, _ := now.OpenIDs(ctx, pipeline.StatusReserved); !slices.Contains(ids, late.ID) {
		t.Fatalf("an order created an hour after it was placed is not on by_open: %v", ids)
	}

	// Done: off by_open.
	next := stuck
	next.Status, next.UpdatedAt = pipeline.StatusPaid, time.Now().UTC()
	if err := now.Apply(ctx, pipeline.Change{Order: next, From: pipeline.StatusReserved}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := now.OpenIDs(ctx, pipeline.StatusPaid); !slices.Contains(ids, stuck.ID) {
		t.Fatalf("a stuck order that moved on but is not done left by_open: %v", ids)
	}
	next.Status, next.UpdatedAt = pipeline.StatusShipped, time.Now().UTC()
	if err := now.Apply(ctx, pipeline.Change{Order: next, From: pipeline.StatusPaid}); err != nil {
		t.Fatal(err)
	}
	paid := refundDue
	paid.RefundID, paid.UpdatedAt = "re_1", time.Now().UTC()
	if err := now.Apply(ctx, pipeline.Change{Order: paid, From: pipeline.StatusCancelled}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := now.OpenIDs(ctx, ""); !slices.Equal(ids, []string{late.ID}) {
		t.Fatalf("by_open holds %v once the stuck order shipped and the refund was recorded; want only %s", ids, late.ID)
	}
}

// listedBefore is the ids the sweep's read of status finds among orders
// last changed before before.
func listedBefore(t *testing.T, st *store.Store, status pipeline.Status, before time.Time) []string {
	t.Helper()
	orders, err := st.ListByStatus(context.Background(), status, time.Time{}, before, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range orders {
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	return ids
}
