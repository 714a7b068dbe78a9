package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Migration: `worker migrate` gives every stored order the sparse index
// keys of its status (open; or outcome and closed_at), which orders
// written before those indexes existed lack, and which the previous
// release's whole-item PutItem erases while it runs beside this one. It
// scans the orders table a page at a time and updates only the items
// whose keys are wrong, each with one UpdateItem conditional on the status
// it read, so it changes nothing else, can run while orders flow, and can
// be run again (idempotent) or resumed after any page from the cursor it
// reports (resumable).

// MigrateProgress is where a migration stands after a page.
type MigrateProgress struct {
	// Scanned and Reindexed count the orders seen and updated so far.
	Scanned, Reindexed int
	// Cursor resumes the migration after this page; "" once it is done.
	Cursor string
}

// migratePage is the most items one Scan page reads.
const migratePage = 200

// Migrate re-indexes orders from cursor ("" from the start), calling
// progress after each page.
func (st *Store) Migrate(ctx context.Context, cursor string, progress func(MigrateProgress)) (MigrateProgress, error) {
	p := MigrateProgress{Cursor: cursor}
	var start map[string]types.AttributeValue
	if cursor != "" {
		if !pipeline.ValidID(cursor) {
			return p, fmt.Errorf("migrate: cursor %q is not an order id a migration reported", cursor)
		}
		start = map[string]types.AttributeValue{"order_id": s(cursor)}
	}
	for {
		page, err := st.db.Scan(ctx, &dynamodb.ScanInput{
			TableName: &st.tables.Orders, Limit: aws.Int32(migratePage), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true),
			ProjectionExpression:     aws.String("order_id, #s, updated_at, #open, #outcome, #closed"),
			ExpressionAttributeNames: map[string]string{"#s": "status", "#open": openAttr, "#outcome": outcomeAttr, "#closed": closedAtAttr},
		})
		if err != nil {
			return p, fmt.Errorf("migrate: scan orders after %q: %w", p.Cursor, err)
		}
		for _, item := range page.Items {
			p.Scanned++
			done, err := st.reindex(ctx, item)
			if err != nil {
				return p, err
			}
			if done {
				p.Reindexed++
			}
		}
		p.Cursor = ""
		if page.LastEvaluatedKey != nil {
			p.Cursor = str(page.LastEvaluatedKey["order_id"])
		}
		if progress != nil {
			progress(p)
		}
		if page.LastEvaluatedKey == nil {
			return p, nil
		}
		start = page.LastEvaluatedKey
	}
}

// reindex sets the sparse index keys of one order if they are wrong for
// its status, and reports whether it wrote. When the order moves on
// between the read and the write it reads it again: the writer that moved
// it set the keys unless it was the previous release.
func (st *Store) reindex(ctx context.Context, item map[string]types.AttributeValue) (bool, error) {
	id := str(item["order_id"])
	for attempt := 0; attempt < 5; attempt++ {
		status := pipeline.Status(str(item["status"]))
		if !status.Valid() {
			return false, fmt.Errorf("migrate: order %s has status %q", id, status)
		}
		in := &dynamodb.UpdateItemInput{
			TableName:           &st.tables.Orders,
			Key:                 map[string]types.AttributeValue{"order_id": s(id)},
			ConditionExpression: aws.String("#s = :s"),
			ExpressionAttributeNames: map[string]string{
				"#s": "status", "#open": openAttr, "#outcome": outcomeAttr, "#closed": closedAtAttr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":s": s(string(status))},
		}
		switch {
		case status.Final() && str(item[outcomeAttr]) == string(status) && item[openAttr] == nil && item[closedAtAttr] != nil:
			return false, nil
		case !status.Final() && str(item[openAttr]) == openValue && item[outcomeAttr] == nil:
			return false, nil
		case status.Final():
			closed := str(item[closedAtAttr])
			if closed == "" {
				closed = str(item["updated_at"])
			}
			if closed == "" {
				return false, fmt.Errorf("migrate: finished order %s has neither closed_at nor updated_at", id)
			}
			in.UpdateExpression = aws.String("SET #outcome = :s, #closed = :c REMOVE #open")
			in.ExpressionAttributeValues[":c"] = s(closed)
		default:
			in.UpdateExpression = aws.String("SET #open = :open REMOVE #outcome, #closed")
			in.ExpressionAttributeValues[":open"] = s(openValue)
		}
		_, err := st.db.UpdateItem(ctx, in)
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			if err != nil {
				return false, fmt.Errorf("migrate: re-index order %s: %w", id, err)
			}
			return true, nil
		}
		out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: &st.tables.Orders, Key: in.Key, ConsistentRead: aws.Bool(true),
			ProjectionExpression:     aws.String("order_id, #s, updated_at, #open, #outcome, #closed"),
			ExpressionAttributeNames: map[string]string{"#s": "status", "#open": openAttr, "#outcome": outcomeAttr, "#closed": closedAtAttr},
		})
		if err != nil {
			return false, fmt.Errorf("migrate: read order %s again: %w", id, err)
		}
		if out.Item == nil {
			return false, nil
		}
		item = out.Item
	}
	return false, fmt.Errorf("migrate: order %s kept changing; run the migration again", id)
}
