package pipeline_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// newerPaidOrder is a PAID order document as a newer release would write
// it: a higher schema_version is absent here (its version is this one's),
// but it carries members this release does not know at every level the
// codec keeps.
const newerPaidOrder = `{
  "schema_version": 2,
  "order_id": "ord-newer", "status": "PAID",
  "customer": {"id": "c-1", "email": "ada@example.com", "loyalty_tier": "gold"},
  "items": [
    {"sku": "SKU-A", "quantity": 1, "unit_price": {"amount": 500, "currency": "USD"}},
    {"sku": "SKU-B", "quantity": 2, "unit_price": {"amount": 250, "currency": "USD"}, "gift_wrap": {"paper": "red", "note": "hi \"there\""}}
  ],
  "total": {"amount": 1000, "currency": "USD"},
  "payment": {"token": "tok_visa", "wallet": "apple_pay"},
  "shipping_address": {"name": "Ada", "line1": "1 Market St", "city": "San Francisco", "postal_code": "94105", "country": "US", "delivery_window": ["09:00", "12:00"]},
  "placed_at": "2026-11-25T12:00:00Z", "updated_at": "2026-11-25T12:00:01Z",
  "history": {"PLACED": "2026-11-25T12:00:00Z", "RESERVED": "2026-11-25T12:00:00Z", "PAID": "2026-11-25T12:00:01Z"},
  "charge_id": "ch_1",
  "fulfilment_center": "DUB-2",
  "promotions": [{"code": "XMAS", "amount": 0}],
  "Order_ID": "ignored: encoding/json matches names without regard to case"
}`

// wantKept lists, for each path into the document, the raw JSON a newer
// release wrote there.
var wantKept = map[string]string{
	"fulfilment_center":                `"DUB-2"`,
	"promotions":                       `[{"code":"XMAS","amount":0}]`,
	"customer.loyalty_tier":            `"gold"`,
	"items.1.gift_wrap":                `{"paper":"red","note":"hi \"there\""}`,
	"payment.wallet":                   `"apple_pay"`,
	"shipping_address.delivery_window": `["09:00","12:00"]`,
}

// lookup returns the raw JSON at a dotted path (object members and array
// indexes) of doc, or "".
func lookup(t *testing.T, doc, path string) string {
	t.Helper()
	cur := json.RawMessage(doc)
	for _, part := range strings.Split(path, ".") {
		if cur[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(cur, &arr); err != nil {
				t.Fatal(err)
			}
			i := int(part[0] - '0')
			if i >= len(arr) {
				return ""
			}
			cur = arr[i]
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil {
			t.Fatalf("%s in %s: %v", path, doc, err)
		}
		v, ok := obj[part]
		if !ok {
			return ""
		}
		cur = v
	}
	return string(cur)
}

// A stage of this release moving on an order a newer release wrote keeps
// every member it does not know, in the stored document and in the event
// it publishes (the same document), and writes its own schema_version.
func TestAStageKeepsTheMembersANewerReleaseWrote(t *testing.T) {
	t.Parallel()
	var compact strings.Builder
	body, _ := json.Marshal(pipeline.Envelope{DetailType: string(pipeline.EventPaymentCaptured), Source: pipeline.EventSource, Detail: json.RawMessage(newerPaidOrder)})
	st, bus := &recStore{}, &recBus{}
	now := time.Date(2026, 11, 25, 12, 0, 2, 0, time.UTC)
	svc := &pipeline.Service{Store: st, Publisher: bus, Notifier: nopNotifier{}, Carrier: fixedCarrier{}, Now: func() time.Time { return now }}
	out, err := svc.Handler(pipeline.StageShipping)(context.Background(), pipeline.Message{ID: "m-1", Body: body, ReceiveCount: 1}.Decode())
	if err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("shipping: %v %v", out, err)
	}
	if len(st.changes) != 1 || len(bus.events) != 1 {
		t.Fatalf("%d writes and %d events, want 1 and 1", len(st.changes), len(bus.events))
	}
	detail, err := pipeline.EncodeDetail(bus.events[0])
	if err != nil {
		t.Fatal(err)
	}
	for what, doc := range map[string]string{"stored document": st.changes[0].Doc, "OrderShipped detail": detail} {
		for path, want := range wantKept {
			if got := lookup(t, doc, path); got != want {
				t.Errorf("%s: %s = %s, want %s\n%s", what, path, got, want, doc)
			}
		}
		if got := lookup(t, doc, "status"); got != `"SHIPPED"` {
			t.Errorf("%s: status %s, want SHIPPED", what, got)
		}
		if got := lookup(t, doc, "schema_version"); got != "2" {
			t.Errorf("%s: schema_version %s, want this release's 2", what, got)
		}
		if got := lookup(t, doc, "Order_ID"); got != "" {
			t.Errorf("%s: a member encoding/json decodes as order_id was kept beside it: %s", what, got)
		}
	}
	compact.WriteString(st.changes[0].Doc)
	// A second round (decode, encode) changes nothing: nothing is doubled.
	var again pipeline.Order
	if err := json.Unmarshal([]byte(compact.String()), &again); err != nil {
		t.Fatal(err)
	}
	doc, err := pipeline.EncodeOrder(again)
	if err != nil {
		t.Fatal(err)
	}
	if doc != compact.String() {
		t.Fatalf("re-encoding changed the document:\n%s\n%s", compact.String(), doc)
	}
}

