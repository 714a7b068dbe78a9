package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EventType is an EventBridge detail-type of the pipeline.
type EventType string

// Events on the bus. The first three route an order to the next stage
// queue; the others record an outcome for any interested consumer.
const (
	EventOrderPlaced          EventType = "OrderPlaced"
	EventInventoryReserved    EventType = "InventoryReserved"
	EventPaymentCaptured      EventType = "PaymentCaptured"
	EventOrderShipped         EventType = "OrderShipped"
	EventOrderRejected        EventType = "OrderRejected"
	EventPaymentFailed        EventType = "PaymentFailed"
	EventOrderCancelled       EventType = "OrderCancelled"
	EventOrderCancelRequested EventType = "OrderCancelRequested"
)

// knownEvents are the detail-types of this release.
var knownEvents = []EventType{EventOrderPlaced, EventInventoryReserved, EventPaymentCaptured, EventOrderShipped,
	EventOrderRejected, EventPaymentFailed, EventOrderCancelled, EventOrderCancelRequested}

// Known reports whether t is an event type of this release.
func (t EventType) Known() bool {
	for _, k := range knownEvents {
		if k == t {
			return true
		}
	}
	return false
}

// EventSource is the EventBridge source of every pipeline event.
const EventSource = "cloudcommerce.orders"

// Event is a pipeline event: its type and the order snapshot it carries as
// its detail.
type Event struct {
	Type  EventType
	Order Order
	// Detail, when set, is Order encoded by EncodeOrder (the document the
	// store just wrote), which EncodeDetail returns as it is.
	Detail string
}

// Envelope is the EventBridge event as SQS delivers it in a message body.
type Envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// MaxMessageBytes is the largest message body a stage accepts (the SQS
// limit); larger bodies are dead-lettered unread.
const MaxMessageBytes = 256 * 1024

// DecodeEvent parses an SQS message body holding an EventBridge envelope.
// It is the only parser of the envelope. Every error it returns is
// permanent (the same body will never parse), except a *DeferredError for
// an event a newer release wrote: a detail-type of the pipeline's source
// this release does not know (ReasonUnknownEvent), or a detail whose
// schema_version is higher than SchemaVersion (ReasonNewerSchema). Events
// of other sources and bodies that are not events stay permanent
// failures. With an error, the event
// still carries what could be read (its type and order id when present),
// for logs and operator tools.
func DecodeEvent(body []byte) (Event, error) {
	if len(body) > MaxMessageBytes {
		return Event{}, Permanent(ReasonTooLarge, fmt.Errorf("message body is %d bytes, over the %d-byte limit", len(body), MaxMessageBytes))
	}
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, Permanent(ReasonMalformed, fmt.Errorf("message body is not an EventBridge event: %w", err))
	}
	ev := Event{Type: EventType(env.DetailType)}
	if env.DetailType == "" || len(env.Detail) == 0 {
		ev.Order = peekOrder(env.Detail)
		return ev, Permanent(ReasonMalformed, errors.New("message body lacks detail-type or detail"))
	}
	if env.Source != EventSource {
		ev.Order = peekOrder(env.Detail)
		return ev, Permanent(ReasonWrongEvent, fmt.Errorf("event source %q is not %q", env.Source, EventSource))
	}
	if !ev.Type.Known() {
		// A newer release's event, routed to this stage's queue: a task of
		// that release takes it.
		ev.Order = peekOrder(env.Detail)
		return ev, Deferred(ReasonUnknownEvent, fmt.Errorf("%s is not an event type this release knows", env.DetailType))
	}
	// decodeOrder, not a Decoder: the detail is one complete value, and a
	// Decoder would copy it into a buffer of its own first.
	if err := decodeOrder(env.Detail, &ev.Order); err != nil {
		ev.Order = peekOrder(env.Detail)
		if v := ev.Order.SchemaVersion; v > SchemaVersion {
			return ev, Deferred(ReasonNewerSchema, fmt.Errorf("%s detail has schema_version %d, newer than this release's %d (and does not read as an order here: %v)", env.DetailType, v, SchemaVersion, err))
		}
		return ev, Permanent(ReasonMalformed, fmt.Errorf("%s detail is not an order: %w", env.DetailType, err))
	}
	if v := ev.Order.SchemaVersion; v > SchemaVersion {
		return ev, Deferred(ReasonNewerSchema, fmt.Errorf("%s detail has schema_version %d, newer than this release's %d", env.DetailType, v, SchemaVersion))
	}
	if ev.Order.ID == "" {
		return ev, Permanent(ReasonMalformed, fmt.Errorf("%s detail has no order_id", env.DetailType))
	}
	return ev, nil
}

// peekOrder reads the order id and trace context of a detail that is not
// a whole order, for logs and tracing of a message that will be
// dead-lettered.
func peekOrder(detail json.RawMessage) Order {
	var d struct {
		OrderID       string `json:"order_id"`
		Trace         string `json:"trace"`
		SchemaVersion int    `json:"schema_version"`
	}
	if len(detail) == 0 || json.Unmarshal(detail, &d) != nil {
		// Member by member: one of another type must not hide the others.
		var m map[string]json.RawMessage
		if json.Unmarshal(detail, &m) != nil {
			return Order{}
		}
		_ = json.Unmarshal(m["order_id"], &d.OrderID)
		_ = json.Unmarshal(m["trace"], &d.Trace)
		_ = json.Unmarshal(m["schema_version"], &d.SchemaVersion)
	}
	return Order{ID: d.OrderID, Trace: d.Trace, SchemaVersion: d.SchemaVersion}
}

// WithDetailTrace returns body, an EventBridge event, with detail.trace
// set to traceparent and every other field kept as it was, or nil when the
// body is not an event whose detail is an object.
func WithDetailTrace(body []byte, traceparent string) []byte {
	var env map[string]json.RawMessage
	if json.Unmarshal(body, &env) != nil {
		return nil
	}
	var detail map[string]json.RawMessage
	if json.Unmarshal(env["detail"], &detail) != nil || detail == nil {
		return nil
	}
	detail["trace"], _ = json.Marshal(traceparent)
	d, err := json.Marshal(detail)
	if err != nil {
		return nil
	}
	env["detail"] = d
	out, err := json.Marshal(env)
	if err != nil {
		return nil
	}
	return out
}

// EncodeDetail returns the event's detail JSON.
func EncodeDetail(ev Event) (string, error) {
	if ev.Detail != "" {
		return ev.Detail, nil
	}
	b, err := ev.Order.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("encode %s detail for order %s: %w", ev.Type, ev.Order.ID, err)
	}
	return string(b), nil
}

// EncodeOrder returns the order's JSON document: the stored order and the
// detail of the event that announces it.
func EncodeOrder(o Order) (string, error) {
	b, err := o.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("encode order %s: %w", o.ID, err)
	}
	return string(b), nil
}
