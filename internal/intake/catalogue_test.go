package intake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func TestCataloguePricesAreEnforced(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	status, resp := a.do(t, "PUT", "/v1/inventory/SKU-1", "application/json", apiKey, []byte(`{"available":10,"unit_price":{"amount":1250,"currency":"USD"}}`))
	if status != 200 {
		t.Fatalf("PUT = %d %s", status, resp)
	}
	status, resp = a.do(t, "GET", "/v1/inventory/SKU-1", "", apiKey, nil)
	view := decodeJSON[intake.StockView](t, resp)
	if status != 200 || view.Available != 10 || view.UnitPrice == nil || *view.UnitPrice != (pipeline.Money{Amount: 1250, Currency: "USD"}) {
		t.Fatalf("GET = %d %s", status, resp)
	}
	// The order's price for SKU-1 is the catalogue's; SKU-2 has no
	// catalogue entry and keeps whatever price the order carries.
	if status, resp := a.do(t, "POST", "/v1/orders", "application/json", apiKey, marshal(t, validBody())); status != http.StatusAccepted {
		t.Fatalf("order at the catalogue price = %d %s", status, resp)
	}
	// A price set to 0 in the catalogue: 0 is accepted there, and only there.
	if status, resp := a.do(t, "PUT", "/v1/inventory/GIFT", "application/json", apiKey, []byte(`{"available":3,"unit_price":{"amount":0,"currency":"USD"}}`)); status != 200 {
		t.Fatalf("PUT GIFT = %d %s", status, resp)
	}
	gift := validBody()
	set("items.1.sku", "GIFT")(gift)
	set("items.1.unit_price.amount", 0)(gift)
	if status, resp := a.do(t, "POST", "/v1/orders", "application/json", apiKey, marshal(t, gift)); status != http.StatusAccepted {
		t.Fatalf("free gift at catalogue price 0 = %d %s", status, resp)
	}
	set("items.1.unit_price.amount", 1)(gift)
	status, resp = a.do(t, "POST", "/v1/orders", "application/json", apiKey, marshal(t, gift))
	if p := decodeJSON[intake.Problem](t, resp); status != 422 || !slicesContainsField(p.Errors, "items[1].unit_price") {
		t.Fatalf("gift at 1 = %d %s, want 422 naming items[1].unit_price", status, resp)
	}
	// Removing the price (PUT without unit_price) lets any price through.
	if status, resp := a.do(t, "PUT", "/v1/inventory/GIFT", "application/json", apiKey, []byte(`{"available":3}`)); status != 200 || strings.Contains(string(resp), "unit_price") {
		t.Fatalf("PUT GIFT without price = %d %s", status, resp)
	}
	if status, resp := a.do(t, "POST", "/v1/orders", "application/json", apiKey, marshal(t, gift)); status != http.StatusAccepted {
		t.Fatalf("gift at 1 without a catalogue price = %d %s", status, resp)
	}
}

// An order that reaches the inventory stage without the API (any producer
// may put OrderPlaced on the bus) at another price is rejected by the
// reservation's own condition, and no stock moves.
func TestInventoryStageRejectsAPriceMismatch(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ctx := context.Background()
	if status, resp := a.do(t, "PUT", "/v1/inventory/BUS-1", "application/json", apiKey, []byte(`{"available":4,"unit_price":{"amount":999,"currency":"USD"}}`)); status != 200 {
		t.Fatalf("PUT = %d %s", status, resp)
	}
	o, err := pipeline.NewOrder("bus-price-1", testkit.Order("tok_visa", "BUS-1"), time.Now()) // 1250 USD a unit
	if err != nil {
		t.Fatal(err)
	}
	h := a.w.Service.Handler(pipeline.StageInventory)
	out, err := h(ctx, pipeline.Message{ID: "m-1", Body: []byte(testkit.Envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})), ReceiveCount: 1})
	if err != nil || out != pipeline.OutcomeRejected {
		t.Fatalf("inventory stage = %s, %v; want rejected", out, err)
	}
	got, err := a.w.Store.Get(ctx, o.ID)
	if err != nil || got.Status != pipeline.StatusRejected || got.Reason != pipeline.ReasonPriceMismatch {
		t.Fatalf("order = %s %q, %v; want REJECTED price_mismatch", got.Status, got.Reason, err)
	}
	if n, _ := a.w.Store.Stock(ctx, "BUS-1"); n != 4 {
		t.Fatalf("stock = %d after a price mismatch, want 4", n)
	}
	status, resp := a.do(t, "GET", "/v1/orders/"+o.ID, "", apiKey, nil)
	if v := decodeJSON[intake.OrderView](t, resp); status != 200 || v.Reason != "price_mismatch" {
		t.Fatalf("GET = %d %s", status, resp)
	}
}

