package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func TestMain(m *testing.M) { emulator.RunTests(conformanceRun{m}) }

const apiKey = "s3cret-key"

type api struct {
	env *testkit.Env
	srv *httptest.Server
	w   *worker.Worker
}

func newAPI(t *testing.T) *api { return newAPIWith(t, nil) }

// newAPIWith serves the intake of a worker on its own tables; notifications,
// when set, serves GET /v1/notifications.
func newAPIWith(t *testing.T, notifications intake.NotificationLog) *api {
	t.Helper()
	env := testkit.Provision(t)
	cfg := config.WorkerDefaults()
	cfg.Prefix, cfg.APIKey = env.Prefix, apiKey
	w, err := worker.New(context.Background(), cfg, worker.Deps{AWS: env.AWS, Log: zaptest.NewLogger(t), Metrics: metrics.New(), Notifications: notifications})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(conf.wrap(w.Intake.Handler()))
	t.Cleanup(srv.Close)
	return &api{env: env, srv: srv, w: w}
}

func (a *api) do(t *testing.T, method, path, contentType, key string, body []byte, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func validBody() map[string]any {
	return map[string]any{
		"customer": map[string]any{"id": "c-1", "email": "ada@example.com", "phone": "+14155550100"},
		"items": []any{
			map[string]any{"sku": "SKU-1", "quantity": 2, "unit_price": map[string]any{"amount": 1250, "currency": "USD"}},
			map[string]any{"sku": "SKU-2", "quantity": 1, "unit_price": map[string]any{"amount": 300, "currency": "USD"}},
		},
		"payment":          map[string]any{"token": "tok_visa"},
		"shipping_address": map[string]any{"name": "Ada", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"},
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func without(path ...string) func(map[string]any) {
	return func(m map[string]any) {
		cur := m
		for _, p := range path[:len(path)-1] {
			cur = cur[p].(map[string]any)
		}
		delete(cur, path[len(path)-1])
	}
}

func item0(f func(map[string]any)) func(map[string]any) {
	return func(m map[string]any) { f(m["items"].([]any)[0].(map[string]any)) }
}

func TestBadInputIsRefusedAndNamesTheField(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	type tc struct {
		name        string
		mutate      func(map[string]any)
		raw         []byte
		contentType string
		key         string
		status      int
		field       string
	}
	cases := []tc{
		{name: "customer missing", mutate: without("customer"), status: 400, field: "customer.id"},
		{name: "customer email missing", mutate: without("customer", "email"), status: 400, field: "customer.email"},
		{name: "items missing", mutate: without("items"), status: 400, field: "items"},
		{name: "payment token missing", mutate: without("payment", "token"), status: 400, field: "payment.token"},
		{name: "address city missing", mutate: without("shipping_address", "city"), status: 400, field: "shipping_address.city"},
		{name: "sku missing", mutate: item0(func(m map[string]any) { delete(m, "sku") }), status: 400, field: "items[0].sku"},
		{name: "unit price missing", mutate: item0(func(m map[string]any) { delete(m, "unit_price") }), status: 400, field: "items[0].unit_price"},
		{name: "quantity wrong type", mutate: item0(func(m map[string]any) { m["quantity"] = "two" }), status: 400, field: "items[0].quantity"},
		{name: "quantity zero", mutate: item0(func(m map[string]any) { m["quantity"] = 0 }), status: 400, field: "items[0].quantity"},
		{name: "quantity negative", mutate: item0(func(m map[string]any) { m["quantity"] = -1 }), status: 400, field: "items[0].quantity"},
		{name: "float amount", mutate: item0(func(m map[string]any) { m["unit_price"] = map[string]any{"amount": 12.5, "currency": "USD"} }), status: 400, field: "items[0].unit_price.amount"},
		{name: "unknown currency", mutate: item0(func(m map[string]any) { m["unit_price"] = map[string]any{"amount": 1, "currency": "ABC"} }), status: 400, field: "items[0].unit_price.currency"},
		{name: "mixed currencies", mutate: item0(func(m map[string]any) { m["unit_price"] = map[string]any{"amount": 1, "currency": "EUR"} }), status: 400, field: "items[1].unit_price.currency"},
		{name: "email wrong type", mutate: func(m map[string]any) { m["customer"].(map[string]any)["email"] = 42 }, status: 400, field: "customer.email"},
		{name: "unknown field", mutate: func(m map[string]any) { m["coupon"] = "FREE" }, status: 400, field: "coupon"},
		{name: "unknown nested field", mutate: item0(func(m map[string]any) { m["discount"] = 5 }), status: 400, field: "items[0].discount"},
		{name: "51 items", mutate: func(m map[string]any) {
			items := make([]any, pipeline.MaxItems+1)
			for i := range items {
				items[i] = map[string]any{"sku": fmt.Sprintf("S%d", i), "quantity": 1, "unit_price": map[string]any{"amount": 1, "currency": "USD"}}
			}
			m["items"] = items
		}, status: 400, field: "items"},
		// 1,000 items cannot fit in the 64 KiB body limit, so the size check
		// answers first.
		{name: "1000 items", mutate: func(m map[string]any) {
			items := make([]any, 1000)
			for i := range items {
				items[i] = map[string]any{"sku": fmt.Sprintf("S%d", i), "quantity": 1, "unit_price": map[string]any{"amount": 1, "currency": "USD"}}
			}
			m["items"] = items
		}, status: 413},
		{name: "bad json", raw: []byte(`{"customer": {`), status: 400, field: "body"},
		{name: "trailing garbage", raw: []byte(`{} {}`), status: 400, field: "body"},
		{name: "not an object", raw: []byte(`[1,2]`), status: 400, field: "body"},
		{name: "oversized body", raw: []byte(`{"pad":"` + strings.Repeat("x", intake.MaxBodyBytes) + `"}`), status: 413},
		{name: "wrong content type", contentType: "text/plain", status: 415},
		{name: "missing api key", key: "-", status: 401},
		{name: "wrong api key", key: "nope", status: 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.raw
			if body == nil {
				m := validBody()
				if c.mutate != nil {
					c.mutate(m)
				}
				body = marshal(t, m)
			}
			ct, key := "application/json", apiKey
			if c.contentType != "" {
				ct = c.contentType
			}
			if c.key == "-" {
				key = ""
			} else if c.key != "" {
				key = c.key
			}
			status, resp := a.do(t, "POST", "/v1/orders", ct, key, body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, resp)
			}
			var p intake.Problem
			if err := json.Unmarshal(resp, &p); err != nil || p.Status != c.status || p.Title == "" {
				t.Fatalf("not a problem document: %s", resp)
			}
			if c.field != "" {
				found := false
				for _, f := range p.Errors {
					found = found || f.Field == c.field
				}
				if !found {
					t.Fatalf("problem does not name %s: %s", c.field, resp)
				}
			}
		})
	}
	// None of them created an order or an event.
	out, err := a.env.DDB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(a.env.Prov.Names.Tables["orders"])})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 0 {
		t.Fatalf("bad requests stored %d orders", len(out.Items))
	}
	url := a.env.QueueURL(pipeline.StageInventory, false)
	msgs, err := a.env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Messages) != 0 {
		t.Fatalf("bad requests published %d events", len(msgs.Messages))
	}
}

