package main

import (
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

func runOrder(t *testing.T, a *Activities, o Order) Result {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	env.ExecuteWorkflow(OrderWorkflow, o)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := env.GetWorkflowResult(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func order(id, token string, qty int64) Order {
	return Order{ID: id, Customer: "cust-1", Token: token, Amount: 500 * qty, Lines: []Line{{SKU: "LG-WIDGET", Quantity: qty}}, PlacedAt: time.Now()}
}

func TestOrderShipsAndNotifiesTwice(t *testing.T) {
	a := NewActivities(map[string]int64{"LG-WIDGET": 10})
	r := runOrder(t, a, order("o-1", "tok_visa", 3))
	if r.Status != StatusShipped || r.ChargeID != "ch_o-1" || r.Tracking != "TRK-o-1" || r.FinalAt.IsZero() {
		t.Fatalf("result %+v, want SHIPPED with charge, tracking and final time", r)
	}
	if got := a.available("LG-WIDGET"); got != 7 {
		t.Fatalf("stock %d after shipping 3 of 10, want 7", got)
	}
	if got := a.Notes.Load(); got != 2 {
		t.Fatalf("%d notifications, want 2 (confirmed, shipped)", got)
	}
}

func TestDeclinedCardReleasesStock(t *testing.T) {
	a := NewActivities(map[string]int64{"LG-WIDGET": 10})
	r := runOrder(t, a, order("o-2", TokenDeclined, 4))
	if r.Status != StatusPaymentFailed || r.ChargeID != "" || r.Tracking != "" {
		t.Fatalf("result %+v, want PAYMENT_FAILED without charge or shipment", r)
	}
	if got := a.available("LG-WIDGET"); got != 10 {
		t.Fatalf("stock %d after a declined order, want the 10 released back", got)
	}
	if got := a.Notes.Load(); got != 1 {
		t.Fatalf("%d notifications, want 1 (payment failed)", got)
	}
}

func TestShortStockRejects(t *testing.T) {
	a := NewActivities(map[string]int64{"LG-WIDGET": 2})
	r := runOrder(t, a, order("o-3", "tok_visa", 3))
	if r.Status != StatusRejected || r.ChargeID != "" {
		t.Fatalf("result %+v, want REJECTED without a charge", r)
	}
	if got := a.available("LG-WIDGET"); got != 2 {
		t.Fatalf("stock %d after a rejected order, want 2 untouched", got)
	}
}

func TestReserveIsIdempotent(t *testing.T) {
	a := NewActivities(map[string]int64{"LG-WIDGET": 10})
	o := order("o-4", "tok_visa", 3)
	for range 2 {
		ok, err := a.Reserve(t.Context(), o)
		if err != nil || !ok {
			t.Fatalf("reserve: %v %v", ok, err)
		}
	}
	if got := a.available("LG-WIDGET"); got != 7 {
		t.Fatalf("stock %d after reserving the same order twice, want 7", got)
	}
}
