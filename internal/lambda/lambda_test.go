package lambda_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

// fixture is a provisioned topology under a unique prefix and a function
// handler on it.
type fixture struct {
	prefix string
	aws    aws.Config
	sqs    *sqs.Client
	prov   *topology.Provisioned
	store  *store.Store
	h      *lambda.Handler
}

func uniquePrefix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "l" + hex.EncodeToString(b)
}

// setup provisions a topology and builds the handler; mutate adjusts the
// configuration and dependencies first.
func setup(t *testing.T, mutate ...func(*config.Lambda, *lambda.Deps)) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := awsconf.Load(ctx, awsconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{prefix: uniquePrefix(), aws: cfg, sqs: sqs.NewFromConfig(cfg)}
	f.prov, err = topo.Provision(ctx, topology.Clients{SQS: f.sqs, DynamoDB: awsconf.DynamoDB(cfg),
		EventBridge: eventbridge.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg)}, f.prefix)
	if err != nil {
		t.Fatalf("provision %s: %v", f.prefix, err)
	}
	n := f.prov.Names
	f.store = store.New(awsconf.DynamoDB(cfg), store.Tables{Orders: n.Tables["orders"], Inventory: n.Tables["inventory"], Idempotency: n.Tables["idempotency"]})
	lc := config.Lambda{Prefix: f.prefix, TopicARN: f.prov.TopicARN}
	deps := lambda.Deps{AWS: cfg, Log: zaptest.NewLogger(t)}
	for _, m := range mutate {
		m(&lc, &deps)
	}
	f.h, err = lambda.New(ctx, lc, deps)
	if err != nil {
		t.Fatalf("lambda.New: %v", err)
	}
	t.Cleanup(f.h.Close)
	return f
}

func (f *fixture) queueURL(st pipeline.Stage, dlq bool) string {
	if dlq {
		return f.prov.QueueURLs[f.prov.Names.DLQs[st]]
	}
	return f.prov.QueueURLs[f.prov.Names.Queues[st]]
}

func (f *fixture) queueARN(st pipeline.Stage) string {
	return f.prov.QueueARNs[f.prov.Names.Queues[st]]
}

func (f *fixture) setStock(t *testing.T, sku string, n int64) {
	t.Helper()
	if err := f.store.SetStock(context.Background(), sku, n); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) stock(t *testing.T, sku string) int64 {
	t.Helper()
	n, err := f.store.Stock(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) order(t *testing.T, id string) pipeline.Order {
	t.Helper()
	o, err := f.store.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get order %s: %v", id, err)
	}
	return o
}

// newOrder returns a valid PLACED order for one unit of each SKU.
func newOrder(t *testing.T, id, token string, skus ...string) pipeline.Order {
	t.Helper()
	items := make([]pipeline.Item, len(skus))
	for i, s := range skus {
		items[i] = pipeline.Item{SKU: s, Quantity: 1, UnitPrice: pipeline.Money{Amount: 1250, Currency: "USD"}}
	}
	o, err := pipeline.NewOrder(id, pipeline.OrderRequest{
		Customer:        pipeline.Customer{ID: "cust-1", Email: "ada@example.com", Phone: "+14155550100"},
		Items:           items,
		Payment:         pipeline.Payment{Token: token},
		ShippingAddress: pipeline.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "London", PostalCode: "N1 1AA", Country: "GB"},
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// reserved stores o as RESERVED (as the inventory stage leaves it) and
// returns that snapshot, for tests that start at the payment stage.
func (f *fixture) reserved(t *testing.T, o pipeline.Order) pipeline.Order {
	t.Helper()
	o.Status = pipeline.StatusReserved
	o.History[pipeline.StatusReserved] = time.Now().UTC()
	if err := f.store.Apply(context.Background(), pipeline.Change{Order: o, From: pipeline.StatusPlaced, Upsert: true}); err != nil {
		t.Fatal(err)
	}
	return o
}

// envelope is the EventBridge event SQS delivers for ev.
func envelope(t *testing.T, ev pipeline.Event) string { return testkit.Envelope(t, ev) }

// send puts a body on a stage queue and returns its message id.
func (f *fixture) send(t *testing.T, st pipeline.Stage, body string) string {
	t.Helper()
	out, err := f.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(f.queueURL(st, false)), MessageBody: aws.String(body)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.MessageId)
}

// receive does the event source mapping's part before an invocation: it
// receives from the stage queue until n messages are in hand and returns
// them as the SQS event Lambda would deliver.
func (f *fixture) receive(t *testing.T, st pipeline.Stage, n int, timeout time.Duration) events.SQSEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var ev events.SQSEvent
	for len(ev.Records) < n {
		out, err := f.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.queueURL(st, false)),
			MaxNumberOfMessages: int32(min(10, n-len(ev.Records))), WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"}})
		if err != nil {
			t.Fatalf("receive from the %s queue (%d of %d messages in hand): %v", st, len(ev.Records), n, err)
		}
		for _, m := range out.Messages {
			ev.Records = append(ev.Records, toRecord(m, f.queueARN(st), f.aws.Region))
		}
	}
	return ev
}

