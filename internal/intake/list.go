package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// OrderLister lists a customer's orders a page at a time, newest placed
// first (store.Store.ByCustomer: its by_customer index, then one read of
// the page's orders). It returns store.ErrBadCursor for a cursor it did
// not hand out for this customer. Safe for concurrent use.
type OrderLister interface {
	ByCustomer(ctx context.Context, customerID string, limit int, cursor string) (store.OrderPage, error)
}

// DefaultListLimit is the page size of GET /v1/orders without limit.
const DefaultListLimit = 20

// OrderSummary is an order's entry in GET /v1/orders.
type OrderSummary struct {
	OrderID   string          `json:"order_id"`
	Status    pipeline.Status `json:"status"`
	Total     pipeline.Money  `json:"total"`
	PlacedAt  time.Time       `json:"placed_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// OrderList is the 200 answer of GET /v1/orders. NextCursor is null on
// the last page.
type OrderList struct {
	Orders     []OrderSummary `json:"orders"`
	NextCursor *string        `json:"next_cursor"`
}

var limitPattern = regexp.MustCompile(`^[0-9]{1,3}$`)

// listOrders answers GET /v1/orders?customer_id=ID[&limit=N][&cursor=C].
// Every parameter is checked before the store is asked, and each problem
// names its parameter: a missing or repeated one, an unknown one, a limit
// outside 1..100, a cursor this listing did not hand out.
func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) (int, error) {
	q := r.URL.Query()
	var fields []pipeline.FieldError
	bad := func(name, detail string) { fields = append(fields, pipeline.FieldError{Field: name, Detail: detail}) }
	for name, vals := range q {
		switch {
		case name != "customer_id" && name != "limit" && name != "cursor":
			bad(name, "is not a parameter of this route (customer_id, limit, cursor)")
		case len(vals) > 1:
			bad(name, "must be given once")
		}
	}
	customer := q.Get("customer_id")
	switch {
	case customer == "":
		bad("customer_id", "is required")
	case !pipeline.ValidID(customer):
		bad("customer_id", "must be 1-128 letters, digits or ._:-")
	}
	limit := DefaultListLimit
	if _, ok := q["limit"]; ok {
		n, err := strconv.Atoi(q.Get("limit"))
		if !limitPattern.MatchString(q.Get("limit")) || err != nil || n < 1 || n > store.MaxPage {
			bad("limit", fmt.Sprintf("must be an integer from 1 to %d", store.MaxPage))
		} else {
			limit = n
		}
	}
	cursor, hasCursor := q.Get("cursor"), q.Has("cursor")
	if hasCursor && cursor == "" {
		bad("cursor", "must not be empty: leave it out for the first page")
	}
	if len(fields) > 0 {
		// Parameters come from a map: a stable order for the reader.
		slices.SortFunc(fields, func(a, b pipeline.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return problem(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("%d parameter(s) are invalid", len(fields)), fields), nil
	}
	page, err := s.Orders.ByCustomer(r.Context(), customer, limit, cursor)
	if errors.Is(err, store.ErrBadCursor) {
		return problem(w, http.StatusBadRequest, "Bad Request", "invalid cursor",
			[]pipeline.FieldError{{Field: "cursor", Detail: "is not a cursor this listing returned for this customer"}}), nil
	}
	if err != nil {
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not list the orders; retry", nil), err
	}
	out := OrderList{Orders: make([]OrderSummary, 0, len(page.Orders))}
	for _, o := range page.Orders {
		out.Orders = append(out.Orders, OrderSummary{OrderID: o.ID, Status: o.Status, Total: o.Total, PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt})
	}
	if page.Next != "" {
		out.NextCursor = &page.Next
	}
	return reply(w, http.StatusOK, out), nil
}