// A document without schema_version is version 1; encoding writes this
// release's version; an order without unknown members encodes exactly as
// encoding/json encodes its fields.
func TestSchemaVersionReadsAbsentAsOneAndWritesThisRelease(t *testing.T) {
	t.Parallel()
	var o pipeline.Order
	if err := json.Unmarshal([]byte(`{"order_id":"o-1","status":"PLACED"}`), &o); err != nil {
		t.Fatal(err)
	}
	if o.SchemaVersion != 1 || len(o.UnknownMembers()) != 0 {
		t.Fatalf("schema_version %d, unknown %v; want 1 and none", o.SchemaVersion, o.UnknownMembers())
	}
	doc, err := pipeline.EncodeOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc, `{"schema_version":2,"order_id":"o-1","status":"PLACED",`) {
		t.Fatalf("document %s", doc)
	}
	if via, _ := json.Marshal(o); string(via) != doc {
		t.Fatalf("json.Marshal and EncodeOrder differ:\n%s\n%s", via, doc)
	}
}

func TestDecodeEventHandsBackWhatANewerReleaseWrote(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		body        string
		deferReason string // "" means permanent with permanentReason
		permanent   string
	}{
		"newer schema": {body: `{"detail-type":"InventoryReserved","source":"cloudcommerce.orders","detail":{"schema_version":999,"order_id":"o-1","status":"RESERVED"}}`,
			deferReason: pipeline.ReasonNewerSchema},
		"newer schema, a shape this release cannot read": {body: `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"schema_version":3,"order_id":"o-1","items":{"by_sku":{}}}}`,
			deferReason: pipeline.ReasonNewerSchema},
		"unknown detail-type of the pipeline's source": {body: `{"detail-type":"OrderGiftWrapped","source":"cloudcommerce.orders","detail":{"order_id":"o-1"}}`,
			deferReason: pipeline.ReasonUnknownEvent},
		"unknown detail-type of another source": {body: `{"detail-type":"OrderGiftWrapped","source":"someone.else","detail":{"order_id":"o-1"}}`,
			permanent: pipeline.ReasonWrongEvent},
		"not an event":                  {body: `{"schema_version":999}`, permanent: pipeline.ReasonMalformed},
		"this version, not an order":    {body: `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"schema_version":2,"items":{}}}`, permanent: pipeline.ReasonMalformed},
		"older version without an id":   {body: `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"status":"PLACED"}}`, permanent: pipeline.ReasonMalformed},
		"higher version from elsewhere": {body: `{"detail-type":"OrderPlaced","source":"someone.else","detail":{"schema_version":999,"order_id":"o-1"}}`, permanent: pipeline.ReasonWrongEvent},
	} {
		ev, err := pipeline.DecodeEvent([]byte(c.body))
		reason, deferred := pipeline.IsDeferred(err)
		perm, permanent := pipeline.IsPermanent(err)
		switch {
		case c.deferReason != "" && (!deferred || reason != c.deferReason || permanent):
			t.Errorf("%s: error %v (deferred %q, permanent %q), want deferred %q", name, err, reason, perm, c.deferReason)
		case c.deferReason == "" && (deferred || perm != c.permanent):
			t.Errorf("%s: error %v (deferred %q, permanent %q), want permanent %q", name, err, reason, perm, c.permanent)
		}
		if c.deferReason != "" && ev.Order.ID != "o-1" {
			t.Errorf("%s: the deferred event carries order id %q, want o-1 for its log line", name, ev.Order.ID)
		}
	}
	// This release's version and older ones are handled.
	for _, v := range []string{``, `"schema_version":1,`, `"schema_version":2,`} {
		body := `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{` + v + `"order_id":"o-1","status":"PLACED"}}`
		if _, err := pipeline.DecodeEvent([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}
