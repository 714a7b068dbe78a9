package pipeline

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is where an order is in its life.
type Status string

// The order statuses. PLACED, RESERVED and PAID are in progress; the rest are
// final.
const (
	StatusPlaced        Status = "PLACED"
	StatusReserved      Status = "RESERVED"
	StatusPaid          Status = "PAID"
	StatusShipped       Status = "SHIPPED"
	StatusRejected      Status = "REJECTED"
	StatusPaymentFailed Status = "PAYMENT_FAILED"
	StatusCancelled     Status = "CANCELLED"
)

// AllStatuses lists every status in life-cycle order.
var AllStatuses = []Status{StatusPlaced, StatusReserved, StatusPaid, StatusShipped, StatusRejected, StatusPaymentFailed, StatusCancelled}

// transitions is the whole state machine: only these moves exist.
var transitions = map[Status][]Status{
	StatusPlaced:   {StatusReserved, StatusRejected, StatusCancelled},
	StatusReserved: {StatusPaid, StatusPaymentFailed, StatusCancelled},
	StatusPaid:     {StatusShipped, StatusCancelled},
}

// CanTransition reports whether the state machine allows from → to.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Final reports whether no transition leaves s.
func (s Status) Final() bool { return len(transitions[s]) == 0 && s.Valid() }

// Done reports whether nothing is left to do for o: its status is final
// and, when it was cancelled after its charge, the refund is recorded.
// The stuck-order sweep looks after every order not done.
func (o Order) Done() bool {
	return o.Status.Final() && !(o.Status == StatusCancelled && o.ChargeID != "" && o.RefundID == "")
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, k := range AllStatuses {
		if k == s {
			return true
		}
	}
	return false
}

// rank orders statuses along the happy path so "already past this stage" can
// be decided. Final failure statuses rank after the stage that produces them.
func (s Status) rank() int {
	switch s {
	case StatusPlaced:
		return 0
	case StatusReserved, StatusRejected:
		return 1
	case StatusPaid, StatusPaymentFailed:
		return 2
	case StatusShipped:
		return 3
	case StatusCancelled:
		return 4
	}
	return -1
}

// Money is an amount in integer minor units (cents for USD, yen for JPY) of
// an ISO 4217 currency. There are no floats anywhere near money.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

func (m Money) String() string { return fmt.Sprintf("%d %s", m.Amount, m.Currency) }

// currencies are the ISO 4217 codes accepted, with their minor-unit digits.
var currencies = map[string]int{
	"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2,
	"SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2, "CNY": 2, "HKD": 2,
	"SGD": 2, "INR": 2, "BRL": 2, "MXN": 2, "ZAR": 2, "KRW": 0, "TRY": 2, "ILS": 2,
	"AED": 2, "SAR": 2, "THB": 2, "MYR": 2, "IDR": 2, "PHP": 2, "TWD": 2, "CLP": 0,
	"COP": 2, "PEN": 2, "ARS": 2, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}

// ValidCurrency reports whether code is a supported ISO 4217 currency code.
func ValidCurrency(code string) bool { _, ok := currencies[code]; return ok }

// Limits on an order. TransactWriteItems takes at most 100 actions, one of
// which is the order itself, so an order may name at most MaxItems SKUs.
const (
	MaxItems       = 50
	MaxQuantity    = 1000
	MaxUnitAmount  = 100_000_000_00 // 100 million major units
	maxTextLength  = 200
	maxTokenLength = 255
)

var (
	skuPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	countryCode  = regexp.MustCompile(`^[A-Z]{2}$`)
)

// Customer is who placed the order and how to reach them.
type Customer struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Phone string `json:"phone,omitempty"`

	unknown unknownMembers // members a newer release added (see codec.go)
}