// toRecord converts a received message to the record Lambda delivers.
func toRecord(m types.Message, arn, region string) events.SQSMessage {
	attrs := map[string]events.SQSMessageAttribute{}
	for k, v := range m.MessageAttributes {
		attrs[k] = events.SQSMessageAttribute{DataType: aws.ToString(v.DataType), StringValue: v.StringValue, BinaryValue: v.BinaryValue,
			StringListValues: v.StringListValues, BinaryListValues: v.BinaryListValues}
	}
	return events.SQSMessage{
		MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
		Md5OfBody: aws.ToString(m.MD5OfBody), Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
		Attributes: m.Attributes, MessageAttributes: attrs,
		EventSourceARN: arn, EventSource: "aws:sqs", AWSRegion: region,
	}
}

// invoke calls the handler as Lambda does: with a deadline (the function
// timeout) on the context.
func (f *fixture) invoke(t *testing.T, ev events.SQSEvent) events.SQSEventResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := f.h.Handle(ctx, ev)
	if err != nil {
		t.Fatalf("Handle returned a function error (the whole batch would be retried): %v", err)
	}
	return resp
}

// settle does the mapping's part after an invocation: it deletes every
// record not reported as failed.
func (f *fixture) settle(t *testing.T, st pipeline.Stage, ev events.SQSEvent, resp events.SQSEventResponse) {
	t.Helper()
	failed := map[string]bool{}
	for _, bf := range resp.BatchItemFailures {
		failed[bf.ItemIdentifier] = true
	}
	for _, r := range ev.Records {
		if failed[r.MessageId] {
			continue
		}
		if _, err := f.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(f.queueURL(st, false)), ReceiptHandle: aws.String(r.ReceiptHandle)}); err != nil {
			t.Fatal(err)
		}
	}
}

// deliver is one round of the mapping: receive n, invoke, settle.
func (f *fixture) deliver(t *testing.T, st pipeline.Stage, n int) (events.SQSEvent, events.SQSEventResponse) {
	t.Helper()
	ev := f.receive(t, st, n, 15*time.Second)
	resp := f.invoke(t, ev)
	f.settle(t, st, ev, resp)
	return ev, resp
}

func failures(resp events.SQSEventResponse) []string {
	out := []string{}
	for _, f := range resp.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return out
}

func TestOrderMovesThroughEveryStage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.setStock(t, "SKU-A", 5)
	f.setStock(t, "SKU-B", 1)
	o := newOrder(t, "ord-flow-1", "tok_visa", "SKU-A", "SKU-B")
	f.send(t, pipeline.StageInventory, envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}))

	_, resp := f.deliver(t, pipeline.StageInventory, 1)
	if got := failures(resp); len(got) != 0 {
		t.Fatalf("inventory: failures %v", got)
	}
	if got := f.order(t, o.ID); got.Status != pipeline.StatusReserved {
		t.Fatalf("after the inventory stage the order is %s, want RESERVED", got.Status)
	}
	if a, b := f.stock(t, "SKU-A"), f.stock(t, "SKU-B"); a != 4 || b != 0 {
		t.Errorf("stock after reservation: SKU-A %d, SKU-B %d; want 4 and 0", a, b)
	}

	// The InventoryReserved event went out before the invocation returned;
	// the bus rule routes it to the payment queue.
	ev, resp := f.deliver(t, pipeline.StagePayment, 1)
	if got := failures(resp); len(got) != 0 {
		t.Fatalf("payment: failures %v", got)
	}
	if dt := detailType(t, ev.Records[0].Body); dt != string(pipeline.EventInventoryReserved) {
		t.Errorf("payment queue got %s, want InventoryReserved", dt)
	}
	paid := f.order(t, o.ID)
	if paid.Status != pipeline.StatusPaid || paid.ChargeID == "" {
		t.Fatalf("after the payment stage the order is %s with charge %q, want PAID with a charge", paid.Status, paid.ChargeID)
	}

	f.deliver(t, pipeline.StageShipping, 1)
	shipped := f.order(t, o.ID)
	if shipped.Status != pipeline.StatusShipped || shipped.TrackingNumber == "" {
		t.Fatalf("after the shipping stage the order is %s with tracking %q, want SHIPPED with a tracking number", shipped.Status, shipped.TrackingNumber)
	}
	for _, st := range pipeline.Stages {
		if n := f.depth(t, f.queueURL(st, false)); n != 0 {
			t.Errorf("%s queue holds %d messages after its records succeeded, want 0", st, n)
		}
	}
}

