package worker_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

func (f *fixture) ledger(t *testing.T, orderID string) (captures, refunds int) {
	t.Helper()
	entries, err := f.gw.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.OrderID != orderID {
			continue
		}
		switch e.Kind {
		case sandbox.KindCapture:
			captures++
		case sandbox.KindRefund:
			refunds++
		}
	}
	return captures, refunds
}

// advance runs the order through the stages until it reaches status.
func (f *fixture) advance(t *testing.T, o pipeline.Order, to pipeline.Status) pipeline.Order {
	t.Helper()
	steps := []struct {
		stage pipeline.Stage
		ev    pipeline.EventType
		after pipeline.Status
	}{{pipeline.StageInventory, pipeline.EventOrderPlaced, pipeline.StatusReserved}, {pipeline.StagePayment, pipeline.EventInventoryReserved, pipeline.StatusPaid}, {pipeline.StageShipping, pipeline.EventPaymentCaptured, pipeline.StatusShipped}}
	cur := o
	for _, s := range steps {
		if cur.Status == to {
			break
		}
		if _, err := f.handle(t, s.stage, pipeline.Event{Type: s.ev, Order: cur}); err != nil {
			t.Fatal(err)
		}
		cur = f.get(t, o.ID)
		if cur.Status != s.after {
			t.Fatalf("order %s is %s after %s, want %s", o.ID, cur.Status, s.stage, s.after)
		}
	}
	return cur
}

func TestCancelReleasesStockAndRefundsOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	ctx := context.Background()
	for _, at := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid} {
		id := "cancel-" + string(at)
		o := f.order(t, id, "tok_visa", "A")
		if _, err := f.w.Store.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
		f.advance(t, o, at)
		got, err := f.w.Service.Cancel(ctx, id)
		if err != nil || got.Status != pipeline.StatusCancelled {
			t.Fatalf("cancel at %s: %+v, %v", at, got, err)
		}
		if n := f.available(t, "A"); n != 5 {
			t.Fatalf("cancel at %s: stock = %d, want 5", at, n)
		}
		captures, refunds := f.ledger(t, id)
		wantRefunds := 0
		if at == pipeline.StatusPaid {
			wantRefunds = 1
		}
		if captures != wantRefunds || refunds != wantRefunds {
			t.Fatalf("cancel at %s: %d captures, %d refunds", at, captures, refunds)
		}
		// Cancelling again: a StatusError naming CANCELLED, and no second refund.
		_, err = f.w.Service.Cancel(ctx, id)
		var se *pipeline.StatusError
		if !errors.As(err, &se) || se.Status != pipeline.StatusCancelled {
			t.Fatalf("second cancel = %v", err)
		}
		if _, refunds := f.ledger(t, id); refunds != wantRefunds {
			t.Fatalf("second cancel refunded again")
		}
	}
}

func TestPaymentRacingACancelIsRefunded(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	ctx := context.Background()
	o := f.order(t, "race-pay", "tok_visa", "A")
	reserved := f.advance(t, o, pipeline.StatusReserved)
	// The cancel wins while the InventoryReserved message is still queued.
	if _, err := f.w.Service.Cancel(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	out, err := f.handle(t, pipeline.StagePayment, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: reserved})
	if err != nil || out != pipeline.OutcomeConflict {
		t.Fatalf("payment after cancel: %s, %v", out, err)
	}
	if got := f.get(t, o.ID); got.Status != pipeline.StatusCancelled {
		t.Fatalf("status = %s", got.Status)
	}
	if captures, refunds := f.ledger(t, o.ID); captures != refunds {
		t.Fatalf("%d captures but %d refunds for a cancelled order", captures, refunds)
	}
	if n := f.available(t, "A"); n != 5 {
		t.Fatalf("stock = %d, want 5", n)
	}
}

func TestCancelAPIAnswers409ForShippedOrders(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "ship-then-cancel", "tok_visa", "A")
	f.advance(t, o, pipeline.StatusShipped)
	srv := httptest.NewServer(f.w.Intake.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/orders/ship-then-cancel/cancel", "application/json", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := new(bytes.Buffer)
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(buf.String(), "SHIPPED") {
		t.Fatalf("cancel shipped = %d %s, want 409 naming SHIPPED", resp.StatusCode, buf)
	}
	resp2, err := http.Post(srv.URL+"/v1/orders/nope/cancel", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Fatalf("cancel unknown = %d, want 404", resp2.StatusCode)
	}
}

func TestCancelRequestedEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "cancel-event", "tok_visa", "A")
	f.advance(t, o, pipeline.StatusReserved)
	out, err := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderCancelRequested, Order: pipeline.Order{ID: o.ID}})
	if err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("OrderCancelRequested: %s, %v", out, err)
	}
	if got := f.get(t, o.ID); got.Status != pipeline.StatusCancelled {
		t.Fatalf("status = %s", got.Status)
	}
	// Again: already cancelled, acknowledged as a conflict, not retried.
	if out, err := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderCancelRequested, Order: pipeline.Order{ID: o.ID}}); err != nil || out != pipeline.OutcomeConflict {
		t.Fatalf("repeat: %s, %v", out, err)
	}
	// Unknown order: dead-lettered with a reason, not retried.
	_, err = f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderCancelRequested, Order: pipeline.Order{ID: "ghost"}})
	if reason, ok := pipeline.IsPermanent(err); !ok || reason != pipeline.ReasonNotFound {
		t.Fatalf("unknown order: %v", err)
	}
}

func TestSweepMovesOnAnOrderWhoseEventWasLost(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Recorded by the intake, but the process died before publishing
	// OrderPlaced.
	o := f.order(t, "stranded", "tok_visa", "A")
	o.UpdatedAt = o.UpdatedAt.Add(-10 * time.Minute)
	if _, err := f.w.Store.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	n, err := f.w.Sweep(ctx, time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 order moved on", n, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for f.get(t, "stranded").Status != pipeline.StatusShipped {
		if time.Now().After(deadline) {
			t.Fatalf("stranded order is %s, not SHIPPED", f.get(t, "stranded").Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := testutil.ToFloat64(f.m.Republished.WithLabelValues("PLACED")); v != 1 {
		t.Fatalf("republished counter = %v", v)
	}
	// Fresh orders are left alone.
	if n, _ := f.w.Sweep(ctx, time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("sweep moved %d recent orders", n)
	}
}
