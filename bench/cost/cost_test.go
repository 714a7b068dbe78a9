package cost_test

import (
	"math"
	"os"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
)

func TestModelPricesEachUnit(t *testing.T) {
	t.Parallel()
	p := cost.ListPrices
	cases := []struct {
		name string
		in   cost.Input
		want float64
	}{
		{"one SQS request per order", cost.Input{Requests: map[string]float64{"SQS ReceiveMessage": 1}}, 0.40},
		{"one delivery", cost.Input{Deliveries: 1}, 0.40},
		{"one event", cost.Input{Events: 1}, 1.00},
		{"one publish", cost.Input{Requests: map[string]float64{"SNS Publish": 1}}, 0.50},
		{"PublishBatch entries", cost.Input{Requests: map[string]float64{"SNS PublishBatch": 0.2}, Notifications: 2}, 1.00},
		// Writes are priced from the recorded units only, not by request.
		{"order put", cost.Input{Requests: map[string]float64{"DynamoDB PutItem": 1}}, 0},
		{"recorded write units", cost.Input{WriteUnits: map[string]float64{"orders": 6, "orders/by_open": 2}}, 8 * 0.625},
		{"consistent read", cost.Input{Requests: map[string]float64{"DynamoDB GetItem": 1}}, 0.125},
		// 1000 µs per order on 0.5 vCPU at 60%: 1e6 orders = 1000 CPU-s
		// = 3333 task-s at (0.5×0.04048 + 1×0.004445)/3600 $ per task-s.
		{"fargate", cost.Input{CPUMicrosPerOrder: 1000}, 1000 / 0.3 * (0.5*0.04048 + 0.004445) / 3600},
	}
	for _, c := range cases {
		got := cost.Model(p, c.in).Total
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: got $%.6f per million, want $%.6f", c.name, got, c.want)
		}
	}
}

func Example() {
	// The shape of a batched run through the bus: 3 stage writes, 2
	// notifications, batched receives/deletes/events.
	in := cost.Input{
		Name: "batched",
		Requests: map[string]float64{
			"DynamoDB PutItem": 1.83, "DynamoDB TransactWriteItems": 1.05, "DynamoDB GetItem": 0.08,
			"SNS Publish": 1.88, "SQS ReceiveMessage": 0.95, "SQS DeleteMessageBatch": 0.36,
			"EventBridge PutEvents": 0.30, "producer EventBridge PutEvents": 0.10,
		},
		Events: 3.9, Deliveries: 2.85, CPUMicrosPerOrder: 1500,
		WriteUnits: map[string]float64{"orders": 5, "inventory": 3.2, "orders/by_customer": 1, "orders/by_open": 2, "orders/by_outcome": 1},
	}
	cost.Print(os.Stdout, cost.ListPrices, cost.Model(cost.ListPrices, in))
	// Output:
	// | $ per million orders (prices: 2026-11-25 (published list prices, us-east-1)) | batched |
	// |---|---:|
	// | SQS requests (receive, delete, visibility, DLQ, sampling) | 0.52 (1.31 requests) |
	// | SQS SendMessage by EventBridge (stage deliveries) | 1.14 (2.85 requests) |
	// | EventBridge custom events | 3.90 (3.9 events) |
	// | DynamoDB writes: inventory (recorded) | 2.00 (3.2 WRU) |
	// | DynamoDB writes: orders (recorded) | 3.12 (5 WRU) |
	// | DynamoDB writes: orders/by_customer (recorded) | 0.62 (1 WRU) |
	// | DynamoDB writes: orders/by_open (recorded) | 1.25 (2 WRU) |
	// | DynamoDB writes: orders/by_outcome (recorded) | 0.62 (1 WRU) |
	// | DynamoDB reads | 0.01 (0.08 RRU) |
	// | SNS publishes | 0.94 (1.88 publishes) |
	// | Fargate (0.5 vCPU / 1 GB tasks at 60% CPU) | 0.03 (0.005 task-s) |
	// | **total** | **14.17** |
}
