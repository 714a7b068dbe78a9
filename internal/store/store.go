// Package store is the DynamoDB adapter of pipeline.Store: orders, stock and
// intake idempotency keys. Each pipeline.Change is exactly one conditional
// write (PutItem, or TransactWriteItems when stock moves with the order), so
// the write is the single source of truth for progress. There is no read
// before a write; reads happen only after a lost condition, to explain it.
//
// An order is stored as a few top-level attributes that conditions and the
// indexes need (order_id, status, updated_at for by_status; customer_id,
// placed_at for by_customer) plus the whole order as one JSON document,
// which keeps the mapping exact (integer money, times, the status history
// map) and the item small.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Tables names the DynamoDB tables the store uses.
type Tables struct {
	Orders      string
	Inventory   string
	Idempotency string
}

// StatusIndex is the orders table's index on (status, updated_at).
const StatusIndex = "by_status"

// IdempotencyTTL is how long an intake Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// timeLayout is fixed-width so that updated_at sorts as a string.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Store implements pipeline.Store on DynamoDB. Safe for concurrent use.
type Store struct {
	db     *dynamodb.Client
	tables Tables

	shards      shardCounts
	rebalancing sync.Map // sku → true while a rebalance runs
	rebalanced  sync.Map // sku → time.Time of the last rebalance started
}

var _ pipeline.Store = (*Store)(nil)

// New returns a store on the given tables.
func New(db *dynamodb.Client, t Tables) *Store { return &Store{db: db, tables: t} }

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func orderItem(o pipeline.Order, doc string) (map[string]types.AttributeValue, error) {
	if doc == "" {
		var err error
		if doc, err = pipeline.EncodeOrder(o); err != nil {
			return nil, err
		}
	}
	return map[string]types.AttributeValue{
		"order_id":    s(o.ID),
		"status":      s(string(o.Status)),
		"updated_at":  s(o.UpdatedAt.UTC().Format(timeLayout)),
		"customer_id": s(o.Customer.ID),
		"placed_at":   s(o.PlacedAt.UTC().Format(timeLayout)),
		"order":       s(doc),
	}, nil
}

func decodeOrder(item map[string]types.AttributeValue) (pipeline.Order, error) {
	doc, ok := item["order"].(*types.AttributeValueMemberS)
	if !ok {
		return pipeline.Order{}, errors.New("stored order has no order document")
	}
	var o pipeline.Order
	if err := json.Unmarshal([]byte(doc.Value), &o); err != nil {
		return pipeline.Order{}, fmt.Errorf("decode stored order: %w", err)
	}
	return o, nil
}

// Get implements pipeline.Store.
func (st *Store) Get(ctx context.Context, id string) (pipeline.Order, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.tables.Orders,
		Key:            map[string]types.AttributeValue{"order_id": s(id)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return pipeline.Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	if out.Item == nil {
		return pipeline.Order{}, fmt.Errorf("order %s: %w", id, pipeline.ErrNotFound)
	}
	return decodeOrder(out.Item)
}

// Create implements pipeline.Store.
func (st *Store) Create(ctx context.Context, o pipeline.Order, key, fingerprint string) (string, error) {
	item, err := orderItem(o, "")
	if err != nil {
		return "", err
	}
	putOrder := &types.Put{
		TableName:           &st.tables.Orders,
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(order_id)"),
	}
	if key == "" {
		_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: putOrder.TableName, Item: item, ConditionExpression: putOrder.ConditionExpression})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return "", fmt.Errorf("create order %s: an order with this id exists", o.ID)
		}
		if err != nil {
			return "", fmt.Errorf("create order %s: %w", o.ID, err)
		}
		return "", nil
	}
	_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: &st.tables.Idempotency,
			Item: map[string]types.AttributeValue{
				"idempotency_key": s(key),
				"fingerprint":     s(fingerprint),
				"order_id":        s(o.ID),
				"expires_at":      n(o.PlacedAt.Add(IdempotencyTTL).Unix()),
			},
			ConditionExpression: aws.String("attribute_not_exists(idempotency_key)"),
		}},
		{Put: putOrder},
	}})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) > 0 && aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
		return st.existingKey(ctx, key, fingerprint)
	}
	if err != nil {
		return "", fmt.Errorf("create order %s with idempotency key: %w", o.ID, err)
	}
	return "", nil
}