func TestEndStatesMatchTheWorker(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.setStock(t, "SKU-OK", 10)
	f.setStock(t, "SKU-SCARCE", 0)

	// Inventory: an order for stock that is not there is rejected (handled,
	// not retried).
	short := newOrder(t, "ord-short", "tok_visa", "SKU-SCARCE")
	f.send(t, pipeline.StageInventory, envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: short}))
	if _, resp := f.deliver(t, pipeline.StageInventory, 1); len(failures(resp)) != 0 {
		t.Fatalf("failures %v", failures(resp))
	}
	if got := f.order(t, short.ID); got.Status != pipeline.StatusRejected {
		t.Errorf("order without stock is %s, want REJECTED", got.Status)
	}

	// Payment: a declined card fails the payment and releases the stock.
	declined := f.reserved(t, newOrder(t, "ord-declined", "tok_chargeDeclined", "SKU-OK"))
	f.setStock(t, "SKU-OK", 9) // as the reservation left it
	f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: declined}))
	if _, resp := f.deliver(t, pipeline.StagePayment, 1); len(failures(resp)) != 0 {
		t.Fatalf("failures %v", failures(resp))
	}
	if got := f.order(t, declined.ID); got.Status != pipeline.StatusPaymentFailed {
		t.Errorf("declined order is %s, want PAYMENT_FAILED", got.Status)
	}
	if n := f.stock(t, "SKU-OK"); n != 10 {
		t.Errorf("stock after a declined payment is %d, want 10 (released)", n)
	}

	// A redelivered, already handled event is a duplicate: acknowledged.
	f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: declined}))
	if _, resp := f.deliver(t, pipeline.StagePayment, 1); len(failures(resp)) != 0 {
		t.Fatalf("duplicate: failures %v", failures(resp))
	}
}

func TestBatchWithPoisonAndTransientRecords(t *testing.T) {
	t.Parallel()
	f := setup(t)
	good := f.reserved(t, newOrder(t, "ord-good", "tok_visa", "SKU-1"))
	flaky := f.reserved(t, newOrder(t, "ord-flaky", "tok_processingError", "SKU-1"))
	goodID := f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: good}))
	poison := `{"version":"0","detail-type":"InventoryReserved","detail":` // cut off: never parses
	poisonID := f.send(t, pipeline.StagePayment, poison)
	flakyID := f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: flaky}))

	ev := f.receive(t, pipeline.StagePayment, 3, 15*time.Second)
	ids := []string{ev.Records[0].MessageId, ev.Records[1].MessageId, ev.Records[2].MessageId}
	slices.Sort(ids)
	want := []string{goodID, poisonID, flakyID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("received %v, want the three sent %v", ids, want)
	}
	resp := f.invoke(t, ev)

	// Exactly the transient record is retried: the poison one went to the
	// DLQ and counts as handled, the good one succeeded.
	b, _ := json.Marshal(resp)
	if wantJSON := `{"batchItemFailures":[{"itemIdentifier":"` + flakyID + `"}]}`; string(b) != wantJSON {
		t.Fatalf("response %s, want %s", b, wantJSON)
	}
	f.settle(t, pipeline.StagePayment, ev, resp)
	if got := f.order(t, good.ID); got.Status != pipeline.StatusPaid {
		t.Errorf("good order is %s, want PAID", got.Status)
	}
	if got := f.order(t, flaky.ID); got.Status != pipeline.StatusReserved {
		t.Errorf("flaky order is %s, want still RESERVED", got.Status)
	}

	dead := f.receiveDLQ(t, pipeline.StagePayment, 1)
	if len(dead) != 1 {
		t.Fatalf("%d messages in the payment DLQ, want the poison one", len(dead))
	}
	d := dead[0]
	if aws.ToString(d.Body) != poison {
		t.Errorf("DLQ body %q, want the poison body unchanged", aws.ToString(d.Body))
	}
	for attr, want := range map[string]string{
		delivery.AttrReason:      pipeline.ReasonMalformed,
		delivery.AttrSourceQueue: f.queueURL(pipeline.StagePayment, false),
		delivery.AttrReceives:    "1",
	} {
		if got := aws.ToString(d.MessageAttributes[attr].StringValue); got != want {
			t.Errorf("DLQ attribute %s = %q, want %q", attr, got, want)
		}
	}
	if aws.ToString(d.MessageAttributes[delivery.AttrError].StringValue) == "" {
		t.Errorf("DLQ message lacks %s", delivery.AttrError)
	}

	// The transient record comes back after its back-off and fails once
	// more (the sandbox fails tok_processingError twice), then succeeds.
	for attempt := 2; attempt <= 3; attempt++ {
		ev, resp := f.deliver(t, pipeline.StagePayment, 1)
		r := ev.Records[0]
		if r.MessageId != flakyID {
			t.Fatalf("attempt %d: got message %s, want the flaky one %s", attempt, r.MessageId, flakyID)
		}
		if rc, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); rc != attempt {
			t.Errorf("attempt %d: receive count %d", attempt, rc)
		}
		wantFailures := []string{}
		if attempt == 2 {
			wantFailures = []string{flakyID}
		}
		if got := failures(resp); !slices.Equal(got, wantFailures) {
			t.Fatalf("attempt %d: failures %v, want %v", attempt, got, wantFailures)
		}
	}
	if got := f.order(t, flaky.ID); got.Status != pipeline.StatusPaid {
		t.Errorf("flaky order is %s after its third attempt, want PAID", got.Status)
	}
}

