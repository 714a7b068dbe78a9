package worker_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

type fixture struct {
	env *testkit.Env
	w   *worker.Worker
	m   *metrics.Metrics
	gw  *sandbox.Gateway
}

func setup(t *testing.T, mutate ...func(*config.Worker)) *fixture {
	t.Helper()
	env := testkit.Provision(t)
	cfg := config.WorkerDefaults()
	cfg.Prefix, cfg.WaitTime, cfg.RetryBase, cfg.SweepInterval, cfg.QueueSampleInterval = env.Prefix, time.Second, time.Second, -1, -1
	for _, f := range mutate {
		f(&cfg)
	}
	m := metrics.New()
	gw := sandbox.NewGateway(env.DDB, env.Prov.Names.Tables["payments_ledger"])
	counted, err := awsconf.Load(context.Background(), awsconf.Options{Requests: m.AWSRequests})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(context.Background(), cfg, worker.Deps{AWS: counted, Log: zaptest.NewLogger(t), Metrics: m, Payments: gw})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, w: w, m: m, gw: gw}
}

func (f *fixture) stock(t *testing.T, sku string, n int64) {
	t.Helper()
	if err := f.w.Store.SetStock(context.Background(), sku, n); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) available(t *testing.T, sku string) int64 {
	t.Helper()
	n, err := f.w.Store.Stock(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// awsRequests sums the worker's cloudcommerce_aws_requests_total samples
// whose labels (service, operation, outcome) satisfy match.
func (f *fixture) awsRequests(t *testing.T, match func(labels map[string]string) bool) float64 {
	t.Helper()
	mfs, err := f.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "cloudcommerce_aws_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if match(labels) {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// wantHandled runs the stage's handler on ev and fails unless it returns
// the outcome want without an error.
func (f *fixture) wantHandled(t *testing.T, what string, st pipeline.Stage, ev pipeline.Event, want pipeline.Outcome) {
	t.Helper()
	if out, err := f.handle(t, st, ev); err != nil || out != want {
		t.Fatalf("%s: %s, %v; want %s", what, out, err, want)
	}
}

func (f *fixture) handle(t *testing.T, st pipeline.Stage, ev pipeline.Event) (pipeline.Outcome, error) {
	t.Helper()
	return f.w.Service.Handler(st)(context.Background(), pipeline.Message{ID: "m", Body: []byte(testkit.Envelope(t, ev)), ReceiveCount: 1})
}

func (f *fixture) order(t *testing.T, id, token string, skus ...string) pipeline.Order {
	t.Helper()
	o, err := pipeline.NewOrder(id, testkit.Order(token, skus...), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (f *fixture) get(t *testing.T, id string) pipeline.Order {
	t.Helper()
	o, err := f.w.Store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSameMessageTwiceHasOneEffect(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 5)
	o := f.order(t, "dup-1", "tok_visa", "A")
	placed := pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}
	if out, err := f.handle(t, pipeline.StageInventory, placed); err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("first delivery: %s, %v", out, err)
	}
	if out, err := f.handle(t, pipeline.StageInventory, placed); err != nil || out != pipeline.OutcomeDuplicate {
		t.Fatalf("second delivery: %s, %v; want duplicate", out, err)
	}
	if n := f.available(t, "A"); n != 4 {
		t.Fatalf("stock = %d after a duplicate delivery, want 4", n)
	}
	reserved := f.get(t, "dup-1")
	for i := 0; i < 2; i++ {
		if _, err := f.handle(t, pipeline.StagePayment, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: reserved}); err != nil {
			t.Fatal(err)
		}
	}
	paid := f.get(t, "dup-1")
	if paid.Status != pipeline.StatusPaid || paid.ChargeID == "" {
		t.Fatalf("after payment: %+v", paid)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.handle(t, pipeline.StageShipping, pipeline.Event{Type: pipeline.EventPaymentCaptured, Order: paid}); err != nil {
			t.Fatal(err)
		}
	}
	// A late duplicate of an earlier stage changes nothing either.
	if out, err := f.handle(t, pipeline.StagePayment, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: reserved}); err != nil || out != pipeline.OutcomeDuplicate {
		t.Fatalf("late payment duplicate: %s, %v", out, err)
	}
	shipped := f.get(t, "dup-1")
	if shipped.Status != pipeline.StatusShipped || shipped.TrackingNumber == "" || len(shipped.Timeline()) != 4 {
		t.Fatalf("after shipping: %+v", shipped)
	}
	entries, err := f.gw.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	captures := 0
	for _, e := range entries {
		if e.OrderID == "dup-1" && e.Kind == sandbox.KindCapture {
			captures++
		}
	}
	if captures != 1 {
		t.Fatalf("%d captures for one order, want 1", captures)
	}
}

func TestOutOfStockRejectsAndReservesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 10)
	f.stock(t, "B", 0)
	o := f.order(t, "oos-1", "tok_visa", "A", "B")
	out, err := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
	if err != nil || out != pipeline.OutcomeRejected {
		t.Fatalf("out of stock: %s, %v", out, err)
	}
	got := f.get(t, "oos-1")
	if got.Status != pipeline.StatusRejected || got.Reason == "" {
		t.Fatalf("order = %+v", got)
	}
	if a, b := f.available(t, "A"), f.available(t, "B"); a != 10 || b != 0 {
		t.Fatalf("stock A=%d B=%d, want 10 and 0", a, b)
	}
	unknown := f.order(t, "oos-2", "tok_visa", "GHOST")
	if out, _ := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: unknown}); out != pipeline.OutcomeRejected {
		t.Fatalf("unknown SKU outcome = %s", out)
	}
	if got := f.get(t, "oos-2"); got.Reason != "unknown SKU GHOST" {
		t.Fatalf("reason = %q", got.Reason)
	}
}

