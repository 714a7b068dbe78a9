package pipeline_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Fakes that record what a stage writes and publishes; a method the stage
// should not call panics through the nil embedded interface.
type recStore struct {
	pipeline.Store
	changes []pipeline.Change
}

func (s *recStore) Apply(_ context.Context, ch pipeline.Change) error {
	s.changes = append(s.changes, ch)
	return nil
}

type recBus struct{ events []pipeline.Event }

func (b *recBus) Publish(_ context.Context, evs ...pipeline.Event) error {
	b.events = append(b.events, evs...)
	return nil
}

type nopNotifier struct{}

func (nopNotifier) Notify(context.Context, pipeline.Notification) error { return nil }

type fixedCarrier struct{ pipeline.Carrier }

func (fixedCarrier) Book(context.Context, pipeline.ShipmentRequest) (pipeline.Shipment, error) {
	return pipeline.Shipment{TrackingNumber: "TRK-1", Carrier: "sandbox"}, nil
}

// The shipping stage encodes the shipped order once: the store gets it as
// Change.Doc and the OrderShipped event carries the same document as its
// detail, encoded after the tracking number was set.
func TestStageEncodesTheOrderOnceForStoreAndBus(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	o, err := pipeline.NewOrder("ord-enc", pipeline.OrderRequest{
		Customer:        pipeline.Customer{ID: "c-1", Email: "ada@example.com"},
		Items:           []pipeline.Item{{SKU: "SKU-WIDGET", Quantity: 1, UnitPrice: pipeline.Money{Amount: 500, Currency: "USD"}}},
		Payment:         pipeline.Payment{Token: "tok_visa"},
		ShippingAddress: pipeline.Address{Name: "Ada", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	o.Status, o.ChargeID = pipeline.StatusPaid, "ch_1"
	o.History[pipeline.StatusReserved], o.History[pipeline.StatusPaid] = now, now
	detail, err := pipeline.EncodeDetail(pipeline.Event{Type: pipeline.EventPaymentCaptured, Order: o})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(pipeline.Envelope{DetailType: string(pipeline.EventPaymentCaptured), Source: pipeline.EventSource, Detail: json.RawMessage(detail)})
	st, bus := &recStore{}, &recBus{}
	svc := &pipeline.Service{Store: st, Publisher: bus, Notifier: nopNotifier{}, Carrier: fixedCarrier{}, Now: func() time.Time { return now.Add(time.Second) }}
	out, err := svc.Handler(pipeline.StageShipping)(context.Background(), pipeline.Message{ID: "m-1", Body: body, ReceiveCount: 1}.Decode())
	if err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("shipping: %v %v", out, err)
	}
	if len(st.changes) != 1 || len(bus.events) != 1 {
		t.Fatalf("%d writes and %d events, want 1 and 1", len(st.changes), len(bus.events))
	}
	ch, ev := st.changes[0], bus.events[0]
	want, err := pipeline.EncodeOrder(ch.Order)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Doc != want {
		t.Fatalf("stored document is not the order written:\n%s\n%s", ch.Doc, want)
	}
	if ev.Type != pipeline.EventOrderShipped || ev.Detail != ch.Doc {
		t.Fatalf("event %s carries detail %q, want the stored document", ev.Type, ev.Detail)
	}
	if got, _ := pipeline.EncodeDetail(ev); got != ch.Doc {
		t.Fatal("EncodeDetail re-encoded an event that carries its detail")
	}
	var shipped pipeline.Order
	if err := json.Unmarshal([]byte(ch.Doc), &shipped); err != nil || shipped.TrackingNumber != "TRK-1" || shipped.Status != pipeline.StatusShipped {
		t.Fatalf("document %s (err %v) lacks the shipment", ch.Doc, err)
	}
}