// A hot SKU's stock is spread over shards: GET says the total and the
// count, orders take from the shards and adjustments spread over them.
func TestShardedInventoryThroughTheAPI(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ctx := context.Background()
	status, resp := a.do(t, "PUT", "/v1/inventory/HOT-1", "application/json", apiKey, []byte(`{"available":10,"shards":4}`))
	if v := decodeJSON[intake.StockView](t, resp); status != 200 || v.Available != 10 || v.Shards != 4 {
		t.Fatalf("PUT = %d %s, want 10 over 4 shards", status, resp)
	}
	h := a.w.Service.Handler(pipeline.StageInventory)
	for i := range 3 {
		o, err := pipeline.NewOrder(fmt.Sprintf("hot-order-%d", i), testkit.Order("tok_visa", "HOT-1"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if out, err := h(ctx, pipeline.Message{ID: fmt.Sprintf("m-hot-%d", i), Body: []byte(testkit.Envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})), ReceiveCount: 1}); err != nil || out != pipeline.OutcomeOK {
			t.Fatalf("reserve = %s, %v", out, err)
		}
	}
	status, resp = a.do(t, "GET", "/v1/inventory/HOT-1", "", apiKey, nil)
	if v := decodeJSON[intake.StockView](t, resp); status != 200 || v.Available != 7 || v.Shards != 4 || !strings.Contains(string(resp), `"shards":4`) {
		t.Fatalf("GET = %d %s, want 7 over 4 shards", status, resp)
	}
	status, resp = a.do(t, "POST", "/v1/inventory/HOT-1/adjustments", "application/json", apiKey, []byte(`{"delta":-7}`))
	if v := decodeJSON[intake.AdjustmentView](t, resp); status != 200 || v.Available != 0 {
		t.Fatalf("adjust to zero = %d %s", status, resp)
	}
	// An unsharded SKU says 1.
	a.do(t, "PUT", "/v1/inventory/COLD-1", "application/json", apiKey, []byte(`{"available":2}`))
	if status, resp := a.do(t, "GET", "/v1/inventory/COLD-1", "", apiKey, nil); status != 200 || !strings.Contains(string(resp), `"shards":1`) {
		t.Fatalf("GET unsharded = %d %s, want shards 1", status, resp)
	}
}

func TestAdjustmentsKeepReservationsMadeMeanwhile(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ctx := context.Background()
	if status, resp := a.do(t, "PUT", "/v1/inventory/ADJ-1", "application/json", apiKey, []byte(`{"available":50}`)); status != 200 {
		t.Fatalf("PUT = %d %s", status, resp)
	}
	// An order reserves 30 while the restock is on its way.
	o, err := pipeline.NewOrder("adj-order-1", testkit.Order("tok_visa", "ADJ-1"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o.Items[0].Quantity = 30
	o.Total = pipeline.Money{Amount: 30 * 1250, Currency: "USD"}
	h := a.w.Service.Handler(pipeline.StageInventory)
	if out, err := h(ctx, pipeline.Message{ID: "m-2", Body: []byte(testkit.Envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})), ReceiveCount: 1}); err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("reserve = %s, %v", out, err)
	}
	status, resp := a.do(t, "POST", "/v1/inventory/ADJ-1/adjustments", "application/json", apiKey, []byte(`{"delta":100}`))
	if v := decodeJSON[intake.AdjustmentView](t, resp); status != 200 || v.Available != 120 || v.Delta != 100 || v.SKU != "ADJ-1" {
		t.Fatalf("restock = %d %s, want 200 with level 120", status, resp)
	}
	status, resp = a.do(t, "POST", "/v1/inventory/ADJ-1/adjustments", "application/json", apiKey, []byte(`{"delta":-121}`))
	if p := decodeJSON[intake.Problem](t, resp); status != 409 || !slicesContainsField(p.Errors, "available") || !strings.Contains(string(resp), "120") {
		t.Fatalf("below zero = %d %s, want 409 naming the level 120", status, resp)
	}
	status, resp = a.do(t, "POST", "/v1/inventory/ADJ-1/adjustments", "application/json", apiKey, []byte(`{"delta":-120}`))
	if v := decodeJSON[intake.AdjustmentView](t, resp); status != 200 || v.Available != 0 {
		t.Fatalf("to zero = %d %s", status, resp)
	}
	// A cancelled reservation returns to the level the adjustments left.
	if status, resp := a.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", apiKey, nil); status != 200 {
		t.Fatalf("cancel = %d %s", status, resp)
	}
	if n, _ := a.w.Store.Stock(ctx, "ADJ-1"); n != 30 {
		t.Fatalf("after cancel = %d, want 30", n)
	}
	if status, resp := a.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", apiKey, nil); status != 409 {
		t.Fatalf("second cancel = %d %s, want 409", status, resp)
	}
}

