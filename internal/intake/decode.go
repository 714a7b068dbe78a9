package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// decoder walks a JSON document with exact field paths, so that a wrong
// type, a float where an integer belongs or an unknown field is reported as
// items[0].quantity rather than as a Go type error.
type decoder struct {
	errs []pipeline.FieldError
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, pipeline.FieldError{Field: path, Detail: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// object checks that v is an object with only the allowed keys and returns
// it, or nil after recording the problem.
func (d *decoder) object(path string, v any, allowed ...string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		name := path
		if name == "" {
			name = "body"
		}
		d.fail(name, "must be a JSON object")
		return nil
	}
	for k := range m {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			d.fail(join(path, k), "is not a known field")
		}
	}
	return m
}

func (d *decoder) str(m map[string]any, path, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail(join(path, key), "must be a string")
	}
	return s
}

func (d *decoder) integer(m map[string]any, path, key string) int64 {
	v, ok := m[key]
	if !ok || v == nil {
		return 0
	}
	num, ok := v.(json.Number)
	if !ok {
		d.fail(join(path, key), "must be an integer")
		return 0
	}
	n, err := strconv.ParseInt(num.String(), 10, 64)
	if err != nil {
		if strings.ContainsAny(num.String(), ".eE") {
			d.fail(join(path, key), "must be an integer (amounts are in minor units, e.g. cents), got %s", num.String())
		} else {
			d.fail(join(path, key), "is out of range")
		}
		return 0
	}
	return n
}

// parse reads one JSON value, rejecting trailing data.
func parse(r io.Reader) (any, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// decodeOrder turns a request body into an order request, naming every
// offending field.
func decodeOrder(body []byte) (pipeline.OrderRequest, []pipeline.FieldError, error) {
	v, err := parse(bytes.NewReader(body))
	if err != nil {
		return pipeline.OrderRequest{}, nil, err
	}
	d := &decoder{}
	var r pipeline.OrderRequest
	top := d.object("", v, "customer", "items", "payment", "shipping_address")
	if top == nil {
		return r, d.errs, nil
	}
	if c := top["customer"]; c != nil {
		if m := d.object("customer", c, "id", "email", "phone"); m != nil {
			r.Customer = pipeline.Customer{ID: d.str(m, "customer", "id"), Email: d.str(m, "customer", "email"), Phone: d.str(m, "customer", "phone")}
		}
	}
	if items, ok := top["items"]; ok && items != nil {
		list, ok := items.([]any)
		if !ok {
			d.fail("items", "must be an array")
		} else if len(list) > pipeline.MaxItems {
			d.fail("items", "must contain at most %d items, got %d", pipeline.MaxItems, len(list))
		} else {
			for i, it := range list {
				p := fmt.Sprintf("items[%d]", i)
				m := d.object(p, it, "sku", "quantity", "unit_price")
				if m == nil {
					continue
				}
				item := pipeline.Item{SKU: d.str(m, p, "sku"), Quantity: d.integer(m, p, "quantity")}
				if up := m["unit_price"]; up != nil {
					if pm := d.object(p+".unit_price", up, "amount", "currency"); pm != nil {
						item.UnitPrice = pipeline.Money{Amount: d.integer(pm, p+".unit_price", "amount"), Currency: d.str(pm, p+".unit_price", "currency")}
						if _, ok := pm["amount"]; !ok {
							d.fail(p+".unit_price.amount", "is required")
						}
					}
				} else {
					d.fail(p+".unit_price", "is required")
				}
				r.Items = append(r.Items, item)
			}
		}
	}
	if p := top["payment"]; p != nil {
		if m := d.object("payment", p, "token"); m != nil {
			r.Payment = pipeline.Payment{Token: d.str(m, "payment", "token")}
		}
	}
	if a := top["shipping_address"]; a != nil {
		if m := d.object("shipping_address", a, "name", "line1", "line2", "city", "postal_code", "country"); m != nil {
			p := "shipping_address"
			r.ShippingAddress = pipeline.Address{Name: d.str(m, p, "name"), Line1: d.str(m, p, "line1"), Line2: d.str(m, p, "line2"),
				City: d.str(m, p, "city"), PostalCode: d.str(m, p, "postal_code"), Country: d.str(m, p, "country")}
		}
	}
	// Add what validation finds about fields the walk did not already flag
	// (missing fields, bad values), so one answer names every problem.
	if err := r.Validate(); err != nil {
		var ve *pipeline.ValidationError
		if !errors.As(err, &ve) {
			return r, nil, err
		}
		seen := map[string]bool{}
		for _, e := range d.errs {
			seen[e.Field] = true
		}
		for _, f := range ve.Fields {
			if !seen[f.Field] {
				d.errs = append(d.errs, f)
			}
		}
	}
	return r, d.errs, nil
}