// Item is one order line.
type Item struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`

	unknown unknownMembers // members a newer release added (see codec.go)
}

// Payment says how the customer pays: a payment-method token from the
// payment provider, never card data.
type Payment struct {
	Token string `json:"token"`

	unknown unknownMembers // members a newer release added (see codec.go)
}

// Address is a shipping address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`

	unknown unknownMembers // members a newer release added (see codec.go)
}

// HistoryEntry is one recorded transition.
type HistoryEntry struct {
	Status Status    `json:"status"`
	At     time.Time `json:"at"`
}

// Order is the aggregate every stage moves forward. Its JSON form is the
// detail of every pipeline event, so a stage has what it needs without a
// read before its conditional write. Its codec (codec.go) keeps the
// members a newer release added, so no write of this release erases them.
type Order struct {
	// SchemaVersion is the schema_version of the document the order was
	// decoded from (1 when it has none). Encoding always writes this
	// release's SchemaVersion.
	SchemaVersion   int                  `json:"schema_version"`
	ID              string               `json:"order_id"`
	Status          Status               `json:"status"`
	Customer        Customer             `json:"customer"`
	Items           []Item               `json:"items"`
	Total           Money                `json:"total"`
	Payment         Payment              `json:"payment"`
	ShippingAddress Address              `json:"shipping_address"`
	PlacedAt        time.Time            `json:"placed_at"`
	UpdatedAt       time.Time            `json:"updated_at"`
	History         map[Status]time.Time `json:"history,omitempty"`
	ChargeID        string               `json:"charge_id,omitempty"`
	RefundID        string               `json:"refund_id,omitempty"`
	TrackingNumber  string               `json:"tracking_number,omitempty"`
	Carrier         string               `json:"carrier,omitempty"`
	Reason          string               `json:"reason,omitempty"`
	// StockShards records, for a SKU whose stock is held in several
	// shards, the shard its units were reserved from (absent: shard 0), so
	// a release returns them there.
	StockShards map[string]int `json:"stock_shards,omitempty"`
	// Trace carries the trace context of the request that placed the order
	// (W3C traceparent), so spans in every stage join one trace.
	Trace string `json:"trace,omitempty"`

	unknown unknownMembers // members a newer release added (see codec.go)
}

// Timeline returns the history in the order it happened.
func (o Order) Timeline() []HistoryEntry {
	out := make([]HistoryEntry, 0, len(o.History))
	for s, at := range o.History {
		out = append(out, HistoryEntry{Status: s, At: at})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Status.rank() < out[j].Status.rank()
	})
	return out
}

