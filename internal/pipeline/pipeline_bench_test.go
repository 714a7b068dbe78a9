package pipeline_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// benchEnvelope is an InventoryReserved message body as SQS delivers it:
// the EventBridge envelope around a three-line order.
func benchEnvelope(b *testing.B) []byte {
	b.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	o, err := pipeline.NewOrder("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", pipeline.OrderRequest{
		Customer: pipeline.Customer{ID: "cust-0042", Email: "customer42@example.com", Phone: "+14155550100"},
		Items: []pipeline.Item{
			{SKU: "SKU-WIDGET", Quantity: 2, UnitPrice: pipeline.Money{Amount: 500, Currency: "USD"}},
			{SKU: "SKU-GADGET", Quantity: 1, UnitPrice: pipeline.Money{Amount: 750, Currency: "USD"}},
			{SKU: "SKU-GIZMO", Quantity: 3, UnitPrice: pipeline.Money{Amount: 1000, Currency: "USD"}},
		},
		Payment:         pipeline.Payment{Token: "tok_visa"},
		ShippingAddress: pipeline.Address{Name: "Ada Lovelace", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
	}, now)
	if err != nil {
		b.Fatal(err)
	}
	o.Status = pipeline.StatusReserved
	o.History[pipeline.StatusReserved] = now.Add(20 * time.Millisecond)
	o.Trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	detail, err := pipeline.EncodeDetail(pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o})
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(pipeline.Envelope{Version: "0", ID: "6a7e8feb-b491-4cf7-a9f1-bf3703467718", DetailType: string(pipeline.EventInventoryReserved),
		Source: pipeline.EventSource, Account: "000000000000", Time: now, Region: "us-east-1", Resources: []string{}, Detail: json.RawMessage(detail)})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodeEvent is the first thing every stage does with every
// message: parse the envelope and the order in it.
func BenchmarkDecodeEvent(b *testing.B) {
	body := benchEnvelope(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pipeline.DecodeEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOrderValidate is the inventory stage's check of an order from
// any producer (regular expressions, the email parser, the total).
func BenchmarkOrderValidate(b *testing.B) {
	ev, err := pipeline.DecodeEvent(benchEnvelope(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := ev.Order.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAndValidate is both, per message.
func BenchmarkDecodeAndValidate(b *testing.B) {
	body := benchEnvelope(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := pipeline.DecodeEvent(body)
		if err != nil {
			b.Fatal(err)
		}
		if err := ev.Order.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeDetail is the other half of every stage: the order
// snapshot of the event it emits.
func BenchmarkEncodeDetail(b *testing.B) {
	ev, err := pipeline.DecodeEvent(benchEnvelope(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pipeline.EncodeDetail(ev); err != nil {
			b.Fatal(err)
		}
	}
}
