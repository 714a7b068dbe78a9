package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Listing orders page by page: a customer's (the intake API's
// GET /v1/orders and `worker orders list --customer`) and a status's
// (`worker orders list --status`).
//
// CustomerIndex holds (customer_id, placed_at), two attributes that the
// write creating an order sets and no later write changes, and projects
// nothing else (KEYS_ONLY). Every later write of the order is a PutItem of
// the whole item that carries the same customer_id and placed_at; DynamoDB
// writes a global secondary index only when an item's index keys or
// projected attributes change, so only the creating write costs an index
// write: one per order. Projecting status and updated_at would have been
// cheaper to read (no second request), but both change on every
// transition, so every transition would also write the index (four more
// index writes per shipped order). Instead a page reads its orders' current
// status, updated_at and total with one BatchGetItem of the page's ids: one
// extra read request per page, not per order, and never a write.

// CustomerIndex is the orders table's index on (customer_id, placed_at).
const CustomerIndex = "by_customer"

// MaxPage is the most orders one page lists (a BatchGetItem reads at most
// 100 keys).
const MaxPage = batchGetMax

// ErrBadCursor is returned for a cursor that is not one a listing of the
// same customer or status returned (altered, truncated, or from another
// listing).
var ErrBadCursor = errors.New("the cursor is not one this listing returned")

// OrderRow is an order as a listing shows it.
type OrderRow struct {
	ID         string          `json:"order_id"`
	Status     pipeline.Status `json:"status"`
	CustomerID string          `json:"customer_id"`
	Total      pipeline.Money  `json:"total"`
	PlacedAt   time.Time       `json:"placed_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// OrderPage is one page of a listing. Next is the opaque cursor of the
// following page, "" on the last page.
type OrderPage struct {
	Orders []OrderRow
	Next   string
}

func row(o pipeline.Order) OrderRow {
	return OrderRow{ID: o.ID, Status: o.Status, CustomerID: o.Customer.ID, Total: o.Total, PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt}
}

// ByCustomer returns up to limit (1..MaxPage) of the customer's orders,
// newest placed first, starting after cursor ("" for the first page). The
// order of the pages is fixed by placed_at, which never changes, so orders
// placed while a client pages appear before its cursor and none is listed
// twice or skipped. Status, updated_at and total are read from the table
// (eventually consistent, one BatchGetItem per page).
func (st *Store) ByCustomer(ctx context.Context, customerID string, limit int, cursor string) (OrderPage, error) {
	if limit < 1 || limit > MaxPage {
		return OrderPage{}, fmt.Errorf("list orders of customer %s: limit %d is outside 1..%d", customerID, limit, MaxPage)
	}
	if !pipeline.ValidID(customerID) {
		return OrderPage{}, fmt.Errorf("list orders of customer %q: not a valid customer id", customerID)
	}
	start, err := decodeCursor(cursor, "customer_id", customerID, "placed_at")
	if err != nil {
		return OrderPage{}, err
	}
	// One more than a page tells whether another page follows, so the
	// last page carries no cursor (a Limit of exactly the page would
	// return a LastEvaluatedKey that leads to an empty page).
	out, err := st.db.Query(ctx, &dynamodb.QueryInput{
		TableName: &st.tables.Orders, IndexName: aws.String(CustomerIndex), ScanIndexForward: aws.Bool(false),
		KeyConditionExpression:    aws.String("customer_id = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": s(customerID)},
		Limit:                     aws.Int32(int32(limit + 1)),
		ExclusiveStartKey:         start,
	})
	if err != nil {
		return OrderPage{}, fmt.Errorf("list orders of customer %s: %w", customerID, err)
	}
	items := out.Items
	var page OrderPage
	if len(items) > limit {
		items = items[:limit]
		page.Next = encodeCursor(items[limit-1], "order_id", "customer_id", "placed_at")
	}
	ids := orderIDs(items)
	orders, err := st.current(ctx, ids)
	if err != nil {
		return OrderPage{}, fmt.Errorf("list orders of customer %s: %w", customerID, err)
	}
	for _, id := range ids {
		// An id the index lists is in the table: orders are never
		// deleted. One missing would be an index entry not yet removed.
		if o, ok := orders[id]; ok {
			page.Orders = append(page.Orders, row(o))
		}
	}
	return page, nil
}

// current reads the given orders (at most MaxPage) with one BatchGetItem,
// more only for keys DynamoDB leaves unprocessed.
func (st *Store) current(ctx context.Context, ids []string) (map[string]pipeline.Order, error) {
	got, _, err := st.currentWithOpen(ctx, ids)
	return got, err
}

// currentWithOpen is current and which of the orders are on by_open.
func (st *Store) currentWithOpen(ctx context.Context, ids []string) (map[string]pipeline.Order, map[string]bool, error) {
	got := make(map[string]pipeline.Order, len(ids))
	open := map[string]bool{}
	if len(ids) == 0 {
		return got, open, nil
	}
	req := map[string]types.KeysAndAttributes{st.tables.Orders: {
		Keys: orderKeys(ids), ProjectionExpression: aws.String("#o, #d, #open"),
		ExpressionAttributeNames: map[string]string{"#o": jsonDocAttr, "#d": compactDocAttr, "#open": openAttr},
	}}
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt == 5 {
			return nil, nil, errors.New("read orders: keys still unprocessed after 5 attempts")
		}
		out, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, nil, fmt.Errorf("read orders: %w", err)
		}
		for _, item := range out.Responses[st.tables.Orders] {
			o, err := decodeOrder(item)
			if err != nil {
				return nil, nil, err
			}
			got[o.ID] = o
			open[o.ID] = item[openAttr] != nil
		}
		req = out.UnprocessedKeys
	}
	return got, open, nil
}

// orderIDs are the order ids of the items of an index page.
func orderIDs(items []map[string]types.AttributeValue) []string {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, str(it["order_id"]))
	}
	return ids
}

// encodeCursor is the base64url form of the key attributes of item that
// resume a query after it: the table's key and the index's.
func encodeCursor(item map[string]types.AttributeValue, names ...string) string {
	key := make(map[string]string, len(names))
	for _, n := range names {
		key[n] = str(item[n])
	}
	b, _ := json.Marshal(key)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor turns a cursor back into an ExclusiveStartKey, or nil for
// "". It must hold exactly order_id, hashName (equal to hashValue: a
// cursor of one listing cannot resume another) and rangeName (a time as
// the table stores it).
func decodeCursor(cursor, hashName, hashValue, rangeName string) (map[string]types.AttributeValue, error) {
	if cursor == "" {
		return nil, nil
	}
	if len(cursor) > 1024 {
		return nil, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, ErrBadCursor
	}
	var key map[string]string
	if err := json.Unmarshal(b, &key); err != nil || len(key) != 3 {
		return nil, ErrBadCursor
	}
	if key[hashName] != hashValue || !pipeline.ValidID(key["order_id"]) {
		return nil, ErrBadCursor
	}
	if t, err := time.Parse(timeLayout, key[rangeName]); err != nil || t.UTC().Format(timeLayout) != key[rangeName] {
		return nil, ErrBadCursor
	}
	return map[string]types.AttributeValue{"order_id": s(key["order_id"]), hashName: s(hashValue), rangeName: s(key[rangeName])}, nil
}
