package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

// EnvTestKey names the Stripe test-mode key that turns on
// TestStripeTestMode. See docs/stripe.md.
const EnvTestKey = "CLOUDCOMMERCE_STRIPE_TEST_KEY"

// TestStripeTestMode runs the adapter against Stripe's real API in test
// mode (no money moves) when CLOUDCOMMERCE_STRIPE_TEST_KEY holds a test
// key; otherwise it is skipped. It uses Stripe's test payment methods.
func TestStripeTestMode(t *testing.T) {
	key := os.Getenv(EnvTestKey)
	if key == "" {
		t.Skipf("set %s=sk_test_… to run against Stripe's test mode (docs/stripe.md)", EnvTestKey)
	}
	if !strings.HasPrefix(key, "sk_test_") && !strings.HasPrefix(key, "rk_test_") {
		t.Fatalf("%s must be a test-mode key (sk_test_… or rk_test_…); refusing to move real money", EnvTestKey)
	}
	g, err := stripe.New(stripe.Config{SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := time.Now().UnixNano()

	t.Run("charge, replay, refund", func(t *testing.T) {
		order := fmt.Sprintf("cc-testmode-%d-ok", run)
		req := pipeline.ChargeRequest{IdempotencyKey: order, OrderID: order, Amount: pipeline.Money{Amount: 1999, Currency: "USD"}, Token: "pm_card_visa"}
		id, err := g.Charge(ctx, req)
		if err != nil {
			t.Fatalf("Charge: %v", err)
		}
		if !strings.HasPrefix(id, "pi_") {
			t.Errorf("charge id %q is not a PaymentIntent id", id)
		}
		again, err := g.Charge(ctx, req)
		if err != nil || again != id {
			t.Fatalf("replayed Charge = %q, %v; want the same PaymentIntent %s", again, err, id)
		}
		refund := pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey(order), OrderID: order, Amount: req.Amount}
		re, err := g.Refund(ctx, refund) // no charge id: found by order id
		if err != nil {
			t.Fatalf("Refund: %v", err)
		}
		refund.ChargeID = id
		re2, err := g.Refund(ctx, refund)
		if err != nil || re2 != re {
			t.Fatalf("replayed Refund = %q, %v; want the same refund %s", re2, err, re)
		}
	})

	for _, c := range []struct{ token, code, message string }{
		{"pm_card_chargeDeclined", "card_declined", ""},
		{"pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"},
		{"pm_card_chargeDeclinedExpiredCard", "expired_card", ""},
	} {
		t.Run(c.token, func(t *testing.T) {
			order := fmt.Sprintf("cc-testmode-%d-%s", run, c.token)
			_, err := g.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: order, OrderID: order, Amount: pipeline.Money{Amount: 1999, Currency: "USD"}, Token: c.token})
			var declined *pipeline.DeclinedError
			if !errors.As(err, &declined) || declined.Code != c.code || !strings.Contains(declined.Message, c.message) {
				t.Fatalf("got %v, want declined %s %s", err, c.code, c.message)
			}
			_, err = g.Refund(ctx, pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey(order), OrderID: order})
			if !errors.As(err, &declined) || declined.Code != "no_charge" {
				t.Fatalf("refund of a declined order: got %v, want declined no_charge", err)
			}
		})
	}
}
