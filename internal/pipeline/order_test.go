package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTransitionsAllowedAndForbidden(t *testing.T) {
	t.Parallel()
	allowed := map[[2]Status]bool{
		{StatusPlaced, StatusReserved}: true, {StatusPlaced, StatusRejected}: true, {StatusPlaced, StatusCancelled}: true,
		{StatusReserved, StatusPaid}: true, {StatusReserved, StatusPaymentFailed}: true, {StatusReserved, StatusCancelled}: true,
		{StatusPaid, StatusShipped}: true, {StatusPaid, StatusCancelled}: true,
	}
	for _, from := range AllStatuses {
		for _, to := range AllStatuses {
			want := allowed[[2]Status{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
			o := Order{ID: "o1", Status: from, History: map[Status]time.Time{from: time.Unix(1, 0)}}
			n, err := o.transition(to, time.Unix(2, 0))
			if (err == nil) != want {
				t.Errorf("transition %s→%s error = %v, want allowed=%v", from, to, err, want)
			}
			if err == nil {
				if n.Status != to || !n.History[to].Equal(time.Unix(2, 0)) || !n.History[from].Equal(time.Unix(1, 0)) {
					t.Errorf("transition %s→%s: status %s history %v", from, to, n.Status, n.History)
				}
				if _, leaked := o.History[to]; leaked {
					t.Errorf("transition %s→%s mutated the original history", from, to)
				}
			}
		}
	}
	for _, s := range []Status{StatusShipped, StatusRejected, StatusPaymentFailed, StatusCancelled} {
		if !s.Final() {
			t.Errorf("%s should be final", s)
		}
	}
	for _, s := range []Status{StatusPlaced, StatusReserved, StatusPaid, Status("BOGUS")} {
		if s.Final() {
			t.Errorf("%s should not be final", s)
		}
	}
}

func validRequest() OrderRequest {
	return OrderRequest{
		Customer: Customer{ID: "c-1", Email: "ada@example.com", Phone: "+14155550100"},
		Items: []Item{
			{SKU: "SKU-1", Quantity: 2, UnitPrice: Money{Amount: 1250, Currency: "EUR"}},
			{SKU: "SKU-2", Quantity: 1, UnitPrice: Money{Amount: 99, Currency: "EUR"}},
		},
		Payment:         Payment{Token: "tok_visa"},
		ShippingAddress: Address{Name: "Ada", Line1: "1 Main St", City: "Paris", PostalCode: "75001", Country: "FR"},
	}
}

func TestNewOrderComputesTotalInMinorUnits(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o, err := NewOrder("ord-1", validRequest(), now)
	if err != nil {
		t.Fatal(err)
	}
	if o.Total != (Money{Amount: 2599, Currency: "EUR"}) {
		t.Fatalf("total = %v, want 2599 EUR", o.Total)
	}
	if o.Status != StatusPlaced || !o.PlacedAt.Equal(now) || !o.History[StatusPlaced].Equal(now) {
		t.Fatalf("new order = %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("a new order must validate as an event detail: %v", err)
	}
	o.Total.Amount++
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "total") {
		t.Fatalf("tampered total validated: %v", err)
	}
}

func TestValidationNamesEveryOffendingField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*OrderRequest)
		fields []string
	}{
		{"missing customer id", func(r *OrderRequest) { r.Customer.ID = "" }, []string{"customer.id"}},
		{"bad email", func(r *OrderRequest) { r.Customer.Email = "not-an-email" }, []string{"customer.email"}},
		{"bad phone", func(r *OrderRequest) { r.Customer.Phone = "555-1234" }, []string{"customer.phone"}},
		{"no items", func(r *OrderRequest) { r.Items = nil }, []string{"items"}},
		{"zero quantity", func(r *OrderRequest) { r.Items[0].Quantity = 0 }, []string{"items[0].quantity"}},
		{"negative quantity", func(r *OrderRequest) { r.Items[1].Quantity = -3 }, []string{"items[1].quantity"}},
		{"negative amount", func(r *OrderRequest) { r.Items[0].UnitPrice.Amount = -1 }, []string{"items[0].unit_price.amount"}},
		{"unknown currency", func(r *OrderRequest) { r.Items[0].UnitPrice.Currency = "XYZ" }, []string{"items[0].unit_price.currency"}},
		{"mixed currencies", func(r *OrderRequest) { r.Items[1].UnitPrice.Currency = "USD" }, []string{"items[1].unit_price.currency"}},
		{"bad sku", func(r *OrderRequest) { r.Items[0].SKU = "has space" }, []string{"items[0].sku"}},
		{"no token", func(r *OrderRequest) { r.Payment.Token = "" }, []string{"payment.token"}},
		{"bad country", func(r *OrderRequest) { r.ShippingAddress.Country = "France" }, []string{"shipping_address.country"}},
		{"too many items", func(r *OrderRequest) {
			r.Items = nil
			for i := 0; i < MaxItems+1; i++ {
				r.Items = append(r.Items, Item{SKU: fmt.Sprintf("S%d", i), Quantity: 1, UnitPrice: Money{Amount: 1, Currency: "EUR"}})
			}
		}, []string{"items"}},
		{"several at once", func(r *OrderRequest) { r.Customer.Email = ""; r.ShippingAddress.City = ""; r.Items[0].Quantity = 0 },
			[]string{"customer.email", "items[0].quantity", "shipping_address.city"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := validRequest()
			tc.mutate(&r)
			err := r.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			got := map[string]bool{}
			for _, f := range ve.Fields {
				got[f.Field] = true
			}
			for _, f := range tc.fields {
				if !got[f] {
					t.Errorf("error %v does not name %s", err, f)
				}
			}
			if len(ve.Fields) != len(tc.fields) {
				t.Errorf("fields = %v, want exactly %v", ve.Fields, tc.fields)
			}
		})
	}
	if err := validRequest().Validate(); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
}

