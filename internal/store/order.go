package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// orderItem is the stored item of o: the attributes conditions and
// indexes need, the sparse index keys of its state, and the document
// (doc, or o encoded) in the store's format.
func (st *Store) orderItem(o pipeline.Order, doc string) (map[string]types.AttributeValue, error) {
	if doc == "" {
		var err error
		if doc, err = pipeline.EncodeOrder(o); err != nil {
			return nil, err
		}
	}
	item := map[string]types.AttributeValue{
		"order_id":    s(o.ID),
		"status":      s(string(o.Status)),
		"customer_id": s(o.Customer.ID),
		"placed_at":   s(o.PlacedAt.UTC().Format(timeLayout)),
		timelineAttr:  s(timelineValue),
	}
	switch {
	case st.format == FormatCompact:
		// Only an order the sweep must watch is on by_open (store.go).
		if !o.Done() && o.PlacedAt.Before(st.overdueBefore()) {
			item[openAttr] = s(openValue)
		}
	case o.Status.Final():
		item[outcomeAttr] = s(string(o.Status))
		item[closedAtAttr] = s(o.UpdatedAt.UTC().Format(timeLayout))
	default:
		item[openAttr] = s(openValue)
	}
	if st.format == FormatCompact {
		item[compactDocAttr] = &types.AttributeValueMemberB{Value: compressDoc(doc)}
	} else {
		item["updated_at"] = s(o.UpdatedAt.UTC().Format(timeLayout))
		item[jsonDocAttr] = s(doc)
	}
	return item, nil
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
	item, err := st.orderItem(o, "")
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
	item, err := st.orderItem(ch.Order, ch.Doc)
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