// Lines returns the quantity per SKU, merging repeated SKUs, in SKU order.
// A valid order carries one unit price per SKU; each line has it.
func (o Order) Lines() []Line {
	idx := map[string]int{}
	out := make([]Line, 0, len(o.Items))
	for _, it := range o.Items {
		if i, ok := idx[it.SKU]; ok {
			out[i].Quantity += it.Quantity
			continue
		}
		idx[it.SKU] = len(out)
		out = append(out, Line{SKU: it.SKU, Quantity: it.Quantity, UnitPrice: it.UnitPrice, Shard: o.StockShards[it.SKU]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	return out
}

// Line is a quantity of one SKU, as reserved or released. UnitPrice is the
// price the order carries for the SKU: a reservation succeeds only if the
// catalogue has no price for the SKU or the same one.
type Line struct {
	SKU       string
	Quantity  int64
	UnitPrice Money
	// Shard is the stock shard the line's units were reserved from (0 for
	// a SKU held in one item); a release returns them there.
	Shard int
}

// transition returns a copy of o moved to status to at time now, or an error
// when the state machine forbids it.
func (o Order) transition(to Status, now time.Time) (Order, error) {
	if !CanTransition(o.Status, to) {
		return o, fmt.Errorf("order %s: transition %s → %s is not allowed", o.ID, o.Status, to)
	}
	n := o
	n.History = make(map[Status]time.Time, len(o.History)+1)
	for k, v := range o.History {
		n.History[k] = v
	}
	n.History[to] = now
	n.Status = to
	n.UpdatedAt = now
	return n, nil
}

// FieldError names one offending input field and what is wrong with it.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Detail }

// ValidationError lists every problem found in an order at once.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid order: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

// OrderRequest is what a customer submits: everything but the identity,
// status and the computed total.
type OrderRequest struct {
	Customer        Customer `json:"customer"`
	Items           []Item   `json:"items"`
	Payment         Payment  `json:"payment"`
	ShippingAddress Address  `json:"shipping_address"`
}

// Validate checks a request and returns a *ValidationError naming every
// offending field, or nil.
func (r OrderRequest) Validate() error {
	v := &ValidationError{}
	validateCustomer(v, r.Customer)
	validateItems(v, r.Items)
	validatePayment(v, r.Payment)
	validateAddress(v, r.ShippingAddress)
	if len(v.Fields) == 0 {
		return nil
	}
	return v
}

func validateCustomer(v *ValidationError, c Customer) {
	if c.ID == "" {
		v.add("customer.id", "is required")
	} else if !idPattern.MatchString(c.ID) {
		v.add("customer.id", "must be 1-128 letters, digits or ._:-")
	}
	if c.Email == "" {
		v.add("customer.email", "is required")
	} else if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email || len(c.Email) > 254 {
		v.add("customer.email", "is not a valid email address")
	}
	if c.Phone != "" && !phonePattern.MatchString(c.Phone) {
		v.add("customer.phone", "must be in E.164 form, e.g. +14155550100")
	}
}

func validateItems(v *ValidationError, items []Item) {
	switch {
	case len(items) == 0:
		v.add("items", "must contain at least one item")
		return
	case len(items) > MaxItems:
		v.add("items", "must contain at most %d items, got %d", MaxItems, len(items))
		return
	}
	currency := ""
	prices := make(map[string]Money, len(items))
	for i, it := range items {
		f := fmt.Sprintf("items[%d]", i)
		if it.SKU == "" {
			v.add(f+".sku", "is required")
		} else if !skuPattern.MatchString(it.SKU) {
			v.add(f+".sku", "must be 1-64 letters, digits or ._-")
		}
		if it.Quantity <= 0 {
			v.add(f+".quantity", "must be a positive integer, got %d", it.Quantity)
		} else if it.Quantity > MaxQuantity {
			v.add(f+".quantity", "must be at most %d, got %d", MaxQuantity, it.Quantity)
		}
		if it.UnitPrice.Amount < 0 {
			v.add(f+".unit_price.amount", "must not be negative, got %d", it.UnitPrice.Amount)
		} else if it.UnitPrice.Amount > MaxUnitAmount {
			v.add(f+".unit_price.amount", "must be at most %d minor units", int64(MaxUnitAmount))
		}
		switch c := it.UnitPrice.Currency; {
		case c == "":
			v.add(f+".unit_price.currency", "is required")
		case !ValidCurrency(c):
			v.add(f+".unit_price.currency", "%q is not a supported ISO 4217 currency code", c)
		case currency == "":
			currency = c
		case c != currency:
			v.add(f+".unit_price.currency", "is %s but the order is in %s: one currency per order", c, currency)
		}
		if p, ok := prices[it.SKU]; ok && p != it.UnitPrice {
			v.add(f+".unit_price", "is %s but an earlier line of %s says %s: one price per SKU", it.UnitPrice, it.SKU, p)
		} else if !ok && it.SKU != "" {
			prices[it.SKU] = it.UnitPrice
		}
	}
}

func validatePayment(v *ValidationError, p Payment) {
	if p.Token == "" {
		v.add("payment.token", "is required")
	} else if len(p.Token) > maxTokenLength || strings.ContainsAny(p.Token, " \t\r\n") {
		v.add("payment.token", "is not a valid payment token")
	}
}

// TextProblem says what is wrong with a free-text value (a name, an address
// line), or "" when nothing is: at most 200 characters (runes, not bytes),
// and no control or bidirectional-override characters, which can hide or
// reorder what an operator or a label printer shows.
func TextProblem(val string) string {
	if n := utf8.RuneCountInString(val); n > maxTextLength {
		return fmt.Sprintf("must be at most %d characters, got %d", maxTextLength, n)
	}
	for _, r := range val {
		if r == utf8.RuneError || unicode.IsControl(r) || bidiControl(r) {
			return fmt.Sprintf("must not contain control or bidirectional formatting characters (found U+%04X)", r)
		}
	}
	return ""
}

// bidiControl reports the Unicode bidirectional formatting characters
// (embeddings, overrides, isolates and marks).
func bidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

func validateAddress(v *ValidationError, a Address) {
	text := func(field, val string, required bool) {
		if strings.TrimSpace(val) == "" {
			if required {
				v.add("shipping_address."+field, "is required")
			}
			return
		}
		if p := TextProblem(val); p != "" {
			v.add("shipping_address."+field, "%s", p)
		}
	}
	text("name", a.Name, true)
	text("line1", a.Line1, true)
	text("city", a.City, true)
	text("postal_code", a.PostalCode, true)
	text("line2", a.Line2, false)
	if a.Country == "" {
		v.add("shipping_address.country", "is required")
	} else if !countryCode.MatchString(a.Country) {
		v.add("shipping_address.country", "must be an ISO 3166-1 alpha-2 code such as US, got %q", a.Country)
	}
}

// NewOrder builds a PLACED order from a valid request. The caller supplies
// the id (unique, e.g. a UUIDv7) and the time.
func NewOrder(id string, r OrderRequest, now time.Time) (Order, error) {
	if err := r.Validate(); err != nil {
		return Order{}, err
	}
	if !idPattern.MatchString(id) {
		return Order{}, fmt.Errorf("order id %q is not valid", id)
	}
	now = now.UTC()
	o := Order{
		ID:              id,
		Status:          StatusPlaced,
		Customer:        r.Customer,
		Items:           r.Items,
		Payment:         r.Payment,
		ShippingAddress: r.ShippingAddress,
		PlacedAt:        now,
		UpdatedAt:       now,
		History:         map[Status]time.Time{StatusPlaced: now},
	}
	total, err := sum(r.Items)
	if err != nil {
		return Order{}, err
	}
	o.Total = total
	return o, nil
}

func sum(items []Item) (Money, error) {
	var total Money
	for _, it := range items {
		line := it.UnitPrice.Amount * it.Quantity
		if it.Quantity != 0 && line/it.Quantity != it.UnitPrice.Amount || total.Amount+line < total.Amount {
			return Money{}, &ValidationError{Fields: []FieldError{{Field: "items", Detail: "order total overflows"}}}
		}
		total.Amount += line
		total.Currency = it.UnitPrice.Currency
	}
	return total, nil
}

// Validate checks an order as received in an event from any producer: the
// request fields plus identity, status and a total that matches the items.
func (o Order) Validate() error {
	v := &ValidationError{}
	if o.ID == "" {
		v.add("order_id", "is required")
	} else if !idPattern.MatchString(o.ID) {
		v.add("order_id", "must be 1-128 letters, digits or ._:-")
	}
	if !o.Status.Valid() {
		v.add("status", "%q is not a known status", o.Status)
	}
	req := OrderRequest{Customer: o.Customer, Items: o.Items, Payment: o.Payment, ShippingAddress: o.ShippingAddress}
	if err := req.Validate(); err != nil {
		var ve *ValidationError
		errors.As(err, &ve)
		v.Fields = append(v.Fields, ve.Fields...)
	} else if total, err := sum(o.Items); err != nil || total != o.Total {
		v.add("total", "must equal the sum of the items (%s), got %s", total, o.Total)
	}
	if len(v.Fields) == 0 {
		return nil
	}
	return v
}
