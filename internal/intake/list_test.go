package intake_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func (a *api) place(t *testing.T, customer string) string {
	t.Helper()
	body := validBody()
	body["customer"].(map[string]any)["id"] = customer
	status, resp := a.do(t, "POST", "/v1/orders", "application/json", apiKey, marshal(t, body))
	if status != http.StatusAccepted {
		t.Fatalf("place order for %s = %d %s", customer, status, resp)
	}
	return decodeJSON[intake.PlaceOrderResponse](t, resp).OrderID
}

func (a *api) list(t *testing.T, query string) intake.OrderList {
	t.Helper()
	status, resp := a.do(t, "GET", "/v1/orders?"+query, "", apiKey, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/orders?%s = %d %s", query, status, resp)
	}
	return decodeJSON[intake.OrderList](t, resp)
}

func ids(list []intake.OrderSummary) []string {
	out := make([]string, len(list))
	for i, o := range list {
		out[i] = o.OrderID
	}
	return out
}

// A client paging through a customer's orders while the customer places
// more sees every order that existed when it started exactly once, newest
// first; the new ones are on a fresh first page.
func TestListOrdersPagesWithoutLossOrRepeatWhileOrdersArrive(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	var placed []string
	for range 7 {
		placed = append(placed, a.place(t, "c-pager"))
	}
	a.place(t, "c-someone-else")

	var seen []string
	var arrived []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("more pages than 7 orders at 3 a page need; seen %v", seen)
		}
		q := "customer_id=c-pager&limit=3"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		page := a.list(t, q)
		if len(page.Orders) == 0 || len(page.Orders) > 3 {
			t.Fatalf("page %d has %d orders, want 1..3", pages, len(page.Orders))
		}
		seen = append(seen, ids(page.Orders)...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
		// New orders arrive between pages.
		arrived = append(arrived, a.place(t, "c-pager"), a.place(t, "c-pager"))
	}
	want := slices.Clone(placed)
	slices.Reverse(want)
	if !slices.Equal(seen, want) {
		t.Fatalf("pages listed %v\nwant the 7 orders placed before paging, newest first: %v", seen, want)
	}

	all := a.list(t, "customer_id=c-pager&limit=100")
	wantAll := append(slices.Clone(placed), arrived...)
	slices.Reverse(wantAll)
	if !slices.Equal(ids(all.Orders), wantAll) || all.NextCursor != nil {
		t.Fatalf("one page of 100 = %v (next %v), want %v and no cursor", ids(all.Orders), all.NextCursor, wantAll)
	}
	for i, o := range all.Orders {
		if o.Status != pipeline.StatusPlaced || o.Total != (pipeline.Money{Amount: 2800, Currency: "USD"}) || o.PlacedAt.IsZero() || o.UpdatedAt.Before(o.PlacedAt) {
			t.Errorf("order %s listed as %+v, want PLACED, 28.00 USD and its times", o.OrderID, o)
		}
		if i > 0 && o.PlacedAt.After(all.Orders[i-1].PlacedAt) {
			t.Errorf("order %s placed after the one listed before it", o.OrderID)
		}
	}

	// Default page size 20; another customer's orders never appear.
	if got := a.list(t, "customer_id=c-pager"); len(got.Orders) != len(wantAll) {
		t.Errorf("default page has %d orders, want all %d (under the default of 20)", len(got.Orders), len(wantAll))
	}
	if got := a.list(t, "customer_id=c-nobody"); len(got.Orders) != 0 || got.NextCursor != nil {
		t.Errorf("a customer without orders: %+v, want an empty page", got)
	}
}

// The listing shows each order's current status and updated_at, which the
// index does not hold: a cancelled order is listed CANCELLED at once.
func TestListOrdersShowsTheCurrentStatus(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	first := a.place(t, "c-status")
	second := a.place(t, "c-status")
	if status, resp := a.do(t, "POST", "/v1/orders/"+first+"/cancel", "", apiKey, nil); status != http.StatusOK {
		t.Fatalf("cancel = %d %s", status, resp)
	}
	got := a.list(t, "customer_id=c-status")
	if len(got.Orders) != 2 || got.Orders[0].OrderID != second || got.Orders[1].OrderID != first {
		t.Fatalf("listed %v, want [%s %s]", ids(got.Orders), second, first)
	}
	if o := got.Orders[1]; o.Status != pipeline.StatusCancelled || !o.UpdatedAt.After(o.PlacedAt) {
		t.Errorf("cancelled order listed as %+v, want CANCELLED with updated_at after placed_at", o)
	}
	if o := got.Orders[0]; o.Status != pipeline.StatusPlaced {
		t.Errorf("untouched order listed as %s, want PLACED", o.Status)
	}
}

