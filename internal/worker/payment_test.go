package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// dynamoCalls counts the worker's DynamoDB requests of one operation (every
// outcome), from the AWS request metric its clients feed.
func (f *fixture) dynamoCalls(t *testing.T, op string) float64 {
	t.Helper()
	return f.awsRequests(t, func(l map[string]string) bool { return l["service"] == "DynamoDB" && l["operation"] == op })
}

// capture returns the id of the order's capture in the sandbox ledger.
func (f *fixture) capture(t *testing.T, orderID string) string {
	t.Helper()
	entries, err := f.gw.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.OrderID == orderID && e.Kind == sandbox.KindCapture {
			return e.ID
		}
	}
	return ""
}

func (f *fixture) wantLedger(t *testing.T, orderID string, captures, refunds int) {
	t.Helper()
	if c, r := f.ledger(t, orderID); c != captures || r != refunds {
		t.Fatalf("ledger of %s: %d captures, %d refunds; want %d and %d", orderID, c, r, captures, refunds)
	}
}

func (f *fixture) wantAbsent(t *testing.T, id string) {
	t.Helper()
	if o, err := f.w.Store.Get(context.Background(), id); !errors.Is(err, pipeline.ErrNotFound) {
		t.Fatalf("order %s is stored (%s, %v); want nothing written", id, o.Status, err)
	}
}

func reservedEvent(o pipeline.Order) pipeline.Event {
	o.Status, o.Reason, o.ChargeID, o.RefundID = pipeline.StatusReserved, "", "", ""
	return pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o}
}

func asJSON(t *testing.T, o pipeline.Order) string {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The payment stage charges and makes its conditional write without
// reading the order first: one PutItem, no GetItem.
func TestPaymentDoesNotReadBeforeCharging(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "noread-1", sandbox.TokenVisa, "A")
	reserved := f.advance(t, o, pipeline.StatusReserved)
	gets, puts := f.dynamoCalls(t, "GetItem"), f.dynamoCalls(t, "PutItem")
	out, err := f.handle(t, pipeline.StagePayment, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: reserved})
	if err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("payment: %s, %v", out, err)
	}
	if n := f.dynamoCalls(t, "GetItem") - gets; n != 0 {
		t.Fatalf("the payment stage made %v GetItem requests for a RESERVED order, want 0", n)
	}
	if n := f.dynamoCalls(t, "PutItem") - puts; n != 1 {
		t.Fatalf("the payment stage made %v PutItem requests, want 1 (the conditional write)", n)
	}
	// The counter sees the store's reads: one Get is one GetItem.
	paid := f.get(t, o.ID)
	if n := f.dynamoCalls(t, "GetItem") - gets; n != 1 {
		t.Fatalf("a store read counted %v GetItem requests, want 1", n)
	}
	if paid.Status != pipeline.StatusPaid || paid.ChargeID == "" || paid.ChargeID != f.capture(t, o.ID) {
		t.Fatalf("after payment: %s charge %q, ledger capture %q", paid.Status, paid.ChargeID, f.capture(t, o.ID))
	}
	f.wantLedger(t, o.ID, 1, 0)
}

// An InventoryReserved for an order that does not exist is charged (the
// stage does not read first), then refunded when the condition fails, and
// dead-lettered as not found; nothing is stored.
func TestPaymentForAnUnknownOrderIsRefundedAndDeadLettered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	ghost := f.order(t, "ghost-pay", sandbox.TokenVisa, "A")
	for delivery := 1; delivery <= 2; delivery++ {
		_, err := f.handle(t, pipeline.StagePayment, reservedEvent(ghost))
		if reason, ok := pipeline.IsPermanent(err); !ok || reason != pipeline.ReasonNotFound {
			t.Fatalf("delivery %d: %v; want a permanent %s error", delivery, err, pipeline.ReasonNotFound)
		}
		f.wantLedger(t, ghost.ID, 1, 1)
		f.wantAbsent(t, ghost.ID)
	}
	// Declined: nothing captured, nothing to refund, the stock release of
	// the lost write not applied.
	declined := f.order(t, "ghost-declined", sandbox.TokenDeclined, "A")
	_, err := f.handle(t, pipeline.StagePayment, reservedEvent(declined))
	if reason, ok := pipeline.IsPermanent(err); !ok || reason != pipeline.ReasonNotFound {
		t.Fatalf("declined: %v; want a permanent %s error", err, pipeline.ReasonNotFound)
	}
	f.wantLedger(t, declined.ID, 0, 0)
	f.wantAbsent(t, declined.ID)
	if n := f.available(t, "A"); n != 5 {
		t.Fatalf("stock = %d, want 5", n)
	}
}

// An InventoryReserved for an order cancelled while RESERVED is charged,
// then refunded once, however often it is delivered.
func TestPaymentForACancelledOrderIsRefundedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "pay-cancelled", sandbox.TokenVisa, "A")
	reserved := f.advance(t, o, pipeline.StatusReserved)
	if _, err := f.w.Service.Cancel(context.Background(), o.ID); err != nil {
		t.Fatal(err)
	}
	for delivery := 1; delivery <= 2; delivery++ {
		out, err := f.handle(t, pipeline.StagePayment, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: reserved})
		if err != nil || out != pipeline.OutcomeConflict {
			t.Fatalf("delivery %d: %s, %v; want conflict", delivery, out, err)
		}
		f.wantLedger(t, o.ID, 1, 1)
	}
	got := f.get(t, o.ID)
	if got.Status != pipeline.StatusCancelled || got.RefundID == "" {
		t.Fatalf("order = %s refund %q; want CANCELLED with its refund recorded", got.Status, got.RefundID)
	}
	if n := f.available(t, "A"); n != 5 {
		t.Fatalf("stock = %d, want 5", n)
	}
}

