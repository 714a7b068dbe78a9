package intake

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Request bodies are decoded by github.com/go-json-experiment/json (the
// encoding/json/v2 semantics): duplicate member names and invalid UTF-8 are
// syntax errors, and each reports the JSON Pointer of the offending value,
// which becomes the field path of the answer (/items/0/quantity →
// items[0].quantity). The wire types below mark which members were present,
// so null is refused like any other wrong type rather than becoming 0 or "".

// MaxProblemErrors caps the errors one problem document lists.
const MaxProblemErrors = 50

// MaxDepth is the deepest nesting of arrays and objects a body may have.
// The deepest valid order nests three levels (items[0].unit_price); a body
// nested deeper is refused before it is decoded, with a fixed message, so
// neither the work nor the answer grows with the depth.
const MaxDepth = 32

// errTooDeep answers a body nested deeper than MaxDepth.
var errTooDeep = fmt.Errorf("the body nests arrays and objects more than %d levels deep", MaxDepth)

// Field paths and details quote the request; both are cut to these lengths
// (in bytes, on a character boundary) so an answer stays small whatever the
// input.
const (
	maxFieldLen  = 128
	maxDetailLen = 256
)

// clip cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// tooDeep reports whether body nests arrays and objects more than max
// levels deep, looking only at brackets outside strings.
func tooDeep(body []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > max {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}

// intField and strField remember whether the member was present.
type intField struct {
	Value int64
	Set   bool
}

type strField struct {
	Value string
	Set   bool
}

type wireMoney struct {
	Amount   intField       `json:"amount"`
	Currency strField       `json:"currency"`
	Unknown  jsontext.Value `json:",unknown"`
}

type wireItem struct {
	SKU       strField       `json:"sku"`
	Quantity  intField       `json:"quantity"`
	UnitPrice *wireMoney     `json:"unit_price"`
	Unknown   jsontext.Value `json:",unknown"`
}

type wireOrder struct {
	Customer *struct {
		ID      strField       `json:"id"`
		Email   strField       `json:"email"`
		Phone   strField       `json:"phone"`
		Unknown jsontext.Value `json:",unknown"`
	} `json:"customer"`
	Items   []*wireItem `json:"items"` // a null item stays nil and is named as a whole
	Payment *struct {
		Token   strField       `json:"token"`
		Unknown jsontext.Value `json:",unknown"`
	} `json:"payment"`
	ShippingAddress *struct {
		Name       strField       `json:"name"`
		Line1      strField       `json:"line1"`
		Line2      strField       `json:"line2"`
		City       strField       `json:"city"`
		PostalCode strField       `json:"postal_code"`
		Country    strField       `json:"country"`
		Unknown    jsontext.Value `json:",unknown"`
	} `json:"shipping_address"`
	Unknown jsontext.Value `json:",unknown"`
}

type wireStock struct {
	Available intField       `json:"available"`
	UnitPrice *wireMoney     `json:"unit_price"`
	Shards    intField       `json:"shards"`
	Unknown   jsontext.Value `json:",unknown"`
}

type wireAdjustment struct {
	Delta   intField       `json:"delta"`
	Unknown jsontext.Value `json:",unknown"`
}

// fieldErrors collects problems, one per field.
type fieldErrors struct {
	list []pipeline.FieldError
	seen map[string]bool
}

func (f *fieldErrors) add(field, format string, args ...any) {
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	if f.seen[field] {
		return
	}
	f.seen[field] = true
	f.list = append(f.list, pipeline.FieldError{Field: clip(field, maxFieldLen), Detail: clip(fmt.Sprintf(format, args...), maxDetailLen)})
}

// path turns a JSON Pointer into the API's field path: /items/0/unit_price
// → items[0].unit_price; the empty pointer (the whole document) is "body".
// A path longer than maxFieldLen is cut there.
func path(ptr jsontext.Pointer) string {
	var b strings.Builder
	for tok := range ptr.Tokens() {
		if b.Len() > maxFieldLen {
			break
		}
		if _, err := strconv.ParseUint(tok, 10, 32); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "body"
	}
	return clip(b.String(), maxFieldLen)
}

func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

// unknown names every member of an ",unknown" catch-all as not allowed.
func (f *fieldErrors) unknown(p string, v jsontext.Value) {
	if len(v) == 0 {
		return
	}
	dec := jsontext.NewDecoder(strings.NewReader(string(v)))
	if _, err := dec.ReadToken(); err != nil {
		return
	}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return
		}
		f.add(join(p, tok.String()), "is not a known field")
		if err := dec.SkipValue(); err != nil {
			return
		}
	}
}