func TestDeclinedPaymentReleasesStock(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 3)
	o := f.order(t, "dec-1", "tok_chargeDeclined", "A")
	if _, err := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}); err != nil {
		t.Fatal(err)
	}
	if n := f.available(t, "A"); n != 2 {
		t.Fatalf("reserved stock = %d, want 2", n)
	}
	out, err := f.handle(t, pipeline.StagePayment, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: f.get(t, "dec-1")})
	if err != nil || out != pipeline.OutcomeRejected {
		t.Fatalf("declined: %s, %v", out, err)
	}
	if got := f.get(t, "dec-1"); got.Status != pipeline.StatusPaymentFailed {
		t.Fatalf("status = %s", got.Status)
	}
	if n := f.available(t, "A"); n != 3 {
		t.Fatalf("stock = %d after decline, want 3 (released)", n)
	}
}

func TestTransientPaymentErrorIsRetriedNotRejected(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "A", 3)
	o := f.order(t, "tr-1", "tok_processingError", "A")
	if _, err := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}); err != nil {
		t.Fatal(err)
	}
	ev := pipeline.Event{Type: pipeline.EventInventoryReserved, Order: f.get(t, "tr-1")}
	for i := 0; i < sandbox.TransientFailures; i++ {
		if _, err := f.handle(t, pipeline.StagePayment, ev); err == nil {
			t.Fatalf("attempt %d succeeded; want a transient error", i+1)
		} else if _, perm := pipeline.IsPermanent(err); perm {
			t.Fatalf("attempt %d: %v is permanent; want transient", i+1, err)
		}
	}
	if out, err := f.handle(t, pipeline.StagePayment, ev); err != nil || out != pipeline.OutcomeOK {
		t.Fatalf("third attempt: %s, %v", out, err)
	}
	if got := f.get(t, "tr-1"); got.Status != pipeline.StatusPaid {
		t.Fatalf("status = %s", got.Status)
	}
}

func TestFiftyConcurrentOrdersForTheLastTenUnits(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.stock(t, "LAST", 10)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			o := f.order(t, fmt.Sprintf("last-%d", i), "tok_visa", "LAST")
			_, err := f.handle(t, pipeline.StageInventory, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	counts := map[pipeline.Status]int{}
	for i := 0; i < 50; i++ {
		counts[f.get(t, fmt.Sprintf("last-%d", i)).Status]++
	}
	if counts[pipeline.StatusReserved] != 10 || counts[pipeline.StatusRejected] != 40 {
		t.Fatalf("statuses = %v, want 10 RESERVED and 40 REJECTED", counts)
	}
	if n := f.available(t, "LAST"); n != 0 {
		t.Fatalf("stock = %d, want 0", n)
	}
}

func TestMalformedMessageIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	url := f.env.QueueURL(pipeline.StageInventory, false)
	if _, err := f.env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(`{"this is": not json`)}); err != nil {
		t.Fatal(err)
	}
	got := f.env.Receive(t, f.env.QueueURL(pipeline.StageInventory, true), 1, 30*time.Second)
	if len(got) != 1 {
		t.Fatal("the malformed message did not reach the DLQ")
	}
	m := got[0]
	if aws.ToString(m.Body) != `{"this is": not json` {
		t.Fatalf("DLQ body = %q", aws.ToString(m.Body))
	}
	if r := aws.ToString(m.MessageAttributes[delivery.AttrReason].StringValue); r != pipeline.ReasonMalformed {
		t.Fatalf("reason attribute = %q", r)
	}
	if n, _ := strconv.Atoi(aws.ToString(m.MessageAttributes[delivery.AttrReceives].StringValue)); n != 1 {
		t.Fatalf("dead-lettered after %d receives, want 1 (no retries)", n)
	}
	// The consumer counts a dead letter once the DLQ has accepted it, so
	// the count may land just after the message is there to receive.
	testkit.Eventually(t, "dead_lettered counter = 1", 10*time.Second, func() bool {
		return testutil.ToFloat64(f.m.DeadLettered.WithLabelValues("inventory", pipeline.ReasonMalformed)) == 1
	})
	if v := testutil.ToFloat64(f.m.Handled.WithLabelValues("inventory", "retried")); v != 0 {
		t.Fatalf("retried counter = %v, want 0", v)
	}
}
