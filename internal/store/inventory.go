package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// priceAttr holds a SKU's catalogue price as "<amount> <currency>"
// (pipeline.Money.String), so one string equality compares both parts.
const priceAttr = "unit_price"

// SetStock implements pipeline.Store.
func (st *Store) SetStock(ctx context.Context, sku string, available int64) error {
	return st.PutInventory(ctx, pipeline.InventoryItem{SKU: sku, Available: available})
}

// PutInventory implements pipeline.Store. An unsharded SKU is one PutItem
// as ever; a sharded one a transaction over its shards.
func (st *Store) PutInventory(ctx context.Context, it pipeline.InventoryItem) error {
	if it.Shards < 0 || it.Shards > pipeline.MaxShards {
		return fmt.Errorf("set stock of %s: %d shards is outside 1..%d", it.SKU, it.Shards, pipeline.MaxShards)
	}
	if it.Shards > 1 {
		return st.putSharded(ctx, it)
	}
	item := map[string]types.AttributeValue{"sku": s(it.SKU), "available": n(it.Available)}
	if it.UnitPrice != nil {
		item[priceAttr] = s(it.UnitPrice.String())
	}
	out, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &st.tables.Inventory, Item: item, ReturnValues: types.ReturnValueAllOld})
	if err != nil {
		return fmt.Errorf("set stock of %s: %w", it.SKU, err)
	}
	st.shards.set(it.SKU, 1)
	if k := itemShards(out.Attributes); k > 1 {
		return st.deleteShards(ctx, it.SKU, 1, k)
	}
	return nil
}

// Stock implements pipeline.Store.
func (st *Store) Stock(ctx context.Context, sku string) (int64, error) {
	it, err := st.Inventory(ctx, sku)
	return it.Available, err
}

// Inventory implements pipeline.Store: one strongly consistent read of
// the SKU's item, and for a sharded SKU one more of its other shards.
func (st *Store) Inventory(ctx context.Context, sku string) (pipeline.InventoryItem, error) {
	it, _, err := st.shardLevels(ctx, sku)
	return it, err
}

func inventoryItem(sku string, item map[string]types.AttributeValue) (pipeline.InventoryItem, error) {
	if item == nil {
		return pipeline.InventoryItem{}, fmt.Errorf("sku %s: %w", sku, pipeline.ErrNotFound)
	}
	it := pipeline.InventoryItem{SKU: sku}
	av, ok := item["available"].(*types.AttributeValueMemberN)
	if !ok {
		return it, fmt.Errorf("sku %s has no numeric available attribute", sku)
	}
	v, err := strconv.ParseInt(av.Value, 10, 64)
	if err != nil {
		return it, fmt.Errorf("sku %s: available %q: %w", sku, av.Value, err)
	}
	it.Available = v
	if p, ok := item[priceAttr].(*types.AttributeValueMemberS); ok {
		m, err := parsePrice(p.Value)
		if err != nil {
			return it, fmt.Errorf("sku %s: %w", sku, err)
		}
		it.UnitPrice = &m
	}
	return it, nil
}

func parsePrice(v string) (pipeline.Money, error) {
	amount, currency, ok := strings.Cut(v, " ")
	a, err := strconv.ParseInt(amount, 10, 64)
	if !ok || err != nil || currency == "" {
		return pipeline.Money{}, fmt.Errorf("stored price %q is not \"<amount> <currency>\"", v)
	}
	return pipeline.Money{Amount: a, Currency: currency}, nil
}

// adjustUpdate adds delta to the level of sku only if the SKU exists and the
// result stays within 0..MaxAvailable: available >= -delta and
// available <= MaxAvailable - delta.
// A sharded SKU's item fails the condition (it records a shard count) and
// the adjustment is made over its shards.
func (st *Store) adjustUpdate(sku string, delta int64) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                           &st.tables.Inventory,
		Key:                                 map[string]types.AttributeValue{"sku": s(sku)},
		UpdateExpression:                    aws.String("SET available = available + :d"),
		ConditionExpression:                 aws.String("attribute_exists(sku) AND available >= :lo AND available <= :hi AND attribute_not_exists(#shards)"),
		ExpressionAttributeNames:            map[string]string{"#shards": shardsAttr},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":d": n(delta), ":lo": n(-delta), ":hi": n(pipeline.MaxAvailable - delta)},
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// AdjustStock implements pipeline.Store.
func (st *Store) AdjustStock(ctx context.Context, sku string, delta int64) (int64, error) {
	if delta < -pipeline.MaxAvailable || delta > pipeline.MaxAvailable {
		return 0, fmt.Errorf("adjust stock of %s: delta %d is outside ±%d", sku, delta, pipeline.MaxAvailable)
	}
	out, err := st.db.UpdateItem(ctx, st.adjustUpdate(sku, delta))
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		var it pipeline.InventoryItem
		var rerr error
		if ccf.Item != nil {
			it, rerr = inventoryItem(sku, ccf.Item)
			it.Shards = itemShards(ccf.Item)
		} else {
			it, rerr = st.Inventory(ctx, sku)
		}
		if rerr != nil {
			return 0, rerr
		}
		if it.Shards > 1 {
			return st.adjustSharded(ctx, sku, delta)
		}
		return 0, &pipeline.LevelError{SKU: sku, Available: it.Available, Delta: delta}
	}
	if err != nil {
		return 0, fmt.Errorf("adjust stock of %s by %d: %w", sku, delta, err)
	}
	it, err := inventoryItem(sku, out.Attributes)
	if err != nil {
		return 0, fmt.Errorf("adjust stock of %s: %w", sku, err)
	}
	return it.Available, nil
}

