package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// TestPoisonMessagesAreDeadLetteredAtOnce sends messages no retry can fix
// straight to the stage queues of a running worker: each must land in the
// stage's DLQ on its first receive, with the reason as a message attribute,
// be counted by reason, and have no effect (no order, no stock change, no
// money kept: the InventoryReserved for an unknown order is charged, since
// the payment stage does not read before charging, and refunded once when
// its conditional write fails). A good order sent alongside still ships.
func TestPoisonMessagesAreDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	c := newCluster(r, "CLOUDCOMMERCE_SWEEP_INTERVAL=off")
	c.setStock(map[string]int64{"SKU-P": 10})
	w := c.worker()
	w.start()

	order := func(id string, st pipeline.Status) pipeline.Order {
		o, err := pipeline.NewOrder(id, testkit.Order(sandbox.TokenVisa, "SKU-P"), time.Now())
		if err != nil {
			r.Fatal(err)
		}
		o.Status = st
		return o
	}
	env := func(ev pipeline.Event) string { return testkit.Envelope(r, ev) }
	wrongSource := strings.Replace(env(pipeline.Event{Type: pipeline.EventOrderPlaced, Order: order("p-src", pipeline.StatusPlaced)}),
		pipeline.EventSource, "someone.else", 1)
	huge := env(pipeline.Event{Type: pipeline.EventOrderPlaced, Order: order("p-huge", pipeline.StatusPlaced)})
	huge = strings.Replace(huge, `"name":"Ada Lovelace"`, `"name":"`+strings.Repeat("x", pipeline.MaxMessageBytes)+`"`, 1)
	cases := []struct {
		name   string
		stage  pipeline.Stage
		body   string
		reason string
	}{
		{"malformed JSON", pipeline.StageInventory, `{"detail-type": "OrderPlaced", "detail": {`, pipeline.ReasonMalformed},
		{"not an event", pipeline.StagePayment, `{"hello": "world"}`, pipeline.ReasonMalformed},
		{"detail without order id", pipeline.StageShipping, env(pipeline.Event{Type: pipeline.EventPaymentCaptured, Order: pipeline.Order{Status: pipeline.StatusPaid}}), pipeline.ReasonMalformed},
		{"wrong source", pipeline.StageInventory, wrongSource, pipeline.ReasonWrongEvent},
		{"wrong event type for the stage", pipeline.StageInventory, env(pipeline.Event{Type: pipeline.EventOrderShipped, Order: order("p-type", pipeline.StatusShipped)}), pipeline.ReasonWrongEvent},
		{"OrderPlaced not PLACED", pipeline.StageInventory, env(pipeline.Event{Type: pipeline.EventOrderPlaced, Order: order("p-status", pipeline.StatusPaid)}), pipeline.ReasonInvalid},
		{"InventoryReserved for an unknown order", pipeline.StagePayment, env(pipeline.Event{Type: pipeline.EventInventoryReserved, Order: order("p-ghost-pay", pipeline.StatusReserved)}), pipeline.ReasonNotFound},
		{"PaymentCaptured for an unknown order", pipeline.StageShipping, env(pipeline.Event{Type: pipeline.EventPaymentCaptured, Order: order("p-ghost-ship", pipeline.StatusPaid)}), pipeline.ReasonNotFound},
		{"cancel request for an unknown order", pipeline.StageInventory, env(pipeline.Event{Type: pipeline.EventOrderCancelRequested, Order: order("p-ghost-cancel", pipeline.StatusPlaced)}), pipeline.ReasonNotFound},
		{"body over 256 KiB", pipeline.StageInventory, huge, pipeline.ReasonTooLarge},
	}
	want := map[pipeline.Stage]map[string]int{}
	sent := 0
	for _, tc := range cases {
		if err := c.trySend(tc.stage, tc.body); err != nil {
			// Real SQS refuses bodies over its limit at SendMessage, so
			// such a body can never reach a stage there; the emulator
			// accepts it and the worker must dead-letter it unread.
			if tc.reason == pipeline.ReasonTooLarge {
				r.Logf("the endpoint refuses a %d-byte body (%v): nothing to dead-letter", len(tc.body), err)
				continue
			}
			r.Fatalf("send %s: %v", tc.name, err)
		}
		sent++
		if want[tc.stage] == nil {
			want[tc.stage] = map[string]int{}
		}
		want[tc.stage][tc.reason]++
	}
	// A good order alongside: poison must not stop the pipeline.
	good := placeOrder(context.Background(), r, func() string { return w.api }, testkit.Order(sandbox.TokenVisa, "SKU-P"), "poison-good")

	for _, st := range pipeline.Stages {
		total := 0
		for _, n := range want[st] {
			total += n
		}
		if total == 0 {
			r.Fatalf("no poison message was sent to the %s queue: its checks would look at nothing", st)
		}
		msgs := c.drain(c.env.QueueURL(st, true), total, time.Minute)
		got := map[string]int{}
		for _, m := range msgs {
			reason := attr(m.MessageAttributes, delivery.AttrReason)
			got[reason]++
			if attr(m.MessageAttributes, delivery.AttrError) == "" || attr(m.MessageAttributes, delivery.AttrSourceQueue) != c.env.QueueURL(st, false) {
				r.Errorf("%s DLQ message lacks its error or source queue: %v", st, m.MessageAttributes)
			}
			if rc := attr(m.MessageAttributes, delivery.AttrReceives); rc != "1" {
				r.Errorf("%s DLQ message (reason %q) was dead-lettered after %s receives, want 1 (never retried)", st, reason, rc)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want[st]) {
			r.Errorf("%s DLQ reasons = %v, want %v", st, got, want[st])
		}
		for reason, n := range want[st] {
			if v := metric(w.ops, "cloudcommerce_stage_dead_lettered_total", "stage", string(st), "reason", reason); v != float64(n) {
				r.Errorf("dead_lettered_total{stage=%s,reason=%s} = %v, want %d", st, reason, v, n)
			}
		}
		if v := metric(w.ops, "cloudcommerce_stage_messages_handled_total", "stage", string(st), "outcome", "retried"); v != 0 {
			r.Errorf("%s: %v poison deliveries were retried, want 0", st, v)
		}
	}
	if r.Failed() {
		r.FailNow()
	}
	accepted := map[string]*planned{good: {id: good}}
	orders := settle(c, expect{stock: map[string]int64{"SKU-P": 10}, accepted: accepted})
	if o := orders[good]; o.Status != pipeline.StatusShipped {
		r.Fatalf("the good order is %s, want SHIPPED", o.Status)
	}
	for _, id := range []string{"p-src", "p-huge", "p-type", "p-status", "p-ghost-pay", "p-ghost-ship", "p-ghost-cancel"} {
		if _, ok := orders[id]; ok {
			r.Errorf("poison message created order %s", id)
		}
	}
	captures, refunds := map[string]int{}, map[string]int{}
	for _, en := range c.ledger() {
		switch en.Kind {
		case sandbox.KindCapture:
			captures[en.OrderID]++
		case sandbox.KindRefund:
			refunds[en.OrderID]++
		}
	}
	for _, id := range []string{"p-src", "p-huge", "p-type", "p-status", "p-ghost-ship", "p-ghost-cancel"} {
		if captures[id] != 0 || refunds[id] != 0 {
			r.Errorf("poison message for %s left %d captures and %d refunds, want none", id, captures[id], refunds[id])
		}
	}
	if captures["p-ghost-pay"] != 1 || refunds["p-ghost-pay"] != 1 {
		r.Errorf("InventoryReserved for an unknown order left %d captures and %d refunds, want 1 and 1", captures["p-ghost-pay"], refunds["p-ghost-pay"])
	}
	if n := w.grep("message dead-lettered"); n != sent {
		r.Errorf("logged %d dead-letterings, want %d (once each)", n, sent)
	}
}