// A duplicate InventoryReserved for a PAID order gets the same charge back
// and changes nothing.
func TestDuplicatePaymentForAPaidOrderChargesOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "pay-twice", sandbox.TokenVisa, "A")
	ev := pipeline.Event{Type: pipeline.EventInventoryReserved, Order: f.advance(t, o, pipeline.StatusReserved)}
	f.wantHandled(t, "first delivery", pipeline.StagePayment, ev, pipeline.OutcomeOK)
	paid := f.get(t, o.ID)
	f.wantHandled(t, "duplicate", pipeline.StagePayment, ev, pipeline.OutcomeDuplicate)
	f.wantLedger(t, o.ID, 1, 0)
	if got := f.get(t, o.ID); asJSON(t, got) != asJSON(t, paid) {
		t.Fatalf("the duplicate changed the order:\nbefore %s\nafter  %s", asJSON(t, paid), asJSON(t, got))
	}
}

// A stale InventoryReserved for a REJECTED order is refunded and
// dead-lettered as invalid; the order is not written.
func TestPaymentForARejectedOrderIsRefundedAndDeadLettered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "NONE", 0)
	o := f.order(t, "pay-rejected", sandbox.TokenVisa, "NONE")
	f.wantHandled(t, "inventory", pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}, pipeline.OutcomeRejected)
	rejected := f.get(t, o.ID)
	for delivery := 1; delivery <= 2; delivery++ {
		_, err := f.handle(t, pipeline.StagePayment, reservedEvent(rejected))
		if reason, ok := pipeline.IsPermanent(err); !ok || reason != pipeline.ReasonInvalid ||
			!strings.Contains(err.Error(), o.ID) || !strings.Contains(err.Error(), string(pipeline.StatusRejected)) {
			t.Fatalf("delivery %d: %v; want a permanent %s error naming the order and its status", delivery, err, pipeline.ReasonInvalid)
		}
		f.wantLedger(t, o.ID, 1, 1)
	}
	if got := f.get(t, o.ID); asJSON(t, got) != asJSON(t, rejected) {
		t.Fatalf("the order was written:\nbefore %s\nafter  %s", asJSON(t, rejected), asJSON(t, got))
	}
}

// A PAYMENT_FAILED order keeps no money: a plain duplicate is declined
// again, and an attempt that does capture is refunded; both re-announce.
func TestPaymentForAFailedOrderKeepsNoMoney(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "pay-failed", sandbox.TokenDeclined, "A")
	ev := pipeline.Event{Type: pipeline.EventInventoryReserved, Order: f.advance(t, o, pipeline.StatusReserved)}
	f.wantHandled(t, "declined", pipeline.StagePayment, ev, pipeline.OutcomeRejected)
	failed := f.get(t, o.ID)
	f.wantHandled(t, "duplicate", pipeline.StagePayment, ev, pipeline.OutcomeDuplicate)
	f.wantLedger(t, o.ID, 0, 0)
	captured := ev
	captured.Order.Payment.Token = sandbox.TokenVisa
	f.wantHandled(t, "capturing attempt", pipeline.StagePayment, captured, pipeline.OutcomeDuplicate)
	f.wantLedger(t, o.ID, 1, 1)
	if got := f.get(t, o.ID); asJSON(t, got) != asJSON(t, failed) {
		t.Fatalf("the order was written:\nbefore %s\nafter  %s", asJSON(t, failed), asJSON(t, got))
	}
	if n := f.available(t, "A"); n != 5 {
		t.Fatalf("stock = %d, want 5", n)
	}
}

// An InventoryReserved that arrives while the order is still PLACED is
// retried, not refunded: the order takes that very charge when it reaches
// the payment stage.
func TestEarlyPaymentIsRetriedAndKeepsItsCharge(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	ctx := context.Background()
	o := f.order(t, "pay-early", sandbox.TokenVisa, "A")
	if _, err := f.w.Store.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	early := reservedEvent(o)
	_, err := f.handle(t, pipeline.StagePayment, early)
	if err == nil {
		t.Fatal("an InventoryReserved for a PLACED order succeeded; want a retry")
	}
	if _, perm := pipeline.IsPermanent(err); perm {
		t.Fatalf("%v is permanent; want a retry", err)
	}
	f.wantLedger(t, o.ID, 1, 0)
	if got := f.get(t, o.ID); got.Status != pipeline.StatusPlaced {
		t.Fatalf("status = %s, want PLACED", got.Status)
	}
	f.advance(t, o, pipeline.StatusReserved)
	f.wantHandled(t, "retry after the reservation", pipeline.StagePayment, early, pipeline.OutcomeOK)
	got := f.get(t, o.ID)
	if got.Status != pipeline.StatusPaid || got.ChargeID != f.capture(t, o.ID) {
		t.Fatalf("order = %s charge %q, want PAID with the ledger's capture %q", got.Status, got.ChargeID, f.capture(t, o.ID))
	}
	f.wantLedger(t, o.ID, 1, 0)
}
