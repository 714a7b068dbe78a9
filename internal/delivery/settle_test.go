package delivery_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

// received sends body to url, receives it and makes it visible again at
// once, so that only the settler can hide it.
func received(t *testing.T, env *testkit.Env, url, body string) (pipeline.Message, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
		t.Fatal(err)
	}
	out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 1, WaitTimeSeconds: 5,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	msg := out.Messages[0]
	if _, err := env.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: msg.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	rc, _ := strconv.Atoi(msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return delivery.NewMessage(aws.ToString(msg.MessageId), aws.ToString(msg.Body), rc), aws.ToString(msg.ReceiptHandle)
}

// visible reports whether a receive of url finds a message within a
// second; a retried message is hidden for a back-off of at least ten.
func visible(t *testing.T, env *testkit.Env, url string) bool {
	t.Helper()
	out, err := env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Messages) > 0
}

func deleted(t *testing.T, env *testkit.Env, url, receipt string) {
	t.Helper()
	if _, err := env.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: &receipt}); err != nil {
		t.Fatal(err)
	}
}

func TestSettlerCarriesOutEachDecision(t *testing.T) {
	t.Parallel()
	env := testkit.Provision(t)
	st := pipeline.StagePayment
	url, dlq := env.QueueURL(st, false), env.QueueURL(st, true)
	m := metrics.New()
	s := &delivery.Settler{SQS: env.SQS, Stage: st, QueueURL: url, DLQURL: dlq, RetryBase: 20 * time.Second, RetryMax: 20 * time.Second, Metrics: m}
	log := zaptest.NewLogger(t)
	ctx := context.Background()
	handled := func(outcome string) float64 {
		return testutil.ToFloat64(m.Handled.WithLabelValues(string(st), outcome))
	}

	// Dead letter: copied to the DLQ with why; not to be retried.
	msg, receipt := received(t, env, url, `{"detail-type":"InventoryReserved","detail":{"order_id":"o-dl"}}`)
	perm := pipeline.Permanent(pipeline.ReasonMalformed, errors.New("bad body"))
	if res := s.Settle(ctx, log, msg, receipt, delivery.Classify("", perm)); res.Retry || res.Outcome != delivery.OutcomeDeadLettered {
		t.Fatalf("dead letter settled as %+v", res)
	}
	got := env.Receive(t, dlq, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d messages in the DLQ, want 1", len(got))
	}
	for name, want := range map[string]string{delivery.AttrReason: pipeline.ReasonMalformed, delivery.AttrSourceQueue: url,
		delivery.AttrReceives: strconv.Itoa(msg.ReceiveCount), delivery.AttrError: perm.Error()} {
		if v := aws.ToString(got[0].MessageAttributes[name].StringValue); v != want {
			t.Errorf("DLQ attribute %s = %q, want %q", name, v, want)
		}
	}
	if aws.ToString(got[0].Body) != string(msg.Body) {
		t.Errorf("DLQ body %q, want the original", aws.ToString(got[0].Body))
	}
	deleted(t, env, url, receipt) // the caller's part
	if handled(delivery.OutcomeDeadLettered) != 1 || testutil.ToFloat64(m.DeadLettered.WithLabelValues(string(st), pipeline.ReasonMalformed)) != 1 {
		t.Error("the dead letter was not counted")
	}

	// Retry: hidden for the back-off (the message was visible before).
	msg, receipt = received(t, env, url, "{}")
	if res := s.Settle(ctx, log, msg, receipt, delivery.Classify("", errors.New("throttled"))); !res.Retry || res.Outcome != delivery.OutcomeRetried {
		t.Fatalf("transient failure settled as %+v", res)
	}
	if visible(t, env, url) {
		t.Error("a retried message is visible again at once: no back-off was set")
	}
	if handled(delivery.OutcomeRetried) != 1 {
		t.Error("the retry was not counted")
	}

	// A panic is retried and counted as one.
	msg, receipt = received(t, env, url, "{}")
	if res := s.Settle(ctx, log, msg, receipt, delivery.Classify("", &delivery.PanicError{Value: "boom"})); !res.Retry {
		t.Fatalf("panic settled as %+v", res)
	}
	if testutil.ToFloat64(m.Panics.WithLabelValues(string(st))) != 1 || handled(delivery.OutcomeRetried) != 2 {
		t.Error("the panic was not counted")
	}

	// A dead letter that cannot reach a DLQ is retried instead.
	noDLQ := &delivery.Settler{SQS: env.SQS, Stage: st, QueueURL: url, RetryBase: 20 * time.Second, RetryMax: 20 * time.Second, Metrics: m}
	msg, receipt = received(t, env, url, "{}")
	if res := noDLQ.Settle(ctx, log, msg, receipt, delivery.Classify("", perm)); !res.Retry || res.Outcome != delivery.OutcomeRetried {
		t.Fatalf("undeliverable dead letter settled as %+v", res)
	}
	if testutil.ToFloat64(m.DeadLettered.WithLabelValues(string(st), pipeline.ReasonMalformed)) != 1 {
		t.Error("a dead letter that never reached the DLQ was counted as one")
	}
	if visible(t, env, url) {
		t.Error("an undeliverable dead letter is visible again at once: no back-off was set")
	}

	// Acknowledge: counted by outcome; the caller deletes.
	if res := s.Settle(ctx, log, msg, "", delivery.Classify(pipeline.OutcomeDuplicate, nil)); res.Retry || res.Outcome != string(pipeline.OutcomeDuplicate) {
		t.Fatalf("success settled as %+v", res)
	}
	if handled(string(pipeline.OutcomeDuplicate)) != 1 {
		t.Error("the success was not counted")
	}
}