// errSyntax is a body that is not one well-formed JSON value: bad syntax,
// a duplicate member name, invalid UTF-8, or trailing data.
var errSyntax = errors.New("the body is not valid JSON")

// decode unmarshals body into v strictly, recording every leaf that has the
// wrong type (null included) under its field path. It returns errSyntax,
// wrapped with the position, after recording the field, when the body is
// not well-formed JSON.
func decode(body []byte, v any, f *fieldErrors) error {
	if tooDeep(body, MaxDepth) {
		f.add("body", "%s", errTooDeep.Error())
		return fmt.Errorf("%w: %v", errSyntax, errTooDeep)
	}
	leaf := func(dec *jsontext.Decoder, parse func(jsontext.Value) (string, bool)) error {
		val, err := dec.ReadValue()
		if err != nil {
			return err
		}
		if detail, ok := parse(val); !ok {
			f.add(path(dec.StackPointer()), "%s", detail)
		}
		return nil
	}
	opts := json.WithUnmarshalers(json.JoinUnmarshalers(
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, x *intField) error {
			x.Set = true
			return leaf(dec, func(val jsontext.Value) (string, bool) {
				if val.Kind() != '0' {
					return "must be an integer, not " + kindName(val.Kind()), false
				}
				n, err := strconv.ParseInt(string(val), 10, 64)
				if err != nil {
					if strings.ContainsAny(string(val), ".eE") {
						return fmt.Sprintf("must be an integer (amounts are in minor units, e.g. cents), got %s", val), false
					}
					return "is out of range", false
				}
				x.Value = n
				return "", true
			})
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, x *strField) error {
			x.Set = true
			return leaf(dec, func(val jsontext.Value) (string, bool) {
				if val.Kind() != '"' {
					return "must be a string, not " + kindName(val.Kind()), false
				}
				if err := json.Unmarshal(val, &x.Value); err != nil {
					return "is not a valid string", false
				}
				return "", true
			})
		}),
	))
	err := json.Unmarshal(body, v, opts, json.RejectUnknownMembers(false))
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn):
		field := path(syn.JSONPointer)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			field = "body" // truncated: the position says little
		}
		detail := clip(strings.TrimPrefix(syn.Error(), "jsontext: "), maxDetailLen)
		f.add(field, "%s", detail)
		return fmt.Errorf("%w: %s", errSyntax, detail)
	case errors.As(err, &sem):
		// A value of the wrong kind where an object or array belongs: the
		// library reports the first; the leaves report the rest.
		what := "object"
		if sem.GoType != nil && strings.HasPrefix(sem.GoType.String(), "[]") {
			what = "array"
		}
		f.add(path(sem.JSONPointer), "must be a JSON %s, not %s", what, kindName(sem.JSONKind))
	case err != nil:
		detail := clip(err.Error(), maxDetailLen)
		f.add("body", "%s", detail)
		return fmt.Errorf("%w: %s", errSyntax, detail)
	}
	if k := jsontext.Value(body).Kind(); k != '{' {
		f.add("body", "must be a JSON object, not %s", kindName(k))
	}
	return nil
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "invalid"
}

func (m *wireMoney) decodeInto(p string, f *fieldErrors) pipeline.Money {
	f.unknown(p, m.Unknown)
	if !m.Amount.Set {
		f.add(p+".amount", "is required")
	}
	return pipeline.Money{Amount: m.Amount.Value, Currency: m.Currency.Value}
}

