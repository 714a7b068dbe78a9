package awsfault

import (
	"encoding/json"
	"testing"
	"time"
)

func TestThrottleIsATokenBucketPerKey(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	th := &Throttle{Tables: map[string]string{"inv": "sku"}, UnitsPerSecond: 4, now: func() time.Time { return now }}
	update := func(sku string) []byte {
		return []byte(`{"TableName":"inv","Key":{"sku":{"S":"` + sku + `"}},"UpdateExpression":"SET a = a - :q"}`)
	}
	tx := func(skus ...string) []byte {
		items := []map[string]any{}
		for _, s := range skus {
			items = append(items, map[string]any{"Update": map[string]any{"TableName": "inv", "Key": map[string]any{"sku": map[string]string{"S": s}}}})
		}
		items = append(items, map[string]any{"Put": map[string]any{"TableName": "orders", "Item": map[string]any{"order_id": map[string]string{"S": "o"}}}})
		b, _ := json.Marshal(map[string]any{"TransactItems": items})
		return b
	}
	// A second's worth (4 units) per key: 4 single writes pass, the 5th is
	// throttled; another key has its own bucket.
	for i := range 4 {
		if r := th.check("UpdateItem", update("HOT")); r != nil {
			t.Fatalf("write %d throttled within the burst", i+1)
		}
	}
	r := th.check("UpdateItem", update("HOT"))
	if r == nil || r.Status != 400 || !json.Valid([]byte(r.Body)) {
		t.Fatalf("5th write = %+v, want a 400", r)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(r.Body), &body)
	if body["__type"] != "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException" {
		t.Fatalf("5th write answered %s", r.Body)
	}
	if r := th.check("UpdateItem", update("COLD")); r != nil {
		t.Fatal("another key was throttled")
	}
	// Reads and unmetered tables pass.
	if r := th.check("GetItem", update("HOT")); r != nil {
		t.Fatal("a read was throttled")
	}
	// Half a second refills 2 units: one transactional write (2 units).
	now = now.Add(500 * time.Millisecond)
	if r := th.check("TransactWriteItems", tx("HOT")); r != nil {
		t.Fatalf("transaction throttled after a refill: %s", r.Body)
	}
	r = th.check("TransactWriteItems", tx("COLD", "HOT"))
	if r == nil {
		t.Fatal("a transaction on an empty bucket passed")
	}
	var tce struct {
		Type    string `json:"__type"`
		Reasons []struct {
			Code string `json:"Code"`
		} `json:"CancellationReasons"`
	}
	if err := json.Unmarshal([]byte(r.Body), &tce); err != nil || tce.Type != "com.amazonaws.dynamodb.v20120810#TransactionCanceledException" ||
		len(tce.Reasons) != 3 || tce.Reasons[0].Code != "None" || tce.Reasons[1].Code != "ThrottlingError" || tce.Reasons[2].Code != "None" {
		t.Fatalf("throttled transaction answered %s, want reasons [None ThrottlingError None]", r.Body)
	}
	// A throttled request costs nothing: COLD still has 3 units.
	if r := th.check("UpdateItem", update("COLD")); r != nil {
		t.Fatal("the throttled transaction took COLD's units")
	}
	if th.Throttled() != 2 || th.Admitted() != 7 {
		t.Fatalf("throttled %d admitted %d, want 2 and 7", th.Throttled(), th.Admitted())
	}
	th.ThrottlingException = true
	if r := th.check("PutItem", []byte(`{"TableName":"inv","Item":{"sku":{"S":"HOT"},"available":{"N":"1"}}}`)); r == nil || !json.Valid([]byte(r.Body)) || r.Body == "" || body == nil {
		t.Fatal("a put on an empty bucket passed")
	} else if err := json.Unmarshal([]byte(r.Body), &body); err != nil || body["__type"] != "com.amazonaws.dynamodb.v20120810#ThrottlingException" {
		t.Fatalf("ThrottlingException mode answered %s", r.Body)
	}
}