func (st *Store) existingKey(ctx context.Context, key, fingerprint string) (string, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.tables.Idempotency,
		Key:            map[string]types.AttributeValue{"idempotency_key": s(key)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("read idempotency key: %w", err)
	}
	if out.Item == nil {
		return "", errors.New("idempotency key vanished after a conflict; retry")
	}
	fp, _ := out.Item["fingerprint"].(*types.AttributeValueMemberS)
	id, _ := out.Item["order_id"].(*types.AttributeValueMemberS)
	if fp == nil || id == nil {
		return "", errors.New("idempotency record is incomplete")
	}
	if fp.Value != fingerprint {
		return id.Value, pipeline.ErrIdempotencyMismatch
	}
	return id.Value, nil
}

// Apply implements pipeline.Store. A change with Reserve lines is a
// reservation (see Reserve).
func (st *Store) Apply(ctx context.Context, ch pipeline.Change) error {
	if len(ch.Reserve) > 0 {
		_, err := st.Reserve(ctx, ch)
		return err
	}
	_, err := st.apply(ctx, ch, nil)
	return err
}

// apply is one attempt at ch: a PutItem, or one TransactWriteItems when
// stock moves. ks[i] is the shard count assumed for ch.Reserve[i], whose
// Shard names the shard to take from. When a reservation's condition fails
// it returns the cancellation reasons (and no error) for Reserve to decide
// what to try next.
func (st *Store) apply(ctx context.Context, ch pipeline.Change, ks []int) ([]types.CancellationReason, error) {
	item, err := orderItem(ch.Order, ch.Doc)
	if err != nil {
		return nil, err
	}
	cond := "#s = :from"
	if ch.Upsert {
		cond = "attribute_not_exists(order_id) OR #s = :from"
	}
	put := &types.Put{
		TableName:                 &st.tables.Orders,
		Item:                      item,
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":from": s(string(ch.From))},
	}
	if len(ch.Reserve) == 0 && len(ch.Release) == 0 {
		_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression,
			ExpressionAttributeNames: put.ExpressionAttributeNames, ExpressionAttributeValues: put.ExpressionAttributeValues,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return nil, pipeline.ErrConflict
		}
		if err != nil {
			return nil, fmt.Errorf("write order %s %s→%s: %w", ch.Order.ID, ch.From, ch.Order.Status, err)
		}
		return nil, nil
	}
	release := ch.Release
	for attempt := 0; ; attempt++ {
		items := make([]types.TransactWriteItem, 0, len(ch.Reserve)+len(release)+1)
		for i, l := range ch.Reserve {
			items = append(items, types.TransactWriteItem{Update: st.reserveUpdate(l, ks[i])})
		}
		for _, l := range release {
			items = append(items, types.TransactWriteItem{Update: st.releaseUpdate(l)})
		}
		items = append(items, types.TransactWriteItem{Put: put})
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			if err != nil {
				return nil, fmt.Errorf("write order %s %s→%s with stock: %w", ch.Order.ID, ch.From, ch.Order.Status, err)
			}
			return nil, nil
		}
		reasons := tce.CancellationReasons
		if len(reasons) == len(items) && aws.ToString(reasons[len(items)-1].Code) == "ConditionalCheckFailed" {
			return nil, pipeline.ErrConflict
		}
		if hasCode(reasons[:min(len(reasons), len(ch.Reserve))], "ConditionalCheckFailed") {
			return reasons, nil
		}
		// A release to a shard that a lower shard count has since deleted
		// goes to shard 0 instead.
		redirected := false
		if attempt == 0 {
			release = slices.Clone(release)
			for i := range release {
				j := len(ch.Reserve) + i
				if j < len(reasons) && aws.ToString(reasons[j].Code) == "ConditionalCheckFailed" && release[i].Shard != 0 {
					release[i].Shard, redirected = 0, true
				}
			}
		}
		if !redirected {
			// TransactionConflict, ThrottlingError and friends: another
			// transaction touched the same items or the item is hot;
			// retrying through the queue is right.
			return nil, fmt.Errorf("write order %s %s→%s with stock: %w", ch.Order.ID, ch.From, ch.Order.Status, err)
		}
	}
}

// priceAttr holds a SKU's catalogue price as "<amount> <currency>"
// (pipeline.Money.String), so one string equality compares both parts.
const priceAttr = "unit_price"

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

// ListByStatus implements pipeline.Store.
func (st *Store) ListByStatus(ctx context.Context, status pipeline.Status, after, before time.Time, limit int) ([]pipeline.Order, error) {
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
