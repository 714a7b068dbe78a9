package awserrors

import (
	"net/http"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// TestHotItemThrottlingIsRetriedThroughTheQueue: with DynamoDB's per-key
// write limit modelled (2 write units a second per key, so one
// reservation transaction a second on one SKU), a burst of orders for one
// SKU is throttled (TransactionCanceledException, ThrottlingError at the
// SKU's index), the worker hands the messages back to the queue with
// backoff, and every order is reserved in the end: exactly the units sold,
// nothing dead-lettered.
func TestHotItemThrottlingIsRetriedThroughTheQueue(t *testing.T) {
	t.Parallel()
	r, _ := start(t, nil)
	const orders = 6
	th := &awsfault.Throttle{Tables: map[string]string{r.env.Prov.Names.Tables["inventory"]: "sku"}, UnitsPerSecond: 2}
	sku := "HOT-" + r.env.Prefix
	r.setStock(t, sku, 10)
	r.proxy.SetThrottle(th)
	var ids []string
	for range orders {
		code, id := r.place(t, sku)
		if code != http.StatusAccepted {
			t.Fatalf("place order: %d", code)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if o := r.final(t, id); o.Status != pipeline.StatusShipped {
			t.Fatalf("order %s ended %s (%s), want SHIPPED", id, o.Status, o.Reason)
		}
	}
	r.proxy.SetThrottle(nil)
	if got := r.stock(t, sku); got != 10-orders {
		t.Errorf("stock %d after %d one-unit orders from 10", got, orders)
	}
	if th.Throttled() == 0 {
		t.Fatal("no write was throttled: the model did not bite")
	}
	if n := r.retried(); n == 0 {
		t.Errorf("%d writes throttled but no handler run was retried through the queue", th.Throttled())
	}
	if n := r.deadLettered(); n != 0 {
		t.Errorf("%d messages dead-lettered, want none", n)
	}
	t.Logf("%d throttled, %d admitted writes; %d handler runs retried", th.Throttled(), th.Admitted(), r.retried())
}
