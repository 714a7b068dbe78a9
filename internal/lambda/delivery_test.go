package lambda_test

// The delivery policy as the Lambda adapter carries it out, on records
// really received from the emulator's queue (real receipt handles), with
// the event source mapping's part (receive before, delete after) done by
// the fixture.
//
// Of the consumer's delivery tests (internal/queue) two do not apply here
// as such: there is no visibility heartbeat (the function timeout bounds a
// batch, and the queue's visibility timeout must be at least six times it),
// and there are no batched deletes to fail per entry (the mapping deletes
// the records not reported in BatchItemFailures). In their place: a
// handler that exceeds its deadline is retried, and the records of one
// batch are settled independently of each other.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// counts returns the queue's ApproximateNumberOfMessages and
// ApproximateNumberOfMessagesNotVisible.
func (f *fixture) counts(t *testing.T, url string) (visible, notVisible int) {
	t.Helper()
	out, err := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	notVisible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, notVisible
}

func TestEachRecordOfABatchIsSettledByThePolicy(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	attempts := map[string]int{}
	var slowCause error
	f := setup(t, func(c *config.Lambda, d *lambda.Deps) {
		c.RetryBase = time.Second
		c.HandlerTimeout = 2 * time.Second
		d.Payments = gateway{fn: func(ctx context.Context, r pipeline.ChargeRequest) (string, error) {
			mu.Lock()
			attempts[r.OrderID]++
			n := attempts[r.OrderID]
			mu.Unlock()
			if n == 1 {
				switch r.OrderID {
				case "ord-transient":
					return "", errors.New("gateway throttled")
				case "ord-slow":
					// A provider that does not answer: the record's deadline
					// ends the wait.
					<-ctx.Done()
					mu.Lock()
					slowCause = context.Cause(ctx)
					mu.Unlock()
					return "", context.Cause(ctx)
				}
			}
			return "ch_" + r.OrderID, nil
		}}
	})
	st := pipeline.StagePayment
	url := f.queueURL(st, false)
	send := func(id string) string {
		o := f.reserved(t, newOrder(t, id, "tok_visa", "SKU-1"))
		return f.send(t, st, envelope(t, pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o}))
	}
	okID, transientID, slowID := send("ord-ok"), send("ord-transient"), send("ord-slow")
	poison := `{"version":"0","detail-type":"InventoryReserved","detail":{` // never parses
	poisonID := f.send(t, st, poison)

	ev := f.receive(t, st, 4, 15*time.Second)
	resp := f.invoke(t, ev)
	returned := time.Now()

	// Only the transient and the slow record are retried; the good one
	// succeeded and the poison one was dead-lettered, whatever their
	// neighbours did.
	want := []string{transientID, slowID}
	slices.Sort(want)
	got := failures(resp)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("batch item failures %v, want the transient and the slow record %v (ok %s, poison %s)", got, want, okID, poisonID)
	}
	mu.Lock()
	cause := slowCause
	mu.Unlock()
	if !errors.Is(cause, delivery.ErrHandlerDeadline) {
		t.Errorf("the slow record's handler was ended by %v, want its own deadline (%v)", cause, delivery.ErrHandlerDeadline)
	}
	// Right after the invocation nothing is visible: the retried records
	// are hidden for their back-off, the others until the mapping deletes
	// them.
	if v, nv := f.counts(t, url); v != 0 || nv != 4 {
		t.Errorf("right after the invocation the queue has %d visible and %d in-flight messages, want 0 and 4", v, nv)
	}
	f.settle(t, st, ev, resp)

	if o := f.order(t, "ord-ok"); o.Status != pipeline.StatusPaid {
		t.Errorf("the good record's order is %s, want PAID", o.Status)
	}
	dead := f.receiveDLQ(t, st, 1)
	if len(dead) != 1 {
		t.Fatalf("%d messages in the DLQ, want the poison one", len(dead))
	}
	if b := aws.ToString(dead[0].Body); b != poison {
		t.Errorf("DLQ body %q, want the poison body", b)
	}
	for attr, want := range map[string]string{delivery.AttrReason: pipeline.ReasonMalformed, delivery.AttrSourceQueue: url, delivery.AttrReceives: "1"} {
		if v := aws.ToString(dead[0].MessageAttributes[attr].StringValue); v != want {
			t.Errorf("DLQ attribute %s = %q, want %q", attr, v, want)
		}
	}
	if aws.ToString(dead[0].MessageAttributes[delivery.AttrError].StringValue) == "" {
		t.Errorf("DLQ message lacks %s", delivery.AttrError)
	}

	// The retried records come back after their 1s back-off, long before
	// the queue's 30s visibility timeout, as second receives; this time
	// the gateway answers and they succeed.
	again := f.receive(t, st, 2, 15*time.Second)
	if gap := time.Since(returned); gap < 500*time.Millisecond {
		t.Errorf("the retried records came back %v after the invocation, before their back-off", gap)
	}
	var ids []string
	for _, r := range again.Records {
		ids = append(ids, r.MessageId)
		if rc, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); rc != 2 {
			t.Errorf("record %s came back on receive %d, want 2", r.MessageId, rc)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Fatalf("records %v came back, want %v", ids, want)
	}
	resp = f.invoke(t, again)
	if got := failures(resp); len(got) != 0 {
		t.Errorf("second attempt: batch item failures %v", got)
	}
	f.settle(t, st, again, resp)
	for _, id := range []string{"ord-transient", "ord-slow"} {
		if o := f.order(t, id); o.Status != pipeline.StatusPaid {
			t.Errorf("order %s is %s after its retry, want PAID", id, o.Status)
		}
	}
	if n := f.depth(t, url); n != 0 {
		t.Errorf("the queue holds %d messages after every record was settled, want 0", n)
	}
}
