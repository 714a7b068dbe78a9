package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/queue"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// queuePair creates a queue with the given visibility timeout and a DLQ
// that takes its messages after maxReceive receives.
func queuePair(r *rt, env *testkit.Env, name string, visibility, maxReceive int) (url, dlq string) {
	r.Helper()
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	d, err := env.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(env.Prefix + "-" + name + "-dlq")})
	if err != nil {
		r.Fatal(err)
	}
	a, err := env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: d.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		r.Fatal(err)
	}
	redrive, _ := json.Marshal(map[string]any{"deadLetterTargetArn": a.Attributes["QueueArn"], "maxReceiveCount": maxReceive})
	q, err := env.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(env.Prefix + "-" + name), Attributes: map[string]string{
		"VisibilityTimeout": strconv.Itoa(visibility), "RedrivePolicy": string(redrive)}})
	if err != nil {
		r.Fatal(err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(d.QueueUrl)
}

// runConsumer runs a consumer until stop is called; stop waits for it.
func runConsumer(c *queue.Consumer) (stop func()) {
	recv, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.Run(recv, context.Background()) }()
	return func() { cancel(); wg.Wait() }
}

// TestSlowHandlerIsNotDeliveredTwice: a handler that runs 2.5 times the
// queue's visibility timeout keeps its message, because the consumer
// extends the visibility while it runs: exactly one delivery, the
// extensions counted.
func TestSlowHandlerIsNotDeliveredTwice(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	env := testkit.Provision(r)
	url, dlq := queuePair(r, env, "slow", 2, 5)
	var calls atomic.Int32
	var receives []int
	var mu sync.Mutex
	done := make(chan struct{})
	h := func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		calls.Add(1)
		mu.Lock()
		receives = append(receives, m.ReceiveCount)
		mu.Unlock()
		select {
		case <-time.After(5 * time.Second): // the slow carrier
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
		select {
		case done <- struct{}{}:
		default:
		}
		return pipeline.OutcomeOK, nil
	}
	m := metrics.New()
	c := queue.New(env.SQS, queue.Config{Stage: pipeline.StageShipping, QueueURL: url, DLQURL: dlq, WaitTime: time.Second,
		Visibility: 2 * time.Second, HandlerTimeout: 10 * time.Second}, h, zaptest.NewLogger(t), m)
	stop := runConsumer(c)
	defer stop()
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("slow")}); err != nil {
		r.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		r.Fatal("the slow handler never finished")
	}
	cl := &cluster{r: r, env: env}
	r.eventually("the message to be deleted", 30*time.Second, func() bool { n, err := cl.queueDepth(url); return err == nil && n == 0 })
	stop()
	if n := calls.Load(); n != 1 {
		r.Fatalf("the message was delivered %d times (receive counts %v), want once", n, receives)
	}
	if v := testutil.ToFloat64(m.Extended.WithLabelValues(string(pipeline.StageShipping))); v < 1 {
		r.Fatalf("visibility_extensions_total = %v, want at least 1", v)
	}
	if n, _ := cl.queueDepth(dlq); n != 0 {
		r.Fatalf("DLQ holds %d messages", n)
	}
}

// TestPanickingHandlerIsRecoveredAndRetried: a handler that panics on its
// first run does not crash the consumer; the panic is counted and the
// message retried (not dead-lettered), and the retry succeeds.
func TestPanickingHandlerIsRecoveredAndRetried(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	env := testkit.Provision(r)
	url, dlq := queuePair(r, env, "panic", 30, 5)
	var calls atomic.Int32
	h := func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		if calls.Add(1) == 1 {
			panic("boom: a bug in a handler")
		}
		return pipeline.OutcomeOK, nil
	}
	m := metrics.New()
	c := queue.New(env.SQS, queue.Config{Stage: pipeline.StagePayment, QueueURL: url, DLQURL: dlq, WaitTime: time.Second,
		RetryBase: 100 * time.Millisecond}, h, zaptest.NewLogger(t), m)
	stop := runConsumer(c)
	defer stop()
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")}); err != nil {
		r.Fatal(err)
	}
	cl := &cluster{r: r, env: env}
	r.eventually("the retried message to succeed and be deleted", time.Minute, func() bool {
		n, err := cl.queueDepth(url)
		return calls.Load() >= 2 && err == nil && n == 0
	})
	stop()
	st := string(pipeline.StagePayment)
	if v := testutil.ToFloat64(m.Panics.WithLabelValues(st)); v != 1 {
		r.Errorf("panics_total = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.Handled.WithLabelValues(st, "retried")); v != 1 {
		r.Errorf("retried = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.Handled.WithLabelValues(st, string(pipeline.OutcomeOK))); v != 1 {
		r.Errorf("ok = %v, want 1", v)
	}
	if n := calls.Load(); n != 2 {
		r.Errorf("handler ran %d times, want 2", n)
	}
	if n, _ := cl.queueDepth(dlq); n != 0 {
		r.Errorf("DLQ holds %d messages, want 0", n)
	}
}

// TestSlowCarrierIsNotShippedTwice runs the built worker against stage
// queues whose visibility timeout is cut to 2 s (on this test's own
// prefix) with a carrier that takes 5 s: the heartbeat keeps every shipping
// message, so each is received once and no delivery is a duplicate.
func TestSlowCarrierIsNotShippedTwice(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	c := newCluster(r, "CLOUDCOMMERCE_VISIBILITY_TIMEOUT=2s", "CLOUDCOMMERCE_CARRIER_DELAY=5s",
		"CLOUDCOMMERCE_HANDLER_TIMEOUT=15s", "CLOUDCOMMERCE_SHUTDOWN_TIMEOUT=20s", "CLOUDCOMMERCE_SWEEP_INTERVAL=off")
	ctx, cancel := ctxTimeout(time.Minute)
	defer cancel()
	for _, st := range pipeline.Stages {
		if _, err := c.env.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(c.env.QueueURL(st, false)),
			Attributes: map[string]string{"VisibilityTimeout": "2"}}); err != nil {
			r.Fatal(err)
		}
	}
	stock := map[string]int64{"SKU-S": 10}
	c.setStock(stock)
	w := c.worker()
	w.start()
	accepted := map[string]*planned{}
	for i := range 3 {
		id := placeOrder(ctx, r, func() string { return w.api }, testkit.Order(sandbox.TokenVisa, "SKU-S"), "slow-"+strconv.Itoa(i))
		accepted[id] = &planned{id: id}
	}
	settle(c, expect{stock: stock, accepted: accepted, finalWithin: time.Minute, queueWithin: 30 * time.Second})
	ship := string(pipeline.StageShipping)
	if v := metric(w.ops, "cloudcommerce_stage_messages_received_total", "stage", ship); v != 3 {
		r.Errorf("shipping received %v messages, want 3 (one per order)", v)
	}
	if v := metric(w.ops, "cloudcommerce_stage_messages_handled_total", "outcome", "duplicate"); v != 0 {
		r.Errorf("%v deliveries were duplicates, want 0", v)
	}
	if v := metric(w.ops, "cloudcommerce_stage_visibility_extensions_total", "stage", ship); v < 3 {
		r.Errorf("visibility_extensions_total{stage=shipping} = %v, want at least one per order", v)
	}
}

