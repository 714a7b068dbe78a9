package pipeline

import (
	"context"
	"fmt"
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

	// The body decoded once per delivery (see Decode): the handler, the
	// tracing middleware and the delivery's log lines all read it.
	event     Event
	decodeErr error
	decoded   bool
}

// Decode returns m with its body decoded as an EventBridge event, so that
// everything that handles this delivery reads the one result. Decoding a
// message twice decodes it once.
func (m Message) Decode() Message {
	if !m.decoded {
		m.event, m.decodeErr = DecodeEvent(m.Body)
		m.decoded = true
	}
	return m
}

// Event returns the event the body holds, or the permanent error why it
// holds none; on an error the event carries what could be read (its type
// and order id, when present). It decodes the body now if Decode was not
// called.
func (m Message) Event() (Event, error) {
	if !m.decoded {
		return DecodeEvent(m.Body)
	}
	return m.event, m.decodeErr
}

// WithEvent returns m carrying ev as its decoded event (for middleware
// that adds to the order, as tracing adds its trace context).
func (m Message) WithEvent(ev Event) Message {
	m.event, m.decodeErr, m.decoded = ev, nil, true
	return m
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
	Store     Orders
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
		ev, err := m.Event()
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
