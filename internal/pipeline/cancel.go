package pipeline

import (
	"context"
	"errors"
	"fmt"
)

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
		if err := s.announce(ctx, next, ""); err != nil {
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
