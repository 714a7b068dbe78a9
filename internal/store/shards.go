package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// shardKey is the inventory key of shard i of sku.
func shardKey(sku string, i int) string {
	if i == 0 {
		return sku
	}
	return sku + "#" + strconv.Itoa(i)
}

// baseSKU is the SKU a shard key belongs to.
func baseSKU(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '#' {
			return key[:i]
		}
	}
	return key
}

// firstShard is the shard an order's reservation of a SKU tries first:
// a hash of the order id, so a retry of the same order reaches the same
// shard first and different orders spread evenly.
func firstShard(orderID string, k int) int {
	if k <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(orderID))
	return int(h.Sum32() % uint32(k))
}

// shardCounts remembers the shard count of each SKU this process has seen.
type shardCounts struct{ m sync.Map }

func (c *shardCounts) get(sku string) int {
	if v, ok := c.m.Load(sku); ok {
		return v.(int)
	}
	return 1
}

func (c *shardCounts) set(sku string, k int) {
	if k <= 1 {
		c.m.Delete(sku)
		return
	}
	c.m.Store(sku, k)
}

// itemShards is the shard count an inventory item records.
func itemShards(item map[string]types.AttributeValue) int {
	if a, ok := item[shardsAttr].(*types.AttributeValueMemberN); ok {
		if k, err := strconv.Atoi(a.Value); err == nil && k >= 1 {
			return k
		}
	}
	return 1
}

// shardLevels reads the inventory of sku and the level of each of its
// shards: one strongly consistent GetItem of the SKU's item, and for a
// sharded SKU one TransactGetItems of all K shards, so the levels are one
// snapshot and their total exact even while units move between shards.
func (st *Store) shardLevels(ctx context.Context, sku string) (pipeline.InventoryItem, []int64, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.tables.Inventory,
		Key:            map[string]types.AttributeValue{"sku": s(sku)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return pipeline.InventoryItem{}, nil, fmt.Errorf("get stock of %s: %w", sku, err)
	}
	item := out.Item
	for attempt := 0; ; attempt++ {
		it, err := inventoryItem(sku, item)
		if err != nil {
			return it, nil, err
		}
		k := itemShards(item)
		st.shards.set(sku, k)
		it.Shards = k
		if k == 1 {
			return it, []int64{it.Available}, nil
		}
		if attempt == 5 {
			return it, nil, fmt.Errorf("read stock shards of %s: the shard count kept changing", sku)
		}
		gets := make([]types.TransactGetItem, k)
		for i := range gets {
			gets[i] = types.TransactGetItem{Get: &types.Get{TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(shardKey(sku, i))}}}
		}
		snap, err := st.db.TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{TransactItems: gets})
		if err != nil {
			return it, nil, fmt.Errorf("read the %d stock shards of %s: %w", k, sku, err)
		}
		levels := make([]int64, k)
		same := len(snap.Responses) == k
		for i := 0; same && i < k; i++ {
			sh := snap.Responses[i].Item
			if sh == nil || itemShards(sh) != k {
				same = false
				break
			}
			lv, err := inventoryItem(sku, sh)
			if err != nil {
				return it, nil, err
			}
			levels[i] = lv.Available
		}
		if !same {
			// The shard count changed since the first read: start again
			// from the SKU's item as the snapshot saw it.
			if len(snap.Responses) > 0 && snap.Responses[0].Item != nil {
				item = snap.Responses[0].Item
			}
			continue
		}
		it, err = inventoryItem(sku, snap.Responses[0].Item)
		if err != nil {
			return it, nil, err
		}
		it.Shards, it.Available = k, 0
		for _, v := range levels {
			it.Available += v
		}
		return it, levels, nil
	}
}

// Rebalance moves units of a sharded SKU from its fullest shards to its
// emptiest, so that orders whose first shard is empty find the last units
// at once. Each move is one transaction of two updates (the source only if
// it still has the units, the target only if it is still a shard of the
// same count), so units are never created or lost. It returns the units
// moved.
func (st *Store) Rebalance(ctx context.Context, sku string) (int64, error) {
	_, levels, err := st.shardLevels(ctx, sku)
	if err != nil {
		return 0, err
	}
	k := len(levels)
	if k == 1 {
		return 0, nil
	}
	var moved int64
	for range k {
		lo, hi := 0, 0
		for i, v := range levels {
			if v < levels[lo] {
				lo = i
			}
			if v > levels[hi] {
				hi = i
			}
		}
		m := (levels[hi] - levels[lo]) / 2
		if m == 0 {
			break
		}
		cond := map[string]string{"#shards": shardsAttr}
		_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{
				TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(shardKey(sku, hi))},
				UpdateExpression: aws.String("SET available = available - :m"), ConditionExpression: aws.String("#shards = :k AND available >= :m"),
				ExpressionAttributeNames: cond, ExpressionAttributeValues: map[string]types.AttributeValue{":m": n(m), ":k": n(int64(k))},
			}},
			{Update: &types.Update{
				TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(shardKey(sku, lo))},
				UpdateExpression: aws.String("SET available = available + :m"), ConditionExpression: aws.String("#shards = :k"),
				ExpressionAttributeNames: cond, ExpressionAttributeValues: map[string]types.AttributeValue{":m": n(m), ":k": n(int64(k))},
			}},
		}})
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) {
			// A sale or another rebalance moved first: the next one reads
			// the levels afresh.
			return moved, nil
		}
		if err != nil {
			return moved, fmt.Errorf("move %d units of %s from shard %d to %d: %w", m, sku, hi, lo, err)
		}
		levels[hi] -= m
		levels[lo] += m
		moved += m
	}
	return moved, nil
}

// rebalanceAfter runs a rebalance of sku after a reservation had to look
// past its first shard: at most one at a time per SKU in this process and
// at most one per rebalanceEvery, in the reserving handler's own time (the
// order is already reserved; a failed rebalance is harmless, the next one
// starts afresh).
func (st *Store) rebalanceAfter(ctx context.Context, sku string) {
	now := time.Now()
	if v, ok := st.rebalanced.Load(sku); ok && now.Sub(v.(time.Time)) < rebalanceEvery {
		return
	}
	if _, busy := st.rebalancing.LoadOrStore(sku, true); busy {
		return
	}
	defer st.rebalancing.Delete(sku)
	st.rebalanced.Store(sku, now)
	_, _ = st.Rebalance(ctx, sku)
}

// rebalanceEvery is the least time between two rebalances of one SKU by
// one process.
const rebalanceEvery = time.Second
