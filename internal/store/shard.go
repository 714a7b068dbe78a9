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

// Sharded stock. A SKU's stock is held in K inventory items (shards): shard
// 0 is the item keyed by the SKU itself, shard i > 0 the item keyed
// "<sku>#<i>" ('#' cannot occur in a SKU, so no SKU collides with a shard
// key). Each item has its own write throughput on DynamoDB, so a hot SKU's
// reservations spread over K items instead of queueing on one.
//
// Every shard of a sharded SKU carries the shard count ("shards", absent
// meaning 1) and the catalogue price, so a reservation is still one
// conditional update per line inside the transaction that moves the order:
// the condition checks the level, the price and the shard count together.
// Nothing is read before the write: the store remembers each SKU's shard
// count (1 until it learns otherwise) and learns it from the item a failed
// condition returns, or from a read after the failure.

// shardsAttr holds the shard count on every shard of a sharded SKU.
const shardsAttr = "shards"

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

// reservation is where one reserve line currently stands.
type reservation struct {
	line pipeline.Line
	k    int // the shard count assumed
	cur  int // the shard to take from
	// next are the shards to try after cur: those a snapshot of the
	// levels showed able to cover the line.
	next  []int
	snaps int // snapshots taken
	// moved is set once the line had to look past its first shard.
	moved bool
}

func (r *reservation) shard() int { return r.cur }

// restart assumes k shards and starts again from the order's first shard.
func (r *reservation) restart(orderID string, k int) {
	r.k, r.cur, r.next, r.snaps = k, firstShard(orderID, k), nil, 0
}

// maxSnapshots bounds the snapshots of one line's shards: each one that
// finds units is followed by transactions that lost them to other orders,
// so the sale moved on; past it the reservation is retried later.
const maxSnapshots = 3

// maxRounds bounds the transactions of one reservation: each shard of
// each line after each snapshot, plus a few rounds to learn a changed
// shard count.
func maxRounds(lines int) int { return lines*pipeline.MaxShards*maxSnapshots + 4 }

// Reserve implements pipeline.Store. Each line's units come from one shard,
// in the one transaction that moves the order. When a line's shard cannot
// cover it (its condition fails on the level), one snapshot of the SKU's
// shards (TransactGetItems) names the shards that can, and they are tried
// in turn, a transaction each; the order is out of stock only when a
// snapshot shows that no shard can. An unsharded SKU's failed condition
// says so by itself, as ever.
func (st *Store) Reserve(ctx context.Context, ch pipeline.Change) (pipeline.Order, error) {
	if len(ch.Reserve) == 0 {
		return ch.Order, st.Apply(ctx, ch)
	}
	// The order written records the shards it takes from, so a document
	// encoded by the caller before that is not the one to store.
	ch.Doc = ""
	res := make([]*reservation, len(ch.Reserve))
	for i, l := range ch.Reserve {
		res[i] = &reservation{line: l}
		res[i].restart(ch.Order.ID, st.shards.get(l.SKU))
	}
	for round := 0; round < maxRounds(len(res)); round++ {
		o := ch.Order
		o.StockShards = nil
		for _, r := range res {
			if sh := r.shard(); sh != 0 {
				if o.StockShards == nil {
					o.StockShards = make(map[string]int, len(res))
				}
				o.StockShards[r.line.SKU] = sh
			}
		}
		lines := make([]pipeline.Line, len(res))
		for i, r := range res {
			lines[i] = r.line
			lines[i].Shard = r.shard()
		}
		step := ch
		step.Order, step.Reserve = o, lines
		ks := make([]int, len(res))
		for i, r := range res {
			ks[i] = r.k
		}
		reasons, err := st.apply(ctx, step, ks)
		if reasons == nil {
			if err != nil {
				return pipeline.Order{}, err
			}
			for _, r := range res {
				if r.moved {
					st.rebalanceAfter(ctx, r.line.SKU)
				}
			}
			return o, nil
		}
		retry, err := st.nextShards(ctx, ch.Order.ID, res, reasons)
		if err != nil {
			return pipeline.Order{}, err
		}
		if !retry {
			break
		}
	}
	return pipeline.Order{}, fmt.Errorf("reserve stock for order %s: the shards kept changing; retry", ch.Order.ID)
}

