package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// The ledger is a DynamoDB table of a topology on the in-process emulator
// (or the endpoint in AWS_ENDPOINT_URL).
func TestMain(m *testing.M) { emulator.RunTests(m) }

var usd = pipeline.Money{Amount: 2500, Currency: "USD"}

func newGateway(t *testing.T) (*sandbox.Gateway, *awsfault.Proxy, string) {
	t.Helper()
	e := testkit.Provision(t)
	proxy, cfg := testkit.FaultEndpoint(t)
	table := e.Prov.Names.Tables["payments_ledger"]
	return sandbox.NewGateway(awsconf.DynamoDB(cfg), table), proxy, table
}

// entries returns the ledger's entries of one kind for an order.
func entries(t *testing.T, g *sandbox.Gateway, order, kind string) []sandbox.Entry {
	t.Helper()
	all, err := g.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []sandbox.Entry
	for _, e := range all {
		if e.OrderID == order && e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// The same idempotency key charges once, however often and however
// concurrently it is asked, and every answer is the first charge's id.
func TestChargeIsIdempotentPerKey(t *testing.T) {
	t.Parallel()
	g, _, _ := newGateway(t)
	ctx := context.Background()
	req := pipeline.ChargeRequest{IdempotencyKey: "ord-1", OrderID: "ord-1", Amount: usd, Token: sandbox.TokenVisa}
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := g.Charge(ctx, req)
			if err != nil {
				t.Errorf("charge %d: %v", i, err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !strings.HasPrefix(id, "ch_") {
			t.Fatalf("charge ids %v, want one ch_ id", ids)
		}
	}
	got := entries(t, g, "ord-1", sandbox.KindCapture)
	if len(got) != 1 || got[0].ID != ids[0] || got[0].Amount != usd {
		t.Fatalf("ledger captures for ord-1 = %+v, want one of %s for %s", got, usd, ids[0])
	}
	// Another key is another charge.
	other, err := g.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: "ord-2", OrderID: "ord-2", Amount: usd, Token: sandbox.TokenVisa})
	if err != nil || other == ids[0] {
		t.Fatalf("charge under another key = %q, %v; want a new charge", other, err)
	}
}

// tok_processingError fails transiently on its first attempts per key,
// then succeeds once; later attempts return the same charge.
func TestProcessingErrorIsTransientThenSucceeds(t *testing.T) {
	t.Parallel()
	g, _, _ := newGateway(t)
	ctx := context.Background()
	req := pipeline.ChargeRequest{IdempotencyKey: "ord-pe", OrderID: "ord-pe", Amount: usd, Token: sandbox.TokenProcessingError}
	for i := 1; i <= sandbox.TransientFailures; i++ {
		id, err := g.Charge(ctx, req)
		var declined *pipeline.DeclinedError
		if !errors.Is(err, sandbox.ErrProcessing) || errors.As(err, &declined) || id != "" {
			t.Fatalf("attempt %d = %q, %v; want the transient ErrProcessing", i, id, err)
		}
		if n := len(entries(t, g, "ord-pe", sandbox.KindCapture)); n != 0 {
			t.Fatalf("attempt %d left %d captures, want none", i, n)
		}
	}
	first, err := g.Charge(ctx, req)
	if err != nil {
		t.Fatalf("attempt %d: %v", sandbox.TransientFailures+1, err)
	}
	again, err := g.Charge(ctx, req)
	if err != nil || again != first {
		t.Fatalf("a further attempt = %q, %v; want the same charge %s", again, err, first)
	}
	if n := len(entries(t, g, "ord-pe", sandbox.KindCapture)); n != 1 {
		t.Fatalf("%d captures, want 1", n)
	}
	// Each key counts its own attempts.
	if _, err := g.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: "ord-pe-2", OrderID: "ord-pe-2", Amount: usd, Token: sandbox.TokenProcessingError}); !errors.Is(err, sandbox.ErrProcessing) {
		t.Fatalf("first attempt under a new key = %v, want ErrProcessing", err)
	}
}

