package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"

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
	// split, when set, takes the line's units from several shards (no
	// one shard could cover it); cur and next are then unused.
	split []part
}

// part is a quantity taken from one shard.
type part struct {
	shard int
	qty   int64
}

// shard is the shard the order records for the line (StockShards): with a
// split, the one it takes the most from. A release returns the whole line
// there; units are never created or lost, and a rebalance spreads them.
func (r *reservation) shard() int {
	if len(r.split) > 0 {
		return r.split[0].shard
	}
	return r.cur
}

// lines are the line's updates in the transaction: one per shard it takes
// from.
func (r *reservation) lines() []pipeline.Line {
	if len(r.split) == 0 {
		l := r.line
		l.Shard = r.cur
		return []pipeline.Line{l}
	}
	out := make([]pipeline.Line, len(r.split))
	for i, p := range r.split {
		out[i] = r.line
		out[i].Shard, out[i].Quantity = p.shard, p.qty
	}
	return out
}

// restart assumes k shards and starts again from the order's first shard.
func (r *reservation) restart(orderID string, k int) {
	r.k, r.cur, r.next, r.snaps, r.split = k, firstShard(orderID, k), nil, 0, nil
}

// maxTransactItems is DynamoDB's limit on the actions of one
// TransactWriteItems.
const maxTransactItems = 100

// splitOver plans taking qty units from the fullest shards first, at most
// budget parts, or returns nil when they cannot cover it.
func splitOver(levels []int64, qty int64, budget int) []part {
	order := make([]int, len(levels))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(levels[b], levels[a]) })
	var out []part
	for _, i := range order {
		if qty == 0 || len(out) == budget || levels[i] <= 0 {
			break
		}
		take := min(qty, levels[i])
		out = append(out, part{shard: i, qty: take})
		qty -= take
	}
	if qty > 0 {
		return nil
	}
	return out
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
// in turn, a transaction each. When no one shard can but the shards
// together can, the line takes from several (the fullest first), still in
// the one transaction, up to DynamoDB's 100 actions per transaction; the
// order is out of stock only when a snapshot shows that all the shards
// together cannot cover it. An unsharded SKU's failed condition says so by
// itself, as ever.
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
		var lines []pipeline.Line
		var ks, owner []int
		for i, r := range res {
			for _, l := range r.lines() {
				lines, ks, owner = append(lines, l), append(ks, r.k), append(owner, i)
			}
		}
		step := ch
		step.Order, step.Reserve = o, lines
		items, err := st.apply(ctx, step, ks)
		if items == nil {
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
		// The first failed condition of each line, and its shard.
		reasons := make([]types.CancellationReason, len(res))
		failed := make([]int, len(res))
		for j, rs := range items[:min(len(items), len(lines))] {
			if i := owner[j]; aws.ToString(rs.Code) == "ConditionalCheckFailed" && aws.ToString(reasons[i].Code) == "" {
				reasons[i], failed[i] = rs, lines[j].Shard
			}
		}
		retry, err := st.nextShards(ctx, ch.Order.ID, res, reasons, failed)
		if err != nil {
			return pipeline.Order{}, err
		}
		if !retry {
			break
		}
	}
	return pipeline.Order{}, fmt.Errorf("reserve stock for order %s: the shards kept changing; retry", ch.Order.ID)
}

// nextShards moves every line whose condition failed (reasons[i], on
// shard failed[i]) to its next shard or shards, or learns the SKU's shard
// count. It returns a *StockError when the shards together cannot cover a
// line, a *PriceError on a price mismatch.
func (st *Store) nextShards(ctx context.Context, orderID string, res []*reservation, reasons []types.CancellationReason, failed []int) (bool, error) {
	var short error
	for i, r := range res {
		if aws.ToString(reasons[i].Code) != "ConditionalCheckFailed" {
			continue
		}
		sh := failed[i]
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
		if len(r.split) > 0 {
			// A part's shard moved on since the snapshot: take a new one.
			r.split, r.next = nil, nil
		}
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
				// No one shard can: the shards together, if they can,
				// within the transaction's limit (the order and one
				// update per other line besides).
				budget := maxTransactItems - 1
				for _, o := range res {
					if o != r {
						budget -= len(o.lines())
					}
				}
				if r.split = splitOver(levels, r.line.Quantity, budget); r.split == nil {
					if short == nil {
						short = &pipeline.StockError{SKU: r.line.SKU, Requested: r.line.Quantity, Available: snap.Available}
					}
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
