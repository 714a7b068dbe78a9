package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Migration: `worker migrate` gives every stored order the index keys
// this release's layout needs: placed_bucket (by_placed, the timeline),
// open on an order not done (by_open, what the sweep watches), and
// outcome and closed_at on a finished one (by_outcome, which the previous
// release reads). Orders written before those indexes existed lack them,
// and the previous release's whole-item PutItem erases the ones it does
// not know while it runs beside this one. It scans the orders table a page
// at a time and updates only the items whose keys are wrong, each with one
// UpdateItem conditional on the status it read, so it changes nothing
// else, can run while orders flow, and can be run again (idempotent) or
// resumed after any page from the cursor it reports (resumable).

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
			ProjectionExpression:     aws.String(migrateProjection),
			ExpressionAttributeNames: migrateNames(),
		})
		if err != nil {
			return p, fmt.Errorf("migrate: scan orders after %q: %w", p.Cursor, err)
		}
		for _, item := range page.Items {
			if !pipeline.ValidID(str(item["order_id"])) {
				continue // the sweep's position (overdue.go)
			}
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

// migrateProjection is what the migration reads of an order: the keys,
// and the document for whether it is done.
const migrateProjection = "order_id, #s, updated_at, placed_at, #b, #open, #outcome, #closed, #o, #d"

func migrateNames() map[string]string {
	return map[string]string{"#s": "status", "#b": timelineAttr, "#open": openAttr, "#outcome": outcomeAttr,
		"#closed": closedAtAttr, "#o": jsonDocAttr, "#d": compactDocAttr}
}

// reindex sets the index keys of one order if they are wrong for its
// state, and reports whether it wrote. When the order moves on between
// the read and the write it reads it again: the writer that moved it set
// the keys unless it was the previous release.
func (st *Store) reindex(ctx context.Context, item map[string]types.AttributeValue) (bool, error) {
	id := str(item["order_id"])
	for attempt := 0; attempt < 5; attempt++ {
		status := pipeline.Status(str(item["status"]))
		if !status.Valid() {
			return false, fmt.Errorf("migrate: order %s has status %q", id, status)
		}
		o, err := decodeOrder(item)
		if err != nil {
			return false, fmt.Errorf("migrate: order %s: %w", id, err)
		}
		var set, remove []string
		names := map[string]string{"#s": "status"}
		vals := map[string]types.AttributeValue{":s": s(string(status))}
		if item[timelineAttr] == nil && str(item["placed_at"]) != "" {
			set, names["#b"], vals[":b"] = append(set, "#b = :b"), timelineAttr, s(timelineValue)
		}
		switch open := item[openAttr] != nil; {
		case !o.Done() && !open:
			set, names["#open"], vals[":open"] = append(set, "#open = :open"), openAttr, s(openValue)
		case o.Done() && open:
			remove, names["#open"] = append(remove, "#open"), openAttr
		}
		switch {
		case status.Final() && (str(item[outcomeAttr]) != string(status) || item[closedAtAttr] == nil):
			closed := str(item[closedAtAttr])
			if closed == "" {
				closed = str(item["updated_at"])
			}
			if closed == "" {
				return false, fmt.Errorf("migrate: finished order %s has neither closed_at nor updated_at", id)
			}
			set, vals[":c"] = append(set, "#outcome = :s", "#closed = :c"), s(closed)
			names["#outcome"], names["#closed"] = outcomeAttr, closedAtAttr
		case !status.Final() && (item[outcomeAttr] != nil || item[closedAtAttr] != nil):
			remove = append(remove, "#outcome", "#closed")
			names["#outcome"], names["#closed"] = outcomeAttr, closedAtAttr
		}
		if len(set) == 0 && len(remove) == 0 {
			return false, nil
		}
		expr := ""
		if len(set) > 0 {
			expr = "SET " + strings.Join(set, ", ")
		}
		if len(remove) > 0 {
			expr = strings.TrimSpace(expr + " REMOVE " + strings.Join(remove, ", "))
		}
		in := &dynamodb.UpdateItemInput{
			TableName:                 &st.tables.Orders,
			Key:                       map[string]types.AttributeValue{"order_id": s(id)},
			UpdateExpression:          aws.String(expr),
			ConditionExpression:       aws.String("#s = :s"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: vals,
		}
		_, err = st.db.UpdateItem(ctx, in)
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			if err != nil {
				return false, fmt.Errorf("migrate: re-index order %s: %w", id, err)
			}
			return true, nil
		}
		out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: &st.tables.Orders, Key: in.Key, ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String(migrateProjection), ExpressionAttributeNames: migrateNames(),
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