// A ledger write DynamoDB throttles is retried (the SDK's retryer) and
// still records one capture.
func TestThrottledLedgerWriteIsRetriedOnce(t *testing.T) {
	t.Parallel()
	g, proxy, table := newGateway(t)
	rule := proxy.Add(&awsfault.Rule{Service: "DynamoDB", Operation: "PutItem", Match: table, Times: 1, Response: awsfault.DynamoDBProvisionedThroughputExceeded})
	id, err := g.Charge(context.Background(), pipeline.ChargeRequest{IdempotencyKey: "ord-t", OrderID: "ord-t", Amount: usd, Token: sandbox.TokenVisa})
	if err != nil {
		t.Fatalf("charge: %v", err)
	}
	if rule.Hits() != 1 || proxy.Requests("DynamoDB", "PutItem") != 2 {
		t.Errorf("PutItem throttled %d times of %d requests, want 1 of 2", rule.Hits(), proxy.Requests("DynamoDB", "PutItem"))
	}
	if got := entries(t, g, "ord-t", sandbox.KindCapture); len(got) != 1 || got[0].ID != id {
		t.Errorf("captures = %+v, want one %s", got, id)
	}
	// A ledger that stays unavailable is a transient error, not a decline.
	proxy.Add(&awsfault.Rule{Service: "DynamoDB", Operation: "PutItem", Match: table, Response: awsfault.DynamoDBInternalServerError})
	_, err = g.Charge(context.Background(), pipeline.ChargeRequest{IdempotencyKey: "ord-t2", OrderID: "ord-t2", Amount: usd, Token: sandbox.TokenVisa})
	var declined *pipeline.DeclinedError
	if err == nil || errors.As(err, &declined) {
		t.Errorf("charge with the ledger down = %v, want a transient error", err)
	}
}

// Declines are permanent *DeclinedErrors and record nothing.
func TestDeclinesRecordNothing(t *testing.T) {
	t.Parallel()
	g, _, _ := newGateway(t)
	ctx := context.Background()
	for token, code := range map[string]string{sandbox.TokenDeclined: "card_declined", "tok_unknown": "invalid_token"} {
		_, err := g.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: "ord-d-" + code, OrderID: "ord-d-" + code, Amount: usd, Token: token})
		var declined *pipeline.DeclinedError
		if !errors.As(err, &declined) || declined.Code != code {
			t.Errorf("%s: %v, want declined %s", token, err, code)
		}
	}
	_, err := g.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: "ord-neg", OrderID: "ord-neg", Amount: pipeline.Money{Amount: -1, Currency: "USD"}, Token: sandbox.TokenVisa})
	var declined *pipeline.DeclinedError
	if !errors.As(err, &declined) || declined.Code != "invalid_amount" {
		t.Errorf("negative amount: %v, want declined invalid_amount", err)
	}
	all, err := g.Entries(ctx)
	if err != nil || len(all) != 0 {
		t.Errorf("ledger = %+v, %v; want empty", all, err)
	}
}

// A refund refunds the order's capture once per key, for the captured
// amount; with no capture it is declined with no_charge.
func TestRefundIsIdempotentAndNeedsACapture(t *testing.T) {
	t.Parallel()
	g, _, _ := newGateway(t)
	ctx := context.Background()
	_, err := g.Refund(ctx, pipeline.RefundRequest{IdempotencyKey: "refund-none", OrderID: "none"})
	var declined *pipeline.DeclinedError
	if !errors.As(err, &declined) || declined.Code != "no_charge" {
		t.Fatalf("refund without a charge = %v, want declined no_charge", err)
	}
	ch, err := g.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: "ord-r", OrderID: "ord-r", Amount: usd, Token: sandbox.TokenVisa})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := g.Refund(ctx, pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey("ord-r"), OrderID: "ord-r", ChargeID: ch})
	if err != nil || !strings.HasPrefix(r1, "re_") {
		t.Fatalf("refund = %q, %v", r1, err)
	}
	r2, err := g.Refund(ctx, pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey("ord-r"), OrderID: "ord-r", ChargeID: ch})
	if err != nil || r2 != r1 {
		t.Fatalf("repeated refund = %q, %v; want %s", r2, err, r1)
	}
	got := entries(t, g, "ord-r", sandbox.KindRefund)
	if len(got) != 1 || got[0].Amount != usd {
		t.Fatalf("refunds = %+v, want one of %s", got, usd)
	}
}

// The carrier's tracking number is a function of the idempotency key, and
// a booking slower than the caller's deadline is abandoned.
func TestCarrierBookingIsDeterministic(t *testing.T) {
	t.Parallel()
	c := sandbox.Carrier{}
	a, _ := c.Book(context.Background(), pipeline.ShipmentRequest{IdempotencyKey: "ord-s"})
	b, _ := c.Book(context.Background(), pipeline.ShipmentRequest{IdempotencyKey: "ord-s"})
	o, _ := c.Book(context.Background(), pipeline.ShipmentRequest{IdempotencyKey: "ord-t"})
	if a != b || a.TrackingNumber == o.TrackingNumber || a.Carrier != sandbox.CarrierName {
		t.Fatalf("bookings %+v %+v %+v: want the same shipment per key, another for another key", a, b, o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (sandbox.Carrier{Delay: time.Hour}).Book(ctx, pipeline.ShipmentRequest{IdempotencyKey: "ord-s"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("booking after the caller gave up = %v, want context.Canceled", err)
	}
}
