package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
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

// FuzzProblemIsBounded: whatever the body, the problem document answering
// it stays within MaxProblemBytes. The seeds are the shapes that once grew
// the answer with the input; `go test` runs them, `go test -fuzz` explores.
func FuzzProblemIsBounded(f *testing.F) {
	f.Add(`{"items":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`)
	f.Add(`{"items":` + strings.Repeat(`{"a":`, 10000))
	f.Add(`{"items":[null]}`)
	f.Add(`{"items":[` + strings.Repeat(`null,`, 49) + `null]}`)
	f.Add(`{"items":[{"quantity":1` + strings.Repeat("0", 60000) + `.5}]}`)
	f.Add(`{"` + strings.Repeat(`\u0001`, 10000) + `":1}`)
	long := make([]string, 60)
	for i := range long {
		long[i] = fmt.Sprintf(`"%02d%s":1`, i, strings.Repeat(`\u0001`, 150))
	}
	f.Add(`{` + strings.Join(long, ",") + `}`)
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > MaxBodyBytes {
			return // refused with a fixed 413 before decoding
		}
		for name, decode := range map[string]func([]byte) ([]pipeline.FieldError, error){
			"order":      func(b []byte) ([]pipeline.FieldError, error) { _, f, err := decodeOrder(b); return f, err },
			"stock":      func(b []byte) ([]pipeline.FieldError, error) { _, f, err := decodeStock("S", b); return f, err },
			"adjustment": func(b []byte) ([]pipeline.FieldError, error) { _, f, err := decodeAdjustment(b); return f, err },
		} {
			fields, err := decode([]byte(body))
			detail := "invalid"
			if err != nil {
				detail = err.Error()
			}
			rec := httptest.NewRecorder()
			problem(rec, 400, "Bad Request", detail, fields)
			if n := rec.Body.Len(); n > MaxProblemBytes {
				t.Fatalf("%s: problem of %d bytes for a body of %d", name, n, len(body))
			}
		}
	})
}

func TestDeepBodiesGetAFixedAnswer(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"items":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		`{"a":` + strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 33),
	} {
		_, fields, err := decodeOrder([]byte(body))
		if !errors.Is(err, errSyntax) || len(fields) != 1 || fields[0].Field != "body" || fields[0].Detail != errTooDeep.Error() {
			t.Fatalf("%d-byte body: err %v, fields %v", len(body), err, fields)
		}
	}
	// Brackets in strings do not count, and 32 levels are decoded as usual.
	if tooDeep([]byte(`{"a":"`+strings.Repeat("[", 100)+`"}`), MaxDepth) {
		t.Fatal("brackets inside a string counted as nesting")
	}
	if tooDeep([]byte(`{"a":"\"[[`+strings.Repeat("[", 40)+`"}`), MaxDepth) {
		t.Fatal("an escaped quote ended the string")
	}
	if tooDeep([]byte(strings.Repeat("[", 32)+strings.Repeat("]", 32)), MaxDepth) {
		t.Fatal("32 levels refused")
	}
}

func TestANullItemIsNamedAsAWhole(t *testing.T) {
	t.Parallel()
	_, fields, err := decodeOrder([]byte(`{"items":[{"sku":"A","quantity":1,"unit_price":{"amount":1,"currency":"USD"}},null]}`))
	if err != nil {
		t.Fatal(err)
	}
	var named bool
	for _, f := range fields {
		if f.Field == "items[1]" {
			named = true
		}
		if strings.HasPrefix(f.Field, "items[1].") || strings.HasPrefix(f.Field, "items[0]") {
			t.Errorf("unexpected error %s: %s", f.Field, f.Detail)
		}
	}
	if !named {
		t.Fatalf("items[1] not named: %v", fields)
	}
}

func TestProblemListsFewerErrorsRatherThanGrow(t *testing.T) {
	t.Parallel()
	var fields []pipeline.FieldError
	for i := range MaxProblemErrors {
		fields = append(fields, pipeline.FieldError{Field: fmt.Sprintf("%02d", i) + strings.Repeat("\x01", 500), Detail: strings.Repeat("<", 500)})
	}
	rec := httptest.NewRecorder()
	problem(rec, 400, "Bad Request", strings.Repeat("\x02", 100000), fields)
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if rec.Body.Len() > MaxProblemBytes || p.MoreErrors == 0 || len(p.Errors)+p.MoreErrors != MaxProblemErrors {
		t.Fatalf("%d bytes, %d errors listed, %d more", rec.Body.Len(), len(p.Errors), p.MoreErrors)
	}
	if !strings.HasPrefix(p.Errors[0].Field, "00\x01") || !strings.HasSuffix(p.Errors[0].Field, "…") || len(p.Errors[0].Field) > maxFieldLen {
		t.Fatalf("field not cut: %q", p.Errors[0].Field)
	}
}
