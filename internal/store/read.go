package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Reads for operator and development tools (the console, the load
// generator), so that they need not know the tables' layout.

// OrderSummary is an order's row in a listing.
type OrderSummary struct {
	ID         string
	Status     pipeline.Status
	CustomerID string
	UpdatedAt  time.Time
}

func str(v types.AttributeValue) string {
	if a, ok := v.(*types.AttributeValueMemberS); ok {
		return a.Value
	}
	return ""
}

// StockLevel is the units of a SKU available for sale.
type StockLevel struct {
	SKU       string
	Available int64
}

// ListStock returns the stock of up to limit SKUs, in no order (a scan),
// a sharded SKU's shards summed into one row.
func (st *Store) ListStock(ctx context.Context, limit int) ([]StockLevel, error) {
	var rows []StockLevel
	at := map[string]int{}
	var start map[string]types.AttributeValue
	for len(rows) < limit {
		out, err := st.db.Scan(ctx, &dynamodb.ScanInput{TableName: &st.tables.Inventory, ExclusiveStartKey: start,
			Limit: aws.Int32(int32(limit - len(rows)))})
		if err != nil {
			return rows, fmt.Errorf("scan stock: %w", err)
		}
		for _, it := range out.Items {
			row := StockLevel{SKU: baseSKU(str(it["sku"]))}
			if a, ok := it["available"].(*types.AttributeValueMemberN); ok {
				row.Available, _ = strconv.ParseInt(a.Value, 10, 64)
			}
			if i, ok := at[row.SKU]; ok {
				rows[i].Available += row.Available
				continue
			}
			at[row.SKU] = len(rows)
			rows = append(rows, row)
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		start = out.LastEvaluatedKey
	}
	return rows, nil
}

// batchGetMax is the most keys one BatchGetItem takes.
const batchGetMax = 100

func orderKeys(ids []string) []map[string]types.AttributeValue {
	keys := make([]map[string]types.AttributeValue, len(ids))
	for i, id := range ids {
		keys[i] = map[string]types.AttributeValue{"order_id": s(id)}
	}
	return keys
}

// Statuses reads the status of the given orders (status only, strongly
// consistent, 100 keys a request) and returns it by order id, with the
// number of requests made. Orders not stored, or left unprocessed by
// DynamoDB, are absent. On an error it returns what it read before.
func (st *Store) Statuses(ctx context.Context, ids []string) (map[string]pipeline.Status, int, error) {
	got := make(map[string]pipeline.Status, len(ids))
	requests := 0
	for start := 0; start < len(ids); start += batchGetMax {
		part := ids[start:min(start+batchGetMax, len(ids))]
		requests++
		out, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			st.tables.Orders: {Keys: orderKeys(part), ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("order_id, #s"),
				ExpressionAttributeNames: map[string]string{"#s": "status"}},
		}})
		if err != nil {
			return got, requests, fmt.Errorf("read order statuses: %w", err)
		}
		for _, item := range out.Responses[st.tables.Orders] {
			if id, status := str(item["order_id"]), str(item["status"]); id != "" && status != "" {
				got[id] = pipeline.Status(status)
			}
		}
	}
	return got, requests, nil
}

// StoredOrder is an order with the size of its item as capacity units
// count it.
type StoredOrder struct {
	pipeline.Order
	Bytes int
}

// GetMany reads the given orders in full (strongly consistent, 100 keys a
// request, parallel requests at a time, unprocessed keys retried up to ten
// times) and returns them by id, with the number of requests made.
// Items that do not decode are left out.
func (st *Store) GetMany(ctx context.Context, ids []string, parallel int) (map[string]StoredOrder, int, error) {
	out := make(map[string]StoredOrder, len(ids))
	var mu sync.Mutex
	var requests atomic.Int64
	var firstErr error
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for start := 0; start < len(ids); start += batchGetMax {
		part := ids[start:min(start+batchGetMax, len(ids))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			keys := orderKeys(part)
			for attempt := 0; len(keys) > 0 && attempt < 10; attempt++ {
				requests.Add(1)
				res, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
					st.tables.Orders: {Keys: keys, ConsistentRead: aws.Bool(true)}}})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("read orders: %w", err)
					}
					mu.Unlock()
					return
				}
				for _, item := range res.Responses[st.tables.Orders] {
					o, err := decodeOrder(item)
					if err != nil {
						continue
					}
					mu.Lock()
					out[o.ID] = StoredOrder{Order: o, Bytes: itemSize(item)}
					mu.Unlock()
				}
				keys = res.UnprocessedKeys[st.tables.Orders].Keys
			}
		}()
	}
	wg.Wait()
	return out, int(requests.Load()), firstErr
}

// itemSize is a DynamoDB item's size as capacity units count it.
func itemSize(item map[string]types.AttributeValue) int { return awsconf.ItemSize(item) }
