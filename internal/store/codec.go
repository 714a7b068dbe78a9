package store

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// The order document. The whole order is stored as the JSON that
// json.Marshal(order) produces (pipeline.EncodeOrder), so members this
// release does not know survive a round trip. It is stored in one of two
// forms:
//
//   - "order" (S): the JSON as it is. Every release reads it; the previous
//     one reads only it.
//   - "doc" (B): a version byte, then the JSON compressed with DEFLATE
//     (RFC 1951) primed with docDictionary. An order of one to five lines
//     compresses from 0.8–1.2 KB to 0.3–0.5 KB, so with its key attributes
//     the item stays under the 1 KB write unit as its history grows.
//
// Reads accept both forms; which one a write uses is the store's Format.

// Format is the form in which the store writes orders.
type Format int

const (
	// FormatJSON writes the document as the "order" string and keeps the
	// by_status index fed (the updated_at attribute): what the previous
	// release reads. The default while a release that reads only this
	// form may run beside this one.
	FormatJSON Format = iota
	// FormatCompact writes the compressed "doc" and no updated_at, so
	// the by_status index holds no entry for the order: about half the
	// write units. The previous release cannot read it.
	FormatCompact
)

// ParseFormat parses "json" or "compact".
func ParseFormat(v string) (Format, error) {
	switch v {
	case "json", "":
		return FormatJSON, nil
	case "compact":
		return FormatCompact, nil
	}
	return FormatJSON, fmt.Errorf("order format %q: want json or compact", v)
}

func (f Format) String() string {
	if f == FormatCompact {
		return "compact"
	}
	return "json"
}

// Attribute names of the stored document.
const (
	jsonDocAttr    = "order"
	compactDocAttr = "doc"
)

// docVersion1 marks a document compressed with docDictionary. A new
// dictionary gets a new version; readers keep every version they knew.
const docVersion1 = 1

// docDictionary primes the compressor with what every order document
// repeats: its member names and common values, so that even a small
// order compresses well. It is part of the stored format: never change it
// (add a version instead).
const docDictionary = `{"order_id":"","status":"PLACED","customer":{"id":"","email":"@example.com","phone":"+1"},` +
	`"items":[{"sku":"","quantity":1,"unit_price":{"amount":100,"currency":"USD"}},{"sku":"","quantity":2,"unit_price":{"amount":` +
	`"currency":"EUR"}}],"total":{"amount":,"currency":"GBP"},"payment":{"token":"tok_visa"},` +
	`"shipping_address":{"name":"","line1":"","line2":"","city":"","postal_code":"","country":"US"},` +
	`"placed_at":"2026-01-01T00:00:00.000000000Z","updated_at":"2026-01-01T00:00:00.000000000Z",` +
	`"history":{"PAID":"2026-","PLACED":"2026-","RESERVED":"2026-","SHIPPED":"2026-","REJECTED":"","PAYMENT_FAILED":"","CANCELLED":""},` +
	`"stock_shards":{},"charge_id":"ch_","refund_id":"re_","tracking_number":"1Z","carrier":"sandbox","reason":"out of stock"}`

var compressors = sync.Pool{New: func() any {
	w, _ := flate.NewWriterDict(io.Discard, flate.BestCompression, []byte(docDictionary))
	return w
}}

// compressDoc is the "doc" form of a JSON document.
func compressDoc(doc string) []byte {
	var buf bytes.Buffer
	buf.Grow(len(doc)/2 + 16)
	buf.WriteByte(docVersion1)
	w := compressors.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write([]byte(doc))
	_ = w.Close()
	compressors.Put(w)
	return buf.Bytes()
}

// maxDocBytes bounds a decompressed document: an order of MaxItems lines
// is far smaller, so anything larger is not an order.
const maxDocBytes = 1 << 20

// inflateDoc is the JSON of a "doc".
func inflateDoc(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != docVersion1 {
		return nil, errors.New("stored order document has an unknown version")
	}
	r := flate.NewReaderDict(bytes.NewReader(b[1:]), []byte(docDictionary))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("inflate stored order: %w", err)
	}
	if len(out) > maxDocBytes {
		return nil, errors.New("stored order document is too large")
	}
	return out, nil
}

// decodeOrder reads the order of an item in either form.
func decodeOrder(item map[string]types.AttributeValue) (pipeline.Order, error) {
	var raw []byte
	switch {
	case item[compactDocAttr] != nil:
		b, ok := item[compactDocAttr].(*types.AttributeValueMemberB)
		if !ok {
			return pipeline.Order{}, errors.New("stored order document is not binary")
		}
		var err error
		if raw, err = inflateDoc(b.Value); err != nil {
			return pipeline.Order{}, err
		}
	case item[jsonDocAttr] != nil:
		doc, ok := item[jsonDocAttr].(*types.AttributeValueMemberS)
		if !ok {
			return pipeline.Order{}, errors.New("stored order document is not a string")
		}
		raw = []byte(doc.Value)
	default:
		return pipeline.Order{}, errors.New("stored order has no order document")
	}
	var o pipeline.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		return pipeline.Order{}, fmt.Errorf("decode stored order: %w", err)
	}
	return o, nil
}