// A deferred message (an event a newer release wrote) is hidden for its
// hand-back, never copied to the DLQ, counted by stage and reason, and
// logged at most once a minute per reason.
func TestSettlerHandsBackDeferredMessages(t *testing.T) {
	t.Parallel()
	env := testkit.Provision(t)
	st := pipeline.StageShipping
	url, dlq := env.QueueURL(st, false), env.QueueURL(st, true)
	m := metrics.New()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s := &delivery.Settler{SQS: env.SQS, Stage: st, QueueURL: url, DLQURL: dlq, DeferBase: 20 * time.Second, MaxReceives: 10,
		Metrics: m, Now: func() time.Time { return now }}
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	ctx := context.Background()
	bodies := map[string]string{
		pipeline.ReasonNewerSchema:  `{"detail-type":"PaymentCaptured","source":"cloudcommerce.orders","detail":{"schema_version":999,"order_id":"o-new"}}`,
		pipeline.ReasonUnknownEvent: `{"detail-type":"OrderGiftWrapped","source":"cloudcommerce.orders","detail":{"order_id":"o-gift"}}`,
	}
	for round := range 3 {
		for _, reason := range pipeline.DeferReasons {
			msg, receipt := received(t, env, url, bodies[reason])
			_, err := msg.Event()
			if res := s.Settle(ctx, log, msg, receipt, delivery.Classify("", err)); !res.Retry || res.Outcome != delivery.OutcomeDeferred {
				t.Fatalf("%s (round %d) settled as %+v", reason, round, res)
			}
			if visible(t, env, url) {
				t.Fatalf("%s: a deferred message is visible again at once: no hand-back was set", reason)
			}
		}
		if round == 1 {
			now = now.Add(time.Minute) // the third round logs again
		} else {
			now = now.Add(time.Second)
		}
	}
	for _, reason := range pipeline.DeferReasons {
		if v := testutil.ToFloat64(m.Deferred.WithLabelValues(string(st), reason)); v != 3 {
			t.Errorf("%s deferrals counted %v, want 3", reason, v)
		}
		lines := logs.FilterMessage("message handed back for a newer release").FilterField(zap.String("reason", reason)).All()
		if len(lines) != 2 {
			t.Errorf("%s: %d log lines for 3 hand-backs in a minute and a bit, want 2", reason, len(lines))
		} else if n := lines[1].ContextMap()["not_logged_since_last_line"]; n != int64(1) {
			t.Errorf("%s: the second line says %v were not logged, want 1", reason, n)
		}
	}
	if v := testutil.ToFloat64(m.Handled.WithLabelValues(string(st), delivery.OutcomeDeferred)); v != 6 {
		t.Errorf("deferred outcomes %v, want 6", v)
	}
	if n, err := depth(env, dlq); err != nil || n != 0 {
		t.Errorf("the DLQ holds %d messages (%v), want none", n, err)
	}
}

func depth(env *testkit.Env, url string) (int, error) {
	out, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n, nil
}
