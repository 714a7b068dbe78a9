package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The same order workflow as CloudCommerce's pipeline: reserve the stock,
// charge the card, ship, and notify the customer when the order is
// confirmed and when it ships; a rejected reservation or a declined card
// ends the order (a declined card releases the stock it reserved).

// Line is one order line.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// Order is the workflow's input.
type Order struct {
	ID       string    `json:"order_id"`
	Customer string    `json:"customer_id"`
	Lines    []Line    `json:"lines"`
	Token    string    `json:"payment_token"`
	Amount   int64     `json:"amount"`
	PlacedAt time.Time `json:"placed_at"`
}

// Final statuses, as CloudCommerce names them.
const (
	StatusShipped       = "SHIPPED"
	StatusRejected      = "REJECTED"
	StatusPaymentFailed = "PAYMENT_FAILED"
)

// Result is the workflow's output. FinalAt is when the final status was
// decided (the workflow's clock after the activity that decided it), as
// CloudCommerce's placed→final uses the time of the final status write.
type Result struct {
	ID       string    `json:"order_id"`
	Status   string    `json:"status"`
	ChargeID string    `json:"charge_id,omitempty"`
	Tracking string    `json:"tracking,omitempty"`
	FinalAt  time.Time `json:"final_at"`
}

// TokenDeclined is the card the in-memory gateway declines.
const TokenDeclined = "tok_chargeDeclined"

// Charge is the payment activity's answer: a declined card is an outcome,
// not a failure to retry.
type Charge struct {
	ID       string `json:"id,omitempty"`
	Declined bool   `json:"declined,omitempty"`
}

// Note is a customer notification.
type Note struct {
	Event   string `json:"event"`
	OrderID string `json:"order_id"`
	Text    string `json:"text"`
}

// OrderWorkflow runs one order to its final status.
func OrderWorkflow(ctx workflow.Context, o Order) (Result, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 10},
	})
	var a *Activities
	res := Result{ID: o.ID}
	notify := func(event, text string) error {
		return workflow.ExecuteActivity(ctx, a.Notify, Note{Event: event, OrderID: o.ID, Text: text}).Get(ctx, nil)
	}
	var reserved bool
	if err := workflow.ExecuteActivity(ctx, a.Reserve, o).Get(ctx, &reserved); err != nil {
		return res, fmt.Errorf("reserve stock for order %s: %w", o.ID, err)
	}
	if !reserved {
		res.Status, res.FinalAt = StatusRejected, workflow.Now(ctx)
		return res, notify("OrderRejected", "Sorry, order "+o.ID+" could not be accepted: out of stock.")
	}
	var ch Charge
	if err := workflow.ExecuteActivity(ctx, a.Charge, o).Get(ctx, &ch); err != nil {
		return res, fmt.Errorf("charge order %s: %w", o.ID, err)
	}
	if ch.Declined {
		if err := workflow.ExecuteActivity(ctx, a.Release, o).Get(ctx, nil); err != nil {
			return res, fmt.Errorf("release stock of order %s: %w", o.ID, err)
		}
		res.Status, res.FinalAt = StatusPaymentFailed, workflow.Now(ctx)
		return res, notify("PaymentFailed", "The payment for order "+o.ID+" was declined, so the order was not placed.")
	}
	res.ChargeID = ch.ID
	if err := notify("OrderConfirmed", "Thank you! We received your payment for order "+o.ID+"."); err != nil {
		return res, err
	}
	if err := workflow.ExecuteActivity(ctx, a.Ship, o).Get(ctx, &res.Tracking); err != nil {
		return res, fmt.Errorf("ship order %s: %w", o.ID, err)
	}
	res.Status, res.FinalAt = StatusShipped, workflow.Now(ctx)
	return res, notify("OrderShipped", "Order "+o.ID+" is on its way. Tracking number: "+res.Tracking+".")
}

// Activities do the stages' work in memory: stock, a payment ledger keyed
// by order id, a carrier, a notification count. Each is idempotent per
// order, as a retried activity may run twice.
type Activities struct {
	mu       sync.Mutex
	stock    map[string]int64
	reserved map[string]bool
	charges  map[string]string
	Notes    atomic.Int64
}

// NewActivities returns activities with the given stock.
func NewActivities(stock map[string]int64) *Activities {
	s := make(map[string]int64, len(stock))
	for k, v := range stock {
		s[k] = v
	}
	return &Activities{stock: s, reserved: map[string]bool{}, charges: map[string]string{}}
}

// Reserve takes the order's stock, all lines or none, and says whether it
// could.
func (a *Activities) Reserve(_ context.Context, o Order) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reserved[o.ID] {
		return true, nil
	}
	for _, l := range o.Lines {
		if a.stock[l.SKU] < l.Quantity {
			return false, nil
		}
	}
	for _, l := range o.Lines {
		a.stock[l.SKU] -= l.Quantity
	}
	a.reserved[o.ID] = true
	return true, nil
}

// Release gives back the stock the order reserved.
func (a *Activities) Release(_ context.Context, o Order) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.reserved[o.ID] {
		return nil
	}
	for _, l := range o.Lines {
		a.stock[l.SKU] += l.Quantity
	}
	delete(a.reserved, o.ID)
	return nil
}

// Charge captures the order's amount, once per order id.
func (a *Activities) Charge(_ context.Context, o Order) (Charge, error) {
	if o.Token == TokenDeclined {
		return Charge{Declined: true}, nil
	}
	if o.Amount <= 0 {
		return Charge{}, temporal.NewNonRetryableApplicationError("amount must be positive", "invalid_amount", errors.New(o.ID))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.charges[o.ID]; ok {
		return Charge{ID: id}, nil
	}
	id := "ch_" + o.ID
	a.charges[o.ID] = id
	return Charge{ID: id}, nil
}

// Ship books the parcel and returns its tracking number.
func (a *Activities) Ship(_ context.Context, o Order) (string, error) {
	return "TRK-" + o.ID, nil
}

// Notify counts the notification (the stand-in for SNS).
func (a *Activities) Notify(_ context.Context, n Note) error {
	if n.Text == "" {
		return errors.New("empty notification")
	}
	a.Notes.Add(1)
	return nil
}

// available returns a SKU's available units (unexported: every exported
// method is registered as an activity).
func (a *Activities) available(sku string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stock[sku]
}
