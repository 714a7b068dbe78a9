package intake

import (
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestPathFollowsTheAPIFieldNames(t *testing.T) {
	t.Parallel()
	for ptr, want := range map[jsontext.Pointer]string{
		"":                            "body",
		"/items":                      "items",
		"/items/0/quantity":           "items[0].quantity",
		"/items/12/unit_price/amount": "items[12].unit_price.amount",
		"/shipping_address/line1":     "shipping_address.line1",
		"/a~1b":                       "a/b",
	} {
		if got := path(ptr); got != want {
			t.Errorf("path(%q) = %q, want %q", ptr, got, want)
		}
	}
}

func TestDecodeOrderNamesEveryLeafProblem(t *testing.T) {
	t.Parallel()
	body := `{"customer":{"id":null,"email":1},"items":[{"sku":"A","quantity":"2","unit_price":{"amount":null,"currency":"USD"}},
		{"sku":"B","quantity":1.5,"unit_price":{"amount":1,"currency":false}}],"payment":{"token":"t"},
		"shipping_address":{"name":"n","line1":"l","city":"c","postal_code":"p","country":"GB","zip":1}}`
	_, fields, err := decodeOrder([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fields {
		got[f.Field] = true
	}
	for _, want := range []string{"customer.id", "customer.email", "items[0].quantity", "items[0].unit_price.amount",
		"items[1].quantity", "items[1].unit_price.currency", "shipping_address.zip"} {
		if !got[want] {
			t.Errorf("no error for %s: %v", want, fields)
		}
	}
}