func (f *fixture) receiveDLQ(t *testing.T, st pipeline.Stage, n int) []types.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []types.Message
	for len(got) < n && ctx.Err() == nil {
		out, err := f.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.queueURL(st, true)), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		if out != nil {
			got = append(got, out.Messages...)
		}
	}
	return got
}

func (f *fixture) depth(t *testing.T, url string) int {
	t.Helper()
	out, err := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	b, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return a + b
}

func detailType(t *testing.T, body string) string {
	t.Helper()
	var env pipeline.Envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return env.DetailType
}

// gateway is a payment gateway for tests: Charge runs fn.
type gateway struct {
	fn func(ctx context.Context, r pipeline.ChargeRequest) (string, error)
}

func (g gateway) Charge(ctx context.Context, r pipeline.ChargeRequest) (string, error) {
	return g.fn(ctx, r)
}
func (gateway) Refund(context.Context, pipeline.RefundRequest) (string, error) {
	return "", &pipeline.DeclinedError{Code: "no_charge"}
}

func TestPanicIsReportedAsFailure(t *testing.T) {
	t.Parallel()
	f := setup(t, func(_ *config.Lambda, d *lambda.Deps) {
		d.Payments = gateway{fn: func(_ context.Context, r pipeline.ChargeRequest) (string, error) {
			if r.OrderID == "ord-panic" {
				panic("gateway bug")
			}
			return "ch_" + r.OrderID, nil
		}}
	})
	bad := f.reserved(t, newOrder(t, "ord-panic", "tok_visa", "SKU-1"))
	ok := f.reserved(t, newOrder(t, "ord-fine", "tok_visa", "SKU-1"))
	badID := f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: bad}))
	f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: ok}))
	_, resp := f.deliver(t, pipeline.StagePayment, 2)
	if got := failures(resp); !slices.Equal(got, []string{badID}) {
		t.Fatalf("failures %v, want only the panicking record %s", got, badID)
	}
	if got := f.order(t, ok.ID); got.Status != pipeline.StatusPaid {
		t.Errorf("the panic's batch neighbour is %s, want PAID", got.Status)
	}
	if n := f.depth(t, f.queueURL(pipeline.StagePayment, true)); n != 0 {
		t.Errorf("a panic dead-lettered %d messages at once; it must be retried", n)
	}
}