func TestTotalOverflowIsRejected(t *testing.T) {
	t.Parallel()
	r := validRequest()
	r.Items = []Item{{SKU: "A", Quantity: MaxQuantity, UnitPrice: Money{Amount: MaxUnitAmount, Currency: "EUR"}}}
	for i := 0; i < 40; i++ {
		r.Items = append(r.Items, r.Items[0])
	}
	if _, err := NewOrder("o", r, time.Now()); err != nil {
		t.Fatalf("large but representable total rejected: %v", err)
	}
}

func TestFormatMoney(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m    Money
		want string
	}{{Money{1250, "USD"}, "12.50 USD"}, {Money{5, "EUR"}, "0.05 EUR"}, {Money{1000, "JPY"}, "1000 JPY"}, {Money{-1999, "GBP"}, "-19.99 GBP"}, {Money{1234, "KWD"}, "1.234 KWD"}} {
		if got := FormatMoney(tc.m); got != tc.want {
			t.Errorf("FormatMoney(%v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestLinesMergeRepeatedSKUs(t *testing.T) {
	t.Parallel()
	usd := func(a int64) Money { return Money{Amount: a, Currency: "USD"} }
	o := Order{Items: []Item{{SKU: "B", Quantity: 1, UnitPrice: usd(7)}, {SKU: "A", Quantity: 2, UnitPrice: usd(5)}, {SKU: "B", Quantity: 3, UnitPrice: usd(7)}}}
	got := o.Lines()
	want := []Line{{"A", 2, usd(5)}, {"B", 4, usd(7)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Lines() = %v, want %v", got, want)
	}
}

func TestDecodeEventClassifiesBadBodiesAsPermanent(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not json":     `{"version":`,
		"no detail":    `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders"}`,
		"wrong source": `{"detail-type":"OrderPlaced","source":"evil","detail":{"order_id":"x"}}`,
		"no order id":  `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"status":"PLACED"}}`,
		"too large":    `{"x":"` + strings.Repeat("a", MaxMessageBytes) + `"}`,
	} {
		_, err := DecodeEvent([]byte(body))
		if _, ok := IsPermanent(err); !ok {
			t.Errorf("%s: DecodeEvent error %v is not permanent", name, err)
		}
	}
	ev, err := DecodeEvent([]byte(`{"version":"0","detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"order_id":"o-1","status":"PLACED"}}`))
	if err != nil || ev.Type != EventOrderPlaced || ev.Order.ID != "o-1" {
		t.Fatalf("DecodeEvent = %+v, %v", ev, err)
	}
}

func TestNotificationsAreReadableAndCarryChannels(t *testing.T) {
	t.Parallel()
	o, _ := NewOrder("o-9", validRequest(), time.Now())
	o.Status, o.TrackingNumber, o.Carrier = StatusShipped, "1ZABC", "SandboxPost"
	n, ok := NotificationFor(o)
	if !ok || n.Event != "OrderShipped" || !strings.Contains(n.Text, "1ZABC") || fmt.Sprint(n.Channels) != "[email sms]" {
		t.Fatalf("notification = %+v", n)
	}
	o.Customer.Phone = ""
	o.Status = StatusPaid
	n, _ = NotificationFor(o)
	if n.Event != "OrderConfirmed" || !strings.Contains(n.Text, "25.99 EUR") || fmt.Sprint(n.Channels) != "[email]" {
		t.Fatalf("confirmation = %+v", n)
	}
	if _, ok := NotificationFor(Order{Status: StatusReserved}); ok {
		t.Fatal("RESERVED must not notify the customer")
	}
}

func TestTextProblemCountsCharactersAndRefusesHiddenFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{strings.Repeat("é", 200), true},
		{strings.Repeat("日", 200), true},
		{strings.Repeat("a", 201), false},
		{strings.Repeat("é", 201), false},
		{"Zoë O'Brien-Łukasiewicz", true},
		{"line\nbreak", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"\u0085next line", false},
		{"abc\u202edcba", false},
		{"\u2066isolate\u2069", false},
		{"mark\u200e", false},
		{"arabic mark\u061c", false},
		{"zero\u200bwidth space is allowed", true},
	} {
		if got := TextProblem(tc.in) == ""; got != tc.ok {
			t.Errorf("TextProblem(%q) accepted = %v, want %v (%s)", tc.in, got, tc.ok, TextProblem(tc.in))
		}
	}
}

func TestOneSKUOnePricePerOrder(t *testing.T) {
	t.Parallel()
	r := OrderRequest{
		Customer: Customer{ID: "c", Email: "a@example.com"},
		Items: []Item{{SKU: "A", Quantity: 1, UnitPrice: Money{Amount: 5, Currency: "USD"}}, {SKU: "B", Quantity: 1, UnitPrice: Money{Amount: 5, Currency: "USD"}},
			{SKU: "A", Quantity: 2, UnitPrice: Money{Amount: 5, Currency: "USD"}}, {SKU: "A", Quantity: 1, UnitPrice: Money{Amount: 6, Currency: "USD"}}},
		Payment:         Payment{Token: "tok"},
		ShippingAddress: Address{Name: "n", Line1: "l", City: "c", PostalCode: "p", Country: "GB"},
	}
	var ve *ValidationError
	if err := r.Validate(); !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "items[3].unit_price" {
		t.Fatalf("Validate = %v, want only items[3].unit_price", err)
	}
}
