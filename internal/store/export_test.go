package store

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// ShardLevels reads the level of each shard of sku, for tests that check
// where units are.
func (st *Store) ShardLevels(ctx context.Context, sku string) ([]int64, error) {
	_, levels, err := st.shardLevels(ctx, sku)
	return levels, err
}

// FirstShard is the shard an order's reservation tries first.
func FirstShard(orderID string, k int) int { return firstShard(orderID, k) }

// StoredDocument is the JSON document of a stored order item, in either
// form.
func StoredDocument(item map[string]types.AttributeValue) (string, error) {
	if b, ok := item[compactDocAttr].(*types.AttributeValueMemberB); ok {
		raw, err := inflateDoc(b.Value)
		return string(raw), err
	}
	return str(item[jsonDocAttr]), nil
}

// OpenIDs lists the ids of the orders in status ("": any) on by_open
// alone.
func (st *Store) OpenIDs(ctx context.Context, status pipeline.Status) ([]string, error) {
	out, err := st.db.Query(ctx, &dynamodb.QueryInput{
		TableName: &st.tables.Orders, IndexName: aws.String(OpenIndex),
		KeyConditionExpression:    aws.String("#h = :h"),
		ExpressionAttributeNames:  map[string]string{"#h": openAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": s(openValue)},
	})
	if err != nil {
		return nil, err
	}
	ids := orderIDs(out.Items)
	got, err := st.current(ctx, ids)
	if err != nil {
		return nil, err
	}
	var res []string
	for _, id := range ids {
		if o, ok := got[id]; ok && (status == "" || o.Status == status) {
			res = append(res, id)
		}
	}
	return res, nil
}

// SetClock makes the store read the time from now (its writes decide
// whether an order is overdue by it).
func (st *Store) SetClock(now func() time.Time) { st.now = now }

// WalkPosition is the order id at which the sweep's walk stands, "" before
// the first walk.
func (st *Store) WalkPosition(ctx context.Context) (string, error) {
	pos, err := st.walkPosition(ctx)
	return str(pos["order_id"]), err
}
