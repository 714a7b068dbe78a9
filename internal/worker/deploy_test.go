package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// What a newer release wrote, put on the bus while this release's worker
// consumes the queues (its SQS consumers, its stage handlers, its store):
//   - an OrderPlaced whose order carries members this release does not
//     know, at the top and inside customer and an item: it ends SHIPPED
//     with every one of them in the stored document;
//   - an OrderPlaced with "schema_version": 999: not acted on (no stock
//     taken, no order stored), not dead-lettered, handed back again and
//     again (newer_schema);
//   - an event of a detail-type this release does not know, from the
//     pipeline's source, routed to the payment queue by an extra rule:
//     the same (unknown_event).
func TestWhatANewerReleaseWroteIsKeptOrHandedBack(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Worker) { c.DeferBase = time.Second })
	f.stock(t, "KEEP", 5)
	f.env.Route(t, "gift-wrapped", pipeline.StagePayment, "OrderGiftWrapped")

	doc := func(id string) string {
		d, err := pipeline.EncodeOrder(f.order(t, id, "tok_visa", "KEEP"))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	members := map[string]string{
		"gift_note":             `{"from":"Ada","text":"Happy birthday"}`,
		"fulfilment_center":     `"DUB-2"`,
		"customer.loyalty_tier": `"gold"`,
		"items.0.gift_wrap":     `true`,
	}
	f.env.PutRaw(t, string(pipeline.EventOrderPlaced), testkit.WithMembers(t, doc("newer-fields"), members))
	f.env.PutRaw(t, string(pipeline.EventOrderPlaced), testkit.WithMembers(t, doc("newer-schema"), map[string]string{"schema_version": "999"}))
	f.env.PutRaw(t, "OrderGiftWrapped", `{"schema_version":3,"order_id":"newer-fields","paper":"red"}`)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deferred := func(st pipeline.Stage, reason string) float64 {
		return testutil.ToFloat64(f.m.Deferred.WithLabelValues(string(st), reason))
	}
	testkit.Eventually(t, "the order with new members shipped, and each newer event handed back twice", 60*time.Second, func() bool {
		o, err := f.w.Store.Get(context.Background(), "newer-fields")
		return err == nil && o.Status == pipeline.StatusShipped &&
			deferred(pipeline.StageInventory, pipeline.ReasonNewerSchema) >= 2 && deferred(pipeline.StagePayment, pipeline.ReasonUnknownEvent) >= 2
	})

	stored := f.env.StoredDocument(t, "newer-fields")
	for path, want := range members {
		if got := testkit.Member(t, stored, path); got != want {
			t.Errorf("stored SHIPPED order: %s = %s, want %s\n%s", path, got, want, stored)
		}
	}
	if v := testkit.Member(t, stored, "schema_version"); v != "2" {
		t.Errorf("stored order has schema_version %s, want this release's 2", v)
	}
	if _, err := f.w.Store.Get(context.Background(), "newer-schema"); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("the schema_version 999 order was acted on: get = %v, want not found", err)
	}
	if n := f.available(t, "KEEP"); n != 4 {
		t.Errorf("stock %d, want 4: one unit for the order this release could read, none for the newer one", n)
	}
	for _, st := range pipeline.Stages {
		if v := testutil.ToFloat64(f.m.DeadLettered.WithLabelValues(string(st), pipeline.ReasonWrongEvent)) +
			testutil.ToFloat64(f.m.DeadLettered.WithLabelValues(string(st), pipeline.ReasonMalformed)); v != 0 {
			t.Errorf("%s dead-lettered %v messages", st, v)
		}
		if n := f.env.Depth(t, f.env.QueueURL(st, true)); n != 0 {
			t.Errorf("%s DLQ holds %d messages, want none", st, n)
		}
	}
	t.Logf("deferred: newer_schema %v (inventory), unknown_event %v (payment)",
		deferred(pipeline.StageInventory, pipeline.ReasonNewerSchema), deferred(pipeline.StagePayment, pipeline.ReasonUnknownEvent))
}
