package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"

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

// reserveUpdate is the reservation of one line from its shard: take
// l.Quantity units only if the shard exists, has that many, has no
// catalogue price or exactly the line's, and belongs to a SKU of k shards
// (an unsharded SKU's item records no count). ALL_OLD on a failed
// condition returns the item, which says which part failed without
// another request.
func (st *Store) reserveUpdate(l pipeline.Line, k int) *types.Update {
	names := map[string]string{"#price": priceAttr, "#shards": shardsAttr}
	vals := map[string]types.AttributeValue{":q": n(l.Quantity), ":price": s(l.UnitPrice.String())}
	cond := "attribute_exists(sku) AND available >= :q AND (attribute_not_exists(#price) OR #price = :price)"
	if k <= 1 {
		cond += " AND attribute_not_exists(#shards)"
	} else {
		cond += " AND #shards = :k"
		vals[":k"] = n(int64(k))
	}
	return &types.Update{
		TableName:                           &st.tables.Inventory,
		Key:                                 map[string]types.AttributeValue{"sku": s(shardKey(l.SKU, l.Shard))},
		UpdateExpression:                    aws.String("SET available = available - :q"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// releaseUpdate returns a line's units to the shard they came from. A
// shard other than 0 must still exist (a lower shard count deletes the
// shards above it); shard 0 always does.
func (st *Store) releaseUpdate(l pipeline.Line) *types.Update {
	u := &types.Update{
		TableName:                 &st.tables.Inventory,
		Key:                       map[string]types.AttributeValue{"sku": s(shardKey(l.SKU, l.Shard))},
		UpdateExpression:          aws.String("ADD available :q"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":q": n(l.Quantity)},
	}
	if l.Shard != 0 {
		u.ConditionExpression = aws.String("attribute_exists(sku)")
	}
	return u
}
