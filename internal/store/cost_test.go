package store_test

import (
	"context"
	"os"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// A reservation costs one TransactWriteItems and no read, for an
// unsharded SKU as before sharding existed, and for a sharded one whose
// shard has the units once the store knows the shard count.
func TestReservationRequestsPerOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := testkit.Provision(t)
	proxy, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: proxy.URL, Region: "us-east-1", StaticCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	n := env.Prov.Names
	st := store.New(awsconf.DynamoDB(cfg), store.Tables{Orders: n.Tables["orders"], Inventory: n.Tables["inventory"], Idempotency: n.Tables["idempotency"]})
	admin := env.Store()
	if err := admin.PutInventory(ctx, pipeline.InventoryItem{SKU: "ONE", Available: 100}); err != nil {
		t.Fatal(err)
	}
	if err := admin.PutInventory(ctx, pipeline.InventoryItem{SKU: "EIGHT", Available: 800, Shards: 8}); err != nil {
		t.Fatal(err)
	}
	counts := func() [3]int {
		return [3]int{proxy.Requests("DynamoDB", "TransactWriteItems"), proxy.Requests("DynamoDB", "GetItem"), proxy.Requests("DynamoDB", "TransactGetItems")}
	}
	reserveCost := func(id, sku string) [3]int {
		before := counts()
		if _, err := reserve(t, st, id, sku, 1); err != nil {
			t.Fatal(err)
		}
		after := counts()
		return [3]int{after[0] - before[0], after[1] - before[1], after[2] - before[2]}
	}
	if got := reserveCost("cost-1", "ONE"); got != [3]int{1, 0, 0} {
		t.Fatalf("unsharded reservation: %v TransactWriteItems/GetItem/TransactGetItems, want [1 0 0]", got)
	}
	// The first reservation of a sharded SKU learns its shard count from
	// the failed condition on the SKU's item (the emulator returns no
	// item with the failure, so one read explains it; AWS returns it).
	learn := reserveCost("cost-2", "EIGHT")
	if learn[0] != 2 || learn[2] != 0 {
		t.Fatalf("first sharded reservation: %v, want 2 transactions and no snapshot", learn)
	}
	for i := range 5 {
		if got := reserveCost("cost-3-"+string(rune('a'+i)), "EIGHT"); got != [3]int{1, 0, 0} {
			t.Fatalf("sharded reservation with stock in its shard: %v, want [1 0 0]", got)
		}
	}
}
