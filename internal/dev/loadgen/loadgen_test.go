package loadgen_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

func TestMixIsRepeatableAndKeepsItsShares(t *testing.T) {
	t.Parallel()
	mix := loadgen.Mix{Declined: 0.1, Transient: 0.2, Scarce: 0.3}
	counts := map[string]int{}
	const n = 5000
	for i := 0; i < n; i++ {
		a := mix.Request(i, rand.New(rand.NewPCG(7, uint64(i))))
		b := mix.Request(i, rand.New(rand.NewPCG(7, uint64(i))))
		if a.Payment != b.Payment || len(a.Items) != len(b.Items) {
			t.Fatalf("order %d differs between two draws with the same seed", i)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("order %d is invalid: %v", i, err)
		}
		counts[a.Payment.Token]++
		if a.Items[0].SKU == loadgen.ScarceSKU {
			counts["scarce"]++
		}
	}
	for key, want := range map[string]float64{"tok_chargeDeclined": 0.1, "tok_processingError": 0.2, "scarce": 0.3} {
		if got := float64(counts[key]) / n; got < want-0.03 || got > want+0.03 {
			t.Errorf("%s share %.3f, want about %.2f", key, got, want)
		}
	}
	if err := (loadgen.Mix{Declined: 0.7, Transient: 0.7}).Validate(); err == nil {
		t.Error("shares adding up to more than 1 were accepted")
	}
}

const exposition = `# TYPE cloudcommerce_aws_requests_total counter
cloudcommerce_aws_requests_total{operation="PutItem",outcome="ok",service="DynamoDB"} 30
cloudcommerce_aws_requests_total{operation="PutItem",outcome="ConditionalCheckFailedException",service="DynamoDB"} 2
cloudcommerce_aws_requests_total{operation="PutItem",outcome="ok",service="sandbox-ledger"} 9
cloudcommerce_aws_requests_total{operation="ReceiveMessage",outcome="ok",service="SQS"} 12
# TYPE cloudcommerce_aws_batch_size_entries histogram
cloudcommerce_aws_batch_size_entries_bucket{kind="events",le="+Inf"} 4
cloudcommerce_aws_batch_size_entries_sum{kind="events"} 30
cloudcommerce_aws_batch_size_entries_count{kind="events"} 4
# TYPE cloudcommerce_stage_messages_received_total counter
cloudcommerce_stage_messages_received_total{stage="inventory"} 10
cloudcommerce_stage_messages_received_total{stage="payment"} 10
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
`

func TestPerOrderSplitsTheLedgerOff(t *testing.T) {
	t.Parallel()
	after, err := loadgen.ParseCounters(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	before := loadgen.Counters{Requests: map[string]float64{"SQS ReceiveMessage": 2}, Errors: map[string]float64{}, Entries: map[string]float64{}}
	b := loadgen.PerOrder(before, after, 10)
	if b.ByOperation["DynamoDB PutItem"] != 3.2 || b.ByOperation["SQS ReceiveMessage"] != 1 || b.PerOrder != 4.2 {
		t.Errorf("per order = %v (total %v), want PutItem 3.2, ReceiveMessage 1, total 4.2", b.ByOperation, b.PerOrder)
	}
	if b.Ledger != 0.9 {
		t.Errorf("ledger = %v, want 0.9 apart from the total", b.Ledger)
	}
	if b.Errors["DynamoDB PutItem ConditionalCheckFailedException"] != 0.2 {
		t.Errorf("errors = %v", b.Errors)
	}
	if b.Entries["events"] != 3 || b.Deliveries != 2 {
		t.Errorf("entries %v, deliveries %v; want 3 events and 2 deliveries per order", b.Entries, b.Deliveries)
	}
	if after.CPUSeconds != 1.5 {
		t.Errorf("cpu = %v", after.CPUSeconds)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := loadgen.Percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if loadgen.Percentile(nil, 99) != 0 {
		t.Error("empty percentile is not 0")
	}
}

// TestRunPlacesOnTheBusAndWaitsForEveryOrder runs the load generator
// against a worker in this process on the emulator, both ways in.
func TestRunPlacesOnTheBusAndWaitsForEveryOrder(t *testing.T) {
	t.Parallel()
	env := testkit.Provision(t)
	cfg := config.WorkerDefaults()
	cfg.Prefix, cfg.WaitTime, cfg.RetryBase, cfg.SweepInterval, cfg.QueueSampleInterval = env.Prefix, time.Second, 200*time.Millisecond, -1, -1
	m := metrics.New()
	counted, err := awsconf.Load(context.Background(), awsconf.Options{Requests: m.AWSRequests})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := awsconf.Load(context.Background(), awsconf.Options{Requests: m.AWSRequests, ServiceLabel: loadgen.LedgerService})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(context.Background(), cfg, worker.Deps{AWS: counted, LedgerAWS: &ledger, Log: zaptest.NewLogger(t), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.OpsRoutes(mux)
	w.Intake.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })

	for _, c := range []struct {
		target string
		rate   float64
	}{{loadgen.TargetBus, 0}, {loadgen.TargetAPI, 50}} {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			Target: c.target, APIURL: srv.URL, AWS: env.AWS, Prefix: env.Prefix, Rate: c.rate, Orders: 40, Seed: 3,
			Mix: loadgen.Mix{Declined: 0.1, Transient: 0.1, Scarce: 0.2}, Timeout: time.Minute, MetricsURLs: []string{srv.URL + "/metrics"},
		})
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		if res.Final != 40 || res.NotFinal != 0 || res.ByStatus[string(pipeline.StatusShipped)] == 0 || res.ByStatus[string(pipeline.StatusPaymentFailed)] == 0 {
			t.Errorf("%s: outcomes %v, final %d", c.target, res.ByStatus, res.Final)
		}
		if res.Requests == nil || res.Requests.PerOrder < 3 || res.Requests.Ledger == 0 {
			t.Errorf("%s: requests %+v", c.target, res.Requests)
		}
		if c.target == loadgen.TargetBus && res.Requests.ByOperation["producer EventBridge PutEvents"] == 0 {
			t.Errorf("bus: the producer's PutEvents are not counted: %v", res.Requests.ByOperation)
		}
		if c.target == loadgen.TargetAPI && res.Requests.ByOperation["DynamoDB TransactWriteItems"] < 2 {
			t.Errorf("api: the intake's write is not counted: %v", res.Requests.ByOperation)
		}
		if res.P50Ms <= 0 || res.P99Ms < res.P50Ms || res.AvgOrderItemBytes < 500 {
			t.Errorf("%s: latency p50 %v p99 %v, item %v bytes", c.target, res.P50Ms, res.P99Ms, res.AvgOrderItemBytes)
		}
	}
}
