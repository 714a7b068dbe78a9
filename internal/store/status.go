package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Listing orders by status. In FormatJSON every order (also those the
// previous release writes) is on by_status, which these read as before.
// In FormatCompact every order is on the timeline, by_placed, keyed by when
// it was placed: a listing reads its status per page (one BatchGetItem) and
// keeps the orders of the status asked for, and the sweep reads by_open,
// the orders overdue (overdue.go). Each listing page is one Query and one
// BatchGetItem.

// ByStatus returns up to limit (1..MaxPage) orders in status, newest first,
// starting after cursor ("" for the first page). In FormatCompact a page
// reads limit orders of the timeline, newest placed first, and holds those
// in status, so it may hold fewer than limit (none, on a stretch of other
// statuses) and still carry a cursor. An order that changes status while a
// client pages leaves this listing.
func (st *Store) ByStatus(ctx context.Context, status pipeline.Status, limit int, cursor string) (OrderPage, error) {
	if limit < 1 || limit > MaxPage {
		return OrderPage{}, fmt.Errorf("list %s orders: limit %d is outside 1..%d", status, limit, MaxPage)
	}
	if !status.Valid() {
		return OrderPage{}, fmt.Errorf("list orders: %q is not a status", status)
	}
	if st.format == FormatJSON {
		return st.byStatusIndex(ctx, status, limit, cursor)
	}
	start, err := decodeCursor(cursor, timelineAttr, timelineValue, "placed_at")
	if err != nil {
		return OrderPage{}, err
	}
	out, err := st.timeline(ctx, "", true, limit+1, start)
	if err != nil {
		return OrderPage{}, fmt.Errorf("list %s orders: %w", status, err)
	}
	items := out.Items
	var page OrderPage
	if len(items) > limit {
		items = items[:limit]
		page.Next = encodeCursor(items[limit-1], "order_id", timelineAttr, "placed_at")
	}
	ids := orderIDs(items)
	orders, err := st.current(ctx, ids)
	if err != nil {
		return OrderPage{}, fmt.Errorf("list %s orders: %w", status, err)
	}
	for _, id := range ids {
		if o, ok := orders[id]; ok && o.Status == status {
			page.Orders = append(page.Orders, row(o))
		}
	}
	return page, nil
}

// byStatusIndex is ByStatus on by_status, which projects the whole item:
// no second read.
func (st *Store) byStatusIndex(ctx context.Context, status pipeline.Status, limit int, cursor string) (OrderPage, error) {
	start, err := decodeCursor(cursor, "status", string(status), "updated_at")
	if err != nil {
		return OrderPage{}, err
	}
	out, err := st.db.Query(ctx, &dynamodb.QueryInput{
		TableName: &st.tables.Orders, IndexName: aws.String(StatusIndex), ScanIndexForward: aws.Bool(false),
		KeyConditionExpression:    aws.String("#s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": s(string(status))},
		Limit:                     aws.Int32(int32(limit + 1)),
		ExclusiveStartKey:         start,
	})
	if err != nil {
		return OrderPage{}, fmt.Errorf("list %s orders: %w", status, err)
	}
	items := out.Items
	var page OrderPage
	if len(items) > limit {
		items = items[:limit]
		page.Next = encodeCursor(items[limit-1], "order_id", "status", "updated_at")
	}
	for _, it := range items {
		o, err := decodeOrder(it)
		if err != nil {
			return OrderPage{}, fmt.Errorf("list %s orders: %w", status, err)
		}
		page.Orders = append(page.Orders, row(o))
	}
	return page, nil
}

// ListByStatus implements pipeline.OrderLister: up to limit orders in
// status last changed before (and, when after is not zero, at or after)
// the given times, oldest first. In FormatCompact it lists the orders the
// sweep watches: those on by_open (overdue: not done, placed before the
// stuck age; MarkOverdue puts the stuck ones there), a page at a time with
// their status and time read with the page, so a finished status lists
// only cancelled orders whose refund is not recorded. It reads by_status
// too while that index exists: an order the previous release wrote last
// is on it (that release's whole-item PutItem erases the keys it does not
// know) until `worker migrate` restores them.
func (st *Store) ListByStatus(ctx context.Context, status pipeline.Status, after, before time.Time, limit int) ([]pipeline.Order, error) {
	if st.format == FormatJSON {
		return st.listStatusIndex(ctx, status, after, before, limit)
	}
	index, hashName, hashValue, rangeName := OpenIndex, openAttr, openValue, "placed_at"
	key := "#h = :h AND #r < :before"
	vals := map[string]types.AttributeValue{":h": s(hashValue), ":before": s(before.UTC().Format(timeLayout))}
	found := map[string]pipeline.Order{}
	var start map[string]types.AttributeValue
	for len(found) < limit {
		page, err := st.db.Query(ctx, &dynamodb.QueryInput{
			TableName: &st.tables.Orders, IndexName: aws.String(index),
			KeyConditionExpression:    aws.String(key),
			ExpressionAttributeNames:  map[string]string{"#h": hashName, "#r": rangeName},
			ExpressionAttributeValues: vals,
			Limit:                     aws.Int32(int32(MaxPage)),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("list %s orders: %w", status, err)
		}
		ids := orderIDs(page.Items)
		orders, err := st.current(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("list %s orders: %w", status, err)
		}
		for _, id := range ids {
			o, ok := orders[id]
			if ok && o.Status == status && o.UpdatedAt.Before(before) && (after.IsZero() || !o.UpdatedAt.Before(after)) && len(found) < limit {
				found[id] = o
			}
		}
		if page.LastEvaluatedKey == nil {
			break
		}
		start = page.LastEvaluatedKey
	}
	legacy, err := st.listStatusIndex(ctx, status, after, before, limit)
	if err != nil {
		return nil, err
	}
	for _, o := range legacy {
		found[o.ID] = o
	}
	out := make([]pipeline.Order, 0, len(found))
	for _, o := range found {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b pipeline.Order) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	return out[:min(len(out), limit)], nil
}

// listStatusIndex is ListByStatus on by_status.
func (st *Store) listStatusIndex(ctx context.Context, status pipeline.Status, after, before time.Time, limit int) ([]pipeline.Order, error) {
	key := "#s = :s AND updated_at < :before"
	vals := map[string]types.AttributeValue{":s": s(string(status)), ":before": s(before.UTC().Format(timeLayout))}
	if !after.IsZero() {
		key = "#s = :s AND updated_at BETWEEN :after AND :before"
		vals[":after"] = s(after.UTC().Format(timeLayout))
	}
	var out []pipeline.Order
	var start map[string]types.AttributeValue
	for len(out) < limit {
		page, err := st.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 &st.tables.Orders,
			IndexName:                 aws.String(StatusIndex),
			KeyConditionExpression:    aws.String(key),
			ExpressionAttributeNames:  map[string]string{"#s": "status"},
			ExpressionAttributeValues: vals,
			Limit:                     aws.Int32(int32(min(limit-len(out), 1000))),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("list %s orders: %w", status, err)
		}
		for _, it := range page.Items {
			o, err := decodeOrder(it)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		if page.LastEvaluatedKey == nil {
			break
		}
		start = page.LastEvaluatedKey
	}
	return out, nil
}

// StatusCount is the number of orders in a status. Capped: counting
// stopped at its bound, so there are at least Count.
type StatusCount struct {
	Status pipeline.Status
	Count  int
	Capped bool
}

// CountStatuses counts the orders of every status, in the order of
// pipeline.AllStatuses (max 0: no bound). In FormatJSON each status is a
// COUNT query on by_status (it reads the index but returns no items), all
// at once, each stopping past max orders. In FormatCompact one read of the
// timeline, newest placed first, reads the statuses of at most max orders
// a page at a time: past that every count is of the max most recently
// placed orders, and capped.
func (st *Store) CountStatuses(ctx context.Context, max int) ([]StatusCount, error) {
	out := make([]StatusCount, len(pipeline.AllStatuses))
	for i, status := range pipeline.AllStatuses {
		out[i].Status = status
	}
	if st.format == FormatCompact {
		return out, st.countTimeline(ctx, max, out)
	}
	errs := make([]error, len(out))
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i].Count, out[i].Capped, errs[i] = st.countStatusIndex(ctx, out[i].Status, max) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// CountByStatus counts the orders in status as CountStatuses does.
func (st *Store) CountByStatus(ctx context.Context, status pipeline.Status, max int) (count int, capped bool, err error) {
	if st.format == FormatJSON {
		return st.countStatusIndex(ctx, status, max)
	}
	all, err := st.CountStatuses(ctx, max)
	for _, c := range all {
		if c.Status == status {
			return c.Count, c.Capped, err
		}
	}
	return 0, false, err
}

// countStatusIndex counts the orders of status on by_status.
func (st *Store) countStatusIndex(ctx context.Context, status pipeline.Status, max int) (count int, capped bool, err error) {
	var start map[string]types.AttributeValue
	for {
		page, err := st.db.Query(ctx, &dynamodb.QueryInput{
			TableName: &st.tables.Orders, IndexName: aws.String(StatusIndex), Select: types.SelectCount,
			KeyConditionExpression:    aws.String("#h = :h"),
			ExpressionAttributeNames:  map[string]string{"#h": "status"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":h": s(string(status))},
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return count, false, fmt.Errorf("count %s orders: %w", status, err)
		}
		count += int(page.Count)
		if page.LastEvaluatedKey == nil {
			return count, false, nil
		}
		if max > 0 && count >= max {
			return count, true, nil
		}
		start = page.LastEvaluatedKey
	}
}

// timeline reads one page of by_placed: up to limit orders after start,
// placed before before ("": no bound), newest or oldest placed first.
func (st *Store) timeline(ctx context.Context, before string, newestFirst bool, limit int, start map[string]types.AttributeValue) (*dynamodb.QueryOutput, error) {
	key, vals := "#b = :b", map[string]types.AttributeValue{":b": s(timelineValue)}
	if before != "" {
		key += " AND placed_at < :before"
		vals[":before"] = s(before)
	}
	return st.db.Query(ctx, &dynamodb.QueryInput{
		TableName: &st.tables.Orders, IndexName: aws.String(TimelineIndex), ScanIndexForward: aws.Bool(!newestFirst),
		KeyConditionExpression:    aws.String(key),
		ExpressionAttributeNames:  map[string]string{"#b": timelineAttr},
		ExpressionAttributeValues: vals,
		Limit:                     aws.Int32(int32(limit)),
		ExclusiveStartKey:         start,
	})
}

// countTimeline adds up in out the statuses of the orders on the
// timeline, newest placed first, until max orders are read.
func (st *Store) countTimeline(ctx context.Context, max int, out []StatusCount) error {
	at := make(map[pipeline.Status]int, len(out))
	for i, c := range out {
		at[c.Status] = i
	}
	read := 0
	var start map[string]types.AttributeValue
	for {
		page, err := st.timeline(ctx, "", true, batchGetMax, start)
		if err != nil {
			return fmt.Errorf("count orders: %w", err)
		}
		ids := orderIDs(page.Items)
		read += len(ids)
		got, _, err := st.Statuses(ctx, ids)
		if err != nil {
			return fmt.Errorf("count orders: %w", err)
		}
		for _, status := range got {
			if i, ok := at[status]; ok {
				out[i].Count++
			}
		}
		if page.LastEvaluatedKey == nil {
			return nil
		}
		if max > 0 && read >= max {
			for i := range out {
				out[i].Capped = true
			}
			return nil
		}
		start = page.LastEvaluatedKey
	}
}

// RecentByStatus returns up to limit (1..MaxPage) orders in status, the
// most recently changed first (in FormatCompact an in-progress status's
// most recently placed), reading only what a listing shows.
func (st *Store) RecentByStatus(ctx context.Context, status pipeline.Status, limit int) ([]OrderSummary, error) {
	page, err := st.ByStatus(ctx, status, max(1, min(limit, MaxPage)), "")
	if err != nil {
		return nil, err
	}
	rows := make([]OrderSummary, 0, len(page.Orders))
	for _, o := range page.Orders {
		rows = append(rows, OrderSummary{ID: o.ID, Status: o.Status, CustomerID: o.CustomerID, UpdatedAt: o.UpdatedAt})
	}
	return rows, nil
}