// nextShards moves every line whose condition failed to its next shard,
// or learns the SKU's shard count. It returns a *StockError when no shard
// can cover a line, a *PriceError on a price mismatch.
func (st *Store) nextShards(ctx context.Context, orderID string, res []*reservation, reasons []types.CancellationReason) (bool, error) {
	var short error
	for i, r := range res {
		if i >= len(reasons) || aws.ToString(reasons[i].Code) != "ConditionalCheckFailed" {
			continue
		}
		sh := r.shard()
		old := reasons[i].Item
		if old == nil {
			out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
				TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(shardKey(r.line.SKU, sh))}, ConsistentRead: aws.Bool(true),
			})
			if err != nil {
				return false, fmt.Errorf("read stock of %s shard %d after a failed reservation: %w", r.line.SKU, sh, err)
			}
			old = out.Item
		}
		if old == nil {
			if sh == 0 {
				if short == nil {
					short = &pipeline.StockError{SKU: r.line.SKU, Unknown: true, Requested: r.line.Quantity}
				}
				continue
			}
			// The SKU has fewer shards than assumed: learn how many.
			k, err := st.readShards(ctx, r.line.SKU)
			if err != nil {
				return false, err
			}
			r.restart(orderID, k)
			continue
		}
		it, err := inventoryItem(r.line.SKU, old)
		if err != nil {
			return false, err
		}
		if it.UnitPrice != nil && *it.UnitPrice != r.line.UnitPrice {
			return false, &pipeline.PriceError{SKU: r.line.SKU, Catalogue: *it.UnitPrice, Ordered: r.line.UnitPrice}
		}
		if k := itemShards(old); k != r.k {
			st.shards.set(r.line.SKU, k)
			r.restart(orderID, k)
			continue
		}
		r.moved = true
		if r.k == 1 {
			if short == nil {
				short = &pipeline.StockError{SKU: r.line.SKU, Requested: r.line.Quantity, Available: it.Available}
			}
			continue
		}
		if len(r.next) == 0 {
			if r.snaps == maxSnapshots {
				return false, fmt.Errorf("reserve %d of %s for order %s: the shards' levels kept moving; retry", r.line.Quantity, r.line.SKU, orderID)
			}
			r.snaps++
			snap, levels, err := st.shardLevels(ctx, r.line.SKU)
			if err != nil {
				return false, err
			}
			if snap.Shards != r.k {
				r.restart(orderID, snap.Shards)
				continue
			}
			for j := 1; j < r.k; j++ {
				if i := (sh + j) % r.k; levels[i] >= r.line.Quantity {
					r.next = append(r.next, i)
				}
			}
			if len(r.next) == 0 {
				if short == nil {
					short = &pipeline.StockError{SKU: r.line.SKU, Requested: r.line.Quantity, Available: snap.Available}
				}
				continue
			}
		}
		r.cur, r.next = r.next[0], r.next[1:]
	}
	if short != nil {
		return false, short
	}
	return true, nil
}

// readShards reads the shard count of sku from its shard 0 and remembers it.
func (st *Store) readShards(ctx context.Context, sku string) (int, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &st.tables.Inventory, Key: map[string]types.AttributeValue{"sku": s(sku)}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return 0, fmt.Errorf("read shard count of %s: %w", sku, err)
	}
	if out.Item == nil {
		return 0, fmt.Errorf("sku %s: %w", sku, pipeline.ErrNotFound)
	}
	k := itemShards(out.Item)
	st.shards.set(sku, k)
	return k, nil
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

func hasCode(reasons []types.CancellationReason, code string) bool {
	for _, r := range reasons {
		if aws.ToString(r.Code) == code {
			return true
		}
	}
	return false
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
