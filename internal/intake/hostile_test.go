package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// hostile is one malformed or malicious request and what it must get.
type hostile struct {
	name    string
	method  string // default POST
	path    string // default /v1/orders
	body    []byte // raw body; when nil, the valid order changed by mutate
	mutate  func(map[string]any)
	ctype   string            // default application/json
	auth    string            // Authorization; default Bearer <apiKey>; "-" for none
	headers map[string]string // extra headers
	status  int
	field   string // the problem must name this field...
	detail  string // ...or, for answers about no field, say this
	unnamed string // the problem must not name this field
}

// set returns a mutation that sets the value at a dotted path (items.0.x).
func set(path string, v any) func(map[string]any) {
	return func(m map[string]any) {
		parts := strings.Split(path, ".")
		var cur any = m
		for _, p := range parts[:len(parts)-1] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[p]
			case []any:
				var i int
				fmt.Sscan(p, &i)
				cur = c[i]
			}
		}
		cur.(map[string]any)[parts[len(parts)-1]] = v
	}
}

// rawOrder returns the valid order's JSON with old replaced by new, for
// inputs a Go value cannot express (duplicate names, invalid UTF-8).
func rawOrder(t *testing.T, old, new string) []byte {
	t.Helper()
	b := marshal(t, validBody())
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("valid body has no %s: %s", old, b)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func hostileCases(t *testing.T) []hostile {
	var cs []hostile
	// The cases found by the hostile run that motivated strict input.
	cs = append(cs,
		hostile{name: "null amount", mutate: set("items.0.unit_price.amount", nil), status: 400, field: "items[0].unit_price.amount"},
		hostile{name: "null available", method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(`{"available":null}`), status: 400, field: "available"},
		hostile{name: "duplicate token, declined then good", body: rawOrder(t, `"token":"tok_visa"`, `"token":"tok_chargeDeclined","token":"tok_visa"`), status: 400, field: "payment.token"},
		hostile{name: "invalid UTF-8 in name", body: rawOrder(t, `"name":"Ada"`, "\"name\":\"Ad\xff\""), status: 400, field: "shipping_address.name"},
		hostile{name: "201 é in name", mutate: set("shipping_address.name", strings.Repeat("é", 201)), status: 400, field: "shipping_address.name"},
		hostile{name: "client price 0 for a priced SKU", mutate: func(m map[string]any) {
			set("items.0.sku", "H-PRICED")(m)
			set("items.0.unit_price.amount", 0)(m)
		}, status: 422, field: "items[0].unit_price"},
		hostile{name: "shards 0", method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(`{"available":1,"shards":0}`), status: 400, field: "shards"},
		hostile{name: "shards 33", method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(`{"available":1,"shards":33}`), status: 400, field: "shards"},
		hostile{name: "shards 1.5", method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(`{"available":1,"shards":1.5}`), status: 400, field: "shards"},
		hostile{name: "available 2^63-1", method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(`{"available":9223372036854775807}`), status: 400, field: "available"},
		hostile{name: "bearer scheme other than Bearer", auth: "Basic " + apiKey, status: 401, detail: "Authorization"},
		hostile{name: "empty Idempotency-Key", headers: map[string]string{"Idempotency-Key": ""}, status: 400, field: "Idempotency-Key"},
		hostile{name: "unknown route", method: "GET", path: "/v1/nothing-here", status: 404, detail: "/v1/nothing-here"},
		hostile{name: "wrong method", method: "DELETE", path: "/v1/orders", status: 405, detail: "POST"},
		hostile{name: "wrong method on inventory", method: "PATCH", path: "/v1/inventory/H-FREE", status: 405, detail: "PUT"},
	)
	// null where a value is required.
	for _, p := range []string{"customer.id", "customer.email", "items.0.sku", "items.0.quantity", "items.0.unit_price.currency",
		"payment.token", "shipping_address.name", "shipping_address.line1", "shipping_address.city", "shipping_address.postal_code", "shipping_address.country"} {
		cs = append(cs, hostile{name: "null " + p, mutate: set(p, nil), status: 400, field: fieldPath(p)})
	}
	// A number where a string belongs.
	for _, p := range []string{"customer.id", "customer.email", "customer.phone", "items.0.sku", "items.0.unit_price.currency", "payment.token",
		"shipping_address.name", "shipping_address.line1", "shipping_address.line2", "shipping_address.city", "shipping_address.postal_code", "shipping_address.country"} {
		cs = append(cs, hostile{name: "number for " + p, mutate: set(p, 42), status: 400, field: fieldPath(p)})
	}
	// Not an integer where one belongs.
	for name, c := range map[string]struct {
		path string
		raw  string
	}{
		"quantity as a string": {"quantity", `"2"`}, "quantity true": {"quantity", `true`}, "quantity 1.5": {"quantity", `1.5`},
		"quantity 1e400": {"quantity", `1e400`}, "quantity beyond int64": {"quantity", `9223372036854775808`},
		"amount as a string": {"amount", `"1250"`}, "amount 12.5": {"amount", `12.5`}, "amount 1e3": {"amount", `1e3`},
		"amount an object": {"amount", `{}`},
	} {
		old := map[string]string{"quantity": `"quantity":2`, "amount": `"amount":1250`}[c.path]
		field := map[string]string{"quantity": "items[0].quantity", "amount": "items[0].unit_price.amount"}[c.path]
		cs = append(cs, hostile{name: name, body: rawOrder(t, old, strings.Split(old, ":")[0]+":"+c.raw), status: 400, field: field})
	}
	// Duplicate member names and invalid UTF-8 anywhere.
	cs = append(cs,
		hostile{name: "duplicate amount", body: rawOrder(t, `"amount":1250`, `"amount":1,"amount":1250`), status: 400, field: "items[0].unit_price.amount"},
		hostile{name: "duplicate quantity", body: rawOrder(t, `"quantity":2`, `"quantity":2,"quantity":900`), status: 400, field: "items[0].quantity"},
		hostile{name: "duplicate items", body: rawOrder(t, `"items":[`, `"items":[],"items":[`), status: 400, field: "items"},
		hostile{name: "duplicate city", body: rawOrder(t, `"city":"London"`, `"city":"London","city":"Paris"`), status: 400, field: "shipping_address.city"},
		hostile{name: "invalid UTF-8 in city", body: rawOrder(t, `"city":"London"`, "\"city\":\"Lon\xc3don\""), status: 400, field: "shipping_address.city"},
		hostile{name: "invalid UTF-8 in customer id", body: rawOrder(t, `"id":"c-1"`, "\"id\":\"c-\xfe1\""), status: 400, field: "customer.id"},
		hostile{name: "invalid UTF-8 in sku", body: rawOrder(t, `"sku":"SKU-1"`, "\"sku\":\"SKU-\xed\xa0\x801\""), status: 400, field: "items[0].sku"},
		hostile{name: "invalid UTF-8 in a member name", body: rawOrder(t, `"line1"`, "\"line\xff\""), status: 400, field: "shipping_address"},
	)
	// Text limits count characters; control and bidi characters are refused.
	for name, c := range map[string]struct{ path, val string }{
		"201 a in line1": {"shipping_address.line1", strings.Repeat("a", 201)}, "201 日 in line2": {"shipping_address.line2", strings.Repeat("日", 201)},
		"NUL in name": {"shipping_address.name", "Ada\x00"}, "newline in name": {"shipping_address.name", "Ada\nLovelace"},
		"escape in line1": {"shipping_address.line1", "1 Main\x1b[31m St"}, "DEL in city": {"shipping_address.city", "Lon\x7fdon"},
		"NEL in postal code": {"shipping_address.postal_code", "N1\u0085"}, "RLO in name": {"shipping_address.name", "Ada \u202eecalevoL"},
		"LRI in line1": {"shipping_address.line1", "\u20661 Main St"}, "RLM in postal code": {"shipping_address.postal_code", "N1\u200f"},
		"LRE in line2": {"shipping_address.line2", "\u202aFlat 2"}, "PDI in city": {"shipping_address.city", "London\u2069"},
	} {
		cs = append(cs, hostile{name: name, mutate: set(c.path, c.val), status: 400, field: fieldPath(c.path)})
	}
	// Wrong kinds of containers and unknown members.
	cs = append(cs,
		hostile{name: "customer a string", mutate: set("customer", "x"), status: 400, field: "customer"},
		hostile{name: "items an object", mutate: set("items", map[string]any{}), status: 400, field: "items"},
		hostile{name: "item a number", mutate: func(m map[string]any) { m["items"].([]any)[0] = 5 }, status: 400, field: "items[0]"},
		hostile{name: "unit price an array", mutate: set("items.0.unit_price", []any{}), status: 400, field: "items[0].unit_price"},
		hostile{name: "unit price null", mutate: set("items.0.unit_price", nil), status: 400, field: "items[0].unit_price"},
		hostile{name: "payment true", mutate: set("payment", true), status: 400, field: "payment"},
		hostile{name: "unknown top-level member", mutate: set("coupon", "FREE"), status: 400, field: "coupon"},
		hostile{name: "unknown item member", mutate: set("items.0.discount", 5), status: 400, field: "items[0].discount"},
		hostile{name: "unknown customer member", mutate: set("customer.role", "admin"), status: 400, field: "customer.role"},
		hostile{name: "card number in payment", mutate: set("payment.card_number", "4242424242424242"), status: 400, field: "payment.card_number"},
		hostile{name: "unknown address member", mutate: set("shipping_address.state", "CA"), status: 400, field: "shipping_address.state"},
		hostile{name: "unknown price member", mutate: set("items.0.unit_price.tax", 5), status: 400, field: "items[0].unit_price.tax"},
	)
	// Values out of range and prices that are not the catalogue's.
	cs = append(cs,
		hostile{name: "quantity 0", mutate: set("items.0.quantity", 0), status: 400, field: "items[0].quantity"},
		hostile{name: "quantity 1001", mutate: set("items.0.quantity", 1001), status: 400, field: "items[0].quantity"},
		hostile{name: "negative amount", mutate: set("items.0.unit_price.amount", -1), status: 400, field: "items[0].unit_price.amount"},
		hostile{name: "amount too large", mutate: set("items.0.unit_price.amount", int64(pipeline.MaxUnitAmount)+1), status: 400, field: "items[0].unit_price.amount"},
		hostile{name: "lower-case currency", mutate: set("items.0.unit_price.currency", "usd"), status: 400, field: "items[0].unit_price.currency"},
		hostile{name: "no items", mutate: set("items", []any{}), status: 400, field: "items"},
		hostile{name: "lower-case country", mutate: set("shipping_address.country", "gb"), status: 400, field: "shipping_address.country"},
		hostile{name: "bad email", mutate: set("customer.email", "ada at example"), status: 400, field: "customer.email"},
		hostile{name: "bad phone", mutate: set("customer.phone", "555-0100"), status: 400, field: "customer.phone"},
		hostile{name: "customer id with a space", mutate: set("customer.id", "c 1"), status: 400, field: "customer.id"},
		hostile{name: "one SKU at two prices", mutate: func(m map[string]any) {
			set("items.1.sku", "SKU-1")(m)
		}, status: 400, field: "items[1].unit_price"},
		hostile{name: "client price below the catalogue", mutate: func(m map[string]any) {
			set("items.0.sku", "H-PRICED")(m)
			set("items.0.unit_price.amount", 1249)(m)
		}, status: 422, field: "items[0].unit_price"},
		hostile{name: "catalogue price in another currency", mutate: func(m map[string]any) {
			set("items.0.sku", "H-PRICED")(m)
			set("items.0.unit_price.currency", "EUR")(m)
			set("items.1.unit_price.currency", "EUR")(m)
		}, status: 422, field: "items[0].unit_price"},
		hostile{name: "second line's price not the catalogue's", mutate: set("items.1.sku", "H-PRICED"), status: 422, field: "items[1].unit_price"},
		hostile{name: "Idempotency-Key with a space", headers: map[string]string{"Idempotency-Key": "a b"}, status: 400, field: "Idempotency-Key"},
	)
	// The body as a whole, and the transport.
	many := map[string]any{}
	for i := range 300 {
		many[fmt.Sprintf("f%03d", i)] = i
	}
	cs = append(cs,
		hostile{name: "truncated JSON", body: []byte(`{"customer": {`), status: 400, field: "body"},
		hostile{name: "trailing data", body: []byte(`{} {}`), status: 400, field: "body"},
		hostile{name: "an array", body: []byte(`[1,2]`), status: 400, field: "body"},
		hostile{name: "null document", body: []byte(`null`), status: 400, field: "body"},
		hostile{name: "empty body", body: []byte{}, status: 400, field: "body"},
		hostile{name: "300 unknown members", body: marshal(t, many), status: 400, field: "f000"},
		hostile{name: "oversized body", body: []byte(`{"pad":"` + strings.Repeat("x", intake.MaxBodyBytes) + `"}`), status: 413, detail: "bytes"},
		hostile{name: "text/plain", ctype: "text/plain", status: 415, detail: "Content-Type"},
		hostile{name: "no API key", auth: "-", status: 401, detail: "Authorization"},
		hostile{name: "wrong API key", auth: "Bearer nope", status: 401, detail: "Authorization"},
		hostile{name: "key without scheme", auth: apiKey, status: 401, detail: "Authorization"},
	)
	// Bodies built to make the answer large: deep nesting, long names and
	// values quoted back, many errors. Every answer stays under
	// intake.MaxProblemBytes (checked for every case).
	deep := func(n int, open, close string) []byte {
		return []byte(`{"items":` + strings.Repeat(open, n) + `1` + strings.Repeat(close, n) + `}`)
	}
	longNames := map[string]any{}
	for i := range 40 {
		longNames[fmt.Sprintf("%03d", i)+strings.Repeat("\x01", 200)] = i
	}
	manyNulls := validBody()
	manyNulls["items"] = make([]any, pipeline.MaxItems)
	cs = append(cs,
		hostile{name: "20,000 arrays deep", body: deep(20000, "[", "]"), status: 400, field: "body", detail: "32 levels"},
		hostile{name: "10,000 objects deep", body: deep(10000, `{"a":`, "}"), status: 400, field: "body", detail: "32 levels"},
		hostile{name: "33 levels deep", body: deep(32, "[", "]"), status: 400, field: "body", detail: "32 levels"},
		hostile{name: "32 levels deep is decoded", body: deep(31, "[", "]"), status: 400, field: "items[0]"},
		hostile{name: "deep nesting unclosed", body: []byte(`{"items":` + strings.Repeat("[", 20000)), status: 400, field: "body", detail: "32 levels"},
		hostile{name: "brackets inside strings are not nesting", mutate: set("shipping_address.line1", strings.Repeat("[", 300)), status: 400, field: "shipping_address.line1"},
		hostile{name: "null item", mutate: func(m map[string]any) { m["items"].([]any)[0] = nil }, status: 400, field: "items[0]", unnamed: "items[0].sku"},
		hostile{name: "null second item", mutate: func(m map[string]any) { m["items"].([]any)[1] = nil }, status: 400, field: "items[1]", unnamed: "items[1].unit_price"},
		hostile{name: "every item null", body: marshal(t, manyNulls), status: 400, field: "items[0]", unnamed: "items[0].quantity"},
		hostile{name: "40 long control-character names", body: marshal(t, longNames), status: 400, field: "000" + strings.Repeat("\x01", 122) + "…"},
		hostile{name: "a 60,000-digit amount", body: rawOrder(t, `"amount":1250`, `"amount":1`+strings.Repeat("0", 60000)+`.5`), status: 400, field: "items[0].unit_price.amount"},
		hostile{name: "a 30,000-byte unknown member", body: rawOrder(t, `"payment":`, `"`+strings.Repeat("\u2028", 10000)+`":1,"payment":`), status: 400, field: strings.Repeat("\u2028", 41) + "…"},
		hostile{name: "a 60,000-character path", method: "GET", path: "/v1/" + strings.Repeat("x", 60000), status: 404, detail: "no route"},
	)
	// Stock.
	for name, body := range map[string]string{
		"available missing": `{}`, "available -1": `{"available":-1}`, "available above the maximum": `{"available":1000000001}`,
		"available 1.5": `{"available":1.5}`, "available as a string": `{"available":"5"}`, "available true": `{"available":true}`,
		"duplicate available": `{"available":5,"available":1000}`, "unknown stock member": `{"available":5,"reserved":1}`,
	} {
		f := "available"
		if strings.Contains(body, "reserved") {
			f = "reserved"
		}
		cs = append(cs, hostile{name: name, method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(body), status: 400, field: f})
	}
	for name, c := range map[string]struct{ body, field string }{
		"price amount null":       {`{"available":5,"unit_price":{"amount":null,"currency":"USD"}}`, "unit_price.amount"},
		"price amount missing":    {`{"available":5,"unit_price":{"currency":"USD"}}`, "unit_price.amount"},
		"price amount negative":   {`{"available":5,"unit_price":{"amount":-1,"currency":"USD"}}`, "unit_price.amount"},
		"price currency unknown":  {`{"available":5,"unit_price":{"amount":1,"currency":"XYZ"}}`, "unit_price.currency"},
		"price currency missing":  {`{"available":5,"unit_price":{"amount":1}}`, "unit_price.currency"},
		"price a string":          {`{"available":5,"unit_price":"12.50"}`, "unit_price"},
		"invalid UTF-8 currency":  {"{\"available\":5,\"unit_price\":{\"amount\":1,\"currency\":\"US\xff\"}}", "unit_price.currency"},
		"duplicate price members": {`{"available":5,"unit_price":{"amount":1,"currency":"USD","currency":"EUR"}}`, "unit_price.currency"},
	} {
		cs = append(cs, hostile{name: name, method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(c.body), status: 400, field: c.field})
	}
	cs = append(cs,
		hostile{name: "bad SKU in the path", method: "PUT", path: "/v1/inventory/bad!sku", body: []byte(`{"available":1}`), status: 400, field: "sku"},
		hostile{name: "bad SKU to read", method: "GET", path: "/v1/inventory/bad!sku", status: 400, field: "sku"},
		hostile{name: "stock as text/plain", method: "PUT", path: "/v1/inventory/H-FREE", ctype: "text/plain", body: []byte(`{"available":1}`), status: 415, detail: "Content-Type"},
		hostile{name: "oversized stock", method: "PUT", path: "/v1/inventory/H-FREE", body: []byte(`{"available":1,"x":"` + strings.Repeat("x", intake.MaxBodyBytes) + `"}`), status: 413, detail: "bytes"},
		hostile{name: "stock without key", method: "PUT", path: "/v1/inventory/H-FREE", auth: "-", body: []byte(`{"available":1}`), status: 401, detail: "Authorization"},
		hostile{name: "read stock without key", method: "GET", path: "/v1/inventory/H-FREE", auth: "-", status: 401, detail: "Authorization"},
	)
	// Adjustments.
	adj := "/v1/inventory/H-FREE/adjustments"
	for name, c := range map[string]struct {
		body   string
		status int
		field  string
	}{
		"delta null": {`{"delta":null}`, 400, "delta"}, "delta missing": {`{}`, 400, "delta"}, "delta as a string": {`{"delta":"1"}`, 400, "delta"},
		"delta 1.5": {`{"delta":1.5}`, 400, "delta"}, "delta above the maximum": {`{"delta":1000000001}`, 400, "delta"},
		"delta below the minimum": {`{"delta":-1000000001}`, 400, "delta"}, "duplicate delta": {`{"delta":1,"delta":100}`, 400, "delta"},
		"unknown adjustment member": {`{"delta":1,"reason":"x"}`, 400, "reason"},
		"below zero":                {`{"delta":-6}`, 409, "available"},
		"beyond the maximum level":  {`{"delta":999999999}`, 409, "available"},
	} {
		cs = append(cs, hostile{name: name, path: adj, body: []byte(c.body), status: c.status, field: c.field})
	}
	cs = append(cs,
		hostile{name: "adjust an unknown SKU", path: "/v1/inventory/H-NONE/adjustments", body: []byte(`{"delta":1}`), status: 404, detail: "H-NONE"},
		hostile{name: "adjust a bad SKU", path: "/v1/inventory/bad!sku/adjustments", body: []byte(`{"delta":1}`), status: 400, field: "sku"},
		hostile{name: "adjust as text/plain", path: adj, ctype: "text/plain", body: []byte(`{"delta":1}`), status: 415, detail: "Content-Type"},
		hostile{name: "oversized adjustment", path: adj, body: []byte(`{"delta":1,"x":"` + strings.Repeat("x", intake.MaxBodyBytes) + `"}`), status: 413, detail: "bytes"},
		hostile{name: "adjust without key", path: adj, auth: "-", body: []byte(`{"delta":1}`), status: 401, detail: "Authorization"},
		hostile{name: "read an order without key", method: "GET", path: "/v1/orders/x", auth: "-", status: 401, detail: "Authorization"},
		hostile{name: "cancel without key", path: "/v1/orders/x/cancel", auth: "-", status: 401, detail: "Authorization"},
		hostile{name: "cancel an unknown order", path: "/v1/orders/no-such-order/cancel", status: 404, detail: "no-such-order"},
	)
	return cs
}

// fieldPath turns items.0.sku into items[0].sku.
func fieldPath(p string) string {
	return strings.ReplaceAll(p, ".0.", "[0].")
}

// snapshot is everything a request could have written.
func snapshot(t *testing.T, a *api) (orders int, stock map[string]string) {
	t.Helper()
	ctx := context.Background()
	out, err := a.env.DDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(a.env.Prov.Names.Tables["orders"]), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := a.env.DDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(a.env.Prov.Names.Tables["inventory"]), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	stock = map[string]string{}
	for _, it := range inv.Items {
		b, _ := json.Marshal(it)
		stock[fmt.Sprint(it["sku"])] = string(b)
	}
	return len(out.Items), stock
}

func TestHostileInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	for sku, body := range map[string]string{
		"H-PRICED": `{"available":10,"unit_price":{"amount":1250,"currency":"USD"}}`,
		"H-FREE":   `{"available":5}`,
	} {
		if status, resp := a.do(t, "PUT", "/v1/inventory/"+sku, "application/json", apiKey, []byte(body)); status != 200 {
			t.Fatalf("seed %s = %d %s", sku, status, resp)
		}
	}
	cases := hostileCases(t)
	if len(cases) < 80 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		names[c.name] = true
	}
	orders0, stock0 := snapshot(t, a)
	if orders0 != 0 || len(stock0) != 2 {
		t.Fatalf("before: %d orders, stock %v", orders0, stock0)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path := cmpOr(c.method, "POST"), cmpOr(c.path, "/v1/orders")
			body := c.body
			if body == nil && method != "GET" {
				m := validBody()
				if c.mutate != nil {
					c.mutate(m)
				}
				body = marshal(t, m)
			}
			req, err := http.NewRequest(method, a.srv.URL+path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", cmpOr(c.ctype, "application/json"))
			switch c.auth {
			case "":
				req.Header.Set("Authorization", "Bearer "+apiKey)
			case "-":
			default:
				req.Header.Set("Authorization", c.auth)
			}
			for k, v := range c.headers {
				req.Header[k] = []string{v}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, buf.Bytes())
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("no X-Content-Type-Options: nosniff")
			}
			var p intake.Problem
			if err := json.Unmarshal(buf.Bytes(), &p); err != nil || p.Status != c.status || p.Title == "" {
				t.Fatalf("not a problem document: %s", buf.Bytes())
			}
			if len(p.Errors) > intake.MaxProblemErrors {
				t.Fatalf("%d errors listed, more than %d", len(p.Errors), intake.MaxProblemErrors)
			}
			if buf.Len() > intake.MaxProblemBytes {
				t.Fatalf("problem of %d bytes, more than %d", buf.Len(), intake.MaxProblemBytes)
			}
			for _, e := range p.Errors {
				if len(e.Field) > 128 || len(e.Detail) > 256 {
					t.Fatalf("error text not cut: field of %d bytes, detail of %d", len(e.Field), len(e.Detail))
				}
			}
			if c.unnamed != "" && slicesContainsField(p.Errors, c.unnamed) {
				t.Fatalf("problem names %s: %s", c.unnamed, buf.Bytes())
			}
			if c.field != "" && !slicesContainsField(p.Errors, c.field) {
				t.Fatalf("problem does not name %s: %s", c.field, buf.Bytes())
			}
			if c.detail != "" && !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("problem detail does not mention %q: %s", c.detail, buf.Bytes())
			}
			if c.field == "" && c.detail == "" {
				t.Fatal("case asserts neither a field nor a detail")
			}
			orders, stock := snapshot(t, a)
			if orders != 0 {
				t.Fatalf("stored %d orders", orders)
			}
			if !maps.Equal(stock, stock0) {
				t.Fatalf("stock changed: %v, was %v", stock, stock0)
			}
		})
	}
	url := a.env.QueueURL(pipeline.StageInventory, false)
	msgs, err := a.env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Messages) != 0 {
		t.Fatalf("hostile requests published %d events", len(msgs.Messages))
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%d hostile cases refused, nothing written", len(keys))
}

func slicesContainsField(errs []pipeline.FieldError, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
