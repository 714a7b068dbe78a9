package awsfault

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// Throttle models DynamoDB's write limit per item key: a partition takes at
// most 1,000 write units a second, so one item, which lives in one
// partition, never takes more however the table is provisioned. Each key
// of the named tables gets a token bucket of UnitsPerSecond write units
// (holding at most Burst); a write costs one unit per item, two inside a
// transaction (items here are under 1 KB). A write that finds a bucket
// short is answered as DynamoDB answers it, and costs nothing:
//
//   - PutItem, UpdateItem, DeleteItem: HTTP 400
//     com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException
//     (or com.amazonaws.dynamodb.v20120810#ThrottlingException with
//     ThrottlingException set, as on-demand tables answer), which the
//     SDK retries with backoff before giving up;
//   - TransactWriteItems: HTTP 400 TransactionCanceledException with the
//     reason code ThrottlingError at the throttled item's index and None
//     at the others, which the SDK does not retry.
//
// Scale it down for a test machine: AWS's 1,000 units a second per
// partition at a scale factor f is UnitsPerSecond = 1000·f.
type Throttle struct {
	// Tables maps each throttled table's name to its partition key
	// attribute.
	Tables map[string]string
	// UnitsPerSecond is the write units per second one key takes.
	UnitsPerSecond float64
	// Burst is the most units a key saves up; 0 means one second's worth.
	Burst float64
	// ThrottlingException answers single-item writes with
	// ThrottlingException instead of ProvisionedThroughputExceededException.
	ThrottlingException bool

	mu        sync.Mutex
	buckets   map[string]*bucket
	throttled atomic.Int64
	admitted  atomic.Int64
	now       func() time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// Throttled returns how many write requests were answered as throttled.
func (t *Throttle) Throttled() int { return int(t.throttled.Load()) }

// Reset forgets the counts and refills every bucket.
func (t *Throttle) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buckets = nil
	t.throttled.Store(0)
	t.admitted.Store(0)
}

// Admitted returns how many write requests to throttled tables passed.
func (t *Throttle) Admitted() int { return int(t.admitted.Load()) }

// dynamoDBKeyThrottling is the ThrottlingException of an on-demand table
// past a key's throughput.
var dynamoDBKeyThrottling = DynamoDB(400, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Throughput exceeds the current capacity for one or more keys in your table. DynamoDB is automatically scaling your table.")

// writeOps are the DynamoDB operations the model meters.
var writeOps = map[string]bool{"PutItem": true, "UpdateItem": true, "DeleteItem": true, "TransactWriteItems": true}

type wireWrite struct {
	TableName string                     `json:"TableName"`
	Key       map[string]json.RawMessage `json:"Key"`
	Item      map[string]json.RawMessage `json:"Item"`
}

type wireTransact struct {
	TransactItems []struct {
		Put            *wireWrite `json:"Put"`
		Update         *wireWrite `json:"Update"`
		Delete         *wireWrite `json:"Delete"`
		ConditionCheck *wireWrite `json:"ConditionCheck"`
	} `json:"TransactItems"`
}

// keyOf is the bucket name of a write, "" when its table is not metered.
func (t *Throttle) keyOf(w *wireWrite) string {
	if w == nil {
		return ""
	}
	attr, ok := t.Tables[w.TableName]
	if !ok {
		return ""
	}
	v, ok := w.Key[attr]
	if !ok {
		v, ok = w.Item[attr]
	}
	if !ok {
		return ""
	}
	return w.TableName + "\x00" + string(v)
}

// check meters a DynamoDB request and returns the throttling answer, or
// nil to let it through.
func (t *Throttle) check(op string, body []byte) *Response {
	if !writeOps[op] {
		return nil
	}
	var keys []string
	cost := 1.0
	if op == "TransactWriteItems" {
		var tx wireTransact
		if json.Unmarshal(body, &tx) != nil {
			return nil
		}
		cost = 2
		keys = make([]string, len(tx.TransactItems))
		for i, it := range tx.TransactItems {
			for _, w := range []*wireWrite{it.Put, it.Update, it.Delete, it.ConditionCheck} {
				if w != nil {
					keys[i] = t.keyOf(w)
				}
			}
		}
	} else {
		var w wireWrite
		if json.Unmarshal(body, &w) != nil {
			return nil
		}
		keys = []string{t.keyOf(&w)}
	}
	metered := false
	for _, k := range keys {
		metered = metered || k != ""
	}
	if !metered {
		return nil
	}
	short := t.take(keys, cost)
	if short < 0 {
		t.admitted.Add(1)
		return nil
	}
	t.throttled.Add(1)
	if op != "TransactWriteItems" {
		r := DynamoDBProvisionedThroughputExceeded
		if t.ThrottlingException {
			r = dynamoDBKeyThrottling
		}
		return &r
	}
	codes := make([]string, len(keys))
	for i := range codes {
		codes[i] = "None"
	}
	codes[short] = "ThrottlingError"
	r := TransactionCanceled(codes...)
	return &r
}

// take takes cost units from the bucket of every metered key, all or
// none; it returns the index of the first key that is short, or -1.
func (t *Throttle) take(keys []string, cost float64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.now != nil {
		now = t.now()
	}
	if t.buckets == nil {
		t.buckets = map[string]*bucket{}
	}
	burst := t.Burst
	if burst <= 0 {
		burst = t.UnitsPerSecond
	}
	need := map[string]float64{}
	for _, k := range keys {
		if k != "" {
			need[k] += cost
		}
	}
	for i, k := range keys {
		if k == "" {
			continue
		}
		b, ok := t.buckets[k]
		if !ok {
			b = &bucket{tokens: burst, at: now}
			t.buckets[k] = b
		}
		b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*t.UnitsPerSecond)
		b.at = now
		if b.tokens < need[k] {
			return i
		}
	}
	for k, c := range need {
		t.buckets[k].tokens -= c
	}
	return -1
}

// SetThrottle installs the throttling model (nil removes it). It applies
// before the rules.
func (p *Proxy) SetThrottle(t *Throttle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.throttle = t
}

func (p *Proxy) throttled(svc, op string, body []byte) *Response {
	p.mu.Lock()
	t := p.throttle
	p.mu.Unlock()
	if t == nil || svc != "DynamoDB" {
		return nil
	}
	return t.check(op, body)
}