func TestRecordsRunConcurrentlyWithinTheBoundAndAllFinishFirst(t *testing.T) {
	t.Parallel()
	const records, bound = 10, 3
	var inFlight, peak, finished atomic.Int64
	full := make(chan struct{})
	var fullOnce sync.Once
	f := setup(t, func(c *config.Lambda, d *lambda.Deps) {
		c.Concurrency = bound
		d.Payments = gateway{fn: func(ctx context.Context, r pipeline.ChargeRequest) (string, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			defer finished.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			if n == bound {
				fullOnce.Do(func() { close(full) })
			}
			// Hold the slot until the bound is reached once, so the test
			// sees the pool full rather than racing it.
			select {
			case <-full:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
			}
			return "ch_" + r.OrderID, nil
		}}
	})
	for i := range records {
		o := f.reserved(t, newOrder(t, fmt.Sprintf("ord-conc-%d", i), "tok_visa", "SKU-1"))
		f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o}))
	}
	ev := f.receive(t, pipeline.StagePayment, records, 15*time.Second)
	resp := f.invoke(t, ev)
	if n := finished.Load(); n != records {
		t.Errorf("Handle returned with %d of %d handlers finished", n, records)
	}
	if got := failures(resp); len(got) != 0 {
		t.Errorf("failures %v", got)
	}
	if p := peak.Load(); p != bound {
		t.Errorf("at most %d records ran at once, want exactly the bound %d", p, bound)
	}
	for i := range records {
		if got := f.order(t, fmt.Sprintf("ord-conc-%d", i)); got.Status != pipeline.StatusPaid {
			t.Errorf("order %s is %s, want PAID", got.ID, got.Status)
		}
	}
}

func TestHandlersStopBeforeTheInvocationDeadline(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Lambda, d *lambda.Deps) {
		c.DeadlineMargin = time.Second
		d.Payments = gateway{fn: func(ctx context.Context, _ pipeline.ChargeRequest) (string, error) {
			<-ctx.Done() // a provider that never answers
			return "", context.Cause(ctx)
		}}
	})
	o := f.reserved(t, newOrder(t, "ord-slow", "tok_visa", "SKU-1"))
	id := f.send(t, pipeline.StagePayment, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o}))
	ev := f.receive(t, pipeline.StagePayment, 1, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := f.h.Handle(ctx, ev)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Errorf("Handle returned after the invocation deadline (%s)", elapsed)
	}
	if got := failures(resp); !slices.Equal(got, []string{id}) {
		t.Errorf("failures %v, want the unfinished record %s", got, id)
	}
}

func TestStageFromEventSourceOrConfiguration(t *testing.T) {
	t.Parallel()
	pinned := setup(t, func(c *config.Lambda, _ *lambda.Deps) { c.Stage = pipeline.StagePayment })
	o := pinned.reserved(t, newOrder(t, "ord-pinned", "tok_visa", "SKU-1"))
	body := envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o})
	record := func(id, arn string) events.SQSMessage {
		return events.SQSMessage{MessageId: id, Body: body, EventSourceARN: arn, EventSource: "aws:sqs",
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
	}
	resp := pinned.invoke(t, events.SQSEvent{Records: []events.SQSMessage{
		// A queue the function does not know by name: CLOUDCOMMERCE_STAGE decides.
		record("m-renamed", "arn:aws:sqs:us-east-1:000000000000:orders-payment-renamed"),
		// Another stage's queue of this deployment: refused.
		record("m-wrong-stage", pinned.queueARN(pipeline.StageShipping)),
	}})
	if got := failures(resp); !slices.Equal(got, []string{"m-wrong-stage"}) {
		t.Errorf("pinned function: failures %v, want only the shipping queue's record", got)
	}
	if got := pinned.order(t, o.ID); got.Status != pipeline.StatusPaid {
		t.Errorf("order is %s, want PAID (handled as a payment record)", got.Status)
	}

	unpinned := setup(t)
	resp = unpinned.invoke(t, events.SQSEvent{Records: []events.SQSMessage{record("m-unknown", "arn:aws:sqs:us-east-1:000000000000:somebody-elses-queue")}})
	if got := failures(resp); !slices.Equal(got, []string{"m-unknown"}) {
		t.Errorf("unpinned function: failures %v, want the record of an unknown queue", got)
	}
}

func TestNewFailsLoudlyOnAMissingQueue(t *testing.T) {
	t.Parallel()
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = lambda.New(context.Background(), config.Lambda{Prefix: uniquePrefix(), TopicARN: "arn:aws:sns:us-east-1:000000000000:x"},
		lambda.Deps{AWS: cfg, Log: zaptest.NewLogger(t)})
	if err == nil {
		t.Fatal("New succeeded without the queues")
	}
	if !strings.Contains(err.Error(), "-inventory") || !strings.Contains(err.Error(), "CLOUDCOMMERCE_PREFIX") {
		t.Errorf("error %q does not name the missing queue and what to check", err)
	}
}