// Prices implements pipeline.Store: one BatchGetItem of at most 100 SKUs
// (an order names at most pipeline.MaxItems), eventually consistent, which
// is enough for an early answer: the reservation checks the price again
// inside its conditional write.
func (st *Store) Prices(ctx context.Context, skus []string) (map[string]pipeline.Money, error) {
	out := make(map[string]pipeline.Money, len(skus))
	keys := make([]map[string]types.AttributeValue, 0, len(skus))
	seen := make(map[string]bool, len(skus))
	for _, sku := range skus {
		if !seen[sku] {
			seen[sku] = true
			keys = append(keys, map[string]types.AttributeValue{"sku": s(sku)})
		}
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 100)]
		keys = keys[len(batch):]
		req := map[string]types.KeysAndAttributes{st.tables.Inventory: {
			Keys:                     batch,
			ProjectionExpression:     aws.String("sku, #price"),
			ExpressionAttributeNames: map[string]string{"#price": priceAttr},
		}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt == 5 {
				return nil, errors.New("read catalogue prices: keys still unprocessed after 5 attempts")
			}
			page, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("read catalogue prices: %w", err)
			}
			for _, item := range page.Responses[st.tables.Inventory] {
				sku, _ := item["sku"].(*types.AttributeValueMemberS)
				p, ok := item[priceAttr].(*types.AttributeValueMemberS)
				if sku == nil || !ok {
					continue
				}
				m, err := parsePrice(p.Value)
				if err != nil {
					return nil, fmt.Errorf("sku %s: %w", sku.Value, err)
				}
				out[sku.Value] = m
			}
			req = page.UnprocessedKeys
		}
	}
	return out, nil
}

// spread divides n units over k shards: n/k each, the remainder one each
// to the first shards.
func spread(n int64, k int) []int64 {
	out := make([]int64, k)
	for i := range out {
		out[i] = n / int64(k)
		if int64(i) < n%int64(k) {
			out[i]++
		}
	}
	return out
}

// putSharded replaces the inventory of a sharded SKU in one transaction:
// shards 0..K-1 with the level spread over them, and every higher shard a
// previous count may have left deleted.
func (st *Store) putSharded(ctx context.Context, it pipeline.InventoryItem) error {
	k := it.Shards
	levels := spread(it.Available, k)
	items := make([]types.TransactWriteItem, 0, pipeline.MaxShards)
	for i := 0; i < pipeline.MaxShards; i++ {
		key := shardKey(it.SKU, i)
		if i >= k {
			items = append(items, types.TransactWriteItem{Delete: &types.Delete{
				TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(key)},
			}})
			continue
		}
		item := map[string]types.AttributeValue{"sku": s(key), "available": n(levels[i]), shardsAttr: n(int64(k))}
		if it.UnitPrice != nil {
			item[priceAttr] = s(it.UnitPrice.String())
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &st.tables.Inventory, Item: item}})
	}
	if _, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		return fmt.Errorf("set stock of %s over %d shards: %w", it.SKU, k, err)
	}
	st.shards.set(it.SKU, k)
	return nil
}

// deleteShards deletes shards from..to-1 of sku, left over when its shard
// count went down. Units a live order holds from them go back to shard 0
// when it releases them.
func (st *Store) deleteShards(ctx context.Context, sku string, from, to int) error {
	items := make([]types.TransactWriteItem, 0, to-from)
	for i := from; i < to; i++ {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{
			TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(shardKey(sku, i))},
		}})
	}
	if len(items) == 0 {
		return nil
	}
	if _, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		return fmt.Errorf("delete stock shards %d..%d of %s: %w", from, to-1, sku, err)
	}
	return nil
}

// adjustSharded adds delta to a sharded SKU in one transaction: an increase
// spread over the shards, a decrease taken from the fullest shards first,
// each part conditional on its shard's level. A level that changed between
// the read and the write is read again (a few times).
func (st *Store) adjustSharded(ctx context.Context, sku string, delta int64) (int64, error) {
	for attempt := 0; attempt < 5; attempt++ {
		it, levels, err := st.shardLevels(ctx, sku)
		if err != nil {
			return 0, err
		}
		k := len(levels)
		if it.Available+delta < 0 || it.Available+delta > pipeline.MaxAvailable {
			return 0, &pipeline.LevelError{SKU: sku, Available: it.Available, Delta: delta}
		}
		parts := make([]int64, k)
		if delta >= 0 {
			parts = spread(delta, k)
		} else {
			left := -delta
			for left > 0 {
				j := 0
				for i := range levels {
					if levels[i]+parts[i] > levels[j]+parts[j] {
						j = i
					}
				}
				take := min(left, max(1, (levels[j]+parts[j])/2), levels[j]+parts[j])
				parts[j] -= take
				left -= take
			}
		}
		var items []types.TransactWriteItem
		for i, d := range parts {
			if d == 0 {
				continue
			}
			items = append(items, types.TransactWriteItem{Update: &types.Update{
				TableName:                 &st.tables.Inventory,
				Key:                       map[string]types.AttributeValue{"sku": s(shardKey(sku, i))},
				UpdateExpression:          aws.String("SET available = available + :d"),
				ConditionExpression:       aws.String("#shards = :k AND available >= :lo"),
				ExpressionAttributeNames:  map[string]string{"#shards": shardsAttr},
				ExpressionAttributeValues: map[string]types.AttributeValue{":d": n(d), ":k": n(int64(k)), ":lo": n(max(0, -d))},
			}})
		}
		if len(items) == 0 {
			return it.Available, nil
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) && hasCode(tce.CancellationReasons, "ConditionalCheckFailed") {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("adjust stock of %s by %d over %d shards: %w", sku, delta, k, err)
		}
		return it.Available + delta, nil
	}
	return 0, fmt.Errorf("adjust stock of %s: its shards kept changing; retry", sku)
}
