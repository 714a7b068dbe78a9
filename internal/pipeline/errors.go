package pipeline

import (
	"errors"
	"fmt"
)

// Reasons for dead-lettering or rejecting, used as metric labels and in the
// DLQ message attribute, so they are a short closed set.
const (
	ReasonMalformed  = "malformed"
	ReasonWrongEvent = "wrong_event"
	ReasonTooLarge   = "too_large"
	ReasonNotFound   = "order_not_found"
	ReasonInvalid    = "invalid_order"
	// ReasonPriceMismatch is the Reason of an order rejected because a line's
	// unit price differs from the catalogue price of its SKU.
	ReasonPriceMismatch = "price_mismatch"
)

// PermanentError is a failure that retrying cannot fix: the message is
// dead-lettered at once instead of being retried.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent with a short reason.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// IsPermanent reports whether err (or anything it wraps) is permanent, and
// its reason.
func IsPermanent(err error) (string, bool) {
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Reason, true
	}
	return "", false
}

// ErrNotFound means the order (or SKU) does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict means a conditional write lost: the order is not in the status
// the change expected. The caller reads the order to decide what it means.
var ErrConflict = errors.New("order status changed concurrently")

// ErrIdempotencyMismatch means an Idempotency-Key was reused with a
// different request.
var ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

// StockError says why a reservation failed: a SKU unknown or short.
type StockError struct {
	SKU       string
	Unknown   bool
	Requested int64
	Available int64
}

func (e *StockError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("unknown SKU %s", e.SKU)
	}
	return fmt.Sprintf("insufficient stock for %s: requested %d, available %d", e.SKU, e.Requested, e.Available)
}

// PriceError says a reservation failed because the order's unit price for a
// SKU differs from the catalogue price.
type PriceError struct {
	SKU       string
	Catalogue Money
	Ordered   Money
}

func (e *PriceError) Error() string {
	return fmt.Sprintf("price mismatch for %s: the catalogue says %s, the order %s", e.SKU, e.Catalogue, e.Ordered)
}

// LevelError says a stock adjustment was refused because it would take the
// level of SKU outside 0..MaxAvailable; Available is the level it found.
type LevelError struct {
	SKU       string
	Available int64
	Delta     int64
}

func (e *LevelError) Error() string {
	return fmt.Sprintf("stock of %s is %d: adding %d would leave it outside 0..%d", e.SKU, e.Available, e.Delta, MaxAvailable)
}

// DeclinedError is a payment the provider refused for good (card declined,
// insufficient funds). Retrying will not help.
type DeclinedError struct {
	Code    string
	Message string
}

func (e *DeclinedError) Error() string { return "payment declined: " + e.Code + ": " + e.Message }

// StatusError is returned when an operation is not allowed in the order's
// current status (for example cancelling a shipped order).
type StatusError struct {
	OrderID string
	Status  Status
	Op      string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("cannot %s order %s: it is %s", e.Op, e.OrderID, e.Status)
}

// Reasons for handing a message back to its queue for a newer release
// instead of acting on it or dead-lettering it (see DeferredError).
const (
	// ReasonNewerSchema: the event's detail carries a schema_version
	// higher than this release's SchemaVersion.
	ReasonNewerSchema = "newer_schema"
	// ReasonUnknownEvent: the event comes from the pipeline's own source
	// with a detail-type this release does not know.
	ReasonUnknownEvent = "unknown_event"
)

// DeferReasons lists every reason of a DeferredError.
var DeferReasons = []string{ReasonNewerSchema, ReasonUnknownEvent}

// DeferredError is an event that a newer release of the pipeline wrote and
// this release must neither act on nor dead-letter: during a deploy a
// task of the newer release, reading the same queue, will take it. The
// message goes back to its queue with a back-off long enough to outlast a
// deploy before the queue's dead-letter rule applies.
type DeferredError struct {
	Reason string
	Err    error
}

func (e *DeferredError) Error() string { return e.Err.Error() }
func (e *DeferredError) Unwrap() error { return e.Err }

// Deferred marks err as a hand-back to a newer release, with one of
// DeferReasons.
func Deferred(reason string, err error) error {
	return &DeferredError{Reason: reason, Err: err}
}

// IsDeferred reports whether err (or anything it wraps) is a hand-back to
// a newer release, and its reason.
func IsDeferred(err error) (string, bool) {
	var d *DeferredError
	if errors.As(err, &d) {
		return d.Reason, true
	}
	return "", false
}
