package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Stage names one of the three stage queues.
type Stage string

// The stages, in the order an order meets them.
const (
	StageInventory Stage = "inventory"
	StagePayment   Stage = "payment"
	StageShipping  Stage = "shipping"
)

// Stages lists every stage in order.
var Stages = []Stage{StageInventory, StagePayment, StageShipping}

// Message is one delivery of a queue message to a handler.
type Message struct {
	ID           string
	Body         []byte
	ReceiveCount int
}

// Outcome is how a handled message ended when the handler returned nil.
type Outcome string

// Handler outcomes. Errors are classified by the consumer: a permanent error
// is dead-lettered, any other is retried.
const (
	OutcomeOK        Outcome = "ok"
	OutcomeRejected  Outcome = "rejected"
	OutcomeDuplicate Outcome = "duplicate"
	OutcomeConflict  Outcome = "conflict"
)

// Handler processes one message. It is a plain function; recovery,
// deadlines, metrics and logging wrap it. Returning nil acknowledges the
// message.
type Handler func(ctx context.Context, m Message) (Outcome, error)

// Service holds the stage handlers' dependencies.
type Service struct {
	Store     Store
	Publisher Publisher
	Notifier  Notifier
	Payments  PaymentGateway
	Carrier   Carrier
	Observer  Observer
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) observer() Observer {
	if s.Observer != nil {
		return s.Observer
	}
	return nopObserver{}
}

// Handler returns the handler of a stage's queue.
func (s *Service) Handler(stage Stage) Handler {
	var h func(context.Context, Event) (Outcome, error)
	var accepts []EventType
	switch stage {
	case StageInventory:
		h, accepts = s.inventory, []EventType{EventOrderPlaced, EventOrderCancelRequested}
	case StagePayment:
		h, accepts = s.payment, []EventType{EventInventoryReserved}
	case StageShipping:
		h, accepts = s.shipping, []EventType{EventPaymentCaptured}
	default:
		panic(fmt.Sprintf("pipeline: unknown stage %q", stage))
	}
	return func(ctx context.Context, m Message) (Outcome, error) {
		ev, err := DecodeEvent(m.Body)
		if err != nil {
			return "", err
		}
		ok := false
		for _, t := range accepts {
			ok = ok || t == ev.Type
		}
		if !ok {
			return "", Permanent(ReasonWrongEvent, fmt.Errorf("%s stage does not handle %s events", stage, ev.Type))
		}
		return h(ctx, ev)
	}
}

