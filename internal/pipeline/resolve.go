package pipeline

import (
	"context"
	"errors"
	"fmt"
)

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
			if err := s.announce(ctx, cur, ""); err != nil {
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
