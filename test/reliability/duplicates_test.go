package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	policy "github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// stageOf is the queue each routed event type is delivered to.
var stageOf = map[pipeline.EventType]pipeline.Stage{
	pipeline.EventOrderPlaced:          pipeline.StageInventory,
	pipeline.EventOrderCancelRequested: pipeline.StageInventory,
	pipeline.EventInventoryReserved:    pipeline.StagePayment,
	pipeline.EventPaymentCaptured:      pipeline.StageShipping,
}

// snapshot returns the order as the event that moved it into status
// carried it: the stored order with the status set and the fields later
// stages add removed.
func snapshot(o pipeline.Order, status pipeline.Status) pipeline.Order {
	s := o
	s.Status = status
	s.RefundID, s.TrackingNumber, s.Carrier, s.Reason = "", "", "", ""
	if status != pipeline.StatusPaid {
		s.ChargeID = ""
	}
	return s
}

// handledTotal sums every stage's handled messages, all outcomes.
func handledTotal(w *worker) float64 {
	return metric(w.ops, "cloudcommerce_stage_messages_handled_total")
}

// TestDuplicatedEventsChangeNothing lets orders reach every final status
// (shipped, payment failed, rejected, cancelled after payment), then
// delivers every event each of them went through twice more, newest first,
// straight to the stage queues — plus stale stage events for the failed
// orders. Nothing may change: the stored orders and the stock stay
// identical, no money moves, nothing is dead-lettered. The one exception is
// the stale InventoryReserved for the rejected order, which no legitimate
// path produces: the payment stage charges before its conditional write
// (it does not read first), so it captures, refunds that capture once when
// the condition shows the order is REJECTED, and dead-letters the message
// (invalid_order) without writing the order.
func TestDuplicatedEventsChangeNothing(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	// A slow carrier holds paid orders in PAID long enough to cancel them.
	c := newCluster(r, "CLOUDCOMMERCE_CARRIER_DELAY=3s", "CLOUDCOMMERCE_SWEEP_INTERVAL=off")
	stock := map[string]int64{"SKU-X": 20, "SKU-NONE": 0}
	c.setStock(stock)
	w := c.worker()
	w.start()
	api := func() string { return w.api }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := c.env.Store()

	shipped := placeOrder(ctx, r, api, testkit.Order(sandbox.TokenVisa, "SKU-X"), "dup-shipped")
	failed := placeOrder(ctx, r, api, testkit.Order(sandbox.TokenDeclined, "SKU-X"), "dup-failed")
	rejected := placeOrder(ctx, r, api, testkit.Order(sandbox.TokenVisa, "SKU-NONE"), "dup-rejected")
	accepted := map[string]*planned{shipped: {id: shipped}, failed: {id: failed}, rejected: {id: rejected}}
	cancels := map[string]cancelResult{}
	// Cancel an order while it is PAID (the carrier takes 3 s). If the
	// cancel loses the race to the shipment, try another order.
	cancelled := ""
	for attempt := 0; attempt < 5 && cancelled == ""; attempt++ {
		id := placeOrder(ctx, r, api, testkit.Order(sandbox.TokenVisa, "SKU-X"), fmt.Sprintf("dup-cancel-%d", attempt))
		accepted[id] = &planned{id: id}
		var o pipeline.Order
		r.eventually(id+" to be paid", time.Minute, func() bool {
			o, _ = st.Get(ctx, id)
			return o.Status == pipeline.StatusPaid || o.Status.Final()
		})
		if o.Status != pipeline.StatusPaid {
			continue
		}
		cr := cancelOrder(ctx, api, id)
		cancels[id] = cr
		if cr.code == http.StatusOK {
			cancelled = id
		}
	}
	if cancelled == "" {
		r.Fatal("could not cancel a paid order in 5 attempts")
	}
	before := settle(c, expect{stock: stock, accepted: accepted, cancels: cancels})
	want := map[string]pipeline.Status{shipped: pipeline.StatusShipped, failed: pipeline.StatusPaymentFailed, rejected: pipeline.StatusRejected, cancelled: pipeline.StatusCancelled}
	for id, s := range want {
		if before[id].Status != s {
			r.Fatalf("order %s is %s, want %s", id, before[id].Status, s)
		}
	}
	ledgerBefore := c.ledger()
	// Refunded by effect: exactly one refund of the one capture in the
	// ledger, whatever key it was made under.
	if n := ledgerCount(ledgerBefore, cancelled); n[sandbox.KindCapture] != 1 || n[sandbox.KindRefund] != 1 {
		r.Fatalf("the order cancelled after payment has ledger entries %v, want one capture and one refund", n)
	}
	stockBefore := stockOf(r, c, stock)

	// Every event each order went through, newest first, twice.
	type delivery struct {
		t     pipeline.EventType
		order pipeline.Order
	}
	history := map[string][]delivery{}
	for id := range want {
		o := before[id]
		h := []delivery{{pipeline.EventOrderPlaced, snapshot(o, pipeline.StatusPlaced)}}
		if _, ok := o.History[pipeline.StatusReserved]; ok {
			h = append(h, delivery{pipeline.EventInventoryReserved, snapshot(o, pipeline.StatusReserved)})
		}
		if _, ok := o.History[pipeline.StatusPaid]; ok {
			h = append(h, delivery{pipeline.EventPaymentCaptured, snapshot(o, pipeline.StatusPaid)})
		}
		if o.Status == pipeline.StatusCancelled {
			h = append(h, delivery{pipeline.EventOrderCancelRequested, o})
		}
		history[id] = h
	}
	// Stale stage events for orders that never reached that stage: a
	// payment for the rejected order, a shipment for the failed one — each
	// twice, like every other delivery.
	stale := []delivery{
		{pipeline.EventInventoryReserved, snapshot(before[rejected], pipeline.StatusReserved)},
		{pipeline.EventPaymentCaptured, snapshot(before[failed], pipeline.StatusPaid)},
	}
	handled := handledTotal(w)
	// Outcomes that would mean a duplicate made progress, failed or was
	// dead-lettered: none, but for the stale payment of the rejected order.
	progress := map[string]float64{}
	for _, outcome := range []string{"ok", "retried", "dead_lettered"} {
		progress[outcome] = metric(w.ops, "cloudcommerce_stage_messages_handled_total", "outcome", outcome)
	}
	wantProgress := map[string]float64{"dead_lettered": 2}
	invalidBefore := metric(w.ops, "cloudcommerce_stage_dead_lettered_total", "stage", "payment", "reason", pipeline.ReasonInvalid)
	sent := 0
	for round := 0; round < 2; round++ {
		ids := make([]string, 0, len(history))
		for id := range history {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			h := history[id]
			for i := len(h) - 1; i >= 0; i-- {
				c.send(stageOf[h[i].t], testkit.Envelope(r, pipeline.Event{Type: h[i].t, Order: h[i].order}))
				sent++
			}
		}
	}
	for range 2 {
		for _, d := range stale {
			c.send(stageOf[d.t], testkit.Envelope(r, pipeline.Event{Type: d.t, Order: d.order}))
			sent++
		}
	}
	r.Logf("sent %d duplicate, reordered and stale deliveries", sent)
	r.eventually(fmt.Sprintf("%d deliveries to be handled", sent), 2*time.Minute, func() bool {
		return handledTotal(w) >= handled+float64(sent)
	})
	after := settle(c, expect{stock: stock, accepted: accepted, cancels: cancels, dlq: map[string]int{"payment DLQ": 2}})
	if got := handledTotal(w) - handled; got != float64(sent) {
		r.Errorf("%v deliveries handled, want %d (a duplicate was retried or announced onward)", got, sent)
	}
	for outcome, n := range progress {
		if v := metric(w.ops, "cloudcommerce_stage_messages_handled_total", "outcome", outcome); v-n != wantProgress[outcome] {
			r.Errorf("%v duplicate deliveries ended %s, want %v", v-n, outcome, wantProgress[outcome])
		}
	}
	if v := metric(w.ops, "cloudcommerce_stage_dead_lettered_total", "stage", "payment", "reason", pipeline.ReasonInvalid) - invalidBefore; v != 2 {
		r.Errorf("%v payment deliveries dead-lettered as %s, want 2 (the stale payments of the rejected order)", v, pipeline.ReasonInvalid)
	}
	dead := c.drain(c.env.QueueURL(pipeline.StagePayment, true), 2, 30*time.Second)
	if len(dead) != 2 {
		r.Errorf("payment DLQ gave %d messages, want the 2 stale payments of the rejected order", len(dead))
	}
	for _, m := range dead {
		if reason := attr(m.MessageAttributes, policy.AttrReason); reason != pipeline.ReasonInvalid || !strings.Contains(aws.ToString(m.Body), rejected) {
			r.Errorf("payment DLQ holds a message with reason %q, want the rejected order's with %q: %.200s", reason, pipeline.ReasonInvalid, aws.ToString(m.Body))
		}
	}
	for id := range want {
		if !reflect.DeepEqual(jsonOf(before[id]), jsonOf(after[id])) {
			r.Errorf("order %s changed:\nbefore %s\nafter  %s", id, jsonOf(before[id]), jsonOf(after[id]))
		}
	}
	if s := stockOf(r, c, stock); !reflect.DeepEqual(s, stockBefore) {
		r.Errorf("stock changed: before %v, after %v", stockBefore, s)
	}
	// The ledger is unchanged but for the rejected order's capture and its
	// refund, in full: delivered twice, the stale payment charged and
	// refunded once.
	var others []sandbox.Entry
	kinds, amounts := map[string]int{}, map[string]pipeline.Money{}
	for _, en := range c.ledger() {
		if en.OrderID != rejected {
			others = append(others, en)
			continue
		}
		kinds[en.Kind]++
		amounts[en.Kind] = en.Amount
	}
	if !sameLedger(others, ledgerBefore) {
		r.Errorf("ledger changed:\nbefore %+v\nafter  %+v", ledgerBefore, others)
	}
	if kinds[sandbox.KindCapture] != 1 || kinds[sandbox.KindRefund] != 1 || len(kinds) != 2 || amounts[sandbox.KindRefund] != amounts[sandbox.KindCapture] {
		r.Errorf("the stale payment of rejected order %s left ledger entries %v (amounts %v), want one capture and one refund of it", rejected, kinds, amounts)
	}
}

