package pipeline

import (
	"context"
	"errors"
	"fmt"
)

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
	next, err = s.Store.Reserve(ctx, Change{Order: next, From: StatusPlaced, Upsert: true, Reserve: o.Lines()})
	var stock *StockError
	var price *PriceError
	switch {
	case errors.As(err, &stock):
		return s.reject(ctx, o, stock.Error())
	case errors.As(err, &price):
		return s.reject(ctx, o, ReasonPriceMismatch)
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
	doc, err := s.apply(ctx, Change{Order: next, From: StatusPlaced, Upsert: true})
	switch {
	case errors.Is(err, ErrConflict):
		return s.resolve(ctx, StageInventory, o.ID)
	case err != nil:
		return "", fmt.Errorf("reject order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusPlaced, StatusRejected)
	s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
	if err := s.announce(ctx, next, doc); err != nil {
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
		doc, err := s.apply(ctx, Change{Order: next, From: StatusReserved, Release: o.Lines()})
		switch {
		case errors.Is(err, ErrConflict):
			return s.resolvePayment(ctx, o, "", false)
		case err != nil:
			return "", fmt.Errorf("record declined payment for order %s: %w", o.ID, err)
		}
		s.observer().Transitioned(StatusReserved, StatusPaymentFailed)
		s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
		if err := s.announce(ctx, next, doc); err != nil {
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
	doc, err := s.apply(ctx, Change{Order: next, From: StatusReserved})
	switch {
	case errors.Is(err, ErrConflict):
		return s.resolvePayment(ctx, o, chargeID, true)
	case err != nil:
		return "", fmt.Errorf("record payment for order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusReserved, StatusPaid)
	if err := s.announce(ctx, next, doc); err != nil {
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
	doc, err := s.apply(ctx, Change{Order: next, From: StatusPaid})
	switch {
	case errors.Is(err, ErrConflict):
		return s.resolve(ctx, StageShipping, o.ID)
	case err != nil:
		return "", fmt.Errorf("record shipment for order %s: %w", o.ID, err)
	}
	s.observer().Transitioned(StatusPaid, StatusShipped)
	s.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))
	if err := s.announce(ctx, next, doc); err != nil {
		return "", err
	}
	return OutcomeOK, nil
}

// announce publishes the event and the customer notification that belong to
// the order's current status. Both must succeed before the message that
// caused them is acknowledged.
func (s *Service) announce(ctx context.Context, o Order, doc string) error {
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
	if err := s.Publisher.Publish(ctx, Event{Type: et, Order: o, Detail: doc}); err != nil {
		return fmt.Errorf("publish %s for order %s: %w", et, o.ID, err)
	}
	return nil
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

// apply stores a change with the order encoded once and returns that
// document, which the event announcing the change carries as its detail:
// the stored order and the event's detail are the same JSON, so the
// order is not encoded a second time for the bus.
func (s *Service) apply(ctx context.Context, ch Change) (string, error) {
	doc, err := EncodeOrder(ch.Order)
	if err != nil {
		return "", err
	}
	ch.Doc = doc
	return doc, s.Store.Apply(ctx, ch)
}
