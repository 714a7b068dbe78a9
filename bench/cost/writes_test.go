package cost_test

import (
	"math"
	"strings"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
)

var schemas = map[string]cost.Schema{
	"p-orders": {Label: "orders", Hash: "order_id", Indexes: []cost.IndexSchema{
		{Name: "by_customer", Hash: "customer_id", Range: "placed_at", Projection: "KEYS_ONLY"},
		{Name: "by_status", Hash: "status", Range: "updated_at", Projection: "ALL"},
		{Name: "by_open", Hash: "open", Range: "placed_at", Projection: "KEYS_ONLY"},
		{Name: "by_outcome", Hash: "outcome", Range: "closed_at", Projection: "KEYS_ONLY"},
	}},
	"p-inventory": {Label: "inventory", Hash: "sku"},
}

// A small recording: order c-1 in the compact layout (reserved with one
// stock line in a transaction, paid, a duplicate write that fails, shipped),
// order j-1 in the JSON layout (by_status fed, an item over 1 KB), a
// warm-up order that is not kept, a stock set-up and a table the model
// does not know.
const recording = `{"process":"worker","service":"DynamoDB","operation":"PutItem","resources":["table:p-orders"]}
{"service":"DynamoDB","operation":"PutItem","writes":[{"table":"p-inventory","op":"Put","bytes":30,"attrs":{"sku":"A","available":"100"}}]}
{"service":"DynamoDB","operation":"TransactWriteItems","writes":[{"table":"p-inventory","op":"Update","transact":true,"bytes":20,"attrs":{"sku":"A","available":"?"}},{"table":"p-orders","op":"Put","transact":true,"bytes":480,"attrs":{"order_id":"c-1","status":"RESERVED","customer_id":"k","placed_at":"t0","open":"1"}}]}
{"service":"DynamoDB","operation":"PutItem","writes":[{"table":"p-orders","op":"Put","bytes":500,"attrs":{"order_id":"c-1","status":"PAID","customer_id":"k","placed_at":"t0","open":"1"}}]}
{"service":"DynamoDB","operation":"PutItem","failed":true,"writes":[{"table":"p-orders","op":"Put","bytes":500,"attrs":{"order_id":"c-1","status":"PAID","customer_id":"k","placed_at":"t0","open":"1"}}]}
{"service":"DynamoDB","operation":"PutItem","writes":[{"table":"p-orders","op":"Put","bytes":530,"attrs":{"order_id":"c-1","status":"SHIPPED","customer_id":"k","placed_at":"t0","outcome":"SHIPPED","closed_at":"t3"}}]}
{"service":"DynamoDB","operation":"TransactWriteItems","writes":[{"table":"p-inventory","op":"Update","transact":true,"bytes":20,"attrs":{"sku":"A","available":"?"}},{"table":"p-orders","op":"Put","transact":true,"bytes":1100,"attrs":{"order_id":"j-1","status":"RESERVED","customer_id":"k","placed_at":"t0","updated_at":"t1","open":"1"}}]}
{"service":"DynamoDB","operation":"PutItem","writes":[{"table":"p-orders","op":"Put","bytes":1000,"attrs":{"order_id":"j-1","status":"PAID","customer_id":"k","placed_at":"t0","updated_at":"t2","open":"1"}}]}
{"service":"DynamoDB","operation":"PutItem","writes":[{"table":"p-orders","op":"Put","bytes":400,"attrs":{"order_id":"warm-1","status":"RESERVED","customer_id":"k","placed_at":"t0","open":"1"}}]}
{"service":"DynamoDB","operation":"PutItem","writes":[{"table":"p-ledger","op":"Put","bytes":100,"attrs":{"idempotency_key":"c-1"}}]}
`

func TestRecordedWriteUnitsReplaysItemsAndIndexes(t *testing.T) {
	t.Parallel()
	u, err := cost.RecordedWriteUnits(strings.NewReader(recording), schemas, "p-orders", func(id string) bool { return !strings.HasPrefix(id, "warm-") })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		// c-1: 2 (transaction) + 1 + 1 (failed: charged) + 1;
		// j-1: 2×2 (transaction, 1100 bytes) + 2 (the larger of 1100 and 1000).
		"orders": 5 + 6,
		// One transactional update per reservation.
		"inventory": 2 + 2,
		// Each order's creating write only.
		"orders/by_customer": 1 + 1,
		// c-1 enters and leaves; j-1 enters.
		"orders/by_open": 2 + 1,
		// c-1 enters when shipped.
		"orders/by_outcome": 1,
		// j-1 only: an ALL entry of 1100 bytes put (2), then its key
		// changes: deleted (2) and put at 1000 bytes (1).
		"orders/by_status": 2 + 3,
	}
	for k, v := range want {
		if math.Abs(u.ByTarget[k]-v) > 1e-9 {
			t.Errorf("%s: %v WRU, want %v", k, u.ByTarget[k], v)
		}
	}
	if len(u.ByTarget) != len(want) {
		t.Errorf("targets %v, want %v", u.ByTarget, want)
	}
	if u.Orders != 2 {
		t.Errorf("orders %d, want 2", u.Orders)
	}
	// The stock set-up and the warm-up order (its write and index entries).
	if u.Unattributed != 1+1+1+1 {
		t.Errorf("unattributed %v WRU, want 4", u.Unattributed)
	}
	if got := u.Total(); math.Abs(got-(11+4+2+3+1+5)/2.0) > 1e-9 {
		t.Errorf("total per order %v", got)
	}
}