// TestReceiveLingerGathersMessages: after a receive that came back partly
// filled, a poller waits its receive linger before the next receive, so
// the messages that arrive meanwhile come in one receive instead of one
// receive each (a long poll returns as soon as the first is there).
func TestReceiveLingerGathersMessages(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	env := testkit.Provision(r)
	url, dlq := queuePair(r, env, "linger", 30, 5)
	const follow = 6
	var handled atomic.Int32
	all := make(chan struct{})
	h := func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		if string(m.Body) == "first" {
			// Sent one by one while the poller lingers after receiving
			// "first" alone.
			for i := range follow {
				if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("next-" + strconv.Itoa(i))}); err != nil {
					return "", err
				}
			}
		}
		if handled.Add(1) == follow+1 {
			close(all)
		}
		return pipeline.OutcomeOK, nil
	}
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("first")}); err != nil {
		r.Fatal(err)
	}
	m := metrics.New()
	c := queue.New(env.SQS, queue.Config{Stage: pipeline.StageInventory, QueueURL: url, DLQURL: dlq, WaitTime: time.Second,
		ReceiveLinger: 5 * time.Second}, h, zaptest.NewLogger(t), m)
	stop := runConsumer(c)
	select {
	case <-all:
	case <-ctx.Done():
		stop()
		r.Fatalf("handled %d of %d messages", handled.Load(), follow+1)
	}
	stop()
	receives, messages := batchHistogram(r, m, "receive")
	if receives != 2 || messages != follow+1 {
		r.Fatalf("%d receives carried %.0f messages, want 2 carrying 1 and then %d", receives, messages, follow)
	}
}

// batchHistogram returns the number of batched calls of a kind and the
// entries they carried, from cloudcommerce_aws_batch_size_entries.
func batchHistogram(r *rt, m *metrics.Metrics, kind string) (calls uint64, entries float64) {
	r.Helper()
	var pb dto.Metric
	if err := m.BatchSize.WithLabelValues(kind).(prometheus.Metric).Write(&pb); err != nil {
		r.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount(), pb.GetHistogram().GetSampleSum()
}

// TestLostReceiveCostsTheReceiveVisibility: a receive whose response is
// lost on the way (the messages are in flight at the queue, the consumer
// never sees them) costs the visibility the consumer asks for on each
// receive (2 s here), not the queue's own timeout (120 s): the message comes
// back on the second receive well within the queue's timeout.
func TestLostReceiveCostsTheReceiveVisibility(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	env := testkit.Provision(r)
	url, dlq := queuePair(r, env, "lostreceive", 120, 5)
	// The first receive that returns a message loses its response, as a
	// connection cut under the response did.
	var lost atomic.Bool
	client := sqs.NewFromConfig(env.AWS, func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("loseFirstReceive",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleInitialize(ctx, in)
					if o, ok := out.Result.(*sqs.ReceiveMessageOutput); ok && err == nil && len(o.Messages) > 0 && lost.CompareAndSwap(false, true) {
						return middleware.InitializeOutput{}, md, errors.New("response lost on the way")
					}
					return out, md, err
				}), middleware.After)
		})
	})
	got := make(chan int, 1)
	h := func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		select {
		case got <- m.ReceiveCount:
		default:
		}
		return pipeline.OutcomeOK, nil
	}
	c := queue.New(client, queue.Config{Stage: pipeline.StageShipping, QueueURL: url, DLQURL: dlq, WaitTime: time.Second,
		Visibility: 2 * time.Second, HandlerTimeout: 10 * time.Second}, h, zaptest.NewLogger(t), metrics.New())
	stop := runConsumer(c)
	defer stop()
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("lost once")}); err != nil {
		r.Fatal(err)
	}
	select {
	case n := <-got:
		if !lost.Load() {
			r.Fatal("the handler ran but no receive response was lost")
		}
		if n != 2 {
			r.Fatalf("handled at receive %d, want 2 (the first receive was lost)", n)
		}
	case <-time.After(60 * time.Second):
		r.Fatal("the message did not come back within half the queue's visibility timeout after a lost receive")
	}
}
