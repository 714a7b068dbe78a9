package reliability

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// expect is what a run promised: the orders it accepted, the stock it
// started with, the cancellations' answers and the dead letters it put
// there on purpose.
type expect struct {
	stock    map[string]int64
	accepted map[string]*planned
	cancels  map[string]cancelResult
	// dlq is how many messages each DLQ (keyed as cluster.dlqURLs) may
	// hold; any other DLQ must be empty.
	dlq map[string]int
	// finalWithin bounds the wait for every order to be final; the
	// queues then get queueWithin to empty (in-flight messages of a killed
	// worker come back after the 30 s visibility timeout).
	finalWithin, queueWithin time.Duration
}

// settle waits until every accepted order is stored and final, no stored
// order is in progress, and every stage queue is empty, then checks the
// invariants. All failures are reported together, with the seed.
func settle(c *cluster, e expect) map[string]pipeline.Order {
	r := c.r
	r.Helper()
	if e.finalWithin == 0 {
		e.finalWithin = 3 * time.Minute
	}
	if e.queueWithin == 0 {
		e.queueWithin = 2 * time.Minute
	}
	var orders map[string]pipeline.Order
	var why string
	allFinal := func() bool {
		var err error
		orders, err = c.orders()
		if err != nil {
			why = err.Error()
			return false
		}
		for id := range e.accepted {
			if _, ok := orders[id]; !ok {
				why = "accepted order " + id + " is not stored"
				return false
			}
		}
		for id, o := range orders {
			if !o.Status.Final() {
				why = fmt.Sprintf("order %s is %s", id, o.Status)
				return false
			}
		}
		return true
	}
	start := time.Now()
	if !testkit.Poll(e.finalWithin, time.Second, allFinal) {
		r.Fatalf("orders not final after %s: %s (%s)", e.finalWithin, why, statusCounts(orders))
	}
	r.Logf("all %d orders final after %s: %s", len(orders), time.Since(start).Round(time.Millisecond), statusCounts(orders))
	empty := func() bool {
		for _, st := range pipeline.Stages {
			n, err := c.queueDepth(c.env.QueueURL(st, false))
			if err != nil || n > 0 {
				why = fmt.Sprintf("%s queue holds %d messages (%v)", st, n, err)
				return false
			}
		}
		return true
	}
	start = time.Now()
	if !testkit.Poll(e.queueWithin, time.Second, empty) {
		r.Fatalf("stage queues not empty after %s: %s", e.queueWithin, why)
	}
	r.Logf("stage queues empty after %s", time.Since(start).Round(time.Millisecond))
	// Late duplicates were handled by now; read the final state again.
	if !allFinal() {
		r.Fatalf("after the queues emptied: %s", why)
	}
	if errs := check(c, e, orders); len(errs) > 0 {
		sort.Strings(errs)
		if len(errs) > 40 {
			errs = append(errs[:40], fmt.Sprintf("... and %d more", len(errs)-40))
		}
		r.Fatalf("%d invariant violations:\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	return orders
}

// check evaluates the invariants on a settled run and returns every
// violation.
func check(c *cluster, e expect, orders map[string]pipeline.Order) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	// Every check below loops over a sample; none may be empty, or the
	// check would pass without looking at anything.
	if len(e.accepted) == 0 || len(orders) == 0 {
		bad("no accepted (%d) or stored (%d) orders to check", len(e.accepted), len(orders))
	}
	if len(e.stock) == 0 {
		bad("no initial stock given: stock conservation would check nothing")
	}

	// 1. Every accepted order is final (settle waited for it).
	// 2. Stock is conserved: initial = available + units held by orders
	//    that hold stock (RESERVED/PAID/SHIPPED; only SHIPPED once final).
	held := map[string]int64{}
	for _, o := range orders {
		switch o.Status {
		case pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped:
			for _, l := range o.Lines() {
				held[l.SKU] += l.Quantity
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := c.env.Store()
	for sku, initial := range e.stock {
		avail, err := st.Stock(ctx, sku)
		if err != nil {
			bad("stock of %s: %v", sku, err)
			continue
		}
		if avail < 0 {
			bad("%s: available %d is negative (oversold)", sku, avail)
		}
		if initial != avail+held[sku] {
			bad("%s: initial stock %d != available %d + held by orders %d (%+d units)", sku, initial, avail, held[sku], avail+held[sku]-initial)
		}
	}

	// 3. Money, from the payment ledger: at most one capture per order (for
	//    its total, under its id), exactly one for every PAID or SHIPPED
	//    order, exactly one refund for every CANCELLED order that was
	//    captured, no refund without a capture. An order that does not
	//    exist, or is REJECTED or PAYMENT_FAILED, holds no money: the payment
	//    stage charges before its conditional write and refunds when the
	//    condition shows the charge is not the order's, so such an order may
	//    have a capture only together with exactly one refund of it.
	captures, refunds := map[string][]sandbox.Entry{}, map[string][]sandbox.Entry{}
	for _, en := range c.ledger() {
		switch en.Kind {
		case sandbox.KindCapture:
			captures[en.OrderID] = append(captures[en.OrderID], en)
			if en.Key != en.OrderID {
				bad("capture %s of order %s was made under key %q, not the order id", en.ID, en.OrderID, en.Key)
			}
		case sandbox.KindRefund:
			// Counted by the order they return money for, whatever key
			// they were made under: the effect is what must be unique.
			refunds[en.OrderID] = append(refunds[en.OrderID], en)
		default:
			bad("ledger entry of unknown kind %q for order %s", en.Kind, en.OrderID)
		}
	}
	// netZero reports whether the order's capture was returned in full by
	// exactly one refund.
	netZero := func(id string) bool {
		cs, rs := captures[id], refunds[id]
		return len(cs) == 1 && len(rs) == 1 && rs[0].Amount == cs[0].Amount
	}
	for id, cs := range captures {
		if len(cs) > 1 {
			bad("order %s charged %d times", id, len(cs))
		}
		o, known := orders[id]
		if !known {
			if !netZero(id) {
				bad("order %s does not exist but was charged (%d captures, %d refunds; want the capture refunded once, in full)", id, len(cs), len(refunds[id]))
			}
			continue
		}
		if cs[0].Amount != o.Total {
			bad("order %s charged %v, its total is %v", id, cs[0].Amount, o.Total)
		}
	}
	for id, rs := range refunds {
		if len(captures[id]) == 0 {
			bad("order %s refunded without a capture", id)
		}
		if len(rs) > 1 {
			bad("order %s refunded %d times", id, len(rs))
		}
	}
	for id, o := range orders {
		nc, nr := len(captures[id]), len(refunds[id])
		switch o.Status {
		case pipeline.StatusPaid, pipeline.StatusShipped:
			if nc != 1 {
				bad("%s order %s has %d captures, want 1", o.Status, id, nc)
			} else if o.ChargeID != captures[id][0].ID {
				bad("%s order %s records charge %q, the ledger %q", o.Status, id, o.ChargeID, captures[id][0].ID)
			}
			if nr != 0 {
				bad("%s order %s was refunded", o.Status, id)
			}
		case pipeline.StatusCancelled:
			if nc == 1 && nr != 1 {
				bad("cancelled order %s was charged but has %d refunds in the ledger, want 1", id, nr)
			}
			if (o.ChargeID != "" || o.RefundID != "") && (nc != 1 || nr != 1) {
				bad("cancelled order %s records charge %q and refund %q, the ledger holds %d captures and %d refunds, want 1 and 1", id, o.ChargeID, o.RefundID, nc, nr)
			}
			if nc == 1 && nr == 1 && o.RefundID == "" {
				bad("cancelled order %s was refunded (%s) but its record does not say so", id, refunds[id][0].ID)
			}
		default: // REJECTED, PAYMENT_FAILED: hold no money
			if (nc != 0 || nr != 0) && !netZero(id) {
				bad("%s order %s has %d captures and %d refunds, want none or one capture refunded once, in full", o.Status, id, nc, nr)
			}
			if o.ChargeID != "" || o.RefundID != "" {
				bad("%s order %s records charge %q and refund %q, want neither", o.Status, id, o.ChargeID, o.RefundID)
			}
		}
	}

	// 4. Cancellations: a 200 means the order ends CANCELLED; a 409 names
	//    a final status the order keeps.
	for id, cr := range e.cancels {
		o := orders[id]
		switch cr.code {
		case 200:
			if o.Status != pipeline.StatusCancelled {
				bad("cancel of %s answered 200 but the order is %s", id, o.Status)
			}
		case 409:
			if !cr.status.Final() || cr.status != o.Status {
				bad("cancel of %s answered 409 naming %q, the order is %s", id, cr.status, o.Status)
			}
		default:
			bad("cancel of %s got no final answer (%d)", id, cr.code)
		}
	}

	// 5. Dead letters: only those the run put there on purpose.
	dlqs := c.dlqURLs()
	if len(dlqs) < len(pipeline.Stages) {
		bad("found %d DLQs, want at least one per stage (%d)", len(dlqs), len(pipeline.Stages))
	}
	for name := range e.dlq {
		if _, ok := dlqs[name]; !ok {
			bad("expected messages in DLQ %q, which does not exist", name)
		}
	}
	for name, url := range dlqs {
		n, err := c.queueDepth(url)
		if err != nil {
			bad("%s: %v", name, err)
			continue
		}
		if want := e.dlq[name]; n != want {
			var reasons []string
			for _, m := range c.peek(url) {
				reasons = append(reasons, fmt.Sprintf("reason=%q receives=%s body=%.120s", attr(m.MessageAttributes, delivery.AttrReason),
					m.Attributes["ApproximateReceiveCount"], aws.ToString(m.Body)))
			}
			bad("%s holds %d messages, want %d: %s", name, n, want, strings.Join(reasons, "; "))
		}
	}
	return errs
}

func statusCounts(orders map[string]pipeline.Order) string {
	n := map[pipeline.Status]int{}
	for _, o := range orders {
		n[o.Status]++
	}
	var parts []string
	for _, s := range pipeline.AllStatuses {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", s, n[s]))
		}
	}
	return strings.Join(parts, " ")
}