func TestPlaceGetAndIdempotency(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	body := marshal(t, validBody())
	status, resp := a.do(t, "POST", "/v1/orders", "application/json", apiKey, body, "Idempotency-Key", "k-1")
	if status != http.StatusAccepted {
		t.Fatalf("POST = %d %s", status, resp)
	}
	var placed intake.PlaceOrderResponse
	if err := json.Unmarshal(resp, &placed); err != nil || placed.OrderID == "" || placed.Status != pipeline.StatusPlaced {
		t.Fatalf("202 body = %s", resp)
	}
	status, resp = a.do(t, "POST", "/v1/orders", "application/json", apiKey, body, "Idempotency-Key", "k-1")
	var again intake.PlaceOrderResponse
	_ = json.Unmarshal(resp, &again)
	if status != http.StatusAccepted || again.OrderID != placed.OrderID {
		t.Fatalf("repeat with the same key = %d %s, want the same order %s", status, resp, placed.OrderID)
	}
	other := validBody()
	other["payment"] = map[string]any{"token": "tok_chargeDeclined"}
	if status, resp = a.do(t, "POST", "/v1/orders", "application/json", apiKey, marshal(t, other), "Idempotency-Key", "k-1"); status != http.StatusUnprocessableEntity {
		t.Fatalf("same key, different body = %d %s, want 422", status, resp)
	}
	status, resp = a.do(t, "GET", "/v1/orders/"+placed.OrderID, "", apiKey, nil)
	var view intake.OrderView
	if err := json.Unmarshal(resp, &view); status != 200 || err != nil {
		t.Fatalf("GET = %d %s", status, resp)
	}
	if view.Total != (pipeline.Money{Amount: 2800, Currency: "USD"}) || len(view.History) != 1 || view.History[0].Status != pipeline.StatusPlaced {
		t.Fatalf("view = %+v", view)
	}
	if strings.Contains(string(resp), "ada@example.com") || strings.Contains(string(resp), "tok_visa") {
		t.Fatalf("order view leaks contact or payment details: %s", resp)
	}
	if status, _ := a.do(t, "GET", "/v1/orders/does-not-exist", "", apiKey, nil); status != 404 {
		t.Fatalf("unknown order = %d, want 404", status)
	}
	// OrderPlaced reached the inventory queue (twice: the repeat re-publishes
	// an order still PLACED, which the handlers absorb).
	got := a.env.Receive(t, a.env.QueueURL(pipeline.StageInventory, false), 1, 10*time.Second)
	if len(got) == 0 || !strings.Contains(aws.ToString(got[0].Body), placed.OrderID) {
		t.Fatalf("no OrderPlaced event for %s", placed.OrderID)
	}
}

func TestInventoryEndpoints(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	if status, resp := a.do(t, "PUT", "/v1/inventory/SKU-9", "application/json", apiKey, []byte(`{"available": 7}`)); status != 200 {
		t.Fatalf("PUT = %d %s", status, resp)
	}
	status, resp := a.do(t, "GET", "/v1/inventory/SKU-9", "", apiKey, nil)
	if status != 200 || !strings.Contains(string(resp), `"available":7`) {
		t.Fatalf("GET = %d %s", status, resp)
	}
	for _, bad := range []string{`{"available": -1}`, `{"available": 1.5}`, `{}`, `{"available": 1, "extra": 2}`} {
		if status, resp := a.do(t, "PUT", "/v1/inventory/SKU-9", "application/json", apiKey, []byte(bad)); status != 400 || !strings.Contains(string(resp), "available") && !strings.Contains(string(resp), "extra") {
			t.Errorf("PUT %s = %d %s, want 400 naming the field", bad, status, resp)
		}
	}
	if status, _ := a.do(t, "GET", "/v1/inventory/NOPE", "", apiKey, nil); status != 404 {
		t.Fatalf("unknown SKU = %d", status)
	}
}
