package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// The sweep's walk. In the compact format an order enters by_open only
// when it is overdue: not done, and placed longer ago than the stuck age.
// Every write of such an order sets open itself (orderItem), so what is
// left are the orders nothing wrote since they became overdue: the stuck
// ones. MarkOverdue finds those by walking the timeline (by_placed) once,
// oldest first, up to the overdue point, and sets open on each order it
// passes that is not done. Its position is one item of the orders table
// (walkKey, not an order id), advanced after every page by a write
// conditional on the position read: workers walk in turn, a worker whose
// advance finds the position moved stops, and a walk cut short resumes
// where the last page ended. Each order is read once by the walk however
// many workers run.

// walkKey is the orders table key of the walk's position; no order id
// starts with '#'.
const walkKey = "#sweep"

// walkMargin keeps the walk this far behind the overdue point (or the
// stuck age, if shorter), so that a worker whose clock runs behind still
// sets open on an order it writes after the walk passed it, and an order
// just created is on the timeline (a global secondary index is updated
// asynchronously, within a second as a rule) before the walk passes it.
const walkMargin = time.Minute

// walkBefore is the placement time up to which the walk goes.
func (st *Store) walkBefore() time.Time {
	before := st.overdueBefore()
	margin := walkMargin
	if st.stuckAfter > 0 && st.stuckAfter < margin {
		margin = st.stuckAfter
	}
	return before.Add(-margin)
}

// walkPages is the most timeline pages one MarkOverdue reads (of
// batchGetMax orders each); a walk further behind goes on at the next
// sweep.
const walkPages = 1000

// Walk position attributes.
const (
	walkPlacedAttr = "walk_placed_at"
	walkOrderAttr  = "walk_order_id"
)

// MarkOverdue walks the timeline from where the last walk ended up to the
// overdue point (see above), at most walkPages pages, and returns how many
// orders it put on by_open. In FormatJSON every order is on by_status, which the sweep
// reads, and it does nothing.
func (st *Store) MarkOverdue(ctx context.Context) (int, error) {
	if st.format == FormatJSON {
		return 0, nil
	}
	before := st.walkBefore().UTC().Format(timeLayout)
	pos, err := st.walkPosition(ctx)
	if err != nil {
		return 0, err
	}
	if pos != nil && str(pos["placed_at"]) >= before {
		// A worker whose clock runs ahead walked further; DynamoDB refuses
		// a start key outside the query's range.
		return 0, nil
	}
	marked := 0
	for range walkPages {
		page, err := st.timeline(ctx, before, false, batchGetMax, pos)
		if err != nil {
			return marked, fmt.Errorf("walk the order timeline: %w", err)
		}
		if len(page.Items) == 0 {
			return marked, nil
		}
		ids := orderIDs(page.Items)
		orders, open, err := st.currentWithOpen(ctx, ids)
		if err != nil {
			return marked, fmt.Errorf("walk the order timeline: %w", err)
		}
		for _, id := range ids {
			o, ok := orders[id]
			if !ok || o.Done() || open[id] {
				continue
			}
			n, err := st.markOpen(ctx, o)
			if err != nil {
				return marked, err
			}
			marked += n
		}
		last := page.Items[len(page.Items)-1]
		next := map[string]types.AttributeValue{"order_id": last["order_id"], timelineAttr: s(timelineValue), "placed_at": last["placed_at"]}
		moved, err := st.advanceWalk(ctx, pos, next)
		if err != nil || moved {
			return marked, err
		}
		pos = next
	}
	return marked, nil
}

// markOpen sets open on o, which was not done when read, and returns 1,
// or 0 when it turned out done. When o changes between the read and the
// write it reads it again: the writer that changed it set open itself
// unless its clock was far behind.
func (st *Store) markOpen(ctx context.Context, o pipeline.Order) (int, error) {
	for attempt := 0; attempt < 5; attempt++ {
		_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &st.tables.Orders,
			Key:                       map[string]types.AttributeValue{"order_id": s(o.ID)},
			UpdateExpression:          aws.String("SET #open = :open"),
			ConditionExpression:       aws.String("#s = :s AND attribute_not_exists(#open)"),
			ExpressionAttributeNames:  map[string]string{"#s": "status", "#open": openAttr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":s": s(string(o.Status)), ":open": s(openValue)},
		})
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			if err != nil {
				return 0, fmt.Errorf("mark order %s overdue: %w", o.ID, err)
			}
			return 1, nil
		}
		orders, open, err := st.currentWithOpen(ctx, []string{o.ID})
		if err != nil {
			return 0, fmt.Errorf("mark order %s overdue: %w", o.ID, err)
		}
		again, ok := orders[o.ID]
		if !ok || again.Done() || open[o.ID] {
			return 0, nil
		}
		o = again
	}
	return 0, fmt.Errorf("mark order %s overdue: it kept changing", o.ID)
}

// walkPosition reads the walk's position: the timeline key of the last
// order it passed, or nil before the first walk.
func (st *Store) walkPosition(ctx context.Context) (map[string]types.AttributeValue, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &st.tables.Orders, Key: map[string]types.AttributeValue{"order_id": s(walkKey)}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("read the sweep's position: %w", err)
	}
	id, placed := str(out.Item[walkOrderAttr]), str(out.Item[walkPlacedAttr])
	if id == "" || placed == "" {
		return nil, nil
	}
	return map[string]types.AttributeValue{"order_id": s(id), timelineAttr: s(timelineValue), "placed_at": s(placed)}, nil
}

// advanceWalk moves the walk's position from pos (nil: none yet) to next
// and reports whether another worker had moved it first (then nothing is
// written).
func (st *Store) advanceWalk(ctx context.Context, pos, next map[string]types.AttributeValue) (bool, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:                 &st.tables.Orders,
		Key:                       map[string]types.AttributeValue{"order_id": s(walkKey)},
		UpdateExpression:          aws.String("SET #p = :p, #o = :o"),
		ConditionExpression:       aws.String("attribute_not_exists(#p)"),
		ExpressionAttributeNames:  map[string]string{"#p": walkPlacedAttr, "#o": walkOrderAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": next["placed_at"], ":o": next["order_id"]},
	}
	if pos != nil {
		in.ConditionExpression = aws.String("#p = :wasp AND #o = :waso")
		in.ExpressionAttributeValues[":wasp"] = pos["placed_at"]
		in.ExpressionAttributeValues[":waso"] = pos["order_id"]
	}
	_, err := st.db.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("advance the sweep's position: %w", err)
	}
	return false, nil
}