// TestReorderedEventsConverge delivers an order's later stage events before
// its OrderPlaced is handled: a PaymentCaptured and an InventoryReserved
// arrive while the order is still PLACED. They must neither ship nor
// charge anything early; they are retried until the order catches up, and
// the order ends SHIPPED with one capture and one unit of stock.
func TestReorderedEventsConverge(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	c := newCluster(r, "CLOUDCOMMERCE_SWEEP_INTERVAL=off")
	stock := map[string]int64{"SKU-R": 5}
	c.setStock(stock)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o, err := pipeline.NewOrder(fmt.Sprintf("reorder-%x", r.IntN(1<<30)), testkit.Order(sandbox.TokenVisa, "SKU-R"), time.Now())
	if err != nil {
		r.Fatal(err)
	}
	// Stored PLACED as the intake does, its OrderPlaced held back.
	if _, err := c.env.Store().Create(ctx, o, "", ""); err != nil {
		r.Fatal(err)
	}
	// A genuine PaymentCaptured carries the charge id; the provider gives
	// the same charge for the order's key to the payment stage later.
	chargeID, err := sandbox.NewGateway(c.env.DDB, c.env.Prov.Names.Tables["payments_ledger"]).Charge(ctx,
		pipeline.ChargeRequest{IdempotencyKey: o.ID, OrderID: o.ID, Amount: o.Total, Token: sandbox.TokenVisa})
	if err != nil {
		r.Fatal(err)
	}
	paid := snapshot(o, pipeline.StatusPaid)
	paid.ChargeID = chargeID
	c.send(pipeline.StageShipping, testkit.Envelope(r, pipeline.Event{Type: pipeline.EventPaymentCaptured, Order: paid}))
	c.send(pipeline.StagePayment, testkit.Envelope(r, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: snapshot(o, pipeline.StatusReserved)}))
	w := c.worker()
	w.start()
	r.eventually("the early events to be tried and put back", time.Minute, func() bool {
		return metric(w.ops, "cloudcommerce_stage_messages_handled_total", "stage", "payment", "outcome", "retried") >= 1 &&
			metric(w.ops, "cloudcommerce_stage_messages_handled_total", "stage", "shipping", "outcome", "retried") >= 1
	})
	if cur, _ := c.env.Store().Get(ctx, o.ID); cur.Status != pipeline.StatusPlaced {
		r.Fatalf("early events moved the order to %s before its OrderPlaced", cur.Status)
	}
	entry, err := bus.Entry(c.env.Prov.Names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
	if err != nil {
		r.Fatal(err)
	}
	if out, err := c.env.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{entry}}); err != nil || out.FailedEntryCount != 0 {
		r.Fatalf("PutEvents: %v", err)
	}
	final := settle(c, expect{stock: stock, accepted: map[string]*planned{o.ID: {id: o.ID}}})
	if got := final[o.ID]; got.Status != pipeline.StatusShipped || got.ChargeID != chargeID {
		r.Fatalf("order = %s charge %q, want SHIPPED with charge %q", got.Status, got.ChargeID, chargeID)
	}
	if v := metric(w.ops, "cloudcommerce_stage_messages_handled_total", "outcome", "dead_lettered"); v != 0 {
		r.Fatalf("%v deliveries dead-lettered", v)
	}
}

// ledgerCount counts an order's ledger entries by kind.
func ledgerCount(entries []sandbox.Entry, orderID string) map[string]int {
	n := map[string]int{}
	for _, en := range entries {
		if en.OrderID == orderID {
			n[en.Kind]++
		}
	}
	return n
}

func jsonOf(o pipeline.Order) string {
	b, _ := json.Marshal(o)
	return string(b)
}

func stockOf(r *rt, c *cluster, skus map[string]int64) map[string]int64 {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	out := map[string]int64{}
	for sku := range skus {
		n, err := c.env.Store().Stock(ctx, sku)
		if err != nil {
			r.Fatal(err)
		}
		out[sku] = n
	}
	return out
}

func sameLedger(a, b []sandbox.Entry) bool {
	key := func(l []sandbox.Entry) []string {
		var out []string
		for _, e := range l {
			out = append(out, fmt.Sprintf("%+v", e))
		}
		sort.Strings(out)
		return out
	}
	return reflect.DeepEqual(key(a), key(b))
}