// inventory reserves every SKU and moves the order PLACED→RESERVED in one
// atomic write, or rejects it.
func (s *Service) inventory(ctx context.Context, ev Event) (Outcome, error) {
	if ev.Type == EventOrderCancelRequested {
		_, err := s.Cancel(ctx, ev.Order.ID)
		var se *StatusError
		switch {
		case errors.As(err, &se):
			return OutcomeConflict, nil
		case errors.Is(err, ErrNotFound):
			return "", Permanent(ReasonNotFound, fmt.Errorf("cancel order %s: %w", ev.Order.ID, err))
		case err != nil:
			return "", err
		}
		return OutcomeOK, nil
	}
	o := ev.Order
	if o.Status != StatusPlaced {
		return "", Permanent(ReasonInvalid, fmt.Errorf("OrderPlaced event for order %s has status %s", o.ID, o.Status))
	}
	if err := o.Validate(); err != nil {
		return s.reject(ctx, o, err.Error())
	}
	now := s.now()
	next, err := o.transition(StatusReserved, now)
	if err != nil {
		return "", Permanent(ReasonInvalid, err)
	}
	err = s.Store.Apply(ctx, Change{Order: next, From: StatusPlaced, Upsert: true, Reserve: o.Lines()})
	var stock *StockError
	switch {
	case errors.As(err, &stock):
		return s.reject(ctx, o, stock.Error())
	case errors.Is(err, ErrConflict):
		return s.resolve(ctx, StageInventory, o.ID)
	case err != nil:
		return "", fmt.Errorf("reserve stock for order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusPlaced, StatusReserved)
	if err := s.Publisher.Publish(ctx, Event{Type: EventInventoryReserved, Order: next}); err != nil {
		return "", fmt.Errorf("publish InventoryReserved for order %s: %w", o.ID, err)
	}
	return OutcomeOK, nil
}

func (s *Service) reject(ctx context.Context, o Order, reason string) (Outcome, error) {
	if o.Status == "" {
		o.Status = StatusPlaced
	}
	next, err := o.transition(StatusRejected, s.now())
	if err != nil {
		return "", Permanent(ReasonInvalid, err)
	}
	next.Reason = reason
	err = s.Store.Apply(ctx, Change{Order: next, From: StatusPlaced, Upsert: true})
	switch {
	case errors.Is(err, ErrConflict):
		return s.resolve(ctx, StageInventory, o.ID)
	case err != nil:
		return "", fmt.Errorf("reject order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusPlaced, StatusRejected)
	s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
	if err := s.announce(ctx, next); err != nil {
		return "", err
	}
	return OutcomeRejected, nil
}

// payment charges the order with the order id as idempotency key, then
// moves it RESERVED→PAID, or to PAYMENT_FAILED with its stock released, in
// one conditional write. Nothing is read before the charge: the key makes a
// repeated charge return the first one, and the write decides progress.
// Only when its condition fails does resolvePayment read the order, and it
// refunds the charge when the order it finds will never hold it.
func (s *Service) payment(ctx context.Context, ev Event) (Outcome, error) {
	o := ev.Order
	if o.Status != StatusReserved {
		return "", Permanent(ReasonInvalid, fmt.Errorf("InventoryReserved event for order %s has status %s", o.ID, o.Status))
	}
	chargeID, err := s.Payments.Charge(ctx, ChargeRequest{IdempotencyKey: o.ID, OrderID: o.ID, Amount: o.Total, Token: o.Payment.Token})
	var declined *DeclinedError
	if errors.As(err, &declined) {
		next, terr := o.transition(StatusPaymentFailed, s.now())
		if terr != nil {
			return "", Permanent(ReasonInvalid, terr)
		}
		next.Reason = declined.Error()
		err = s.Store.Apply(ctx, Change{Order: next, From: StatusReserved, Release: o.Lines()})
		switch {
		case errors.Is(err, ErrConflict):
			return s.resolvePayment(ctx, o, "", false)
		case err != nil:
			return "", fmt.Errorf("record declined payment for order %s: %w", o.ID, err)
		}
		s.observer().Transitioned(StatusReserved, StatusPaymentFailed)
		s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
		if err := s.announce(ctx, next); err != nil {
			return "", err
		}
		return OutcomeRejected, nil
	}
	if err != nil {
		return "", fmt.Errorf("charge order %s: %w", o.ID, err)
	}
	next, err := o.transition(StatusPaid, s.now())
	if err != nil {
		return "", Permanent(ReasonInvalid, err)
	}
	next.ChargeID = chargeID
	err = s.Store.Apply(ctx, Change{Order: next, From: StatusReserved})
	switch {
	case errors.Is(err, ErrConflict):
		return s.resolvePayment(ctx, o, chargeID, true)
	case err != nil:
		return "", fmt.Errorf("record payment for order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusReserved, StatusPaid)
	if err := s.announce(ctx, next); err != nil {
		return "", err
	}
	return OutcomeOK, nil
}

// shipping books the shipment with the order id as idempotency key and
// moves the order PAID→SHIPPED with its tracking number.
func (s *Service) shipping(ctx context.Context, ev Event) (Outcome, error) {
	o := ev.Order
	if o.Status != StatusPaid {
		return "", Permanent(ReasonInvalid, fmt.Errorf("PaymentCaptured event for order %s has status %s", o.ID, o.Status))
	}
	sh, err := s.Carrier.Book(ctx, ShipmentRequest{IdempotencyKey: o.ID, OrderID: o.ID, Address: o.ShippingAddress, Items: o.Items})
	if err != nil {
		return "", fmt.Errorf("book shipment for order %s: %w", o.ID, err)
	}
	next, err := o.transition(StatusShipped, s.now())
	if err != nil {
		return "", Permanent(ReasonInvalid, err)
	}
	next.TrackingNumber, next.Carrier = sh.TrackingNumber, sh.Carrier
	err = s.Store.Apply(ctx, Change{Order: next, From: StatusPaid})
	switch {
	case errors.Is(err, ErrConflict):
		return s.resolve(ctx, StageShipping, o.ID)
	case err != nil:
		return "", fmt.Errorf("record shipment for order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusPaid, StatusShipped)
	s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
	if err := s.announce(ctx, next); err != nil {
		return "", err
	}
	return OutcomeOK, nil
}

// resolve decides what a lost condition means. If the stored order is in the
// status this stage produces, the earlier attempt wrote it but may have died
// before announcing it, so the announcement is repeated (harmless: every
// consumer is idempotent). Further along, it is a plain duplicate. A
// cancelled order gets what this stage did undone.
func (s *Service) resolve(ctx context.Context, stage Stage, id string) (Outcome, error) {
	cur, err := s.Store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		// Reliability fix: an event for an order that was never stored
		// (only OrderPlaced may create one) will not find it on a retry
		// either; dead-letter it at once instead of retrying in a loop.
		return "", Permanent(ReasonNotFound, fmt.Errorf("%s stage: %w", stage, err))
	}
	if err != nil {
		return "", fmt.Errorf("read order %s after a lost condition: %w", id, err)
	}
	return s.decide(ctx, stage, cur)
}

// decide is resolve's verdict on the stored order cur.
func (s *Service) decide(ctx context.Context, stage Stage, cur Order) (Outcome, error) {
	id := cur.ID
	produced := map[Stage][]Status{
		StageInventory: {StatusReserved, StatusRejected},
		StagePayment:   {StatusPaid, StatusPaymentFailed},
		StageShipping:  {StatusShipped},
	}[stage]
	for _, st := range produced {
		if cur.Status == st {
			if err := s.announce(ctx, cur); err != nil {
				return "", err
			}
			return OutcomeDuplicate, nil
		}
	}
	if cur.Status == StatusCancelled {
		if err := s.undo(ctx, stage, cur); err != nil {
			return "", err
		}
		return OutcomeConflict, nil
	}
	if cur.Status.rank() > map[Stage]int{StageInventory: 1, StagePayment: 2, StageShipping: 3}[stage] || cur.Status.Final() {
		return OutcomeDuplicate, nil
	}
	// Still before this stage: the condition failed for another reason
	// (for example an order stored by the intake with different content).
	return "", fmt.Errorf("order %s is %s, expected it to be ready for %s", id, cur.Status, stage)
}

// resolvePayment is resolve for the payment stage, whose condition failed
// after it charged o under the order id (captured, with chargeID) or was
// declined. The same key always gives the same charge, so the stored order
// decides whose charge it is:
//   - PAID or further: the order holds it; a duplicate (PAID re-announces).
//   - CANCELLED: undo refunds it by lookup, as for a cancel.
//   - unknown, or REJECTED: the order never will hold it. Only the inventory
//     stage writes RESERVED, and before it publishes InventoryReserved, so
//     no legitimate event gets here; the charge is refunded by the order's
//     key (a decline means nothing was captured), nothing is written, and
//     the message is dead-lettered.
//   - PAYMENT_FAILED: re-announced; if this attempt captured (a token that
//     now succeeds), the capture is refunded first.
//   - PLACED, or RESERVED since the write: the order has not reached the
//     payment stage yet and will take this very charge when it does, so the
//     message is retried, as by the other stages. Refunding now would be
//     wrong: the later charge under the same key would return the refunded
//     one.
func (s *Service) resolvePayment(ctx context.Context, o Order, chargeID string, captured bool) (Outcome, error) {
	cur, err := s.Store.Get(ctx, o.ID)
	if errors.Is(err, ErrNotFound) {
		if rerr := s.refundStray(ctx, o, chargeID); rerr != nil {
			return "", rerr
		}
		return "", Permanent(ReasonNotFound, fmt.Errorf("%s stage: InventoryReserved for an unknown order, any charge under its key refunded: %w", StagePayment, err))
	}
	if err != nil {
		return "", fmt.Errorf("read order %s after a lost condition: %w", o.ID, err)
	}
	switch {
	case cur.Status == StatusRejected:
		if err := s.refundStray(ctx, o, chargeID); err != nil {
			return "", err
		}
		return "", Permanent(ReasonInvalid, fmt.Errorf("%s stage: InventoryReserved for order %s, which is %s, any charge under its key refunded", StagePayment, o.ID, cur.Status))
	case cur.Status == StatusPaymentFailed && captured:
		if err := s.refundStray(ctx, o, chargeID); err != nil {
			return "", err
		}
	}
	return s.decide(ctx, StagePayment, cur)
}

// refundStray refunds, by the order's charge key, a charge the stored
// order does not hold and never will. A decline means nothing was captured
// under the key. Nothing is written: the order is unknown or final in a
// status that records no charge.
func (s *Service) refundStray(ctx context.Context, o Order, chargeID string) error {
	_, err := s.Payments.Refund(ctx, RefundRequest{IdempotencyKey: RefundKey(o.ID), OrderID: o.ID, ChargeID: chargeID, Amount: o.Total})
	var declined *DeclinedError
	if err != nil && !errors.As(err, &declined) {
		return fmt.Errorf("refund the charge of order %s, which does not hold it: %w", o.ID, err)
	}
	return nil
}

// undo reverses the side effect a stage may have had outside the store when
// the order was cancelled under it.
func (s *Service) undo(ctx context.Context, stage Stage, cur Order) error {
	switch stage {
	case StagePayment:
		// The charge may have succeeded just before the cancel won. Refund
		// with the same key the cancel uses, so there is at most one refund.
		return s.refund(ctx, cur, true)
	case StageShipping:
		if err := s.Carrier.Cancel(ctx, cur.ID); err != nil {
			return fmt.Errorf("void shipment of cancelled order %s: %w", cur.ID, err)
		}
	}
	return nil
}

// announce publishes the event and the customer notification that belong to
// the order's current status. Both must succeed before the message that
// caused them is acknowledged.
func (s *Service) announce(ctx context.Context, o Order) error {
	var et EventType
	switch o.Status {
	case StatusReserved:
		et = EventInventoryReserved
	case StatusPaid:
		et = EventPaymentCaptured
	case StatusShipped:
		et = EventOrderShipped
	case StatusRejected:
		et = EventOrderRejected
	case StatusPaymentFailed:
		et = EventPaymentFailed
	case StatusCancelled:
		et = EventOrderCancelled
	default:
		return nil
	}
	// The notification goes first: once the event is out, the next stage
	// may move the order on before a retry of this message, and a retry
	// re-announces only an order still in the status it produced.
	if n, ok := NotificationFor(o); ok {
		if err := s.Notifier.Notify(ctx, n); err != nil {
			return fmt.Errorf("notify %s for order %s: %w", n.Event, o.ID, err)
		}
	}
	if err := s.Publisher.Publish(ctx, Event{Type: et, Order: o}); err != nil {
		return fmt.Errorf("publish %s for order %s: %w", et, o.ID, err)
	}
	return nil
}

// Cancel moves a PLACED, RESERVED or PAID order to CANCELLED, releasing its
// stock in the same write and refunding it when it was paid. It returns a
// *StatusError when the order is already shipped or final, ErrNotFound when
// there is no such order. Racing the stage handlers, exactly one side wins
// each conditional write and the loser re-reads.
func (s *Service) Cancel(ctx context.Context, id string) (Order, error) {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := s.Store.Get(ctx, id)
		if err != nil {
			return Order{}, err
		}
		if cur.Status == StatusCancelled {
			// Finish a refund that an earlier attempt may not have made.
			if err := s.refund(ctx, cur, false); err != nil {
				return cur, err
			}
			return cur, &StatusError{OrderID: id, Status: cur.Status, Op: "cancel"}
		}
		if !CanTransition(cur.Status, StatusCancelled) {
			return cur, &StatusError{OrderID: id, Status: cur.Status, Op: "cancel"}
		}
		next, err := cur.transition(StatusCancelled, s.now())
		if err != nil {
			return cur, err
		}
		next.Reason = "cancelled by request"
		ch := Change{Order: next, From: cur.Status}
		if cur.Status != StatusPlaced {
			ch.Release = cur.Lines()
		}
		err = s.Store.Apply(ctx, ch)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return cur, fmt.Errorf("cancel order %s: %w", id, err)
		}
		s.observer().Transitioned(cur.Status, StatusCancelled)
		s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
		if cur.Status == StatusPaid {
			if err := s.refund(ctx, next, false); err != nil {
				return next, err
			}
		}
		if err := s.announce(ctx, next); err != nil {
			return next, err
		}
		return next, nil
	}
	return Order{}, fmt.Errorf("cancel order %s: status kept changing: %w", id, ErrConflict)
}

// RefundKey is the idempotency key of an order's refund.
func RefundKey(orderID string) string { return "refund-" + orderID }

// refund returns a cancelled order's charge once. The charge may be unknown
// to the order (a payment that succeeded just before the cancel won); with
// lookup set the gateway is asked to refund by the order's charge key.
func (s *Service) refund(ctx context.Context, o Order, lookup bool) error {
	if o.RefundID != "" || (o.ChargeID == "" && !lookup) {
		return nil
	}
	refundID, err := s.Payments.Refund(ctx, RefundRequest{IdempotencyKey: RefundKey(o.ID), OrderID: o.ID, ChargeID: o.ChargeID, Amount: o.Total})
	var declined *DeclinedError
	if errors.As(err, &declined) {
		// Nothing was charged under this order's key: nothing to refund.
		return nil
	}
	if err != nil {
		return fmt.Errorf("refund order %s: %w", o.ID, err)
	}
	rec := o
	rec.RefundID = refundID
	if err := s.Store.Apply(ctx, Change{Order: rec, From: StatusCancelled}); err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("record refund of order %s: %w", o.ID, err)
	}
	return nil
}

// NotificationFor returns the customer notification for the order's status.
func NotificationFor(o Order) (Notification, bool) {
	n := Notification{OrderID: o.ID, Customer: o.Customer.ID, Channels: []string{"email"}}
	if o.Customer.Phone != "" {
		n.Channels = append(n.Channels, "sms")
	}
	total := FormatMoney(o.Total)
	switch o.Status {
	case StatusPaid:
		n.Event = "OrderConfirmed"
		n.Subject = "Your order " + o.ID + " is confirmed"
		n.Text = fmt.Sprintf("Thank you! We received your payment of %s for order %s (%s). We will tell you when it ships.", total, o.ID, itemSummary(o.Items))
	case StatusShipped:
		n.Event = "OrderShipped"
		n.Subject = "Your order " + o.ID + " has shipped"
		n.Text = fmt.Sprintf("Order %s is on its way with %s. Tracking number: %s.", o.ID, o.Carrier, o.TrackingNumber)
	case StatusRejected:
		n.Event = "OrderRejected"
		n.Subject = "We could not accept your order " + o.ID
		n.Text = fmt.Sprintf("Sorry, order %s could not be accepted: %s. You have not been charged.", o.ID, o.Reason)
	case StatusPaymentFailed:
		n.Event = "PaymentFailed"
		n.Subject = "Payment for your order " + o.ID + " failed"
		n.Text = fmt.Sprintf("The payment of %s for order %s was declined, so the order was not placed. You have not been charged.", total, o.ID)
	case StatusCancelled:
		n.Event = "OrderCancelled"
		n.Subject = "Your order " + o.ID + " is cancelled"
		n.Text = fmt.Sprintf("Order %s is cancelled.", o.ID)
		if o.ChargeID != "" {
			n.Text += fmt.Sprintf(" The payment of %s will be refunded.", total)
		}
	default:
		return Notification{}, false
	}
	return n, true
}

func itemSummary(items []Item) string {
	var units int64
	for _, it := range items {
		units += it.Quantity
	}
	if units == 1 {
		return "1 item"
	}
	return fmt.Sprintf("%d items", units)
}

// FormatMoney renders an amount in major units, e.g. "12.50 USD".
func FormatMoney(m Money) string {
	digits, ok := currencies[m.Currency]
	if !ok || digits == 0 {
		return fmt.Sprintf("%d %s", m.Amount, m.Currency)
	}
	div := int64(1)
	for i := 0; i < digits; i++ {
		div *= 10
	}
	sign := ""
	a := m.Amount
	if a < 0 {
		sign, a = "-", -a
	}
	frac := fmt.Sprintf("%0*d", digits, a%div)
	return sign + fmt.Sprintf("%d", a/div) + "." + frac + " " + strings.TrimSpace(m.Currency)
}

// NextEvent returns the event that moves an order on from its current
// status, for re-publishing orders that sat too long (the stuck-order sweep).
func NextEvent(o Order) (Event, bool) {
	switch o.Status {
	case StatusPlaced:
		return Event{Type: EventOrderPlaced, Order: o}, true
	case StatusReserved:
		return Event{Type: EventInventoryReserved, Order: o}, true
	case StatusPaid:
		return Event{Type: EventPaymentCaptured, Order: o}, true
	}
	return Event{}, false
}
