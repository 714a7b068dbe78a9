package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// An order the previous release stored (the JSON document, no sparse index
// keys) and left PLACED when its event was lost is moved on by the sweep of
// a worker writing the compact format once `worker migrate` has run, and
// ships.
func TestSweepMovesOnAnOrderOfThePreviousLayoutAfterTheMigration(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Worker) { c.OrderFormat = "compact" })
	f.stock(t, "A", 5)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	o := f.order(t, "old-layout", "tok_visa", "A")
	o.PlacedAt = o.PlacedAt.Add(-10 * time.Minute)
	o.UpdatedAt = o.PlacedAt
	doc, err := pipeline.EncodeOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	const layout = "2006-01-02T15:04:05.000000000Z"
	sv := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	if _, err := f.env.DDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(f.env.Prov.Names.Tables["orders"]), Item: map[string]types.AttributeValue{
		"order_id": sv(o.ID), "status": sv(string(o.Status)), "updated_at": sv(o.UpdatedAt.UTC().Format(layout)),
		"customer_id": sv(o.Customer.ID), "placed_at": sv(o.PlacedAt.UTC().Format(layout)), "order": sv(doc),
	}}); err != nil {
		t.Fatal(err)
	}
	p, err := f.w.Store.Migrate(ctx, "", nil)
	if err != nil || p.Reindexed != 1 {
		t.Fatalf("Migrate = %+v, %v; want the order re-indexed", p, err)
	}
	n, err := f.w.Sweep(ctx, time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 order moved on", n, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for f.get(t, o.ID).Status != pipeline.StatusShipped {
		if time.Now().After(deadline) {
			t.Fatalf("order is %s, not SHIPPED", f.get(t, o.ID).Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Shipped, it is listed as SHIPPED (the timeline) and no longer swept.
	page, err := f.w.Store.ByStatus(ctx, pipeline.StatusShipped, 10, "")
	if err != nil || len(page.Orders) != 1 || page.Orders[0].ID != o.ID {
		t.Fatalf("SHIPPED listing = %+v, %v", page.Orders, err)
	}
	if n, _ := f.w.Sweep(ctx, time.Now()); n != 0 {
		t.Fatalf("the sweep moved %d orders after the order shipped", n)
	}
}