// decodeOrder turns a request body into an order request, naming every
// offending field; a non-nil error means the body is not well-formed JSON.
func decodeOrder(body []byte) (pipeline.OrderRequest, []pipeline.FieldError, error) {
	f := &fieldErrors{}
	var w wireOrder
	var r pipeline.OrderRequest
	if err := decode(body, &w, f); err != nil {
		return r, f.list, err
	}
	f.unknown("", w.Unknown)
	if c := w.Customer; c != nil {
		f.unknown("customer", c.Unknown)
		r.Customer = pipeline.Customer{ID: c.ID.Value, Email: c.Email.Value, Phone: c.Phone.Value}
	}
	var nulls []string // items that are null: named once, not by their fields
	if len(w.Items) > pipeline.MaxItems {
		f.add("items", "must contain at most %d items, got %d", pipeline.MaxItems, len(w.Items))
	} else {
		for i, it := range w.Items {
			p := fmt.Sprintf("items[%d]", i)
			if it == nil {
				f.add(p, "must be a JSON object, not null")
				nulls = append(nulls, p)
				r.Items = append(r.Items, pipeline.Item{}) // keeps the later items' indexes
				continue
			}
			f.unknown(p, it.Unknown)
			item := pipeline.Item{SKU: it.SKU.Value, Quantity: it.Quantity.Value}
			if it.UnitPrice == nil {
				f.add(p+".unit_price", "is required")
			} else {
				item.UnitPrice = it.UnitPrice.decodeInto(p+".unit_price", f)
			}
			r.Items = append(r.Items, item)
		}
	}
	if p := w.Payment; p != nil {
		f.unknown("payment", p.Unknown)
		r.Payment = pipeline.Payment{Token: p.Token.Value}
	}
	if a := w.ShippingAddress; a != nil {
		f.unknown("shipping_address", a.Unknown)
		r.ShippingAddress = pipeline.Address{Name: a.Name.Value, Line1: a.Line1.Value, Line2: a.Line2.Value,
			City: a.City.Value, PostalCode: a.PostalCode.Value, Country: a.Country.Value}
	}
	// Add what validation finds about fields not already flagged (missing
	// fields, bad values), so one answer names every problem.
	if err := r.Validate(); err != nil {
		var ve *pipeline.ValidationError
		if !errors.As(err, &ve) {
			return r, nil, err
		}
	fields:
		for _, e := range ve.Fields {
			for _, p := range nulls {
				if strings.HasPrefix(e.Field, p+".") {
					continue fields
				}
			}
			f.add(e.Field, "%s", e.Detail)
		}
	}
	return r, f.list, nil
}

// decodeStock reads the body of PUT /v1/inventory/{sku}.
func decodeStock(sku string, body []byte) (pipeline.InventoryItem, []pipeline.FieldError, error) {
	f := &fieldErrors{}
	var w wireStock
	it := pipeline.InventoryItem{SKU: sku}
	if err := decode(body, &w, f); err != nil {
		return it, f.list, err
	}
	f.unknown("", w.Unknown)
	switch {
	case !w.Available.Set:
		f.add("available", "is required")
	case w.Available.Value < 0 || w.Available.Value > pipeline.MaxAvailable:
		f.add("available", "must be an integer from 0 to %d, got %d", pipeline.MaxAvailable, w.Available.Value)
	}
	it.Available = w.Available.Value
	it.Shards = 1
	if w.Shards.Set {
		if w.Shards.Value < 1 || w.Shards.Value > pipeline.MaxShards {
			f.add("shards", "must be an integer from 1 to %d, got %d", pipeline.MaxShards, w.Shards.Value)
		} else {
			it.Shards = int(w.Shards.Value)
		}
	}
	if w.UnitPrice != nil {
		m := w.UnitPrice.decodeInto("unit_price", f)
		switch {
		case m.Amount < 0 || m.Amount > pipeline.MaxUnitAmount:
			f.add("unit_price.amount", "must be from 0 to %d minor units, got %d", int64(pipeline.MaxUnitAmount), m.Amount)
		}
		switch {
		case !w.UnitPrice.Currency.Set:
			f.add("unit_price.currency", "is required")
		case !pipeline.ValidCurrency(m.Currency):
			f.add("unit_price.currency", "%q is not a supported ISO 4217 currency code", m.Currency)
		}
		it.UnitPrice = &m
	}
	return it, f.list, nil
}

// decodeAdjustment reads the body of POST /v1/inventory/{sku}/adjustments.
func decodeAdjustment(body []byte) (int64, []pipeline.FieldError, error) {
	f := &fieldErrors{}
	var w wireAdjustment
	if err := decode(body, &w, f); err != nil {
		return 0, f.list, err
	}
	f.unknown("", w.Unknown)
	switch {
	case !w.Delta.Set:
		f.add("delta", "is required")
	case w.Delta.Value < -pipeline.MaxAvailable || w.Delta.Value > pipeline.MaxAvailable:
		f.add("delta", "must be an integer from %d to %d, got %d", -pipeline.MaxAvailable, pipeline.MaxAvailable, w.Delta.Value)
	}
	return w.Delta.Value, f.list, nil
}