func TestInputWithinTheLimitsIsAccepted(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	// 150 × é is 300 bytes and 150 characters: within the 200-character limit.
	body := validBody()
	set("shipping_address.name", strings.Repeat("é", 150))(body)
	status, resp := a.do(t, "POST", "/v1/orders", "application/json", "", marshal(t, body), "Authorization", "bearer "+apiKey)
	if status != http.StatusAccepted {
		t.Fatalf("150 é with a lower-case bearer scheme = %d %s", status, resp)
	}
	placed := decodeJSON[intake.PlaceOrderResponse](t, resp)
	status, resp = a.do(t, "GET", "/v1/orders/"+placed.OrderID, "", "", nil, "Authorization", "BEARER "+apiKey)
	if v := decodeJSON[intake.OrderView](t, resp); status != 200 || v.ShippingAddress.Name != strings.Repeat("é", 150) {
		t.Fatalf("GET = %d %s", status, resp)
	}
	// Answers that hold customer data are not cached.
	req, _ := http.NewRequest("GET", a.srv.URL+"/v1/orders/"+placed.OrderID, nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers = %v", r.Header)
	}
	// Available up to the maximum.
	if status, resp := a.do(t, "PUT", "/v1/inventory/MAX-1", "application/json", apiKey, []byte(`{"available":1000000000}`)); status != 200 {
		t.Fatalf("PUT the maximum = %d %s", status, resp)
	}
}

func TestProblemListsAtMost50Errors(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	many := map[string]any{}
	for i := range 2000 {
		many[fmt.Sprintf("field_%04d", i)] = i
	}
	body := marshal(t, many)
	status, resp := a.do(t, "POST", "/v1/orders", "application/json", apiKey, body)
	p := decodeJSON[intake.Problem](t, resp)
	if status != 400 || len(p.Errors) != intake.MaxProblemErrors || p.MoreErrors < 2000-intake.MaxProblemErrors {
		t.Fatalf("status %d, %d errors listed, %d more; want 400, 50 and at least 1950", status, len(p.Errors), p.MoreErrors)
	}
	if len(resp) > 8<<10 {
		t.Fatalf("a %d-byte body produced a %d-byte answer", len(body), len(resp))
	}
}

type fixedLog []intake.DeliveredNotification

func (l fixedLog) ForOrder(id string) []intake.DeliveredNotification {
	var out []intake.DeliveredNotification
	for _, n := range l {
		if n.OrderID == id {
			out = append(out, n)
		}
	}
	return out
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, fixedLog{{Event: "OrderShipped", OrderID: "o-9", Subject: "Shipped", Message: "on its way", Attributes: map[string]string{"event": "OrderShipped"}, ReceivedAt: time.Now().UTC()}})
	status, resp := a.do(t, "GET", "/v1/notifications?order_id=o-9", "", apiKey, nil)
	if status != 200 || !strings.Contains(string(resp), `"event":"OrderShipped"`) {
		t.Fatalf("GET = %d %s", status, resp)
	}
	if status, resp := a.do(t, "GET", "/v1/notifications", "", apiKey, nil); status != 400 || !strings.Contains(string(resp), `"field":"order_id"`) {
		t.Fatalf("without order_id = %d %s", status, resp)
	}
	if status, _ := a.do(t, "GET", "/v1/notifications?order_id=o-9", "", "", nil); status != 401 {
		t.Fatalf("without a key = %d", status)
	}
}

// brokenStore fails every call, as a store that cannot be reached does.
type brokenStore struct{ pipeline.Store }

var errDown = errors.New("store unreachable")

func (brokenStore) Get(context.Context, string) (pipeline.Order, error) {
	return pipeline.Order{}, errDown
}
func (brokenStore) Create(context.Context, pipeline.Order, string, string) (string, error) {
	return "", errDown
}
func (brokenStore) PutInventory(context.Context, pipeline.InventoryItem) error { return errDown }
func (brokenStore) Inventory(context.Context, string) (pipeline.InventoryItem, error) {
	return pipeline.InventoryItem{}, errDown
}
func (brokenStore) AdjustStock(context.Context, string, int64) (int64, error) { return 0, errDown }
func (brokenStore) Prices(context.Context, []string) (map[string]pipeline.Money, error) {
	return nil, nil // the catalogue answers; recording the order fails
}

func (brokenStore) ByCustomer(context.Context, string, int, string) (store.OrderPage, error) {
	return store.OrderPage{}, errDown
}

func TestUnreachableStoreAnswers503(t *testing.T) {
	t.Parallel()
	st := brokenStore{}
	s := &intake.Server{Service: &pipeline.Service{Store: st}, Store: st, Orders: st, Publisher: nopPublisher{}, Log: zaptest.NewLogger(t), Metrics: metrics.New()}
	srv := httptest.NewServer(conf.wrap(s.Handler()))
	t.Cleanup(srv.Close)
	a := &api{srv: srv}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/orders", string(marshal(t, validBody()))},
		{"GET", "/v1/orders/o-1", ""},
		{"GET", "/v1/orders?customer_id=c-1", ""},
		{"POST", "/v1/orders/o-1/cancel", ""},
		{"PUT", "/v1/inventory/S-1", `{"available":1}`},
		{"GET", "/v1/inventory/S-1", ""},
		{"POST", "/v1/inventory/S-1/adjustments", `{"delta":1}`},
	} {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		status, resp := a.do(t, c.method, c.path, ct, "", []byte(c.body))
		if p := decodeJSON[intake.Problem](t, resp); status != 503 || p.Status != 503 || !strings.Contains(p.Detail, "retry") {
			t.Errorf("%s %s = %d %s, want 503 saying retry", c.method, c.path, status, resp)
		}
	}
}