// tamper decodes a cursor, lets f change it, and encodes it again.
func tamper(t *testing.T, cursor string, f func(map[string]any)) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		t.Fatalf("cursor %q is not base64url: %v", cursor, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("cursor %q is not JSON: %v", cursor, err)
	}
	f(m)
	return base64.RawURLEncoding.EncodeToString(marshal(t, m))
}

func TestListOrdersRefusesBadParameters(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	for range 3 {
		a.place(t, "c-bad")
	}
	page := a.list(t, "customer_id=c-bad&limit=1")
	if page.NextCursor == nil {
		t.Fatal("a page of 1 of 3 orders has no next_cursor")
	}
	cur := *page.NextCursor
	if got := a.list(t, "customer_id=c-bad&limit=1&cursor="+url.QueryEscape(cur)); len(got.Orders) != 1 || got.Orders[0].OrderID == page.Orders[0].OrderID {
		t.Fatalf("the cursor as returned does not lead to the next order: %+v", got)
	}
	for _, c := range []struct{ name, query, field string }{
		{"no customer", "limit=5", "customer_id"},
		{"empty customer", "customer_id=", "customer_id"},
		{"customer with a space", "customer_id=c+bad", "customer_id"},
		{"customer twice", "customer_id=c-bad&customer_id=c-other", "customer_id"},
		{"limit 0", "customer_id=c-bad&limit=0", "limit"},
		{"limit 101", "customer_id=c-bad&limit=101", "limit"},
		{"limit negative", "customer_id=c-bad&limit=-1", "limit"},
		{"limit words", "customer_id=c-bad&limit=ten", "limit"},
		{"limit with a sign", "customer_id=c-bad&limit=%2B5", "limit"},
		{"unknown parameter", "customer_id=c-bad&status=PLACED", "status"},
		{"empty cursor", "customer_id=c-bad&cursor=", "cursor"},
		{"cursor not base64", "customer_id=c-bad&cursor=%21%21%21", "cursor"},
		{"cursor cut short", "customer_id=c-bad&cursor=" + url.QueryEscape(cur[:len(cur)-4]), "cursor"},
		{"cursor of another customer", "customer_id=c-other&cursor=" + url.QueryEscape(cur), "cursor"},
		{"cursor naming another customer", "customer_id=c-bad&cursor=" + url.QueryEscape(tamper(t, cur, func(m map[string]any) { m["customer_id"] = "c-other" })), "cursor"},
		{"cursor with another time form", "customer_id=c-bad&cursor=" + url.QueryEscape(tamper(t, cur, func(m map[string]any) { m["placed_at"] = "2026-11-29" })), "cursor"},
		{"cursor with an extra key", "customer_id=c-bad&cursor=" + url.QueryEscape(tamper(t, cur, func(m map[string]any) { m["status"] = "PLACED" })), "cursor"},
		{"cursor without the order", "customer_id=c-bad&cursor=" + url.QueryEscape(tamper(t, cur, func(m map[string]any) { delete(m, "order_id") })), "cursor"},
	} {
		status, resp := a.do(t, "GET", "/v1/orders?"+c.query, "", apiKey, nil)
		p := decodeJSON[intake.Problem](t, resp)
		named := slices.ContainsFunc(p.Errors, func(f pipeline.FieldError) bool { return f.Field == c.field })
		if status != http.StatusBadRequest || !named {
			t.Errorf("%s: GET /v1/orders?%s = %d %s, want 400 naming %s", c.name, c.query, status, resp, c.field)
		}
	}
	// Two problems at once: both named.
	status, resp := a.do(t, "GET", "/v1/orders?limit=0", "", apiKey, nil)
	if p := decodeJSON[intake.Problem](t, resp); status != 400 || len(p.Errors) != 2 || p.Errors[0].Field != "customer_id" || p.Errors[1].Field != "limit" {
		t.Errorf("GET /v1/orders?limit=0 = %d %s, want 400 naming customer_id and limit", status, resp)
	}
	// The API key guards the listing like every route.
	status, resp = a.do(t, "GET", "/v1/orders?customer_id=c-bad", "", "", nil)
	if status != http.StatusUnauthorized || strings.Contains(string(resp), "order_id") {
		t.Errorf("GET /v1/orders without the key = %d %s, want 401 and no orders", status, resp)
	}
}
