package pipeline

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// SchemaVersion is the version of the order document (the stored order and
// the detail of every pipeline event) that this release writes, in its
// schema_version member. A document without one was written before
// versions existed and reads as version 1. A release that changes the
// document in a way an older release must not act on raises it; an event
// whose version is higher than this is handed back for a newer release
// (ReasonNewerSchema) rather than handled. Adding a member alone needs no
// new version: an older release keeps members it does not know (see
// Order's codec).
const SchemaVersion = 2

// The order document's codec. Two releases run side by side during a
// deploy, and each stage writes the whole document, so a release must
// never drop what a newer one wrote: decoding keeps every member this
// release does not know, as raw JSON, beside the decoded struct, and
// encoding writes them back. What is kept:
//
//   - unknown members of the order object itself;
//   - unknown members of its customer, payment and shipping_address
//     objects and of each object of its items array (by position).
//
// Not kept: unknown members of the money objects (total, unit_price) and
// of anything below the objects named above. A newer release that needs a
// member there adds it at one of the kept levels instead (docs/deploying.md).
// A member this release knows is written as this release understands it;
// the codec matches member names as encoding/json does (exactly, else
// without regard to case).

// unknownMembers are the members of a JSON object this release does not
// know, as the text between the object's braces: compacted, in name
// order, "" for none. A string, so that the structs holding it stay
// comparable with ==.
type unknownMembers string

// orderWire is Order without its methods, for encoding/json.
type orderWire Order

// known member names of each object the codec keeps unknown members of.
var (
	orderMembers    = jsonNames(reflect.TypeFor[Order]())
	customerMembers = jsonNames(reflect.TypeFor[Customer]())
	itemMembers     = jsonNames(reflect.TypeFor[Item]())
	paymentMembers  = jsonNames(reflect.TypeFor[Payment]())
	addressMembers  = jsonNames(reflect.TypeFor[Address]())
)

func jsonNames(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}

// UnmarshalJSON decodes an order document, keeping the members this
// release does not know (see the codec's comment). A document without a
// schema_version is version 1.
func (o *Order) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	return decodeOrder(data, o)
}

func decodeOrder(data []byte, o *Order) error {
	o.unknown = ""
	if err := json.Unmarshal(data, (*orderWire)(o)); err != nil {
		return err
	}
	if o.SchemaVersion == 0 {
		o.SchemaVersion = 1
	}
	// data is valid JSON now: the scan below need not check it.
	var top map[string]json.RawMessage
	eachMember(data, func(name []byte, val []byte) {
		switch string(name) {
		case "customer":
			o.Customer.unknown = collect(val, customerMembers)
		case "payment":
			o.Payment.unknown = collect(val, paymentMembers)
		case "shipping_address":
			o.ShippingAddress.unknown = collect(val, addressMembers)
		case "items":
			k := 0
			eachElement(val, func(el []byte) {
				if k < len(o.Items) {
					o.Items[k].unknown = collect(el, itemMembers)
				}
				k++
			})
		default:
			if !isKnown(name, orderMembers) {
				top = keep(top, name, val)
			}
		}
	})
	o.unknown = join(top)
	return nil
}

// collect returns the members of the object obj whose names are not in
// known, or nil when there are none (or obj is not an object).
func collect(obj []byte, known map[string]bool) unknownMembers {
	var out map[string]json.RawMessage
	eachMember(obj, func(name []byte, val []byte) {
		if !isKnown(name, known) {
			out = keep(out, name, val)
		}
	})
	return join(out)
}

// join returns the members of m as unknownMembers.
func join(m map[string]json.RawMessage) unknownMembers {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	var b []byte
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		key, _ := json.Marshal(name)
		b = append(append(append(b, key...), ':'), m[name]...)
	}
	return unknownMembers(b)
}

func keep(m map[string]json.RawMessage, name []byte, val []byte) map[string]json.RawMessage {
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	var b bytes.Buffer
	if json.Compact(&b, val) != nil {
		b.Reset()
		b.Write(val)
	}
	m[string(name)] = b.Bytes()
	return m
}

// isKnown reports whether encoding/json decodes the member name into one
// of the fields named in known: the exact name, else one equal to it
// without regard to case.
func isKnown(name []byte, known map[string]bool) bool {
	if known[string(name)] {
		return true
	}
	for k := range known {
		if bytes.EqualFold([]byte(k), name) {
			return true
		}
	}
	return false
}

// MarshalJSON encodes the order document: the fields this release knows,
// schema_version set to this release's SchemaVersion, and every member it
// kept from the document it was decoded from.
func (o Order) MarshalJSON() ([]byte, error) {
	w := orderWire(o)
	w.SchemaVersion = SchemaVersion
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, err
	}
	if !o.nestedUnknown() {
		return appendMembers(b, o.unknown), nil
	}
	// Rare: a newer release added members inside the order's objects.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	top["customer"] = appendMembers(top["customer"], o.Customer.unknown)
	top["payment"] = appendMembers(top["payment"], o.Payment.unknown)
	top["shipping_address"] = appendMembers(top["shipping_address"], o.ShippingAddress.unknown)
	var items []json.RawMessage
	if err := json.Unmarshal(top["items"], &items); err != nil {
		return nil, err
	}
	for k := range items {
		if k < len(o.Items) {
			items[k] = appendMembers(items[k], o.Items[k].unknown)
		}
	}
	if top["items"], err = json.Marshal(items); err != nil {
		return nil, err
	}
	for name, val := range o.UnknownMembers() {
		top[name] = val
	}
	return json.Marshal(top)
}

func (o Order) nestedUnknown() bool {
	if len(o.Customer.unknown)+len(o.Payment.unknown)+len(o.ShippingAddress.unknown) > 0 {
		return true
	}
	for _, it := range o.Items {
		if len(it.unknown) > 0 {
			return true
		}
	}
	return false
}

// appendMembers returns obj, an encoded JSON object, with the members m
// added at its end.
func appendMembers(obj []byte, m unknownMembers) []byte {
	if m == "" || len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj
	}
	out := append([]byte(nil), obj[:len(obj)-1]...)
	if out[len(out)-1] != '{' {
		out = append(out, ',')
	}
	return append(append(out, m...), '}')
}

// UnknownMembers returns the members of the order document this release
// does not know and kept, by name (for tests and operator tools).
func (o Order) UnknownMembers() map[string]json.RawMessage {
	if o.unknown == "" {
		return nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte("{"+o.unknown+"}"), &m)
	return m
}

// --- a scanner of valid JSON, for the members' names and raw values ---

// eachMember calls fn with the name (unquoted, and unescaped if need be)
// and raw value of each member of obj, a valid JSON value; nothing when it
// is not an object. name is only valid during the call.
func eachMember(obj []byte, fn func(name []byte, val []byte)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		if i >= len(obj) || obj[i] != '"' {
			return
		}
		end, escaped := skipString(obj, i)
		name := obj[i+1 : end-1]
		if escaped {
			var s string
			_ = json.Unmarshal(obj[i:end], &s)
			name = []byte(s)
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		fn(name, obj[i:vend])
		i = vend
	}
}

// eachElement calls fn with each element of arr, a valid JSON value;
// nothing when it is not an array.
func eachElement(arr []byte, fn func(el []byte)) {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	i++
	for {
		i = skipSpace(arr, i)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
		if i >= len(arr) || arr[i] == ']' {
			return
		}
		end := skipValue(arr, i)
		fn(arr[i:end])
		i = end
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] (a
// quote) and whether it holds an escape.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return len(b), escaped
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := skipString(b, j)
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
			j++
		}
		return j
	}
}
